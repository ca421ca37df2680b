import knex, { type Knex } from 'knex';
import pg from 'pg';
import type { Logger } from 'pino';
import { GENERIC_POOL_MAX, knexConfig, type DbSettings } from './knex-config';

export type { Knex };

// bigint counts come back as JS numbers; every count the engine reads fits in 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
// numeric (used by rounding in SQL) as a number, not a string.
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (value: string) => Number(value));

/** knex for the engine's database; its own warnings (e.g. a lost connection) go to `logger`. */
export function createDb(
  config: DbSettings,
  applicationName?: string,
  logger?: Logger,
  options: { genericPlans?: boolean } = {},
): Knex {
  return knex({
    ...knexConfig(config, applicationName, options),
    ...(logger ? { log: knexLog(logger) } : {}),
  });
}

/**
 * A second, small pool whose connections plan prepared statements generically: statements over
 * history, whose generic plan PostgreSQL never picks by itself (its estimate covers every
 * partition, though they are pruned when it starts), so it plans them again on every call. Only
 * named statements go there (unnamed ones would be planned generically each time, without
 * pruning). Null when DB_PREPARED_STATEMENTS is off.
 */
export function createGenericPlanDb(
  config: DbSettings & { dbPreparedStatements: 'on' | 'off' },
  applicationName: string,
  logger?: Logger,
): Knex | null {
  if (config.dbPreparedStatements === 'off') return null;
  return createDb(
    { ...config, dbPoolMax: Math.min(config.dbPoolMax, GENERIC_POOL_MAX) },
    applicationName,
    logger,
    { genericPlans: true },
  );
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
