import type { Knex } from 'knex';

/**
 * A vehicle's charge from another meter just before or after one of its OCPP transactions is now
 * a session of its own (readings within MAX_CLOCK_SKEW_S of the transaction stay its own), where a
 * run reaching into the transaction was dropped whole. Each vehicle with kept OCPP sessions is
 * marked for the session builder to build again from a day before its first: the runs before it
 * are read again too.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    INSERT INTO session_dirty AS d (vehicle_id, since)
    SELECT vehicle_id, min(start_ts) - interval '1 day' FROM charging_sessions
    WHERE source = 'ocpp' GROUP BY vehicle_id ORDER BY vehicle_id
    ON CONFLICT (vehicle_id) DO UPDATE SET since = least(d.since, EXCLUDED.since), version = d.version + 1
  `);
}

export async function down(): Promise<void> {
  // Marks only: building the sessions again is harmless either way.
}
