import type { Knex } from 'knex';

/**
 * Marks per quarter hour instead of per hour (src/stores/rollup-store.ts): the roller rolls up
 * each quarter hour once it has closed, so the hour in progress has rollups for its closed
 * quarters and a report that ends now reads raw only the quarter in progress. An hour's rollup is
 * up to date when none of its quarters is marked.
 *
 * An hour's mark becomes the marks of its four quarters: the old mark did not say which of them
 * gained readings.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE rollup_pending RENAME COLUMN hour TO quarter');
  await knex.raw('ALTER INDEX rollup_pending_hour RENAME TO rollup_pending_quarter');
  await knex.raw(`
    INSERT INTO rollup_pending (device_type, device_id, quarter)
    SELECT p.device_type, p.device_id, p.quarter + q * interval '15 minutes'
    FROM rollup_pending p, generate_series(1, 3) q
    ON CONFLICT DO NOTHING
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    INSERT INTO rollup_pending (device_type, device_id, quarter)
    SELECT DISTINCT device_type, device_id, date_trunc('hour', quarter, 'UTC') FROM rollup_pending
    ON CONFLICT DO NOTHING
  `);
  await knex.raw(`DELETE FROM rollup_pending WHERE quarter <> date_trunc('hour', quarter, 'UTC')`);
  await knex.raw('ALTER INDEX rollup_pending_quarter RENAME TO rollup_pending_hour');
  await knex.raw('ALTER TABLE rollup_pending RENAME COLUMN quarter TO hour');
}
