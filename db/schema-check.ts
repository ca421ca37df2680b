import type { Knex } from 'knex';
import { MIGRATIONS_TABLE, expectedMigrations, migrationName } from './knex-config';

/** What a process says of a database that lacks migrations; `npm run migrate` applies them. */
export function missingMigrationsMessage(pending: string[]): string {
  return `lacks ${pending.length} migration(s) (first: ${pending[0]}): run npm run migrate`;
}

/** PostgreSQL answers, but the database lacks migrations. */
export class SchemaNotMigratedError extends Error {}

/**
 * Whether the database has every migration this code holds, read without writing anything (knex's
 * own list creates its tables and a lock row: concurrent readiness probes on an empty database
 * could leave two lock rows, after which every `npm run migrate` failed as "already locked").
 */
export interface SchemaCheck {
  /** Resolves when PostgreSQL answers with every migration applied; rejects naming what is missing. */
  (): Promise<void>;
  /** The migrations not applied (none: the schema is this code's). */
  missing(): Promise<string[]>;
  /** Whether some migration is not applied. */
  behind(): Promise<boolean>;
}

/**
 * A process started while PostgreSQL was down could not check its schema at start: readiness and
 * the flusher's outage probe use this to find out once it answers, and again whenever a statement
 * finds a table or function missing (a database restored empty, or migrated down, meanwhile).
 */
export function createSchemaCheck(db: Knex): SchemaCheck {
  let expected: Promise<string[]> | null = null;
  const missing = async (): Promise<string[]> => {
    expected ??= expectedMigrations();
    const names = await expected;
    const { rows } = await db.raw('SELECT to_regclass(?) IS NOT NULL AS found', [MIGRATIONS_TABLE]);
    if (!rows[0].found) return names;
    const applied = new Set(
      ((await db(MIGRATIONS_TABLE).pluck('name')) as string[]).map(migrationName),
    );
    return names.filter((name) => !applied.has(name));
  };
  const check = async () => {
    const pending = await missing();
    if (pending.length > 0) {
      throw new SchemaNotMigratedError(`the database ${missingMigrationsMessage(pending)}`);
    }
  };
  return Object.assign(check, {
    missing,
    behind: async () => (await missing()).length > 0,
  });
}
