import type { Knex } from 'knex';

/**
 * The SESSION_GAP_S the kept charging sessions were built with, beside their ENERGY_READINGS
 * default: a flusher started with another gap marks every vehicle's sessions to be built again
 * (the gap decides where detected sessions start and end). NULL until a session builder of this
 * version records it: sessions built before are taken to have been built with the gap it finds.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'ALTER TABLE session_defaults ADD COLUMN IF NOT EXISTS session_gap_s integer CHECK (session_gap_s > 0)',
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE session_defaults DROP COLUMN IF EXISTS session_gap_s');
}
