import type { Knex } from 'knex';

/**
 * Quarter-hour rollups (telemetry_15min, the shape of telemetry_hourly with `quarter` for `hour`),
 * rolled up with the hours (src/stores/rollup-store.ts): the fleet report reads the partial hours
 * at a window's edges from them, and raw readings only for the minutes short of a quarter.
 * BRIN indexes on the rollups' and history's time: rows are written in time order, so a small
 * index finds a window's rows for the whole fleet.
 *
 * Hours already rolled up have no quarter hours yet: they are marked for the roller, which rolls
 * them up again at both grains in the background (oldest first). Until it has, reports read those
 * hours raw, as they read every marked hour, so they stay exact; the rollup arithmetic stays in
 * one place (the store) instead of being copied into this migration.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE telemetry_15min (LIKE telemetry_hourly INCLUDING DEFAULTS) WITH (fillfactor = 70)
  `);
  await knex.raw('ALTER TABLE telemetry_15min RENAME COLUMN hour TO quarter');
  await knex.raw('ALTER TABLE telemetry_15min ADD PRIMARY KEY (device_type, device_id, quarter)');
  await knex.raw('CREATE INDEX telemetry_15min_quarter ON telemetry_15min USING brin (quarter)');
  await knex.raw(
    'CREATE INDEX IF NOT EXISTS telemetry_history_ts ON telemetry_history USING brin (ts)',
  );
  // A big database has many rolled hours: no statement timeout for this one.
  await knex.raw('SET LOCAL statement_timeout = 0');
  await knex.raw(`
    INSERT INTO rollup_pending (device_type, device_id, hour)
    SELECT device_type, device_id, hour FROM telemetry_hourly
    ON CONFLICT DO NOTHING
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS telemetry_history_ts');
  await knex.raw('DROP TABLE IF EXISTS telemetry_15min');
}
