import type { Knex } from 'knex';

/**
 * What a drop in a register means. Until now every drop was a reset counting the new value, so a
 * register read again at a coarser resolution (an OCPP charger's meterStart of 100,456 Wh, then a
 * MeterValues sample of "100.4" kWh) counted its whole reading, 100.4 kWh, as energy. A reset
 * brings a register back near zero; a drop that leaves it at half its reading or more is a
 * rounding or a correction, and adds nothing. The rise after such a dip counts from the lower
 * reading, so the dip's size counts once: a rounding's worth instead of the register's.
 *
 * The rollups hold register increases computed with the old rule: every quarter hour holding a
 * reading the two rules read differently is marked for its rollup again, and the vehicles whose
 * sessions it touches (its own, or those mapped to its meter then) for their sessions again. Both
 * are done in the background by the flusher; reports are exact meanwhile (a marked quarter is read
 * raw, a marked vehicle's sessions are computed live).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION register_step(previous double precision, current double precision)
    RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
      SELECT CASE WHEN previous IS NULL THEN 0
                  WHEN current >= previous THEN current - previous
                  WHEN current < previous / 2 THEN current
                  ELSE 0 END
    $$
  `);
  await knex.raw(`
    CREATE TEMPORARY TABLE register_dips ON COMMIT DROP AS
    SELECT device_type, device_id, ts FROM (
      SELECT device_type, device_id, ts, coalesce(kwh_consumed_ac, kwh_delivered_dc) AS energy,
             lag(coalesce(kwh_consumed_ac, kwh_delivered_dc))
               OVER (PARTITION BY device_type, device_id ORDER BY ts) AS previous
      FROM telemetry_history) r
    WHERE energy < previous AND energy >= previous / 2`);
  await knex.raw(`
    INSERT INTO rollup_pending (device_type, device_id, quarter)
    SELECT DISTINCT device_type, device_id,
           date_bin('15 minutes', ts, timestamptz '2000-01-01T00:00:00Z')
    FROM register_dips
    ORDER BY 1, 2, 3
    ON CONFLICT DO NOTHING`);
  await knex.raw(`
    INSERT INTO session_dirty AS s (vehicle_id, since)
    SELECT vehicle_id, min(ts) FROM (
      SELECT device_id AS vehicle_id, ts FROM register_dips WHERE device_type = 'vehicle'
      UNION ALL
      SELECT m.vehicle_id, d.ts FROM register_dips d
      JOIN vehicle_meter_map m ON m.meter_id = d.device_id AND m.valid_from <= d.ts
       AND (m.valid_to IS NULL OR m.valid_to > d.ts)
      WHERE d.device_type = 'meter') dips
    GROUP BY vehicle_id
    ORDER BY vehicle_id
    ON CONFLICT (vehicle_id) DO UPDATE SET since = least(s.since, EXCLUDED.since),
                                           version = s.version + 1`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE FUNCTION register_step(previous double precision, current double precision)
    RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
      SELECT CASE WHEN previous IS NULL THEN 0
                  WHEN current >= previous THEN current - previous
                  ELSE current END
    $$
  `);
}
