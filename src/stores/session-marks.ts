import type { Knex } from 'knex';

/**
 * Marks a vehicle's charging sessions to be computed again from `since` on (its mapping or a
 * transaction changed): the session builder picks the mark up, and reports compute that stretch
 * live until it has. A newer mark keeps the earlier `since` and bumps the version.
 */
export async function markSessionsChanged(db: Knex, vehicleId: string, since: Date): Promise<void> {
  await db.raw(
    `INSERT INTO session_dirty AS s (vehicle_id, since) VALUES (?, ?)
     ON CONFLICT (vehicle_id) DO UPDATE SET since = least(s.since, EXCLUDED.since), version = s.version + 1`,
    [vehicleId, since],
  );
}
