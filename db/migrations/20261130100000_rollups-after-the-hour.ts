import type { Knex } from 'knex';

/**
 * Hourly rollups are computed once an hour has closed, from history, instead of being folded into
 * on every flush (src/stores/rollup-store.ts). The flusher marks each (device, hour) it inserts
 * into; reports read marked hours raw; the rollup of a marked hour is recomputed and its mark
 * removed. The SQL function that rebuilt rollups moves into the store, beside the one definition
 * of the energy arithmetic.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE IF NOT EXISTS rollup_pending (
      device_type text        NOT NULL,
      device_id   text        NOT NULL,
      hour        timestamptz NOT NULL,
      PRIMARY KEY (device_type, device_id, hour)
    )
  `);
  // The roller takes the oldest hours first.
  await knex.raw('CREATE INDEX IF NOT EXISTS rollup_pending_hour ON rollup_pending (hour)');
  // Buckets the old flusher left for recomputation.
  await knex.raw(`
    INSERT INTO rollup_pending (device_type, device_id, hour)
    SELECT device_type, device_id, hour FROM telemetry_hourly WHERE register_increase IS NULL
    ON CONFLICT DO NOTHING
  `);
  await knex.raw('DROP FUNCTION IF EXISTS rebuild_hourly_rollups(timestamptz, timestamptz)');
}

export async function down(knex: Knex): Promise<void> {
  // The old design recomputes rollups with this function and maintains them on every flush:
  // bring it back and bring every marked hour up to date before the marks go.
  await knex.raw(`
    CREATE OR REPLACE FUNCTION rebuild_hourly_rollups(from_ts timestamptz, to_ts timestamptz)
    RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
      first_hour timestamptz := date_trunc('hour', from_ts, 'UTC');
      end_hour timestamptz := date_trunc('hour', to_ts - interval '1 microsecond', 'UTC') + interval '1 hour';
      written integer;
    BEGIN
      DELETE FROM telemetry_hourly WHERE hour >= first_hour AND hour < end_hour;
      INSERT INTO telemetry_hourly
      SELECT device_type, device_id, hour, count(*), sum(energy),
             sum(register_step(previous_energy, energy)),
             min(ts), (array_agg(energy ORDER BY ts))[1], max(ts), (array_agg(energy ORDER BY ts DESC))[1],
             sum(battery_temp), min(battery_temp), max(battery_temp), min(soc), max(soc),
             (array_agg(soc ORDER BY ts))[1], (array_agg(soc ORDER BY ts DESC))[1]
      FROM (
        SELECT device_type, device_id, ts, date_trunc('hour', ts, 'UTC') AS hour,
               coalesce(kwh_consumed_ac, kwh_delivered_dc) AS energy, battery_temp, soc,
               lag(coalesce(kwh_consumed_ac, kwh_delivered_dc)) OVER (
                 PARTITION BY device_type, device_id, date_trunc('hour', ts, 'UTC') ORDER BY ts) AS previous_energy
        FROM telemetry_history
        WHERE ts >= first_hour AND ts < end_hour
      ) readings
      GROUP BY device_type, device_id, hour
      ORDER BY device_type, device_id, hour;
      GET DIAGNOSTICS written = ROW_COUNT;
      RETURN written;
    END $$
  `);
  await knex.raw(`
    SELECT rebuild_hourly_rollups(min(hour), max(hour) + interval '1 hour')
    FROM rollup_pending HAVING count(*) > 0`);
  await knex.raw('DROP TABLE IF EXISTS rollup_pending');
}
