import { PartitionMaintainer } from '../workers/partition-maintainer';
import { DAY_MS } from '../src/time-units';
import { liveStateOf } from './helpers/engine';
import { undoMigrationsThrough } from './helpers/migrations';
import { createTestContext, type TestContext } from './helpers/test-env';

let ctx: TestContext;

beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.cleanup());

/** The partition each row of history is in, by device id. */
async function partitionsOf(): Promise<Record<string, string>> {
  const { rows } = await ctx.db.raw(
    `SELECT device_id, tableoid::regclass::text AS part FROM telemetry_history ORDER BY device_id`,
  );
  return Object.fromEntries(
    (rows as { device_id: string; part: string }[]).map((r) => [r.device_id, r.part]),
  );
}

const ensureFor = async (day: string): Promise<string> =>
  (await ctx.db.raw('SELECT ensure_history_partition_for(?::date) AS name', [day])).rows[0].name;

const meterRow = (id: string, ts: string) => ({
  device_type: 'meter',
  device_id: id,
  ts,
  kwh_consumed_ac: 1,
  voltage: 230,
  received_at: new Date(),
});

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe('history partitions for a backfill', () => {
  test('when a day of a closed month has no partition, then the whole month gets one, which every day of it then uses', async () => {
    expect(await ensureFor('1990-02-14')).toBe('telemetry_history_m199002');
    expect(await ensureFor('1990-02-01')).toBe('telemetry_history_m199002');
    expect(await ensureFor('1990-02-28')).toBe('telemetry_history_m199002');
    // The explicit daily function leaves a day its month covers alone.
    await ctx.db.raw(`SELECT ensure_history_partition('1990-02-20')`);
    const created = await ctx.db.raw(
      `SELECT ensure_history_partitions('1990-02-01', '1990-02-28') AS n`,
    );
    expect(created.rows[0].n).toBe(0);
    await ctx
      .db('telemetry_history')
      .insert([
        meterRow('M-first', '1990-02-01T00:00:00Z'),
        meterRow('M-last', '1990-02-28T23:59:59.999Z'),
      ]);
    expect(await partitionsOf()).toMatchObject({
      'M-first': 'telemetry_history_m199002',
      'M-last': 'telemetry_history_m199002',
    });
    // Its neighbours are not in it.
    await expect(
      ctx.db('telemetry_history').insert(meterRow('M-march', '1990-03-01T00:00:00Z')),
    ).rejects.toThrow(/no partition of relation "telemetry_history" found for row/);
  });

  test('when a closed month already has a daily partition, then its other days get their own too', async () => {
    await ctx.db.raw(`SELECT ensure_history_partition('1991-05-10')`);
    expect(await ensureFor('1991-05-11')).toBe('telemetry_history_p19910511');
    expect(await ensureFor('1991-05-10')).toBe('telemetry_history_p19910510');
  });

  test('when the day is recent or ahead, then it gets its own partition, as retention drops a day at a time', async () => {
    const yesterday = isoDay(Date.now() - DAY_MS);
    const ahead = isoDay(Date.now() + 10 * DAY_MS);
    expect(await ensureFor(yesterday)).toBe(`telemetry_history_p${yesterday.replace(/-/g, '')}`);
    expect(await ensureFor(ahead)).toBe(`telemetry_history_p${ahead.replace(/-/g, '')}`);
  });

  test('when many flushers ask for days of the same closed month at once, daily or monthly, in any isolation, then every call succeeds and every day is covered once', async () => {
    const days = Array.from({ length: 28 }, (_, i) => `1992-02-${String(i + 1).padStart(2, '0')}`);
    // Some in REPEATABLE READ (a database's default may be), whose snapshot predates the lock wait.
    const call = (fn: string, day: string, repeatableRead: boolean) =>
      repeatableRead
        ? ctx.db.transaction((trx) => trx.raw(`SELECT ${fn}(?::date)`, [day]), {
            isolationLevel: 'repeatable read',
          })
        : ctx.db.raw(`SELECT ${fn}(?::date)`, [day]);
    const calls = days.flatMap((day, i) => [
      call('ensure_history_partition_for', day, false),
      call('ensure_history_partition_for', day, true),
      // The maintainer's daily function, as when a range crosses the month.
      ...(i % 7 === 0 ? [call('ensure_history_partition', day, i % 2 === 0)] : []),
    ]);
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    await ctx
      .db('telemetry_history')
      .insert(days.map((day) => meterRow(`M-${day}`, `${day}T12:00:00Z`)));
    const { rows } = await ctx.db.raw(
      `SELECT count(DISTINCT tableoid)::int AS parts FROM telemetry_history
       WHERE ts >= '1992-02-01T00:00:00Z' AND ts < '1992-03-01T00:00:00Z'`,
    );
    expect([1, 28]).toContain(rows[0].parts); // the month, or each day: never a mix
  });
});

describe('retention with monthly partitions', () => {
  test('when the cutoff passes a monthly partition, then it is dropped; when it falls inside one, then its rows before the cutoff are deleted with what was derived from them', async () => {
    // A cutoff on the 15th of the month three months back (a closed month), and the month before.
    const now = new Date();
    const cutoff = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 3, 15);
    const retentionDays = Math.floor((Date.now() - cutoff) / DAY_MS); // from the start of the 15th
    const cutMonth = isoDay(cutoff).slice(0, 7);
    const before = isoDay(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 4, 20));
    const monthly = (day: string) => `telemetry_history_m${day.slice(0, 7).replace('-', '')}`;
    expect(await ensureFor(before)).toBe(monthly(before));
    expect(await ensureFor(`${cutMonth}-03`)).toBe(monthly(cutMonth));
    await ctx
      .db('telemetry_history')
      .insert([
        meterRow('M-ret-old-month', `${before}T08:00:00Z`),
        meterRow('M-ret-before-cutoff', `${cutMonth}-14T23:59:59Z`),
        meterRow('M-ret-at-cutoff', `${cutMonth}-15T00:00:00Z`),
      ]);
    // More than one statement deletes: a backfilled month may hold millions before the cutoff.
    await ctx.db.raw(
      `INSERT INTO telemetry_history (device_type, device_id, ts, kwh_consumed_ac, voltage, received_at)
       SELECT 'meter', 'M-bulk-' || (n % 100), ?::timestamptz + (n / 100) * interval '1 second', 1, 230, now()
       FROM generate_series(0, 119999) n`,
      [`${cutMonth}-01T00:00:00Z`],
    );
    const rollup = (device_id: string, hour: string) => ({
      device_type: 'meter',
      device_id,
      hour,
      readings: 1,
      energy_sum: 1,
      first_ts: hour,
      first_energy: 1,
      last_ts: hour,
      last_energy: 1,
    });
    await ctx
      .db('telemetry_hourly')
      .insert([
        rollup('M-ret-before-cutoff', `${cutMonth}-14T23:00:00Z`),
        rollup('M-ret-at-cutoff', `${cutMonth}-15T00:00:00Z`),
      ]);

    const maintainer = new PartitionMaintainer({
      db: ctx.db,
      liveState: liveStateOf(ctx),
      config: { retentionDays, partitionDaysAhead: 1 },
      logger: ctx.logger,
    });
    const result = await maintainer.maintain();
    expect(result.dropped).toContain(monthly(before));
    expect(result.trimmed).toEqual([monthly(cutMonth)]);
    expect(await ctx.db('telemetry_history').where('device_id', 'like', 'M-bulk-%')).toEqual([]);
    const kept = await partitionsOf();
    expect(kept['M-ret-old-month']).toBeUndefined();
    expect(kept['M-ret-before-cutoff']).toBeUndefined();
    expect(kept['M-ret-at-cutoff']).toBe(monthly(cutMonth));
    expect(
      await ctx.db('telemetry_hourly').where('device_id', 'like', 'M-ret-%').pluck('device_id'),
    ).toEqual(['M-ret-at-cutoff']);

    // Done once: the next run finds nothing more to trim.
    expect((await maintainer.maintain()).trimmed).toEqual([]);
  });
});

describe('history kept for good', () => {
  let own: TestContext;
  beforeAll(async () => {
    own = await createTestContext();
  });
  afterAll(() => own.cleanup());

  const maintainerAt = (now: string, retentionDays: number) =>
    new PartitionMaintainer({
      db: own.db,
      liveState: liveStateOf(own),
      config: { retentionDays, partitionDaysAhead: 3 },
      logger: own.logger,
      now: () => Date.parse(now),
    });
  const partitionsLike = async (pattern: string): Promise<string[]> =>
    (
      await own.db.raw(
        `SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'telemetry_history'::regclass AND c.relname LIKE ? ORDER BY 1`,
        [pattern],
      )
    ).rows.map((r: { name: string }) => r.name);

  test('when a new database is migrated, then the days the initial schema made ahead are gone, empty, so that its months can be whole, and the flusher makes the current one', async () => {
    const month = new Date().toISOString().slice(0, 7).replace('-', '');
    expect(await partitionsLike(`telemetry_history_p${month}%`)).toEqual([]);
    const maintainer = new PartitionMaintainer({
      db: own.db,
      liveState: liveStateOf(own),
      config: { retentionDays: 0, partitionDaysAhead: 3 },
      logger: own.logger,
    });
    await maintainer.maintain();
    expect(await partitionsLike(`telemetry_history_%${month}%`)).toEqual([
      `telemetry_history_m${month}`,
    ]);
  });

  test('when the migration runs again on a month whose days hold rows, then they stay', async () => {
    await own.db.raw(`SELECT ensure_history_partition('2049-02-03')`);
    await own.db.raw(`SELECT ensure_history_partition('2049-02-04')`);
    await own.db('telemetry_history').insert(meterRow('M-kept-day', '2049-02-04T10:00:00Z'));
    await undoMigrationsThrough(own.db, '20261206020000');
    await own.db.migrate.latest();
    expect(await partitionsLike('telemetry_history_%204902%')).toEqual([
      'telemetry_history_p20490203',
      'telemetry_history_p20490204',
    ]);
  });

  test('when RETENTION_DAYS is 0, then a month without days gets one partition, the current and those ahead included, and a reading of any of its days goes there', async () => {
    const maintainer = maintainerAt('2045-06-29T12:00:00Z', 0);
    expect((await maintainer.maintain()).created).toBe(2); // 06-28 to 07-02: two months
    await maintainer.ensureFor([Date.parse('2045-08-15T10:00:00Z')]);
    expect(await partitionsLike('telemetry_history_%2045%')).toEqual([
      'telemetry_history_m204506',
      'telemetry_history_m204507',
      'telemetry_history_m204508',
    ]);
    expect((await maintainer.maintain()).created).toBe(0);
    await own
      .db('telemetry_history')
      .insert([
        meterRow('M-june', '2045-06-01T00:00:00Z'),
        meterRow('M-july', '2045-07-31T23:59:59.999Z'),
      ]);
    const { rows } = await own.db.raw(
      `SELECT device_id, tableoid::regclass::text AS part FROM telemetry_history
       WHERE device_id IN ('M-june', 'M-july') ORDER BY device_id`,
    );
    expect(rows).toEqual([
      { device_id: 'M-july', part: 'telemetry_history_m204507' },
      { device_id: 'M-june', part: 'telemetry_history_m204506' },
    ]);
  });

  test('when RETENTION_DAYS is 0 and a month has days already (made under retention, or before this version), then its other days get days too', async () => {
    await own.db.raw(`SELECT ensure_history_partition('2046-01-10')`);
    const maintainer = maintainerAt('2046-01-20T12:00:00Z', 0);
    await maintainer.maintain();
    await maintainer.ensureFor([Date.parse('2046-01-05T10:00:00Z')]);
    expect(await partitionsLike('telemetry_history_%2046%')).toEqual([
      'telemetry_history_p20460105',
      'telemetry_history_p20460110',
      ...['19', '20', '21', '22', '23'].map((d) => `telemetry_history_p204601${d}`),
    ]);
  });

  test('when RETENTION_DAYS is set, then recent days and days ahead get a partition each, which retention drops a day at a time', async () => {
    const maintainer = maintainerAt('2047-06-29T12:00:00Z', 36_500);
    expect((await maintainer.maintain()).created).toBe(5);
    expect(await partitionsLike('telemetry_history_%2047%')).toEqual(
      ['0628', '0629', '0630', '0701', '0702'].map((d) => `telemetry_history_p2047${d}`),
    );
  });

  test('when the migration is undone, then the partitions it made stay and cover their days, and other days are made as before', async () => {
    await own.db.raw(`SELECT ensure_history_partition_for('2048-03-10', true)`);
    await undoMigrationsThrough(own.db, '20261206020000');
    const ensureFor = async (day: string) =>
      (await own.db.raw(`SELECT ensure_history_partition_for(?::date) AS name`, [day])).rows[0]
        .name;
    expect(await ensureFor('2048-03-11')).toBe('telemetry_history_m204803');
    expect(await ensureFor('2048-04-11')).toBe('telemetry_history_p20480411');
    await expect(
      own.db.raw(`SELECT ensure_history_partition_for('2048-05-10', true)`),
    ).rejects.toThrow(/does not exist/);
    await own.db.migrate.latest();
    expect(await ensureFor('2048-03-12')).toBe('telemetry_history_m204803');
  });
});

describe('going back before monthly partitions', () => {
  let own: TestContext;
  beforeAll(async () => {
    own = await createTestContext();
  });
  afterAll(() => own.cleanup());

  test('when the migration is undone, then days are made daily again, and those a monthly partition made before covers are left to it', async () => {
    await own.db.raw(`SELECT ensure_history_partition_for('1993-07-04')`);
    await undoMigrationsThrough(own.db, '20261205230000');
    const daily = async (day: string) =>
      (await own.db.raw(`SELECT ensure_history_partition(?::date) AS name`, [day])).rows[0].name;
    expect(await daily('1993-07-05')).toBe('telemetry_history_m199307');
    expect(await daily('1993-08-05')).toBe('telemetry_history_p19930805');
    await own.db.migrate.latest();
    expect(await daily('1993-07-06')).toBe('telemetry_history_m199307');
  });
});
