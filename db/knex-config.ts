import type { Knex } from 'knex';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { armQueryDeadline } from './query-deadline';

export const MIGRATIONS_TABLE = 'knex_migrations';

/** A migration's recorded name: its file's, as compiled (`.js`). */
export const migrationName = (file: string) => file.replace(/\.ts$/, '.js');

/**
 * The migration files, named as compiled code names them (`<file>.js`) whether the code runs
 * compiled (`npm start`) or under tsx (`npm run dev`): named by their own extension, a database
 * migrated by one was "missing" every migration for the other.
 */
class MigrationFiles implements Knex.MigrationSource<string> {
  constructor(
    private readonly directory: string,
    private readonly extension: '.js' | '.ts',
  ) {}

  async getMigrations(): Promise<string[]> {
    const files = await readdir(this.directory);
    return files.filter((f) => f.endsWith(this.extension) && !f.endsWith('.d.ts')).sort();
  }

  getMigrationName(file: string): string {
    return migrationName(file);
  }

  async getMigration(file: string): Promise<Knex.Migration> {
    return (await import(path.join(this.directory, file))) as Knex.Migration;
  }
}

/** What the database connection needs of the engine's configuration. */
export interface DbSettings {
  databaseUrl: string;
  dbPoolMax: number;
  dbStatementTimeoutMs: number;
  dbAcquireTimeoutMs: number;
}

/** Connections of the generic-plan pool (createGenericPlanDb): one short statement per request. */
export const GENERIC_POOL_MAX = 4;

/**
 * Connections a flusher process uses beside its jobs' (the rollup roller's, the session builder's
 * and the dead-row vacuum's): its pool holds at least FLUSHER_CONCURRENCY plus these, or jobs and
 * background work would wait for each other's connections.
 */
export const FLUSHER_BACKGROUND_CONNECTIONS = 3;

/** How long a query may wait for its reply before its connection is cut (see armQueryDeadline). */
export const queryDeadlineMs = (config: Pick<DbSettings, 'dbStatementTimeoutMs'>) =>
  config.dbStatementTimeoutMs + 5000;

/** The migrations this code holds, by recorded name (read from its files). */
export async function expectedMigrations(): Promise<string[]> {
  return (await migrationFiles().getMigrations()).map(migrationName);
}

const migrationFiles = () =>
  new MigrationFiles(
    path.join(__dirname, 'migrations'),
    path.extname(__filename) === '.js' ? '.js' : '.ts',
  );

/**
 * The settings of a generic-plan connection: prepared statements planned once, generically, and
 * never by a sequential scan where an index serves. A plan lives as long as its connection (or
 * until an ANALYZE or VACUUM of a table it reads), and the marks tables it reads (rollup_pending,
 * session_dirty) swing from empty to thousands of rows, dead ones too, between VACUUMs: planned
 * while one was empty, the report read it whole at each of its 48 lookups, 4.2 ms of its
 * execution with 2,000 dead marks against 0.9 by the primary key, and reports slowed down as the
 * dead marks grew. Every lookup of these statements has an index; the setting only prices a
 * sequential scan out, it still runs where nothing else can.
 */
export const GENERIC_PLAN_SETTINGS = {
  plan_cache_mode: 'force_generic_plan',
  enable_seqscan: 'off',
} as const;

const genericPlanOptions = Object.entries(GENERIC_PLAN_SETTINGS)
  .map(([name, value]) => `-c ${name}=${value}`)
  .join(' ');

/**
 * knex settings for the engine's database; the one place connection and pool options live.
 * `genericPlans`: the connections plan prepared statements once, generically (see
 * createGenericPlanDb), where PostgreSQL would otherwise plan them again on every call.
 */
export function knexConfig(
  config: DbSettings,
  applicationName = 'energy-engine',
  { genericPlans = false }: { genericPlans?: boolean } = {},
): Knex.Config {
  return {
    client: 'pg',
    connection: {
      connectionString: config.databaseUrl,
      application_name: applicationName,
      ...(genericPlans ? { options: genericPlanOptions } : {}),
      // Nothing may wait forever: a stuck statement fails, and the flusher retries its job.
      statement_timeout: config.dbStatementTimeoutMs,
      connectionTimeoutMillis: Math.min(config.dbAcquireTimeoutMs, 5000),
      // TCP keepalive: an idle connection to a vanished server is found dead (after the kernel's
      // probes) instead of kept in the pool for ever.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    },
    pool: {
      min: 0,
      max: config.dbPoolMax,
      // The pool reuses its most recent connection first, so with the default 30 s the others
      // close between bursts and the next burst opens new ones, whose first statements cost
      // 100-200 ms (the server loads its catalog caches and plans them again): keep them open.
      idleTimeoutMillis: 600_000,
      // A query the server has not answered well past statement_timeout has lost its server.
      afterCreate: (connection: pg.Client, done: (err: Error | null, c: pg.Client) => void) => {
        armQueryDeadline(connection, queryDeadlineMs(config));
        done(null, connection);
      },
    },
    acquireConnectionTimeout: config.dbAcquireTimeoutMs,
    migrations: {
      migrationSource: migrationFiles(),
      tableName: MIGRATIONS_TABLE,
    },
  };
}
