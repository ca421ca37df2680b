import type { Knex } from 'knex';

/**
 * The ENERGY_READINGS default the kept charging sessions were built with (one row, written by the
 * session builder on its first run). A flusher started with another default marks the sessions
 * that followed it, so they are built again: reports and rollups follow the default at once,
 * kept sessions only when built again.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE session_defaults (
      id              integer PRIMARY KEY CHECK (id = 1),
      energy_readings text    NOT NULL CHECK (energy_readings IN ('interval', 'cumulative'))
    )
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS session_defaults');
}
