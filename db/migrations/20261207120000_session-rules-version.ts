import type { Knex } from 'knex';

/**
 * The version of how kept OCPP sessions are counted (SESSION_RULES), recorded by the flusher that
 * built them: a flusher of a later version marks them to be built again at its start, also when
 * an older flusher, still running after the migrations, built them again the old way.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE session_defaults ADD COLUMN IF NOT EXISTS session_rules integer');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE session_defaults DROP COLUMN IF EXISTS session_rules');
}
