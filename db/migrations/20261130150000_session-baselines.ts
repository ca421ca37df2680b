import type { Knex } from 'knex';

/**
 * A kept session's drift baseline (the median efficiency of the vehicle's sessions on the same
 * meter over the days before it, and how many there were), stored when the builder keeps it: it
 * depends only on the sessions before it, which are kept too, and any change to those rebuilds it.
 * NULL: not stored (a multi-meter session, or kept before this migration); reports compute those.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE charging_sessions
      ADD COLUMN baseline_median   double precision,
      ADD COLUMN baseline_sessions integer
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE charging_sessions DROP COLUMN baseline_median, DROP COLUMN baseline_sessions
  `);
}
