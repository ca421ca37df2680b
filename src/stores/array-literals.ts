/**
 * PostgreSQL array literals for the flusher's unnest() bindings, built in one pass per column.
 * Handed JavaScript arrays, pg quotes every text element with two regular expressions and builds
 * the literal by concatenation, and knex first walks every element looking for `undefined`: for
 * the 20 arrays of a 1,000-reading batch (history's and the status rows'), a fifth of the
 * flusher's CPU and much of its garbage. A literal is one string: nothing to walk, one allocation.
 */

/** `{1.5,NULL,230}` for a float8[] binding: numbers as JavaScript prints them (exact), NULL for none. */
export function float8ArrayLiteral(values: readonly (number | null | undefined)[]): string {
  return `{${values.map((v) => v ?? 'NULL').join(',')}}`;
}

const ESCAPED = /["\\]/;
/**
 * Every element quoted, so "NULL" stays a string; double quotes and backslashes escaped. Device ids
 * never hold either: testing first is a third of the cost of always replacing.
 */
const quoted = (s: string) => (ESCAPED.test(s) ? `"${s.replace(/["\\]/g, '\\$&')}"` : `"${s}"`);

/** `{"M-1","M-2"}` for a text[] binding. */
export function textArrayLiteral(values: readonly string[]): string {
  return `{${values.map(quoted).join(',')}}`;
}
