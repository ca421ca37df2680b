import type { Knex } from 'knex';
import { pendingMigrations } from './migrate';

/** What a process says of a database that lacks migrations; `npm run migrate` applies them. */
export function missingMigrationsMessage(pending: string[]): string {
  return `lacks ${pending.length} migration(s) (first: ${pending[0]}): run npm run migrate`;
}

/** PostgreSQL answers, but the database lacks migrations. */
export class SchemaNotMigratedError extends Error {}

/**
 * Resolves when PostgreSQL answers with every migration applied; rejects naming what is missing.
 * A process started while PostgreSQL was down could not check its schema then: readiness and the
 * flusher's outage probe use this to find out once it answers, and only ask `SELECT 1` once the
 * migrations were seen applied.
 */
export function createSchemaCheck(db: Knex): () => Promise<void> {
  let migrated = false;
  return async () => {
    if (migrated) {
      await db.raw('SELECT 1');
      return;
    }
    const pending = await pendingMigrations(db);
    if (pending.length > 0)
      throw new SchemaNotMigratedError(`the database ${missingMigrationsMessage(pending)}`);
    migrated = true;
  };
}
