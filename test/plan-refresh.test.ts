import { setTimeout as sleep } from 'node:timers/promises';
import { startPlanRefresh, type PlanRefresh } from '../src/analytics/plan-refresh';
import { waitFor } from './helpers/engine';
import { createTestContext, type TestContext } from './helpers/test-env';

const INTERVAL_MS = 50;

describe('report plans made again when the catalog changes', () => {
  let ctx: TestContext;
  let refresh: PlanRefresh | null = null;
  let warmUps = 0;
  let failNext = false;
  const warmUp = async () => {
    warmUps += 1;
    if (failNext) {
      failNext = false;
      throw new Error('database busy');
    }
  };

  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.cleanup());
  beforeEach(async () => {
    warmUps = 0;
    refresh = startPlanRefresh({ db: ctx.db, warmUp, intervalMs: INTERVAL_MS, logger: ctx.logger });
    await refresh.ready;
  });
  afterEach(() => refresh?.stop());

  test('when nothing changes, then the report path is not warmed again', async () => {
    await sleep(INTERVAL_MS * 6);
    expect(warmUps).toBe(0);
  });

  test('when a table is analyzed, then the report path is warmed once', async () => {
    await ctx.db.raw('ANALYZE device_settings');
    await waitFor(async () => warmUps === 1, 20_000, 'a warm-up after ANALYZE');
    await sleep(INTERVAL_MS * 6);
    expect(warmUps).toBe(1);
  });

  test('when a history partition is created, then the report path is warmed', async () => {
    await ctx.db.raw(`SELECT ensure_history_partitions('2031-01-01'::date, '2031-01-02'::date)`);
    await waitFor(async () => warmUps >= 1, 20_000, 'a warm-up after a new partition');
  });

  test('when partitions are created one after another (a backfill), then the report path is warmed once they stop', async () => {
    // Checks far apart beside creations close together: every check finds the catalog changed.
    await refresh?.stop();
    refresh = startPlanRefresh({ db: ctx.db, warmUp, intervalMs: 400, logger: ctx.logger });
    await refresh.ready;
    const until = Date.now() + 1_500;
    for (let day = 1; Date.now() < until; day++) {
      const date = new Date(Date.UTC(2032, 0, day)).toISOString().slice(0, 10);
      await ctx.db.raw(`SELECT ensure_history_partitions(?::date, ?::date)`, [date, date]);
      await sleep(20);
    }
    expect(warmUps).toBe(0);
    await waitFor(async () => warmUps === 1, 20_000, 'a warm-up once the catalog settled');
    await sleep(1_200);
    expect(warmUps).toBe(1);
  });

  test('when a warm-up fails, then the next change still warms the report path', async () => {
    failNext = true;
    await ctx.db.raw('ANALYZE rollup_pending');
    await waitFor(async () => warmUps === 1, 20_000, 'the failing warm-up');
    await ctx.db.raw('ANALYZE rollup_pending');
    await waitFor(async () => warmUps === 2, 20_000, 'a warm-up after the failure');
  });

  test('when stopped, then later changes warm nothing', async () => {
    await refresh?.stop();
    await ctx.db.raw('ANALYZE device_settings');
    await sleep(INTERVAL_MS * 6);
    expect(warmUps).toBe(0);
  });
});
