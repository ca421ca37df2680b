import type { Job, Queue } from 'bullmq';
import request from 'supertest';
import type { Knex } from 'knex';
import { createDb } from '../db/create-db';
import { migrateToLatest, withMaintenanceClient } from '../db/migrate';
import { loadConfig } from '../src/config';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRedisKeys } from '../src/redis-keys';
import type { Reading } from '../src/devices/device-kinds';
import type { IngestJobData } from '../src/queue/ingest-queue';
import { chunk } from '../src/telemetry/group-commit';
import { redrive } from '../workers/redrive';
import { createFlushProcessor } from '../workers/flush-processor';
import { lockTableShort, PartitionMaintainer } from '../workers/partition-maintainer';
import { float8ArrayLiteral, textArrayLiteral } from '../src/stores/array-literals';
import { HistoryStore } from '../src/stores/history-store';
import type { FlushMetrics } from '../src/metrics';
import { retainedFrom } from '../src/stores/retention';
import { cappedExponentialBackoff } from '../workers/flusher-service';
import {
  liveStateOf,
  openQueue,
  startTestFlusher,
  waitFor,
  waitForDrained,
  type TestFlusher,
} from './helpers/engine';
import { envFor, startProcess } from './helpers/processes';
import {
  fleetReadings,
  meterReading,
  seededRandom,
  shuffle,
  vehicleReading,
} from './helpers/readings';
import { TcpProxy } from './helpers/tcp-proxy';
import {
  baseDatabaseUrl,
  createTestContext,
  withDatabaseName,
  type TestContext,
} from './helpers/test-env';

const T0 = Date.parse('2024-03-20T10:00:00Z');

let ctx: TestContext;
let queue: Queue<IngestJobData>;

/** Enqueues readings as the API does: jobs of `size` readings, counted in the backlog. */
async function enqueue(readings: Reading[], size = 1000): Promise<void> {
  const acceptedAt = Date.now();
  await queue.addBulk(
    chunk(readings, size).map((batch) => ({
      name: 'readings',
      data: { acceptedAt, readings: batch },
      opts: {
        attempts: 25,
        backoff: { type: 'capped-exponential', delay: 100 },
        removeOnComplete: true,
        removeOnFail: false,
      },
    })),
  );
  await ctx.redis.incrby(
    createRedisKeys(ctx.config.redisPrefix).shards(1)[0].backlogReadings,
    readings.length,
  );
}

const historyCount = async () => Number((await ctx.db('telemetry_history').count({ n: '*' }))[0].n);

async function resetData(): Promise<void> {
  await ctx.db.raw('TRUNCATE telemetry_history, meter_status, vehicle_status');
  await queue.obliterate({ force: true });
  const keys = createRedisKeys(ctx.config.redisPrefix);
  await ctx.redis.del(keys.shards(1)[0].backlogReadings);
  await ctx.redis.del(keys.deadLetters);
}

beforeAll(async () => {
  ctx = await createTestContext();
  queue = openQueue(ctx.redis, ctx.config.redisPrefix);
});
afterAll(async () => {
  await queue.close();
  await ctx.cleanup();
});
beforeEach(resetData);

describe('flusher in this process', () => {
  let flusher: TestFlusher;
  beforeAll(async () => {
    flusher = await startTestFlusher(ctx);
  });
  afterAll(() => flusher.close());

  test('when the same readings are queued many times, then each is stored exactly once', async () => {
    const readings = fleetReadings(20, 10, T0); // 400 distinct readings
    for (let i = 0; i < 5; i++) await enqueue(shuffle(readings, seededRandom(i)), 37);
    await waitForDrained(queue);
    expect(await historyCount()).toBe(readings.length);
    const backlog = await ctx.redis.get(
      createRedisKeys(ctx.config.redisPrefix).shards(1)[0].backlogReadings,
    );
    expect(Number(backlog)).toBe(0);
  });

  test('when readings arrive shuffled, then the status tables hold the newest reading per device', async () => {
    const readings = fleetReadings(10, 30, T0);
    await enqueue(shuffle(readings, seededRandom(42)), 50);
    await waitForDrained(queue);
    const meters = await ctx.db('meter_status').orderBy('meter_id');
    expect(meters).toHaveLength(10);
    for (const row of meters) expect(row.ts.getTime()).toBe(T0 + 29 * 60_000);
    const vehicles = await ctx.db('vehicle_status');
    for (const row of vehicles) {
      expect(row.ts.getTime()).toBe(T0 + 29 * 60_000);
      expect(row.soc).toBe(49);
    }
  });

  test('when a batch holds an older reading than the stored status, then the status does not go back', async () => {
    await enqueue([meterReading('M-x', T0 + 60_000, 5, 231)]);
    await waitForDrained(queue);
    await enqueue([meterReading('M-x', T0, 1, 229)]);
    await waitForDrained(queue);
    const row = await ctx.db('meter_status').where({ meter_id: 'M-x' }).first();
    expect(row.voltage).toBe(231);
    expect(await historyCount()).toBe(2);
  });

  test('when a batch holds two readings of a device at one time, then its status is the one history keeps', async () => {
    await enqueue([
      meterReading('M-twice', T0, 1, 229),
      meterReading('M-twice', T0 + 60_000, 2, 231),
      meterReading('M-twice', T0 + 60_000, 3, 232),
    ]);
    await waitForDrained(queue);
    const kept = await ctx
      .db('telemetry_history')
      .where({ device_id: 'M-twice', ts: new Date(T0 + 60_000) })
      .first();
    const status = await ctx.db('meter_status').where({ meter_id: 'M-twice' }).first();
    expect(kept.voltage).toBe(231);
    expect(status).toMatchObject({ voltage: 231, kwh_consumed_ac: kept.kwh_consumed_ac });
    expect(status.ts.getTime()).toBe(T0 + 60_000);
  });

  test('when readings straddle midnight UTC, then each lands in the partition of its month (everything kept: RETENTION_DAYS=0)', async () => {
    const midnight = Math.floor(Date.now() / 86_400_000) * 86_400_000;
    const month = (ms: number) => new Date(ms).toISOString().slice(0, 7).replace(/-/g, '');
    await enqueue([meterReading('M-b', midnight - 1), meterReading('M-b', midnight)]);
    await waitForDrained(queue);
    const rows = await ctx.db.raw(`
      SELECT tableoid::regclass::text AS part, device_id, ts FROM telemetry_history ORDER BY ts`);
    expect(rows.rows.map((r: { part: string }) => r.part)).toEqual([
      `telemetry_history_m${month(midnight - 1)}`,
      `telemetry_history_m${month(midnight)}`,
    ]);
    expect(rows.rows[0].ts.getTime()).toBe(midnight - 1);
  });

  test('when a backfill spans years of closed months, then each month gets one partition (a month with days made before keeps getting days) and every reading lands', async () => {
    // One reading a day for 1,000 days (a device whose clock was years off sends such a spread).
    const first = Date.parse('1975-01-01T12:00:00Z');
    const readings = Array.from({ length: 1000 }, (_, i) =>
      vehicleReading('V-backfill', first + i * 86_400_000),
    );
    await ctx.db.raw(`SELECT ensure_history_partition('1976-06-10')`);
    await enqueue(readings, 250);
    await waitForDrained(queue);
    const { rows } = await ctx.db.raw(`
      SELECT tableoid::regclass::text AS part, ts FROM telemetry_history
      WHERE device_id = 'V-backfill' ORDER BY ts`);
    expect(rows).toHaveLength(1000);
    for (const { part, ts } of rows as { part: string; ts: Date }[]) {
      const [y, m, d] = ts.toISOString().slice(0, 10).split('-');
      expect(part).toBe(
        `${y}-${m}` === '1976-06'
          ? `telemetry_history_p${y}${m}${d}`
          : `telemetry_history_m${y}${m}`,
      );
    }
    const parts = new Set((rows as { part: string }[]).map((r) => r.part));
    expect(parts.size).toBe(33 - 1 + 30); // 1975-01 to 1977-09, June 1976 by day
  });

  test('when one reading of a batch is refused by PostgreSQL, then the rest lands and it is dead-lettered', async () => {
    const good = fleetReadings(5, 20, T0); // 200 readings
    const poison = vehicleReading('V-poison', T0, 150); // soc 150 breaks a CHECK constraint
    await enqueue([...good.slice(0, 77), poison, ...good.slice(77)]);
    await waitForDrained(queue);
    expect(await historyCount()).toBe(good.length);
    const keys = createRedisKeys(ctx.config.redisPrefix);
    const letters = (await ctx.redis.lrange(keys.deadLetters, 0, -1)).map((l) => JSON.parse(l));
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ reading: poison, code: '23514' });
    // PostgreSQL's words, not the statement knex puts before them (kilobytes per letter).
    expect(letters[0].error).toMatch(
      /^new row for relation "telemetry_history_[pm]\d+" violates check constraint/,
    );
    expect(await queue.getJobCountByTypes('failed')).toBe(0);

    // Re-driving puts it back in the queue; still invalid, it returns to the dead-letter list.
    const shard = { keys: keys.shards(1)[0], queue };
    const report = await redrive({
      redis: ctx.redis,
      shards: [shard],
      target: shard,
      deadLetters: [keys.deadLetters],
      logger: ctx.logger,
    });
    expect(report.deadLettersRequeued).toBe(1);
    await waitForDrained(queue);
    await waitFor(
      async () => (await ctx.redis.llen(keys.deadLetters)) === 1,
      5000,
      'the reading to be dead-lettered again',
    );
  });
});

describe('the flush job handler', () => {
  /** The job handler of a flusher's first shard, called as BullMQ would. */
  const flushProcessor = (
    keys: ReturnType<typeof createRedisKeys>,
    config: { retentionDays: number } = ctx.config,
    metrics?: FlushMetrics,
  ) =>
    createFlushProcessor({
      db: ctx.db,
      redis: ctx.redis,
      shard: keys.shards(1)[0],
      deadLetters: { list: keys.deadLetters, marked: keys.deadLettered },
      historyStore: new HistoryStore(ctx.db),
      partitions: new PartitionMaintainer({
        db: ctx.db,
        liveState: liveStateOf(ctx),
        config: ctx.config,
        logger: ctx.logger,
      }),
      config,
      logger: ctx.logger,
      metrics,
    });

  test('when a job holding a refused reading runs twice (a retry or a stalled job), then the reading is dead-lettered once', async () => {
    const keys = createRedisKeys(ctx.config.redisPrefix);
    const flush = flushProcessor(keys);
    const good = fleetReadings(2, 5, T0);
    const poison = vehicleReading('V-poison-twice', T0, 150);
    const job = {
      id: `rerun-${Date.now()}`,
      attemptsMade: 0,
      data: { acceptedAt: Date.now(), readings: [...good, poison] },
    } as unknown as Job<IngestJobData>;
    const first = await flush(job);
    const second = await flush(job);
    expect(first).toEqual({ written: good.length, duplicates: 0, deadLettered: 1, expired: 0 });
    expect(second).toEqual({ written: 0, duplicates: good.length, deadLettered: 1, expired: 0 });
    const letters = await ctx.redis.lrange(keys.deadLetters, 0, -1);
    expect(letters.map((l) => JSON.parse(l).reading)).toEqual([poison]);

    // Another job holding the same reading (a re-drive) lists it again.
    await flush({ ...job, id: `${job.id}-redriven` } as unknown as Job<IngestJobData>);
    expect(await ctx.redis.llen(keys.deadLetters)).toBe(2);
  });

  test('when a job holds readings older than RETENTION_DAYS keeps by the time it is flushed (dead letters re-driven after the cutoff moved), then they are left out and counted, and no partition is made for them', async () => {
    const counted: number[] = [];
    const flush = flushProcessor(
      createRedisKeys(ctx.config.redisPrefix),
      { retentionDays: 3 },
      { onFlushed: ({ expired }) => counted.push(expired), onRetry: () => undefined },
    );
    // The first instant kept is kept; the millisecond before it is not.
    const cutoff = retainedFrom(Date.now(), 3) as number;
    const recent = meterReading('M-retained', cutoff);
    const expired = [
      meterReading('M-expired', Date.UTC(2001, 0, 1)),
      meterReading('M-expired', cutoff - 1),
    ];
    const accepted = Date.now();
    const job = {
      id: `expired-${accepted}`,
      attemptsMade: 0,
      data: {
        acceptedAt: accepted,
        readings: [expired[0], recent, expired[1]],
        receivedAt: [1, 2, 3].map((i) => accepted - i),
      },
    } as unknown as Job<IngestJobData>;
    expect(await flush(job)).toEqual({ written: 1, duplicates: 0, deadLettered: 0, expired: 2 });
    // Run again after its commit (a crash before it was marked done): counted once.
    expect(await flush(job)).toEqual({ written: 0, duplicates: 1, deadLettered: 0, expired: 2 });
    expect(counted).toEqual([2, 0]);
    const stored = await ctx
      .db('telemetry_history')
      .whereIn('device_id', ['M-retained', 'M-expired']);
    // Each kept reading keeps its own acceptance time.
    expect(stored.map((r) => [r.device_id, new Date(r.received_at).getTime()])).toEqual([
      ['M-retained', accepted - 2],
    ]);
    const partition = await ctx.db.raw(`SELECT to_regclass('telemetry_history_m200101') AS p`);
    expect(partition.rows[0].p).toBeNull();
  });
});

describe('flusher riding out a stuck PostgreSQL', () => {
  test('when statements time out on a locked table, then the job is retried and lands once the lock is gone', async () => {
    const flusher = await startTestFlusher(ctx, { dbStatementTimeoutMs: 200 });
    const locker = await ctx.db.transaction();
    try {
      await locker.raw('LOCK TABLE meter_status IN ACCESS EXCLUSIVE MODE');
      await enqueue([meterReading('M-lock', T0)]);
      await waitFor(
        async () => (await queue.getJobs(['delayed'])).some((j) => j.attemptsMade >= 1),
        10_000,
        'a retry',
      );
      expect(await historyCount()).toBe(0); // the failed attempt rolled back entirely
      await locker.rollback();
      await waitForDrained(queue);
      expect(await historyCount()).toBe(1);
      expect(await ctx.db('meter_status').where({ meter_id: 'M-lock' }).first()).toBeDefined();
    } finally {
      if (!locker.isCompleted()) await locker.rollback();
      await flusher.close();
    }
  });
});

describe('array literals for the batch statement', () => {
  const readBack = async (sql: string, literal: string) =>
    (
      await ctx.db.raw(`SELECT v FROM unnest(?::${sql}) WITH ORDINALITY AS t(v, n) ORDER BY n`, [
        literal,
      ])
    ).rows.map((r: { v: unknown }) => r.v);

  test('when text elements hold quotes, backslashes, separators or the word NULL, then PostgreSQL reads each back as sent', async () => {
    const texts = ['M-1', 'NULL', 'null', 'a"b', 'c\\d', '\\"', 'e,f', '{g}', ' h ', 'ü:ï', ''];
    expect(await readBack('text[]', textArrayLiteral(texts))).toEqual(texts);
  });

  test('when float8 elements are missing, tiny, huge or epoch milliseconds, then PostgreSQL reads each back exactly', async () => {
    const numbers = [
      0.0167,
      null,
      undefined,
      -1.5,
      1e-7,
      1.7976931348623157e308,
      5e-324,
      1719791999999,
      0.1 + 0.2,
    ];
    expect(await readBack('float8[]', float8ArrayLiteral(numbers))).toEqual(
      numbers.map((n) => n ?? null),
    );
    expect(await readBack('float8[]', float8ArrayLiteral([]))).toEqual([]);
  });
});

describe('flusher without prepared statements', () => {
  test('when DB_PREPARED_STATEMENTS is off (a pooler in transaction mode), then batches are written the same', async () => {
    const flusher = await startTestFlusher(ctx, { dbPreparedStatements: 'off' });
    try {
      const readings = fleetReadings(5, 10, T0);
      await enqueue([...readings, ...readings], 30);
      await waitForDrained(queue);
      expect(await historyCount()).toBe(readings.length);
    } finally {
      await flusher.close();
    }
  });
});

describe("history partitions and PostgreSQL's lock table", () => {
  test('when a few reports at once would fill the lock table, then it is short, with the setting that would do', () => {
    // The defaults: 64 locks x 100 connections. A year of days fits; three years do not.
    expect(lockTableShort({ partitions: 369, locksPerTransaction: 64, connections: 100 })).toEqual({
      short: false,
      neededLocksPerTransaction: 45,
    });
    expect(
      lockTableShort({ partitions: 1_100, locksPerTransaction: 64, connections: 100 }),
    ).toEqual({
      short: true,
      neededLocksPerTransaction: 132,
    });
  });

  test('when read from PostgreSQL, then the partitions and the lock table settings are those of the server', async () => {
    const ctx = await createTestContext();
    try {
      const maintainer = new PartitionMaintainer({
        db: ctx.db,
        liveState: liveStateOf(ctx),
        config: ctx.config,
        logger: ctx.logger,
      });
      const before = await maintainer.lockTableUse();
      await ctx.db.raw(`SELECT ensure_history_partitions('2033-01-01'::date, '2033-01-03'::date)`);
      const after = await maintainer.lockTableUse();
      expect(after.partitions - before.partitions).toBe(3);
      const setting = async (name: string) =>
        Number((await ctx.db.raw(`SHOW ${name}`)).rows[0][name]);
      expect(after.locksPerTransaction).toBe(await setting('max_locks_per_transaction'));
      expect(after.connections).toBe(
        (await setting('max_connections')) + (await setting('max_prepared_transactions')),
      );
    } finally {
      await ctx.cleanup();
    }
  });
});

describe('partitions created concurrently', () => {
  test('when many flushers create the same day partitions at once, then every call succeeds', async () => {
    const days = ['2031-01-01', '2031-01-02', '2031-01-03'];
    const calls = days.flatMap((day) =>
      Array.from({ length: 6 }, () =>
        ctx.db.raw('SELECT ensure_history_partition(?::date)', [day]),
      ),
    );
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    const parts = await ctx.db.raw(
      `SELECT count(*)::int AS n FROM pg_class WHERE relkind = 'r' AND relname LIKE 'telemetry_history_p2031010%'`,
    );
    expect(parts.rows[0].n).toBe(3);
  });
});

/** Whether the flusher is paused for PostgreSQL (the gauge an operator watches). */
const pausedOf = (flusher: TestFlusher) => async () =>
  (
    await flusher.flusher.registry
      .getSingleMetric('energy_flusher_paused_database_unavailable')
      ?.get()
  )?.values[0]?.value;

/** A database of the test's own, created empty (not migrated); `drop` closes and drops it. */
async function ownDatabase(
  name: string,
): Promise<{ url: string; db: Knex; drop(): Promise<void> }> {
  const url = withDatabaseName(baseDatabaseUrl(), `${name}_${process.pid}`);
  await withMaintenanceClient(url, (c) => c.query(`CREATE DATABASE ${name}_${process.pid}`));
  const db = createDb(loadConfig({ DATABASE_URL: url }));
  return {
    url,
    db,
    async drop() {
      await db.destroy();
      await withMaintenanceClient(url, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${name}_${process.pid} WITH (FORCE)`),
      );
    },
  };
}

/**
 * A flusher whose PostgreSQL connections go through a proxy the test can cut or freeze (on a Unix
 * socket in `socketDir`, if given).
 */
async function startFlusherBehindProxy(
  overrides: Partial<TestContext['config']> = {},
  socketDir: string | null = null,
): Promise<{ proxy: TcpProxy; flusher: TestFlusher; paused: () => Promise<number | undefined> }> {
  const proxy = await TcpProxy.inFrontOf(ctx.config.databaseUrl, socketDir);
  const flusher = await startTestFlusher(ctx, {
    databaseUrl: proxy.rewrite(ctx.config.databaseUrl),
    ...overrides,
  });
  return { proxy, flusher, paused: pausedOf(flusher) };
}

describe('flusher riding out an unreachable PostgreSQL', () => {
  test.each([
    ['over TCP (the connection refused)', false],
    ['over a Unix socket (its file gone, ENOENT)', true],
  ])(
    'when PostgreSQL reached %s stops, then the flusher pauses without spending job attempts and writes everything once it is back',
    async (_, overSocket) => {
      const socketDir = overSocket
        ? mkdtempSync(path.join(os.tmpdir(), 'energy-pg-socket-'))
        : null;
      const { proxy, flusher, paused } = await startFlusherBehindProxy({}, socketDir);
      try {
        const before = fleetReadings(10, 10, T0); // 200 readings
        await enqueue(before, 50);
        await waitForDrained(queue);
        expect(await historyCount()).toBe(before.length);

        await proxy.cut();
        const during = fleetReadings(10, 25, T0 + 3_600_000); // 500 readings, 10 jobs
        await enqueue(during, 50);
        await waitFor(async () => (await paused()) === 1, 10_000, 'the flusher to pause');
        // With a 100 ms retry base, a job retried blindly would be on its 4th or 5th attempt by now.
        await new Promise((r) => setTimeout(r, 1500));
        const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'failed']);
        expect(jobs).toHaveLength(10);
        expect(Math.max(...jobs.map((j) => j.attemptsMade))).toBeLessThanOrEqual(1);
        expect(await queue.getJobCountByTypes('failed')).toBe(0);

        await proxy.restore();
        await waitForDrained(queue);
        expect(await historyCount()).toBe(before.length + during.length);
        expect(await paused()).toBe(0);
      } finally {
        await flusher.close();
        await proxy.cut();
        if (socketDir) rmSync(socketDir, { recursive: true, force: true });
      }
    },
  );

  test("when PostgreSQL refuses the flusher's login while its pool still holds sessions, then it stays paused until the login works again, without spending attempts", async () => {
    // A role disabled (or its password changed) leaves its open sessions working: the pool's.
    const role = `energy_flusher_role_${process.pid}`;
    const admin = (sql: string) =>
      withMaintenanceClient(ctx.config.databaseUrl, (c) => c.query(sql));
    await admin(`CREATE ROLE ${role} LOGIN SUPERUSER`);
    const url = new URL(ctx.config.databaseUrl);
    url.username = role;
    url.password = '';
    const flusher = await startTestFlusher(ctx, {
      databaseUrl: url.toString(),
      flusherConcurrency: 8,
    });
    const paused = pausedOf(flusher);
    try {
      const before = fleetReadings(10, 20, T0); // 400 readings, 8 jobs at once
      await enqueue(before, 50);
      await waitForDrained(queue);

      await admin(`ALTER ROLE ${role} NOLOGIN`);
      // All but two of its sessions end (a failover, idle timeouts): jobs need new connections.
      await admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE usename = '${role}' AND pid NOT IN (
                     SELECT pid FROM pg_stat_activity WHERE usename = '${role}' ORDER BY pid LIMIT 2)`);
      const during = fleetReadings(20, 25, T0 + 3_600_000); // 1,000 readings, 20 jobs
      await enqueue(during, 50);
      await waitFor(async () => (await paused()) === 1, 10_000, 'the flusher to pause');
      // Resumed by a probe through a pooled session, it would pause again at the next new one.
      for (let i = 0; i < 20; i++) {
        expect(await paused()).toBe(1);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await queue.getJobCountByTypes('failed')).toBe(0);

      await admin(`ALTER ROLE ${role} LOGIN`);
      await waitForDrained(queue);
      expect(await historyCount()).toBe(before.length + during.length);
      expect(await paused()).toBe(0);
    } finally {
      await flusher.close();
      await ctx.db.raw(`REASSIGN OWNED BY ${role} TO CURRENT_USER`);
      await ctx.db.raw(`DROP OWNED BY ${role}`);
      await admin(`DROP ROLE ${role}`);
    }
  });

  test('when PostgreSQL stops answering without closing connections, then the stuck query is cut, the flusher pauses, and everything lands once it answers', async () => {
    // A 300 ms statement timeout puts the query deadline at 5.3 s.
    const { proxy, flusher, paused } = await startFlusherBehindProxy({ dbStatementTimeoutMs: 300 });
    try {
      const before = fleetReadings(10, 10, T0);
      await enqueue(before, 50);
      await waitForDrained(queue);

      proxy.freeze();
      const during = fleetReadings(10, 25, T0 + 3_600_000);
      await enqueue(during, 50);
      // Without a deadline the first transaction would wait for its reply for ever.
      await waitFor(async () => (await paused()) === 1, 20_000, 'the flusher to pause');
      expect(await queue.getJobCountByTypes('failed')).toBe(0);
      const jobs = await queue.getJobs(['waiting', 'delayed', 'active']);
      expect(Math.max(...jobs.map((j) => j.attemptsMade))).toBeLessThanOrEqual(1);

      proxy.thaw();
      await waitForDrained(queue, 30_000);
      expect(await historyCount()).toBe(before.length + during.length);
      expect(await paused()).toBe(0);
    } finally {
      proxy.thaw();
      await flusher.close();
      await proxy.cut();
    }
  });

  test('when PostgreSQL answers after the flusher started without it but lacks migrations, then the flusher stays paused without spending attempts, says to run npm run migrate, and writes everything once migrated', async () => {
    // The flusher could not check the schema at its start: here it meets an empty database.
    const { url, db, drop } = await ownDatabase('energy_unmigrated_flusher');
    const flusher = await startTestFlusher(ctx, { databaseUrl: url });
    const paused = pausedOf(flusher);
    try {
      const readings = fleetReadings(5, 10, T0); // 100 readings, 4 jobs
      await enqueue(readings, 25);
      await waitFor(async () => (await paused()) === 1, 10_000, 'the flusher to pause');
      await new Promise((r) => setTimeout(r, 1500));
      const jobs = await queue.getJobs(['waiting', 'delayed', 'active', 'failed']);
      expect(jobs).toHaveLength(4);
      expect(Math.max(...jobs.map((j) => j.attemptsMade))).toBeLessThanOrEqual(1);
      expect(await queue.getJobCountByTypes('failed')).toBe(0);
      const ready = await request(flusher.flusher.healthApp).get('/health/ready').expect(503);
      expect(ready.body.checks.postgres).toMatch(
        /lacks \d+ migration\(s\) \(first: \d+_[\w-]+\.[jt]s\): run npm run migrate/,
      );

      await migrateToLatest(db);
      await waitForDrained(queue);
      expect(Number((await db('telemetry_history').count({ n: '*' }))[0].n)).toBe(readings.length);
      expect(await paused()).toBe(0);
      await request(flusher.flusher.healthApp).get('/health/ready').expect(200);
    } finally {
      await flusher.close();
      await drop();
    }
  });

  test('when a table is missing from a migrated database (a bug, not a migration to run), then the flusher retries as for any error instead of pausing; when the database is migrated down while it runs, then it pauses until migrated', async () => {
    const { url, db, drop } = await ownDatabase('energy_schema_flusher');
    await migrateToLatest(db);
    const flusher = await startTestFlusher(ctx, { databaseUrl: url });
    const paused = pausedOf(flusher);
    try {
      await db.raw('ALTER TABLE meter_status RENAME TO meter_status_elsewhere');
      await enqueue(fleetReadings(2, 5, T0), 10); // 20 readings, 2 jobs
      await waitFor(
        async () =>
          (await queue.getJobs(['waiting', 'delayed', 'active'])).some((j) => j.attemptsMade >= 2),
        10_000,
        'jobs to be retried',
      );
      expect(await paused()).toBe(0);
      await db.raw('ALTER TABLE meter_status_elsewhere RENAME TO meter_status');
      await waitForDrained(queue);

      // Migrated down while it runs (as if the newest migration made meter_status).
      const newest = await db('knex_migrations').orderBy('name', 'desc').first();
      await db('knex_migrations').where({ id: newest.id }).delete();
      await db.raw('ALTER TABLE meter_status RENAME TO meter_status_elsewhere');
      await enqueue(fleetReadings(2, 5, T0 + 3_600_000), 10);
      await waitFor(async () => (await paused()) === 1, 10_000, 'the flusher to pause');
      const ready = await request(flusher.flusher.healthApp).get('/health/ready').expect(503);
      expect(ready.body.checks.postgres).toMatch(/lacks 1 migration\(s\)/);
      await new Promise((r) => setTimeout(r, 1500));
      const jobs = await queue.getJobs(['waiting', 'delayed', 'active']);
      expect(Math.max(...jobs.map((j) => j.attemptsMade))).toBeLessThanOrEqual(1);
      // Migrated again: it resumes and writes everything.
      await db.raw('ALTER TABLE meter_status_elsewhere RENAME TO meter_status');
      await db('knex_migrations').insert(newest);
      await waitForDrained(queue);
      expect(await paused()).toBe(0);
      expect(Number((await db('telemetry_history').count({ n: '*' }))[0].n)).toBe(40);
    } finally {
      await flusher.close();
      await drop();
    }
  });

  test('when the flusher is paused for an outage and asked to stop, then it stops at once and its jobs stay queued', async () => {
    const { proxy, flusher, paused } = await startFlusherBehindProxy();
    try {
      await proxy.cut();
      const readings = fleetReadings(5, 10, T0);
      await enqueue(readings, 25);
      await waitFor(async () => (await paused()) === 1, 10_000, 'the flusher to pause');
      const started = Date.now();
      await flusher.close();
      expect(Date.now() - started).toBeLessThan(5000);
      const queued = await queue.getJobs(['waiting', 'delayed']);
      expect(queued.flatMap((j) => j.data.readings)).toHaveLength(readings.length);
    } finally {
      await flusher.close().catch(() => undefined);
      await proxy.cut();
    }
  });
});

describe('capped exponential backoff', () => {
  test('when attempts grow, then the delay doubles and stops at a minute', () => {
    expect([1, 2, 3, 4].map((n) => cappedExponentialBackoff(n, 1000))).toEqual([
      1000, 2000, 4000, 8000,
    ]);
    expect(cappedExponentialBackoff(20, 1000)).toBe(60_000);
  });
});

describe('flusher processes', () => {
  test('when two flusher processes write overlapping devices at once, then no deadlock surfaces and nothing is lost or doubled', async () => {
    const readings = fleetReadings(200, 20, T0); // 8,000 readings over 400 devices
    const random = seededRandom(7);
    // Every reading twice, shuffled, in small jobs: both processes touch the same devices at once.
    await enqueue(shuffle([...readings, ...readings], random), 250);
    const env = envFor(ctx.config, { FLUSHER_CONCURRENCY: '4' });
    const flushers = [
      startProcess('workers/flusher.ts', env),
      startProcess('workers/flusher.ts', env),
    ];
    try {
      await waitForDrained(queue, 40_000).catch((err) => {
        throw new Error(`${(err as Error).message}\n${flushers.map((f) => f.output()).join('\n')}`);
      });
      expect(await historyCount()).toBe(readings.length);
      expect(await queue.getJobCountByTypes('failed')).toBe(0);
      const stale = await ctx.db.raw(`SELECT count(*)::int AS n FROM meter_status WHERE ts <> ?`, [
        new Date(T0 + 19 * 60_000),
      ]);
      expect(stale.rows[0].n).toBe(0);
      for (const f of flushers) expect(f.output()).not.toMatch(/deadlock/i);
    } finally {
      flushers.forEach((f) => f.child.kill('SIGTERM'));
      await Promise.all(flushers.map((f) => f.exited));
    }
  });

  test('when a flusher is SIGKILLed mid-batch and restarted, then every queued reading is stored exactly once', async () => {
    const readings = fleetReadings(500, 60, T0); // 60,000 readings
    await enqueue(readings, 1000);
    const env = envFor(ctx.config, { FLUSHER_LOCK_MS: '2000', FLUSHER_CONCURRENCY: '2' });
    const first = startProcess('workers/flusher.ts', env);
    await waitFor(async () => (await historyCount()) > 0, 30_000, 'the first rows');
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    const storedAtKill = await historyCount();
    expect(storedAtKill).toBeLessThan(readings.length);

    const second = startProcess('workers/flusher.ts', env);
    try {
      await waitForDrained(queue, 60_000);
      expect(await historyCount()).toBe(readings.length);
      const dupes = await ctx.db.raw(`
        SELECT count(*)::int AS n FROM (
          SELECT 1 FROM telemetry_history GROUP BY device_type, device_id, ts HAVING count(*) > 1) d`);
      expect(dupes.rows[0].n).toBe(0);
    } finally {
      second.child.kill('SIGTERM');
      const code = await second.exited;
      // On a failure, the process's last log lines say why.
      expect({ code, log: code === 0 ? '' : second.output().slice(-2000) }).toEqual({
        code: 0,
        log: '',
      });
    }
  });

  test('when FLUSHER_CONCURRENCY is above DB_POOL_MAX, then each job still writes on a connection of its own', async () => {
    await resetData();
    // Status writes wait behind this lock: every job in flight then holds a waiting connection.
    const lock = await ctx.db.transaction();
    await lock.raw('LOCK TABLE meter_status IN SHARE MODE');
    const meters = fleetReadings(30, 1, T0).filter((r) => r.type === 'meter');
    await enqueue(meters, 10); // 3 jobs
    const flusher = startProcess(
      'workers/flusher.ts',
      envFor(ctx.config, { FLUSHER_CONCURRENCY: '3', DB_POOL_MAX: '1' }),
    );
    const waitingJobs = async () => {
      const r = await ctx.db.raw(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'energy-flusher'
           AND wait_event_type = 'Lock'`,
      );
      return r.rows[0].n as number;
    };
    try {
      try {
        await waitFor(async () => (await waitingJobs()) === 3, 20_000, '3 jobs on 3 connections');
      } finally {
        await lock.rollback();
      }
      await waitForDrained(queue);
      expect(await historyCount()).toBe(meters.length);
    } finally {
      flusher.child.kill('SIGTERM');
      await flusher.exited;
    }
  });

  test('when a flusher process starts, then it lowers the CPU priority of every thread to FLUSHER_NICE', async () => {
    const flusher = startProcess('workers/flusher.ts', envFor(ctx.config, { FLUSHER_NICE: '7' }));
    // Field 19 of /proc/<pid>/task/<tid>/stat is a thread's nice value (V8's garbage collection
    // threads have their own); the process sets them once configured.
    const task = `/proc/${flusher.child.pid}/task`;
    const niceOf = (tid: string) => {
      const stat = readFileSync(`${task}/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    };
    const nices = () => readdirSync(task).map(niceOf);
    try {
      await waitFor(async () => nices()[0] === 7, 20_000, 'the flusher to lower its priority');
      expect(nices().length).toBeGreaterThan(1);
      expect(new Set(nices())).toEqual(new Set([7]));
    } finally {
      flusher.child.kill('SIGTERM');
      await flusher.exited;
    }
  });

  test('when a flusher process builds charging sessions, then it plans them on connections of its own, once per connection', async () => {
    // The vehicle's sessions must be built again from T0 (no readings: none are kept).
    await ctx.db('session_dirty').insert({ vehicle_id: 'V-generic', since: new Date(T0) });
    const flusher = startProcess('workers/flusher.ts', envFor(ctx.config));
    const generic = () =>
      ctx.db.raw(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'energy-flusher-generic'`,
      );
    try {
      await waitFor(
        async () => (await ctx.db('session_dirty').where({ vehicle_id: 'V-generic' })).length === 0,
        45_000, // a process to start under tsx first: 8 s alone, more beside other suites
        'the session builder to build the vehicle',
      );
      // Planned per call, its statement cost more to plan than to run (8.2 against 4.6 ms a build).
      expect((await generic()).rows[0].n).toBeGreaterThan(0);
    } finally {
      flusher.child.kill('SIGTERM');
      await flusher.exited;
    }
  });

  test('when RETENTION_DAYS is set, then partitions older than that are dropped with what was derived from them, and recent ones kept', async () => {
    const day = (offset: number) =>
      new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    await ctx.db.raw('SELECT ensure_history_partition(?::date)', [day(-10)]);
    // Derived rows of an old day and of yesterday: rollups, a mark, a detected session.
    for (const offset of [-10, -1]) {
      const at = `${day(offset)}T10:00:00Z`;
      const device = { device_type: 'meter', device_id: `M-ret${offset}` };
      const rollup = {
        ...device,
        readings: 1,
        energy_sum: 1,
        first_ts: at,
        first_energy: 1,
        last_ts: at,
        last_energy: 1,
      };
      await ctx.db('telemetry_15min').insert({ ...rollup, quarter: at });
      await ctx.db('telemetry_hourly').insert({ ...rollup, hour: at });
      await ctx.db('rollup_pending').insert({ ...device, quarter: at });
      await ctx.db('meter_status').insert({
        meter_id: device.device_id,
        ts: at,
        kwh_consumed_ac: 1,
        voltage: 230,
      });
      await ctx.db('vehicle_status').insert({
        vehicle_id: `V-ret${offset}`,
        ts: at,
        soc: 50,
        kwh_delivered_dc: 1,
        battery_temp: 25,
      });
      await ctx.db('charging_sessions').insert({
        vehicle_id: `V-ret${offset}`,
        key: `d-${Date.parse(at)}`,
        source: 'detected',
        start_ts: at,
        end_ts: `${day(offset)}T11:00:00Z`,
        meter_ids: [],
        vehicle_readings: 1,
        meter_readings: 0,
      });
    }
    // A session across the cutoff (the start of the day 3 days ago) holds energy of both sides.
    await ctx.db('charging_sessions').insert({
      vehicle_id: 'V-ret-across',
      key: 'd-across',
      source: 'detected',
      start_ts: `${day(-4)}T23:50:00Z`,
      end_ts: `${day(-3)}T00:10:00Z`,
      meter_ids: [],
      vehicle_readings: 2,
      meter_readings: 0,
    });
    // Their live states too (a status route answered a dropped reading from it).
    const live = liveStateOf(ctx);
    await live.applyReadings(
      [-10, -1].map((offset) => ({
        type: 'meter' as const,
        id: `M-ret${offset}`,
        ts: Date.parse(`${day(offset)}T10:00:00Z`),
        kwhConsumedAc: 1,
        voltage: 230,
      })),
      Date.now(),
      5000,
    );
    const flusher = startProcess('workers/flusher.ts', envFor(ctx.config, { RETENTION_DAYS: '3' }));
    try {
      const name = (offset: number) => `telemetry_history_p${day(offset).replace(/-/g, '')}`;
      await waitFor(
        async () => {
          const r = await ctx.db.raw('SELECT to_regclass(?) AS t', [name(-10)]);
          return r.rows[0].t === null;
        },
        20_000,
        'the old partition to be dropped',
      );
      // Yesterday's (its own, or its month's: earlier tests here kept everything).
      const kept = await ctx.db.raw('SELECT history_partition_covering(?::date) AS t', [day(-1)]);
      expect(kept.rows[0].t).not.toBeNull();
      // Kept, old rollups made reports over dropped days read whole hours but not their edges.
      const ids = async (table: string, column: string) =>
        (await ctx.db(table).where(column, 'like', '%-ret%').pluck(column)).sort();
      await waitFor(
        async () => (await ids('charging_sessions', 'vehicle_id')).length === 1,
        10_000,
        'the old session to be dropped',
      );
      // (Yesterday's mark may be rolled up meanwhile, so only the old rows are looked for.)
      for (const table of ['telemetry_15min', 'telemetry_hourly', 'rollup_pending']) {
        expect(await ids(table, 'device_id')).not.toContain('M-ret-10');
      }
      // The one across the cutoff is gone too (its vehicle is built again from the cutoff on).
      expect(await ids('charging_sessions', 'vehicle_id')).toEqual(['V-ret-1']);
      // A device whose latest reading was dropped is no longer listed; a recent one is.
      // Each kind's statuses go in statements of their own: wait for the last kind's too.
      await waitFor(
        async () =>
          (await ids('meter_status', 'meter_id')).length === 1 &&
          (await ids('vehicle_status', 'vehicle_id')).length === 1,
        10_000,
        'the old statuses to be dropped',
      );
      expect(await ids('meter_status', 'meter_id')).toEqual(['M-ret-1']);
      expect(await ids('vehicle_status', 'vehicle_id')).toEqual(['V-ret-1']);
      expect(await live.get('meter', 'M-ret-10')).toBeNull();
      expect(await live.get('meter', 'M-ret-1')).toMatchObject({ values: { kwhConsumedAc: 1 } });
    } finally {
      flusher.child.kill('SIGTERM');
      await flusher.exited;
    }
  });
});
