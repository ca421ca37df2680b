import type { Knex } from 'knex';
import { knexConfig } from './db/knex-config';
import { loadConfig } from './src/config';

/** For the knex CLI: `npx knex --knexfile knexfile.ts migrate:status`. */
export default async function (): Promise<Knex.Config> {
  return knexConfig(loadConfig(process.env));
}
