import type { Knex } from 'knex';

/**
 * When a quarter-hour mark last gained a reading (to within the flusher's refresh interval): the
 * roller leaves a quarter still receiving readings (a backlog being drained, a device sending late)
 * until it goes quiet, instead of rolling it up again after every flush. Fillfactor 70: the
 * refreshes are updates in place.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'ALTER TABLE rollup_pending ADD COLUMN touched_at timestamptz NOT NULL DEFAULT now()',
  );
  await knex.raw('ALTER TABLE rollup_pending SET (fillfactor = 70)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE rollup_pending RESET (fillfactor)');
  await knex.raw('ALTER TABLE rollup_pending DROP COLUMN touched_at');
}
