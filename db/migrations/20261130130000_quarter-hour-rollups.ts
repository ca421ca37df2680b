import type { Knex } from 'knex';
import { RollupStore } from '../../src/stores/rollup-store';

const HOUR_MS = 3_600_000;

/**
 * Quarter-hour rollups (telemetry_15min, the shape of telemetry_hourly with `quarter` for `hour`),
 * rolled up with the hours (src/stores/rollup-store.ts): the fleet report reads the partial hours
 * at a window's edges from them, and raw readings only for the minutes short of a quarter.
 * BRIN indexes on the rollups' and history's time: rows are written in time order, so a small
 * index finds a window's rows for the whole fleet. Hours already rolled up get their quarter hours
 * now, from history, one hour per statement.
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
  // An hour's readings sort in memory; hours of a big database take a while: no timeout.
  await knex.raw(`SET LOCAL work_mem = '256MB'`);
  await knex.raw('SET LOCAL statement_timeout = 0');
  const hours = (await knex.raw(`SELECT DISTINCT hour FROM telemetry_hourly ORDER BY hour`))
    .rows as { hour: Date }[];
  const rollups = new RollupStore(knex);
  for (const { hour } of hours) {
    await rollups.rebuild(hour, new Date(hour.getTime() + HOUR_MS));
  }
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS telemetry_history_ts');
  await knex.raw('DROP TABLE IF EXISTS telemetry_15min');
}
