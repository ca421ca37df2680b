import type { Knex } from 'knex';
import type { DeviceType } from '../devices/device-kinds';

/** Marks rows into session_dirty: a newer mark keeps the earlier `since` and bumps the version. */
const MARK = (rows: string) => `INSERT INTO session_dirty AS d (vehicle_id, since) ${rows}
  ON CONFLICT (vehicle_id) DO UPDATE SET since = least(d.since, EXCLUDED.since), version = d.version + 1`;

/**
 * Marks a vehicle's charging sessions to be computed again from `since` on (its mapping or a
 * transaction changed): the session builder picks the mark up, and reports compute that stretch
 * live until it has.
 */
export async function markSessionsChanged(db: Knex, vehicleId: string, since: Date): Promise<void> {
  await db.raw(MARK('VALUES (?, ?)'), [vehicleId, since]);
}

/**
 * Marks, for devices whose energy semantics changed, the kept sessions they are part of: a
 * vehicle's own, or those of the vehicles mapped to a meter that overlap their mapping period.
 * Each vehicle is marked from its earliest such session (sessions not kept yet are computed with
 * the semantics in force).
 */
export async function markSessionsOfDevices(
  db: Knex,
  type: DeviceType,
  ids: string[],
): Promise<void> {
  if (ids.length === 0) return;
  const touched =
    type === 'vehicle'
      ? `SELECT s.vehicle_id, s.start_ts FROM charging_sessions s WHERE s.vehicle_id = ANY(?)`
      : `SELECT s.vehicle_id, s.start_ts FROM vehicle_meter_map m
         JOIN charging_sessions s ON s.vehicle_id = m.vehicle_id AND s.end_ts >= m.valid_from
          AND (m.valid_to IS NULL OR s.start_ts < m.valid_to)
         WHERE m.meter_id = ANY(?)`;
  await db.raw(
    MARK(
      `SELECT vehicle_id, min(start_ts) FROM (${touched}) t GROUP BY vehicle_id ORDER BY vehicle_id`,
    ),
    [ids],
  );
}
