import type { Knex } from 'knex';

/**
 * The detected session still going on where a vehicle's sessions are built, as built up to there
 * (src/sessions/session-store.ts): while nothing before its end changes, reports continue it
 * from its end instead of computing it again from its start. NULL: none, or an OCPP transaction.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE session_built ADD COLUMN open_session jsonb');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE session_built DROP COLUMN open_session');
}
