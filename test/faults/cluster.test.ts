/**
 * Fault scenarios on a real Redis Cluster (3 masters, 3 replicas, test/helpers/redis-cluster.ts):
 * API and flusher processes with QUEUE_SHARDS=3 under continuous HTTP load with a ledger of every
 * reading acknowledged with 202, while masters are killed, promoted over, restarted, and the whole
 * cluster restarts from its AOF.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedisKeys } from '../../src/redis-keys';
import { assertRedisReachable } from '../../src/startup-checks';
import { openQueue, queuedReadings, waitFor } from '../helpers/engine';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster';
import { createTestContext, type TestContext } from '../helpers/test-env';
import { EngineProcesses, LoadWithLedger, verifyLedger } from './harness';

jest.setTimeout(240_000);

const QUEUE_SHARDS = 3;

/**
 * The hang guard: the load gives up on a request after 5 s (test/faults/harness.ts), so an answer
 * that slow is a hang, not a fast 503. Only the guard is asserted; the slowest answer is printed.
 */
const HANG_GUARD_MS = 5000;

interface ClusterScenario {
  cluster: RedisClusterHandle;
  ctx: TestContext;
  engine: EngineProcesses;
  load: LoadWithLedger;
}

async function setUp(waitReplicas: number): Promise<ClusterScenario> {
  // appendfsync always: a restart of the whole cluster at once (power loss of the site) is the one
  // fault replicas cannot cover; only fsync before the reply makes an acknowledged job survive it.
  const cluster = await startRedisCluster({
    masters: 3,
    replicasPerMaster: 1,
    appendfsync: 'always',
  });
  const env = {
    REDIS_CLUSTER_NODES: cluster.seeds.join(','),
    QUEUE_SHARDS: String(QUEUE_SHARDS),
    REDIS_WAIT_REPLICAS: String(waitReplicas),
  };
  const ctx = await createTestContext(env);
  const engine = await EngineProcesses.create(ctx, ctx.config.redisUrl, env);
  // A steady load (pauses between requests), as devices send, not a saturating benchmark.
  const s = { cluster, ctx, engine, load: new LoadWithLedger(() => engine.url, 50, 50, 10) };
  try {
    await engine.startApi();
  } catch (err) {
    const output = engine.api?.output() ?? '';
    await tearDown(s);
    throw new Error(`${(err as Error).message}; the API said:\n${output}`);
  }
  engine.startFlusher();
  engine.startFlusher();
  return s;
}

async function tearDown(s: ClusterScenario): Promise<void> {
  await s.load.stop();
  await s.engine.stopAll();
  await s.ctx.cleanup().catch(() => undefined);
  await s.cluster.stop();
}

function record(scenario: string, figures: Record<string, number | string>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${v}`);
  process.stdout.write(`[fault] cluster: ${scenario}: ${parts.join(' ')}\n`);
}

async function loadRowsStored(s: ClusterScenario): Promise<number> {
  const [row] = await s.ctx
    .db('telemetry_history')
    .where('device_id', 'like', 'F-%')
    .count({ n: '*' });
  return Number(row.n);
}

/** The master serving the slot of queue shard 0 (its keys all hash to `{prefix:q0}`). */
async function shardMaster(s: ClusterScenario) {
  const [shard] = createRedisKeys(s.ctx.config.redisPrefix).shards(1);
  return s.cluster.masterForSlot(shard.slot);
}

/** No job or intake entry of any shard is left to write. */
async function queuesEmpty(s: ClusterScenario): Promise<boolean> {
  for (let shard = 0; shard < QUEUE_SHARDS; shard++) {
    const queue = openQueue(s.ctx.redis, s.ctx.config.redisPrefix, shard);
    try {
      if ((await queuedReadings(queue)).length > 0) return false;
    } finally {
      await queue.close();
    }
  }
  return true;
}

/** Waits for the load to be acknowledged `more` readings beyond what it had. */
async function ackedMore(s: ClusterScenario, more: number, what: string): Promise<void> {
  const before = s.load.acknowledged.size;
  await waitFor(async () => s.load.acknowledged.size >= before + more, 90_000, what);
}

/** Waits until every shard's queue is empty and history stops growing. */
async function drained(s: ClusterScenario): Promise<void> {
  let last = -1;
  await waitFor(
    async () => {
      if (!(await queuesEmpty(s))) return false;
      const rows = await loadRowsStored(s);
      const settled = rows === last;
      last = rows;
      if (!settled) await sleep(500);
      return settled;
    },
    120_000,
    'every shard to drain',
  );
}

/** Acknowledged readings not in PostgreSQL once every shard has drained. */
async function acknowledgedMissing(s: ClusterScenario): Promise<number> {
  const rows = await s.ctx.db.raw(
    `SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint AS ms FROM telemetry_history
     WHERE device_type = 'meter' AND device_id LIKE 'F-%'`,
  );
  const stored = new Set(
    (rows.rows as { device_id: string; ms: string }[]).map((r) => `${r.device_id}@${r.ms}`),
  );
  return [...s.load.acknowledged.keys()].filter((k) => !stored.has(k)).length;
}

function refusalsOf(s: ClusterScenario): string {
  return [...s.load.refusals].map(([code, n]) => `${code.replace(' ', ':')}x${n}`).join(',');
}

/** The flushers are still running (none exited on the failover). */
function flushersAlive(s: ClusterScenario): boolean {
  const dead = s.engine.flushers.filter(
    (f) => f.child.exitCode !== null || f.child.signalCode !== null,
  );
  // A dead flusher's own last words say why.
  for (const f of dead)
    process.stdout.write(`[fault] cluster: a flusher exited:\n${f.output().slice(-4000)}\n`);
  return dead.length === 0;
}

/**
 * Kills the master of shard 0 under load and waits for its replica's promotion and for ingest to
 * resume; returns the figures to record.
 */
async function killShardMaster(s: ClusterScenario) {
  await waitFor(async () => s.load.acknowledged.size > 3000, 60_000, 'load');
  await waitFor(async () => (await loadRowsStored(s)) > 0, 30_000, 'the flushers to write');
  const master = await shardMaster(s);
  const slowestBeforeKillMs = s.load.slowestMs;
  const killedAt = Date.now();
  await s.cluster.kill(master.port, 'SIGKILL');
  const ackedAtKill = s.load.acknowledged.size;
  const { newMaster, elapsedMs } = await s.cluster.waitForFailover(master.port);
  expect(master.replicaPorts).toContain(newMaster.port);
  await ackedMore(s, 3000, 'ingest to resume after the failover');
  return {
    killed: master.port,
    promoted: newMaster.port,
    failoverMs: elapsedMs,
    acknowledgedAfterKill: s.load.acknowledged.size - ackedAtKill,
    slowestBeforeKillMs,
    slowestAnswerAfterKillAtMs: s.load.slowestAt - killedAt,
  };
}

describe('fault scenarios on a Redis Cluster (3 masters, 3 replicas, QUEUE_SHARDS=3)', () => {
  test('when the master of a queue shard is SIGKILLed with REDIS_WAIT_REPLICAS=1, then its replica is promoted, ingest answers 503 meanwhile without hanging, resumes by itself, and every acknowledged reading lands once', async () => {
    const s = await setUp(1);
    try {
      s.load.start();
      const failover = await killShardMaster(s);
      await s.load.stop();
      expect(flushersAlive(s)).toBe(true);
      await drained(s);
      const result = await verifyLedger(s.ctx, s.load);
      record('shard master SIGKILL, WAIT 1', {
        acknowledged: result.acknowledged,
        verified: result.stored,
        ...failover,
        slowestAnswerMs: s.load.slowestMs,
        refusedRequests: refusalsOf(s) || 'none',
      });
      // Readings it could not place were refused (503), with a Retry-After, never hung on.
      expect(s.load.refused).toBeGreaterThan(0);
      expect(s.load.refusedWithoutRetryAfter).toBe(0);
      expect(s.load.slowestMs).toBeLessThan(HANG_GUARD_MS);
    } finally {
      await tearDown(s);
    }
  });

  test('when the master of a queue shard is SIGKILLed with REDIS_WAIT_REPLICAS=0, then the readings the failover lost are counted', async () => {
    const s = await setUp(0);
    try {
      s.load.start();
      const failover = await killShardMaster(s);
      await s.load.stop();
      expect(flushersAlive(s)).toBe(true);
      await drained(s);
      const lost = await acknowledgedMissing(s);
      record('shard master SIGKILL, WAIT 0', {
        acknowledged: s.load.acknowledged.size,
        lostInFailover: lost,
        ...failover,
        slowestAnswerMs: s.load.slowestMs,
        refusedRequests: refusalsOf(s) || 'none',
      });
      // Whatever was lost, ingest went on after the failover and nothing was stored twice.
      expect(lost).toBeLessThan(s.load.acknowledged.size);
      expect(s.load.slowestMs).toBeLessThan(HANG_GUARD_MS);
    } finally {
      await tearDown(s);
    }
  });

  test('when a killed master is restarted after the failover, then it rejoins as a replica and nothing acknowledged is lost', async () => {
    const s = await setUp(1);
    try {
      s.load.start();
      const failover = await killShardMaster(s);
      const rejoined = await s.cluster.restart(failover.killed);
      expect(rejoined).toMatchObject({ role: 'replica', masterPort: failover.promoted });
      await ackedMore(s, 3000, 'ingest to go on after the old master rejoined');
      await s.load.stop();
      await drained(s);
      const result = await verifyLedger(s.ctx, s.load);
      record('shard master SIGKILL, restarted as a replica, WAIT 1', {
        acknowledged: result.acknowledged,
        verified: result.stored,
        ...failover,
        slowestAnswerMs: s.load.slowestMs,
        refusedRequests: refusalsOf(s) || 'none',
      });
      expect(s.load.refusedWithoutRetryAfter).toBe(0);
    } finally {
      await tearDown(s);
    }
  });

  test('when the whole cluster is SIGKILLed and restarted from its AOF (appendfsync always), then ingest resumes by itself and nothing acknowledged is lost', async () => {
    const s = await setUp(1);
    try {
      s.load.start();
      await waitFor(async () => s.load.acknowledged.size > 3000, 60_000, 'load');
      const started = Date.now();
      await s.cluster.restartAll({ signal: 'SIGKILL' });
      const restartMs = Date.now() - started;
      await ackedMore(s, 3000, 'ingest to resume after the restart');
      await s.load.stop();
      expect(flushersAlive(s)).toBe(true);
      await drained(s);
      const result = await verifyLedger(s.ctx, s.load);
      record('whole cluster SIGKILL, restarted from AOF, WAIT 1', {
        acknowledged: result.acknowledged,
        verified: result.stored,
        restartMs,
        slowestAnswerMs: s.load.slowestMs,
        refusedRequests: refusalsOf(s) || 'none',
      });
      expect(s.load.refusedWithoutRetryAfter).toBe(0);
    } finally {
      await tearDown(s);
    }
  });
});

describe('starting on a Redis Cluster that is down', () => {
  test('when a shard has lost its master with no replica to take over, then start-up says the cluster is down, not that Redis is not reachable', async () => {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
    try {
      const [lost, ...alive] = cluster.nodes.map((n) => n.port);
      await cluster.kill(lost);
      await waitFor(
        async () =>
          /cluster_state:fail/.test(
            String(await cluster.withNode(alive[0], (r) => r.call('CLUSTER', 'INFO'))),
          ),
        15_000,
        'the cluster to see its master failed',
      );
      const seeds = alive.map((port) => `127.0.0.1:${port}`).join(',');
      await expect(
        assertRedisReachable(
          { redisUrl: 'redis://127.0.0.1:6379', redisClusterNodes: seeds },
          { timeoutMs: 2000 },
        ),
      ).rejects.toThrow(
        new RegExp(
          `^The Redis Cluster answers at 127\\.0\\.0\\.1:${alive[0]} \\(REDIS_CLUSTER_NODES\\), but its state is fail \\(CLUSTER INFO; \\d+ of 16384 slots served\\)[^]*Start its failed nodes again`,
        ),
      );
    } finally {
      await cluster.stop();
    }
  });
});
