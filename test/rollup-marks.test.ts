import type { Reading } from '../src/devices/device-kinds';
import { HistoryStore } from '../src/stores/history-store';
import { RollupStore } from '../src/stores/rollup-store';
import { statusUpsertsFrom } from '../src/stores/status-store';
import { RollupRoller } from '../workers/rollup-roller';
import { waitFor } from './helpers/engine';
import { meterReading, seededRandom, shuffle, vehicleReading } from './helpers/readings';
import { createTestContext, type TestContext } from './helpers/test-env';

/**
 * Flushes and rollups run side by side without a table lock (src/stores/rollup-store.ts): a flush
 * locks the marks it finds, a rollup locks the marks it takes. Whatever the interleaving, once
 * every mark is rolled up the rollups equal a rebuild from history.
 */
let ctx: TestContext;
let history: HistoryStore;
let rollups: RollupStore;

const T0 = Date.parse('2024-07-02T10:00:00Z');
const QUARTER = 900_000;
const flush = (readings: Reading[], db = ctx.db) =>
  history.insert(readings, Date.now(), db, statusUpsertsFrom);

const quarterRow = async (id: string, quarter: number) =>
  (await ctx
    .db('telemetry_15min')
    .where({ device_id: id, quarter: new Date(quarter) })
    .first('readings')) as { readings: number } | undefined;
/** Until a session of the test database waits on a lock (a row's, a table's or an advisory one). */
const untilWaitingOnALock = (what: string) =>
  waitFor(
    async () =>
      (
        await ctx.db.raw(
          `SELECT 1 FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        )
      ).rows.length > 0,
    5000,
    what,
  );
const marks = async (id: string) =>
  Number((await ctx.db('rollup_pending').where({ device_id: id }).count({ n: '*' }))[0].n);

/** Every rollup row, rounded, in key order. */
async function rollupTables(): Promise<unknown[]> {
  const rows = async (table: string, bucket: string) =>
    (
      await ctx.db.raw(`
        SELECT device_type, device_id, ${bucket} AS bucket, readings,
               round(energy_sum::numeric, 6)::float8 AS energy_sum,
               round(register_increase::numeric, 6)::float8 AS register_increase,
               first_ts, last_ts, first_energy, last_energy
        FROM ${table} ORDER BY 1, 2, 3`)
    ).rows;
  return [await rows('telemetry_15min', 'quarter'), await rows('telemetry_hourly', 'hour')];
}

beforeAll(async () => {
  ctx = await createTestContext();
  history = new HistoryStore(ctx.db);
  rollups = new RollupStore(ctx.db);
  await ctx.db.raw(`SELECT ensure_history_partition('2024-07-02')`);
});
afterAll(() => ctx.cleanup());

describe('marks shared by flushes and rollups', () => {
  test('when a flush that found its quarter already marked has not committed, then a rollup of that quarter waits for it and includes its reading', async () => {
    await flush([meterReading('M-wait', T0 + 60_000, 1)]);
    const open = await ctx.db.transaction();
    try {
      // The mark exists: this flush adds none, it only locks it.
      await flush([meterReading('M-wait', T0 + 120_000, 2)], open);
      const rolling = rollups.rollUpPending(new Date(T0 + QUARTER), 1000);
      await untilWaitingOnALock('the rollup to wait for the flush');
      await open.commit();
      expect(await rolling).toEqual({ quarters: 1, hours: 1 });
    } finally {
      if (!open.isCompleted()) await open.rollback();
    }
    expect(await quarterRow('M-wait', T0)).toEqual({ readings: 2 });
    expect(await marks('M-wait')).toBe(0);
  });

  test('when a quarter gained a reading lately, then a rollup asked for quiet quarters leaves it, and takes it once quiet', async () => {
    const quarter = T0 + QUARTER;
    await flush([meterReading('M-quiet', quarter + 60_000, 1)]);
    expect(await rollups.rollUpPending(new Date(quarter + QUARTER), 1000, 30_000)).toEqual({
      quarters: 0,
      hours: 0,
    });
    expect(await marks('M-quiet')).toBe(1);
    await ctx
      .db('rollup_pending')
      .where({ device_id: 'M-quiet' })
      .update({ touched_at: ctx.db.raw(`now() - interval '1 minute'`) });
    expect(await rollups.rollUpPending(new Date(quarter + QUARTER), 1000, 30_000)).toEqual({
      quarters: 1,
      hours: 1,
    });
    expect(await quarterRow('M-quiet', quarter)).toEqual({ readings: 1 });
  });

  test('when two rollups take quarters of the same hour at once, then the second waits for the first and the hour holds both quarters', async () => {
    const hour = T0 + 8 * QUARTER;
    const id = 'M-turns';
    await flush([meterReading(id, hour + 60_000, 1), meterReading(id, hour + QUARTER + 60_000, 2)]);
    // The first quarter gained a reading lately, the second long ago: a rollup asked for quiet
    // quarters takes only the second; one asked for quarters before the second takes the first.
    // Neither waits on the other's marks.
    await ctx
      .db('rollup_pending')
      .where({ device_id: id, quarter: new Date(hour + QUARTER) })
      .update({ touched_at: ctx.db.raw(`now() - interval '1 hour'`) });
    const closed = new Date(hour + 4 * QUARTER);
    const first = await ctx.db.transaction();
    try {
      // Rolled up inside a transaction left open: its hour row is written, not yet committed.
      expect(await new RollupStore(first).rollUpPending(closed, 1000, 60_000)).toEqual({
        quarters: 1,
        hours: 1,
      });
      const second = rollups.rollUpPending(new Date(hour + QUARTER), 1000);
      await untilWaitingOnALock('the second rollup to wait');
      await first.commit();
      expect(await second).toEqual({ quarters: 1, hours: 1 });
    } finally {
      if (!first.isCompleted()) await first.rollback();
    }
    // Had the second not waited, it would have recomputed the hour from quarters before the first
    // committed, and written it last: with only the first quarter's reading.
    const hourRow = await ctx
      .db('telemetry_hourly')
      .where({ device_id: id, hour: new Date(hour) })
      .first('readings');
    expect(hourRow).toEqual({ readings: 2 });
  });

  test('when flushes keep landing in the quarters two rollups are rolling up, then once all is rolled up the rollups equal a rebuild', async () => {
    const random = seededRandom(7);
    const start = T0 + 4 * QUARTER;
    // 6 devices, a reading every 20 s for an hour: 180 per device, in small shuffled batches.
    const readings: Reading[] = [];
    for (let s = 0; s < 180; s++) {
      const ts = start + s * 20_000;
      for (let d = 0; d < 3; d++) {
        readings.push(meterReading(`M-race-${d}`, ts, 1 + s + d));
        readings.push(vehicleReading(`V-race-${d}`, ts, 50, 0.1 * s));
      }
    }
    const batches: Reading[][] = [];
    const shuffled = shuffle(readings, random);
    for (let i = 0; i < shuffled.length; i += 15) batches.push(shuffled.slice(i, i + 15));

    let flushing = true;
    const flusher = async () => {
      while (batches.length > 0) await flush(batches.shift()!);
    };
    const roller = async () => {
      while (flushing) await rollups.rollUpPending(new Date(start + 4 * QUARTER), 5);
    };
    const rolling = [roller(), roller()];
    await Promise.all([flusher(), flusher(), flusher()]);
    flushing = false;
    await Promise.all(rolling);
    while ((await rollups.rollUpPending(new Date(start + 4 * QUARTER), 1000)).quarters > 0);

    const rolled = await rollupTables();
    await rollups.rebuild(new Date(start), new Date(start + 4 * QUARTER));
    expect(rolled).toEqual(await rollupTables());
  });
});

describe('a quarter that cannot be rolled up', () => {
  test('when one device quarter fails for good (a data error), then the roller sets it aside, leaves it marked, and rolls up every other one, again on its next run', async () => {
    const T = Date.parse('2024-07-02T12:00:00Z');
    // Stored past validation (history written directly): two values whose sum overflows float8,
    // in the oldest quarter, so it is in every batch the roller takes.
    await flush([meterReading('M-poison', T + 60_000, 1.7e308)]);
    await flush([meterReading('M-poison', T + 120_000, 1.7e308)]);
    const healthy = ['M-a', 'M-q', 'M-z'];
    await flush(healthy.map((id) => meterReading(id, T + 180_000, 1)));
    await flush(healthy.map((id) => meterReading(id, T + QUARTER + 60_000, 2)));
    const roller = new RollupRoller({ store: rollups, logger: ctx.logger });

    await roller.rollUpNow(new Date(T + 4 * QUARTER));
    for (const id of healthy) {
      expect({
        id,
        first: await quarterRow(id, T),
        second: await quarterRow(id, T + QUARTER),
      }).toEqual({
        id,
        first: { readings: 1 },
        second: { readings: 1 },
      });
      expect(await marks(id)).toBe(0);
    }
    expect(await marks('M-poison')).toBe(1);
    expect(await quarterRow('M-poison', T)).toBeUndefined();

    // Its next run takes the new marks and leaves the set-aside one without failing.
    await flush([meterReading('M-a', T + 2 * QUARTER + 60_000, 3)]);
    await roller.rollUpNow(new Date(T + 4 * QUARTER));
    expect(await quarterRow('M-a', T + 2 * QUARTER)).toEqual({ readings: 1 });
    expect(await marks('M-poison')).toBe(1);
  });
});
