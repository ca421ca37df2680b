/**
 * `npm run test:faults`: the engine's promises under faults, each scenario under continuous load
 * with a ledger of every reading acknowledged with 2xx, checked at the end: every acknowledged
 * reading is in PostgreSQL exactly once and the status table holds the newest reading.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { waitFor } from '../helpers/engine';
import { seededRandom, shuffle } from '../helpers/readings';
import { TcpProxy } from '../helpers/tcp-proxy';
import { createTestContext, type TestContext } from '../helpers/test-env';
import {
  EngineProcesses,
  LoadWithLedger,
  OwnPostgres,
  OwnRedis,
  openOwnDatabaseContext,
  verifyLedger,
  type Ledger,
} from './harness';
import { OcppLoadWithLedger } from './ocpp-load';

jest.setTimeout(180_000);

interface Scenario {
  ctx: TestContext;
  redis: OwnRedis;
  engine: EngineProcesses;
  load: LoadWithLedger;
  /** Between the engine and PostgreSQL, when the scenario asked for one. */
  proxy?: TcpProxy;
}

interface ScenarioOptions {
  /** Extra environment for the engine processes. */
  extra?: Record<string, string>;
  redisArgs?: string[];
  /** Readings per request of the load, and the pause after each acknowledged request. */
  batch?: number;
  pauseMs?: number;
  /** A PostgreSQL cluster of the scenario's own, which it may stop; else the run's server. */
  postgres?: OwnPostgres;
  /** Put a proxy between the engine and PostgreSQL (the test itself connects directly). */
  databaseProxy?: boolean;
}

async function setUp(options: ScenarioOptions = {}): Promise<Scenario> {
  const redis = await OwnRedis.create(options.redisArgs);
  const ctx = options.postgres
    ? await openOwnDatabaseContext(options.postgres, redis.url)
    : await createTestContext({ REDIS_URL: redis.url });
  const proxy = options.databaseProxy
    ? await TcpProxy.inFrontOf(ctx.config.databaseUrl)
    : undefined;
  const engine = await EngineProcesses.create(ctx, redis.url, {
    ...(proxy ? { DATABASE_URL: proxy.rewrite(ctx.config.databaseUrl) } : {}),
    ...options.extra,
  });
  await engine.startApi();
  const load = new LoadWithLedger(() => engine.url, 50, options.batch ?? 50, options.pauseMs);
  return { ctx, redis, engine, load, proxy };
}

async function tearDown(s: Scenario): Promise<void> {
  await s.load.stop();
  s.proxy?.thaw();
  await s.engine.stopAll();
  await s.proxy?.cut();
  await s.ctx.cleanup().catch(() => undefined);
  await s.redis.kill('SIGTERM');
}

/** One line per scenario with what was acknowledged and verified, for the record. */
function record(scenario: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${v}`);
  process.stdout.write(`[fault] ${scenario}: ${parts.join(' ')}\n`);
}

/**
 * Starts the load on a scenario without a flusher and waits for ingest's memory high-water 503:
 * a 32 MB Redis holds about 350,000 of its queued readings.
 */
async function filledToHighWater(s: Scenario): Promise<void> {
  s.load.start();
  await waitFor(
    async () => (s.load.refusals.get('503 redis_memory_high') ?? 0) > 0,
    90_000,
    'the memory high-water 503',
  );
}

/** Rows of the load's readings in history so far. */
async function loadRowsStored(s: Scenario): Promise<number> {
  const [row] = await s.ctx
    .db('telemetry_history')
    .where('device_id', 'like', 'F-%')
    .count({ n: '*' });
  return Number(row.n);
}

/** The state each fault is injected into: the load acknowledged and the flusher writing. */
async function loadFlowing(s: Scenario, acknowledged: number): Promise<void> {
  await waitFor(async () => s.load.acknowledged.size > acknowledged, 60_000, 'load');
  await waitFor(async () => (await loadRowsStored(s)) > 0, 30_000, 'the flusher to write');
}

/** Seconds until history holds every reading acknowledged so far (a fault's backlog written). */
async function secondsToWriteBacklog(s: Scenario): Promise<number> {
  const started = Date.now();
  const backlog = s.load.acknowledged.size;
  await waitFor(async () => (await loadRowsStored(s)) >= backlog, 90_000, 'the backlog to drain');
  return (Date.now() - started) / 1000;
}

/**
 * Waits for the backlog to drain, checks the ledger (the HTTP load's unless another is given, with
 * the LIKE pattern of its meters) and records what was verified.
 */
async function drainedAndVerified(
  s: Scenario,
  scenario: string,
  extra: Record<string, number | string> = {},
  ledger: { of: Ledger; devices: string } = { of: s.load, devices: 'F-%' },
): Promise<{ acknowledged: number; stored: number }> {
  await waitFor(
    async () => {
      try {
        const res = await fetch(`${s.engine.url}/metrics`);
        return /^energy_queue_readings_waiting\{[^}]*\} 0$/m.test(await res.text());
      } catch {
        return false;
      }
    },
    120_000,
    'the backlog to drain',
  );
  await sleep(500);
  const result = await verifyLedger(s.ctx, ledger.of, ledger.devices);
  const refusals = [...s.load.refusals].map(([code, n]) => `${code.replace(' ', ':')}x${n}`);
  record(scenario, {
    acknowledged: result.acknowledged,
    verified: result.stored,
    refusedRequests: refusals.join(',') || 'none',
    ...extra,
  });
  return result;
}

describe('fault scenarios', () => {
  test('when the flusher is SIGKILLed mid-batch and restarted, then every acknowledged reading lands once', async () => {
    const s = await setUp();
    try {
      s.load.start();
      const first = s.engine.startFlusher();
      await waitFor(async () => s.load.acknowledged.size > 3000, 60_000, 'load');
      first.child.kill('SIGKILL');
      await first.exited;
      await sleep(1000);
      s.engine.startFlusher();
      await sleep(2000);
      await s.load.stop();
      const result = await drainedAndVerified(s, 'flusher SIGKILL');
      expect(result.acknowledged).toBeGreaterThan(3000);
    } finally {
      await tearDown(s);
    }
  });

  test('when the flusher and then the API get SIGTERM, then everything acknowledged still lands', async () => {
    const s = await setUp();
    try {
      s.load.start();
      const flusher = s.engine.startFlusher();
      await loadFlowing(s, 2000);
      flusher.child.kill('SIGTERM');
      expect(await flusher.exited).toBe(0);
      await sleep(500); // readings keep being acknowledged into the queue
      s.engine.api?.child.kill('SIGTERM');
      expect(await s.engine.api?.exited).toBe(0);
      await s.load.stop();
      await s.engine.startApi();
      s.engine.startFlusher();
      await drainedAndVerified(s, 'flusher+API SIGTERM');
    } finally {
      await tearDown(s);
    }
  });

  test('when PostgreSQL is down for 20 s, then ingest keeps answering 202 and the backlog drains once it is back', async () => {
    const postgres = await OwnPostgres.create();
    // A steady load (about 2,000 readings/s), so the outage's backlog stays far below the limit.
    const s = await setUp({ postgres, pauseMs: 20 });
    try {
      const flusher = s.engine.startFlusher();
      s.load.start();
      await loadFlowing(s, 2000);
      const before = { acknowledged: s.load.acknowledged.size, refused: s.load.refused };
      await postgres.stop('immediate');
      const outageStarted = Date.now();

      // Meanwhile: readiness names PostgreSQL, reports answer 503 (not 500), ingest goes on.
      const ready = await fetch(`${s.engine.url}/health/ready`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: { postgres: string } }).checks.postgres).toMatch(
        /failing/,
      );
      expect((await fetch(`${s.engine.url}/health/ready/ingest`)).status).toBe(200);
      const report = await fetch(`${s.engine.url}/v1/analytics/performance/V-1`);
      expect(report.status).toBe(503);
      expect(report.headers.get('retry-after')).toBeTruthy();
      expect(((await report.json()) as { error: string }).error).toBe('database_unavailable');
      await sleep(20_000 - (Date.now() - outageStarted));
      const duringOutage = s.load.acknowledged.size - before.acknowledged;
      expect(s.load.refused - before.refused).toBe(0);
      expect(duringOutage).toBeGreaterThan(5000);
      expect(flusher.child.exitCode).toBeNull();
      expect(flusher.child.signalCode).toBeNull();

      await postgres.start();
      const drainedS = await secondsToWriteBacklog(s);
      await s.load.stop();
      const result = await drainedAndVerified(s, 'PostgreSQL down 20 s', {
        acknowledgedWhileDown: duringOutage,
        backlogDrainedAfterRestartS: drainedS.toFixed(1),
      });
      expect(result.acknowledged).toBeGreaterThan(before.acknowledged + duringOutage);
      // It paused rather than spending every job's retries on a dead server.
      expect(flusher.output()).toMatch(/PostgreSQL unavailable: flusher paused/);
      expect(flusher.output()).not.toMatch(/job kept as failed/);
    } finally {
      await tearDown(s);
    }
  });

  test('when PostgreSQL stops answering for 12 s without closing connections (a failover, a partition), then ingest keeps answering 202 and everything lands after', async () => {
    // A 1 s statement timeout puts the engine's query deadline at 6 s.
    const s = await setUp({
      databaseProxy: true,
      pauseMs: 20,
      extra: { DB_STATEMENT_TIMEOUT_MS: '1000' },
    });
    const proxy = s.proxy as TcpProxy;
    try {
      const flusher = s.engine.startFlusher();
      s.load.start();
      await loadFlowing(s, 2000);
      const before = { acknowledged: s.load.acknowledged.size, refused: s.load.refused };
      proxy.freeze();
      const frozenAt = Date.now();
      // Answered while still frozen (the thaw comes after this answer): at the query deadline, not
      // once PostgreSQL answers again, and not a hang (the test's own timeout).
      const report = await fetch(`${s.engine.url}/v1/analytics/performance/V-1`);
      expect(report.status).toBe(503);
      expect(Date.now() - frozenAt).toBeLessThan(12_000);
      await sleep(12_000 - (Date.now() - frozenAt));
      const whileFrozen = s.load.acknowledged.size - before.acknowledged;
      expect(s.load.refused - before.refused).toBe(0);
      expect(whileFrozen).toBeGreaterThan(3000);
      expect(flusher.output()).toMatch(/PostgreSQL unavailable: flusher paused/);

      proxy.thaw();
      const drainedS = await secondsToWriteBacklog(s);
      await s.load.stop();
      await drainedAndVerified(s, 'PostgreSQL frozen 12 s', {
        acknowledgedWhileFrozen: whileFrozen,
        backlogDrainedAfterThawS: drainedS.toFixed(1),
      });
      expect(flusher.output()).not.toMatch(/job kept as failed/);
    } finally {
      await tearDown(s);
    }
  });

  test('when Redis dies and comes back from its append-only file, then ingest answers 503 meanwhile and no acknowledged reading is lost', async () => {
    const s = await setUp();
    try {
      s.engine.startFlusher();
      s.load.start();
      await waitFor(async () => s.load.acknowledged.size > 2000, 60_000, 'load');
      await s.redis.kill('SIGKILL');
      const started = Date.now();
      const res = await fetch(`${s.engine.url}/v1/telemetry/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          meterId: 'X-1',
          kwhConsumedAc: 1,
          voltage: 230,
          timestamp: '2024-05-01T00:00:00Z',
        }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(Date.now() - started).toBeLessThan(5000); // refused, not held: a hang lasts until Redis is back
      expect((await fetch(`${s.engine.url}/health/ready`)).status).toBe(503);
      await sleep(1000);
      await s.redis.start();
      await waitFor(
        async () => (await fetch(`${s.engine.url}/health/ready`)).status === 200,
        30_000,
        'recovery',
      );
      const before = s.load.acknowledged.size;
      await waitFor(
        async () => s.load.acknowledged.size > before + 500,
        30_000,
        'ingest to resume',
      );
      await s.load.stop();
      await drainedAndVerified(s, 'Redis SIGKILL+restart');
    } finally {
      await tearDown(s);
    }
  });

  test('when Redis nears maxmemory, then ingest answers 503 before Redis refuses writes, and recovers as the flusher drains', async () => {
    const s = await setUp({ redisArgs: ['--maxmemory', '32mb'], batch: 1000 });
    try {
      await filledToHighWater(s);
      // Redis itself never refused a write: no enqueue failed as "unavailable".
      expect(s.load.refusals.get('503 redis_unavailable') ?? 0).toBe(0);
      s.engine.startFlusher();
      const before = s.load.acknowledged.size;
      await waitFor(
        async () => s.load.acknowledged.size > before + 5000,
        90_000,
        'ingest to resume as the backlog drains',
      );
      await s.load.stop();
      await drainedAndVerified(s, 'Redis near maxmemory');
      expect(s.load.refusals.get('503 redis_unavailable') ?? 0).toBe(0);
    } finally {
      await tearDown(s);
    }
  });

  test('when Redis is past its maxmemory as the flusher starts, then the flusher says so and what to do, and drains once maxmemory is raised', async () => {
    const s = await setUp({ redisArgs: ['--maxmemory', '32mb'], batch: 1000 });
    const admin = new Redis(s.redis.url);
    try {
      await filledToHighWater(s);
      await s.load.stop();
      // Memory that grew elsewhere, or a maxmemory lowered: the flusher's moves of jobs are
      // writes, refused from here on.
      const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))?.[1]);
      await admin.config('SET', 'maxmemory', String(Math.floor(used * 0.95)));
      const flusher = s.engine.startFlusher();
      await waitFor(
        async () => /Redis is at its maxmemory and refuses writes/.test(flusher.output()),
        60_000,
        'the flusher to say Redis is full',
      );
      expect(await loadRowsStored(s)).toBe(0);
      await admin.config('SET', 'maxmemory', '64mb');
      await drainedAndVerified(s, 'Redis past maxmemory at flusher start');
    } finally {
      admin.disconnect();
      await tearDown(s);
    }
  });

  test('when four flushers write the same devices at once, then no deadlock surfaces, nothing is lost or doubled', async () => {
    const s = await setUp({ extra: { FLUSHER_CONCURRENCY: '4', QUEUE_BATCH_READINGS: '100' } });
    try {
      for (let i = 0; i < 4; i++) s.engine.startFlusher();
      s.load.start();
      await waitFor(async () => s.load.acknowledged.size > 10_000, 90_000, 'load');
      await s.load.stop();
      await drainedAndVerified(s, 'four flushers');
      for (const f of s.engine.flushers) expect(f.output()).not.toMatch(/deadlock/i);
    } finally {
      await tearDown(s);
    }
  });

  test('when 100,000 readings arrive duplicated and shuffled, then history holds each distinct reading once', async () => {
    const s = await setUp();
    try {
      s.engine.startFlusher();
      const base = Date.parse('2024-06-01T00:00:00Z');
      const distinct = Array.from({ length: 20_000 }, (_, n) => ({
        meterId: `D-${n % 100}`,
        kwhConsumedAc: 1,
        voltage: 230,
        timestamp: new Date(base + n * 1000).toISOString(),
      }));
      const all = shuffle(
        [...distinct, ...distinct, ...distinct, ...distinct, ...distinct],
        seededRandom(5),
      );
      const refusals: string[] = [];
      for (let i = 0; i < all.length; i += 5000) {
        // As a client does: a 503 (the engine busy with the load) is sent again after Retry-After.
        for (;;) {
          const res = await fetch(`${s.engine.url}/v1/telemetry/ingest`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(all.slice(i, i + 5000)),
          });
          if (res.status !== 503 || refusals.length >= 20) {
            expect({ status: res.status, refusals }).toEqual({ status: 202, refusals });
            break;
          }
          refusals.push(((await res.json()) as { error: string }).error);
          await sleep(Number(res.headers.get('retry-after') ?? 1) * 1000);
        }
      }
      if (refusals.length > 0)
        process.stdout.write(`[fault] 100k duplicates: 503s answered ${refusals.join(', ')}\n`);
      // Every request was answered 202: each distinct reading is acknowledged (five times over).
      const acknowledged = new Map(
        distinct.map((r) => [`${r.meterId}@${Date.parse(r.timestamp)}`, 1]),
      );
      await drainedAndVerified(
        s,
        '100k duplicates',
        { sent: all.length, distinct: distinct.length },
        { of: { acknowledged }, devices: 'D-%' },
      );
      const rows = await s.ctx.db.raw(
        `SELECT count(*)::int AS n FROM telemetry_history WHERE device_id LIKE 'D-%'`,
      );
      expect(rows.rows[0].n).toBe(20_000);
    } finally {
      await tearDown(s);
    }
  });

  test('when the API is SIGKILLed while 100 charge points send MeterValues, then they reconnect, resend what got no .conf, and every answered reading lands once', async () => {
    const s = await setUp();
    const endpoint = `${s.engine.url.replace('http', 'ws')}/ocpp`;
    const chargePoints = new OcppLoadWithLedger(endpoint, 100);
    try {
      s.engine.startFlusher();
      await chargePoints.start();
      await waitFor(async () => chargePoints.acknowledged.size > 3000, 60_000, 'MeterValues');
      s.engine.api?.child.kill('SIGKILL');
      await s.engine.api?.exited;
      const answeredBeforeRestart = [...chargePoints.answeredBy];
      await sleep(1000);
      await s.engine.startApi();
      // Each charge point has reconnected and been answered again, not just some of them.
      await waitFor(
        async () => chargePoints.answeredBy.every((n, i) => n > answeredBeforeRestart[i] + 5),
        90_000,
        'every charge point to be answered after the restart',
      );
      await chargePoints.stop();
      expect(chargePoints.failures).toEqual([]);
      const totals = chargePoints.totals();
      expect(chargePoints.connectionsBy().every((n) => n >= 2)).toBe(true);
      await drainedAndVerified(
        s,
        'API SIGKILLed under 100 OCPP charge points',
        { answered: totals.answered, resent: totals.resent, connections: totals.connections },
        { of: chargePoints, devices: `${chargePoints.idPrefix}%` },
      );
    } finally {
      await chargePoints.stop({ abandon: true });
      await tearDown(s);
    }
  });
});
