import type { Knex } from 'knex';

/**
 * A stopped OCPP transaction's session now counts meterStop - meterStart as its AC (what the
 * charge point bills) instead of folding the register's samples between: the sessions kept
 * before are marked, from their start, for the session builder to build again.
 */
export const MARK_OCPP_SESSIONS = `
    INSERT INTO session_dirty AS d (vehicle_id, since)
    SELECT vehicle_id, min(start_ts) FROM charging_sessions
    WHERE source = 'ocpp' GROUP BY vehicle_id ORDER BY vehicle_id
    ON CONFLICT (vehicle_id) DO UPDATE SET since = least(d.since, EXCLUDED.since), version = d.version + 1
  `;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(MARK_OCPP_SESSIONS);
}

export async function down(): Promise<void> {
  // Marks only: building the sessions again is harmless either way.
}
