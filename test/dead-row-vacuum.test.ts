import { setTimeout as sleep } from 'node:timers/promises';
import { DeadRowVacuum } from '../workers/dead-row-vacuum';
import { waitFor } from './helpers/engine';
import { createTestContext, type TestContext } from './helpers/test-env';

/** Quarter-hour marks: the table whose marks come and go all day. */
const TABLE = 'rollup_pending';

describe('dead rows vacuumed by the flusher', () => {
  let ctx: TestContext;
  let vacuum: DeadRowVacuum | null = null;
  /** A mark number no earlier test used, so each test adds marks of its own. */
  let nextMark = 0;

  beforeEach(async () => {
    ctx = await createTestContext();
  });
  afterEach(async () => {
    await vacuum?.stop();
    vacuum = null;
    await ctx.cleanup();
  });

  const stats = async () => {
    const { rows } = (await ctx.db.raw(
      `SELECT n_live_tup AS live, n_dead_tup AS dead, vacuum_count AS vacuums
       FROM pg_stat_user_tables WHERE relname = ?`,
      [TABLE],
    )) as { rows: { live: number; dead: number; vacuums: number }[] };
    return rows[0];
  };

  /** Adds `count` marks; the number of the first. */
  async function addMarks(count: number): Promise<number> {
    const first = nextMark;
    nextMark += count;
    await ctx.db.raw(
      `INSERT INTO rollup_pending (device_type, device_id, quarter)
       SELECT 'meter', 'M-' || n, '2030-01-01'::timestamptz FROM generate_series(?::int, ?::int) n`,
      [first, first + count - 1],
    );
    return first;
  }

  /** Removes `count` marks from mark number `first` on; waits until the statistics show them dead. */
  async function removeMarks(first: number, count: number): Promise<void> {
    const before = await stats();
    await ctx.db.transaction(async (trx) => {
      await trx.raw(
        `DELETE FROM rollup_pending WHERE device_id IN
           (SELECT 'M-' || n FROM generate_series(?::int, ?::int) n)`,
        [first, first + count - 1],
      );
      // Statistics reach the shared views when the session goes idle; at once, not within 10 s.
      await trx.raw('SELECT pg_stat_force_next_flush()');
    });
    await waitFor(
      async () => (await stats()).dead >= before.dead + count,
      20_000,
      'the dead rows in the statistics',
    );
  }

  const churn = async (count: number) => removeMarks(await addMarks(count), count);

  const create = (vacuumDeadRows: number, intervalMs?: number) =>
    new DeadRowVacuum({ db: ctx.db, config: { vacuumDeadRows }, logger: ctx.logger, intervalMs });

  test('when a table holds more dead rows than the threshold, then it is vacuumed and they are gone', async () => {
    await churn(3000);
    const before = await stats();

    vacuum = create(1000);
    expect(await vacuum.vacuumNow()).toEqual([TABLE]);

    const after = await stats();
    expect(after.vacuums).toBe(before.vacuums + 1);
    expect(after.dead).toBeLessThan(1000);
  });

  test('when a table holds fewer dead rows than the threshold, then it is left to autovacuum', async () => {
    await churn(3000);
    const before = await stats();

    vacuum = create(5000);
    expect(await vacuum.vacuumNow()).toEqual([]);
    expect((await stats()).vacuums).toBe(before.vacuums);
  });

  test('when the dead rows are under a fifth of the live ones, then the table is left until they are not', async () => {
    const first = await addMarks(10_000);
    await removeMarks(first, 1500); // 1,500 dead, 8,500 live: under a fifth
    vacuum = create(1000);
    expect(await vacuum.vacuumNow()).toEqual([]);

    await removeMarks(first + 1500, 1000); // 2,500 dead, 7,500 live: over a fifth
    expect(await vacuum.vacuumNow()).toEqual([TABLE]);
    expect((await stats()).live).toBe(7500);
  });

  test("when a table that is not one of the engine's churning ones holds dead rows, then it is left to autovacuum", async () => {
    await ctx.db.raw('CREATE TABLE scratch (n int)');
    await ctx.db.transaction(async (trx) => {
      await trx.raw('INSERT INTO scratch SELECT generate_series(1, 3000)');
      await trx.raw('DELETE FROM scratch');
      await trx.raw('SELECT pg_stat_force_next_flush()');
    });
    const scratch = async () =>
      (
        (await ctx.db.raw(
          `SELECT n_dead_tup AS dead, vacuum_count AS vacuums FROM pg_stat_user_tables
           WHERE relname = 'scratch'`,
        )) as { rows: { dead: number; vacuums: number }[] }
      ).rows[0];
    await waitFor(async () => (await scratch()).dead >= 3000, 20_000, 'the dead rows');

    vacuum = create(1000);
    expect(await vacuum.vacuumNow()).toEqual([]);
    expect((await scratch()).vacuums).toBe(0);
  });

  test('when started, then it vacuums on its schedule', async () => {
    const before = await stats();
    vacuum = create(1000, 50);
    vacuum.start();
    await churn(3000);
    await waitFor(
      async () => (await stats()).vacuums > before.vacuums,
      20_000,
      'a vacuum on schedule',
    );
  });

  test('when the threshold is 0, then it never vacuums', async () => {
    const before = await stats();
    vacuum = create(0, 50);
    vacuum.start();
    await churn(3000);
    await sleep(500);
    expect((await stats()).vacuums).toBe(before.vacuums);
  });
});
