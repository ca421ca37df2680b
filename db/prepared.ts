import { createHash } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * Runs `statement` as a named (prepared) statement when `prepared` is set: PostgreSQL plans it
 * once per connection instead of on every call, which is most of the server's time for the short
 * statements of the hot paths. The name is derived from the text, so statements whose text varies
 * (optional parts) get one prepared statement per variant. See DB_PREPARED_STATEMENTS.
 */
export function asPrepared(statement: Knex.Raw, sql: string, prepared: boolean): Knex.Raw {
  if (!prepared) return statement;
  return statement.options({ name: nameOf(sql) });
}

/**
 * `sql` on `genericDb` (db/create-db.ts createGenericPlanDb) as a named statement, planned once per
 * connection and generically, when there is one; else on `db`, named when `prepared` is set. For
 * the short statements over history a report runs on every request: planning them cost more than
 * running them.
 */
export function onGenericPlan(
  genericDb: Knex | null,
  db: Knex,
  sql: string,
  bindings: readonly Knex.RawBinding[],
  prepared = false,
): Knex.Raw {
  return genericDb
    ? asPrepared(genericDb.raw(sql, bindings), sql, true)
    : asPrepared(db.raw(sql, bindings), sql, prepared);
}

// The statements come in a handful of text variants, so the names are hashed once, not per call.
const names = new Map<string, string>();
function nameOf(sql: string): string {
  let name = names.get(sql);
  if (!name) {
    name = `energy-${createHash('sha1').update(sql).digest('hex').slice(0, 20)}`;
    names.set(sql, name);
  }
  return name;
}
