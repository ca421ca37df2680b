import type { Knex } from 'knex';

/**
 * Waits for, then holds until `trx` ends, PostgreSQL's transaction-level advisory lock named
 * `name`: changes of one thing (a vehicle's mapping, an idTag's registration, the rollups) take
 * turns. The names share one `hashtext` key space: two names of one hash only wait for each other.
 */
export const takeTurns = (trx: Knex.Transaction, name: string) =>
  trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [name]);
