import knex, { type Knex } from 'knex';
import pg from 'pg';
import type { Logger } from 'pino';
import { knexConfig, type DbSettings } from './knex-config';

export type { Knex };

// bigint counts come back as JS numbers; every count the engine reads fits in 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
// numeric (used by rounding in SQL) as a number, not a string.
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (value: string) => Number(value));

/** knex for the engine's database; its own warnings (e.g. a lost connection) go to `logger`. */
export function createDb(config: DbSettings, applicationName?: string, logger?: Logger): Knex {
  return knex({
    ...knexConfig(config, applicationName),
    ...(logger ? { log: knexLog(logger) } : {}),
  });
}

/**
 * knex prints to the console by default; route it through the structured log instead. Its warnings
 * are mostly failed connection attempts, which the engine reports itself: they go to debug.
 */
function knexLog(logger: Logger): Knex.Config['log'] {
  const log = (level: 'warn' | 'error' | 'debug') => (message: unknown) =>
    logger[level]({ component: 'knex', detail: String(message) }, 'knex');
  return { warn: log('debug'), error: log('error'), deprecate: log('warn'), debug: log('debug') };
}
