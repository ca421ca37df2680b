import pg from 'pg';
import type { Knex } from 'knex';
import { MIGRATIONS_TABLE, expectedMigrations, migrationName } from './knex-config';

/** The URL of the server's maintenance database, used to create or drop other databases. */
export function maintenanceUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  return url.toString();
}

export function databaseName(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));
  if (!name) throw new Error(`DATABASE_URL names no database: ${databaseUrl}`);
  return name;
}

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Runs `fn` with a short-lived client on the maintenance database. */
export async function withMaintenanceClient<T>(
  databaseUrl: string,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({
    connectionString: maintenanceUrl(databaseUrl),
    connectionTimeoutMillis: 3000,
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates the database named in `databaseUrl` unless it exists. Returns true when created. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const name = databaseName(databaseUrl);
  return withMaintenanceClient(databaseUrl, async (client) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
      return true;
    } catch (err) {
      // Another process created it between our check and our CREATE.
      if ((err as { code?: string }).code === '42P04') return false;
      throw err;
    }
  });
}

/**
 * Applies this release's pending migrations; returns their names. A database a later release
 * migrated records migrations this one lacks: that is a rollback, which runs on the newer schema
 * (migrations only add), so it migrates nothing rather than refusing, where knex called the
 * directory corrupt, and tells `onLaterReleases` their names. It still is corrupt when a migration
 * this release lacks sorts before its own last.
 */
export async function migrateToLatest(
  db: Knex,
  onLaterReleases: (names: string[]) => void = () => undefined,
): Promise<string[]> {
  await nameMigrationsAsCompiled(db);
  const { ofLaterReleases, missing } = await unknownMigrations(db);
  if (ofLaterReleases.length > 0) onLaterReleases(ofLaterReleases);
  if (missing.length > 0) {
    throw new Error(
      `The migration directory is corrupt: the database records migrations that sort among this release's own and have no file here: ${missing.join(', ')}`,
    );
  }
  const [, applied] = (await db.migrate.latest({
    disableMigrationsListValidation: true, // checked above
  })) as [number, string[]];
  return applied;
}

/**
 * Migrations the database records that this release has no file of: those later than its own
 * last (named by timestamp, they sort by it), of a later release, and the others, missing.
 */
async function unknownMigrations(
  db: Knex,
): Promise<{ ofLaterReleases: string[]; missing: string[] }> {
  if (!(await db.schema.hasTable(MIGRATIONS_TABLE))) return { ofLaterReleases: [], missing: [] };
  const own = await expectedMigrations();
  const known = new Set(own);
  const recorded = (await db(MIGRATIONS_TABLE).pluck('name')) as string[];
  const unknown = recorded.filter((name) => !known.has(name)).sort();
  // Without files of its own (a broken install) none is known to be later.
  const lastOwn = own[own.length - 1] ?? '\uffff';
  return {
    ofLaterReleases: unknown.filter((name) => name > lastOwn),
    missing: unknown.filter((name) => name < lastOwn),
  };
}

/** Migrations recorded under tsx before they were named as compiled (`.ts`): renamed so. */
async function nameMigrationsAsCompiled(db: Knex): Promise<void> {
  if (!(await db.schema.hasTable(MIGRATIONS_TABLE))) return;
  const recorded = (await db(MIGRATIONS_TABLE)
    .where('name', 'like', '%.ts')
    .pluck('name')) as string[];
  for (const name of recorded) {
    await db(MIGRATIONS_TABLE)
      .where({ name })
      .update({ name: migrationName(name) });
  }
}

export async function rollbackAll(db: Knex): Promise<string[]> {
  const [, reverted] = (await db.migrate.rollback(undefined, true)) as [number, string[]];
  return reverted;
}

/** The migrations not applied yet to the database `db` points at, by file name. */
export async function pendingMigrations(db: Knex): Promise<string[]> {
  // Pending migrations as the source lists them: their files (see MigrationFiles). Migrations
  // recorded without a file here (see migrateToLatest) are no pending ones.
  const [, pending] = (await db.migrate.list({ disableMigrationsListValidation: true })) as [
    unknown[],
    string[],
  ];
  return pending.map(migrationName);
}
