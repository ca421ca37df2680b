import type { Knex } from 'knex';

/**
 * `history_before(device_type, device_id, ts)`: a device's last reading before `ts` (0 or 1 row).
 *
 * Session statements look up the reading before each device window (a register's starting point,
 * the interval of the first reading, the SoC at the start). Written inline, each lookup is planned
 * over every daily partition of history, and planning was most of a live session computation
 * (10-17 ms of 12-20 ms for one vehicle with 35 partitions). Behind this function the lookups are
 * planned once per connection (PL/pgSQL keeps its plans), and the usual case, a reading within a
 * day, touches only the one or two partitions of that day; older readings are still found.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION history_before(p_device_type text, p_device_id text, p_ts timestamptz)
    RETURNS SETOF telemetry_history LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RETURN QUERY
        SELECT * FROM telemetry_history h
        WHERE h.device_type = p_device_type AND h.device_id = p_device_id
          AND h.ts < p_ts AND h.ts >= p_ts - interval '1 day'
        ORDER BY h.ts DESC LIMIT 1;
      IF NOT FOUND THEN
        RETURN QUERY
          SELECT * FROM telemetry_history h
          WHERE h.device_type = p_device_type AND h.device_id = p_device_id
            AND h.ts < p_ts - interval '1 day'
          ORDER BY h.ts DESC LIMIT 1;
      END IF;
    END $$
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP FUNCTION IF EXISTS history_before(text, text, timestamptz)');
}
