import type { Knex } from 'knex';

/**
 * Quarter-hour marks (rollup_pending):
 * - touched_at: when a mark last gained a reading (to within the flusher's refresh interval), so
 *   the roller leaves a quarter still receiving readings (a backlog being drained, a device
 *   catching up) until it goes quiet, instead of rolling it up again after every flush;
 * - no index on the quarter alone: when the table's statistics said it held few marks, the planner
 *   probed a device's marks through it, reading every mark of the hour (10 ms per report with
 *   16,000 marks); by primary key each probe reads only the device's own. What reads marks by time
 *   (the roller, the fleet report) reads the whole small table;
 * - vacuumed after every 10,000 removed marks, whatever the table's size: marks come and go all
 *   day, and dead ones slow every probe;
 * - fillfactor 70: the touched_at refreshes are updates in place.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'ALTER TABLE rollup_pending ADD COLUMN touched_at timestamptz NOT NULL DEFAULT now()',
  );
  await knex.raw('DROP INDEX IF EXISTS rollup_pending_quarter');
  await knex.raw(`ALTER TABLE rollup_pending SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 10000)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE rollup_pending RESET (fillfactor,
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)`);
  await knex.raw('CREATE INDEX IF NOT EXISTS rollup_pending_quarter ON rollup_pending (quarter)');
  await knex.raw('ALTER TABLE rollup_pending DROP COLUMN touched_at');
}
