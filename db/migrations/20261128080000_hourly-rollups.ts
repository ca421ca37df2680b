import type { Knex } from 'knex';

/**
 * Hourly rollups per device, maintained by the flusher in the same transaction as the history
 * insert (from the rows actually inserted, so duplicates never count twice). Analytics reads a
 * day as 24 rollup rows plus the raw rows of the partial hours at the window's edges.
 *
 * `energy` is kwh_consumed_ac for meters and kwh_delivered_dc for vehicles. For cumulative
 * (register) readings, `register_increase` is the sum of increases between consecutive readings
 * inside the hour (a drop counts the new value: a reset); NULL means "recompute from history".
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE telemetry_hourly (
      device_type       text             NOT NULL,
      device_id         text             NOT NULL,
      hour              timestamptz      NOT NULL,
      readings          integer          NOT NULL,
      energy_sum        double precision NOT NULL,
      register_increase double precision,
      first_ts          timestamptz      NOT NULL,
      first_energy      double precision NOT NULL,
      last_ts           timestamptz      NOT NULL,
      last_energy       double precision NOT NULL,
      temp_sum          double precision,
      temp_min          double precision,
      temp_max          double precision,
      soc_min           double precision,
      soc_max           double precision,
      first_soc         double precision,
      last_soc          double precision,
      PRIMARY KEY (device_type, device_id, hour)
    ) WITH (fillfactor = 70)
  `);

  // The increase between two consecutive register readings; a drop means the register was reset.
  await knex.raw(`
    CREATE OR REPLACE FUNCTION register_step(previous double precision, current double precision)
    RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
      SELECT CASE WHEN previous IS NULL THEN 0
                  WHEN current >= previous THEN current - previous
                  ELSE current END
    $$
  `);

  // Rollups of [from_ts, to_ts) recomputed from history: for repairs, data loaded from outside,
  // and as the reference the incremental maintenance is tested against.
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

  // History written before this migration gets its rollups now.
  await knex.raw(`
    SELECT rebuild_hourly_rollups(min(ts), max(ts) + interval '1 microsecond')
    FROM telemetry_history HAVING count(*) > 0`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP FUNCTION IF EXISTS rebuild_hourly_rollups(timestamptz, timestamptz)');
  await knex.raw('DROP FUNCTION IF EXISTS register_step(double precision, double precision)');
  await knex.raw('DROP TABLE IF EXISTS telemetry_hourly');
}
