import type { Knex } from 'knex';
import { GENERIC_PLAN_SETTINGS } from '../../db/knex-config';

/** A statement parameter as an SQL literal (arrays as array literals). */
function literal(value: unknown): string {
  if (value === null) return 'NULL';
  if (Array.isArray(value))
    return `'{${value.map((x) => (x === null ? 'NULL' : `"${String(x)}"`)).join(',')}}'`;
  return `'${value instanceof Date ? value.toISOString() : String(value)}'`;
}

/**
 * The plan a statement gets when it runs prepared with a generic plan, with the settings of the
 * engine's generic-plan pools, executed once: `EXPLAIN (ANALYZE, COSTS OFF)`, as one text.
 */
export async function explainGeneric(db: Knex, statement: Knex.Raw): Promise<string> {
  const native = statement.toSQL().toNative();
  return db.transaction(async (trx) => {
    for (const [name, value] of Object.entries(GENERIC_PLAN_SETTINGS))
      await trx.raw(`SET LOCAL ${name} = ${value}`);
    await trx.raw(`PREPARE generic_plan AS ${native.sql}`);
    const args = native.bindings.map(literal).join(', ');
    const rows = (await trx.raw(`EXPLAIN (ANALYZE, COSTS OFF) EXECUTE generic_plan(${args})`))
      .rows as { 'QUERY PLAN': string }[];
    await trx.raw('DEALLOCATE generic_plan');
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  });
}
