import knex, { type Knex } from 'knex';
import pg from 'pg';
import { knexConfig } from '../knexfile';
import type { Config } from '../src/config';

export type { Knex };

// bigint counts come back as JS numbers; every count the engine reads fits in 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
// numeric (used by rounding in SQL) as a number, not a string.
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (value: string) => Number(value));

export function createDb(config: Config, applicationName?: string): Knex {
  return knex(knexConfig(config, applicationName));
}
