import type { Knex } from 'knex';

/**
 * Undoes migrations, newest first, until the one whose name contains `name` is undone: a test of a
 * migration's down() or up() that does not depend on how many came after it. Fails rather than
 * loops when there is none left to undo.
 */
export async function undoMigrationsThrough(db: Knex, name: string): Promise<void> {
  for (;;) {
    const [, undone] = (await db.migrate.down()) as [number, string[]];
    if (undone.length === 0) throw new Error(`no migration ${name} to undo`);
    if (undone.some((undoneName) => undoneName.includes(name))) return;
  }
}
