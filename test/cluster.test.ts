import request from 'supertest';
import { generateKey } from '../src/auth/api-keys';
import { ChargePointState } from '../src/ocpp/charge-point-state';
import { IngestQueues, SHARD_REST_MS, shardsSharingMasters } from '../src/queue/ingest-queue';
import { createRedisKeys } from '../src/redis-keys';
import { assertRedisReachable } from '../src/startup-checks';
import { createRedis, waitForRedis } from '../src/redis';
import { WEDGED_AFTER_MS } from '../workers/shard-workers';
import { LiveStateStore } from '../src/telemetry/live-state';
import {
  openQueue,
  queuedReadings,
  startTestApi,
  startTestEngine,
  startTestFlusher,
  waitFor,
  type TestEngine,
} from './helpers/engine';
import { createTestContext, type TestContext } from './helpers/test-env';
import {
  hasIpv6Loopback,
  startRedisCluster,
  type RedisClusterHandle,
} from './helpers/redis-cluster';
import { OwnRedis } from './helpers/own-redis';
import { startTestMqtt } from './helpers/mqtt';
import { capturingLogger } from './helpers/capturing-logger';

/** Every shard's queue is empty and its backlog counter at zero. */
async function drained(e: TestEngine, shards: number): Promise<boolean> {
  for (let shard = 0; shard < shards; shard++) {
    const queue = openQueue(e.ctx.redis, e.ctx.config.redisPrefix, shard);
    const waiting = await queuedReadings(queue);
    await queue.close();
    if (waiting.length > 0) return false;
  }
  return true;
}

const meter = (id: string, minute: number) => ({
  meterId: id,
  kwhConsumedAc: 1,
  voltage: 230,
  timestamp: new Date(Date.parse('2024-07-01T00:00:00Z') + minute * 60_000).toISOString(),
});

describe('on a Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: RedisClusterHandle;
  let e: TestEngine;
  const key = generateKey('gw', ['ingest', 'read', 'admin']);
  /** `batches` requests of `size` meters' readings (`<prefix>-<i>`, minute `batch`), each a 202. */
  const ingestMeters = async (prefix: string, batches: number, size: number) => {
    for (let batch = 0; batch < batches; batch++) {
      const readings = Array.from({ length: size }, (_, i) => meter(`${prefix}-${i}`, batch));
      await request(e.api.api.app)
        .post('/v1/telemetry/ingest')
        .set('Authorization', `Bearer ${key.key}`)
        .send(readings)
        .expect(202);
    }
  };

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    e = await startTestEngine({
      REDIS_CLUSTER_NODES: cluster.seeds.join(','),
      QUEUE_SHARDS: '3',
      REDIS_WAIT_REPLICAS: '1',
      AUTH: 'on',
      API_KEYS: key.entry,
      RATE_LIMIT_PER_S: '1000',
    });
  }, 60_000);
  afterAll(async () => {
    await e?.stop();
    await cluster?.stop();
  });

  test('when REDIS_URL names a node of the cluster, or REDIS_CLUSTER_NODES a Redis without cluster mode, then start-up stops saying which setting to use', async () => {
    const node = cluster.seeds[0];
    await expect(
      assertRedisReachable({ redisUrl: `redis://${node}`, redisClusterNodes: '' }),
    ).rejects.toThrow(
      new RegExp(
        `Redis at redis://${node} is a node of a Redis Cluster[^]*Set REDIS_CLUSTER_NODES`,
      ),
    );
    const standalone = new URL(e.ctx.config.redisUrl).host;
    await expect(
      assertRedisReachable({ redisUrl: e.ctx.config.redisUrl, redisClusterNodes: standalone }),
    ).rejects.toThrow(
      `Redis at ${standalone} (REDIS_CLUSTER_NODES) answers, but runs without cluster mode (cluster_enabled:0).\n  For a single Redis, set REDIS_URL=redis://${standalone} and leave REDIS_CLUSTER_NODES empty`,
    );
  });

  test('when a seed is an IPv6 address, then the cluster is reached through it (its slots are then asked there; the nodes announce IPv4 addresses)', async () => {
    if (!(await hasIpv6Loopback)) return; // a machine without ::1: nothing to connect to
    const port = cluster.seeds[0].split(':')[1];
    const settings = { redisUrl: e.ctx.config.redisUrl, redisClusterNodes: `[::1]:${port}` };
    await assertRedisReachable(settings);
    const redis = createRedis(settings, 'command');
    try {
      await waitForRedis(redis, 10_000);
      await redis.set('{ipv6}:seed', 'reached');
      expect(await redis.get('{ipv6}:seed')).toBe('reached');
    } finally {
      redis.disconnect();
    }
  });

  test('when a REDIS_PREFIX puts two queue shards on one master while another has none, then that is named with what to do', async () => {
    const redis = createRedis(
      { ...e.ctx.config, redisClusterNodes: cluster.seeds.join(',') },
      'command',
    );
    await waitForRedis(redis, 10_000);
    try {
      // {nud:q0} and {nud:q1} hash to slots 15638 and 11575, both of the master of 10923-16383.
      expect(shardsSharingMasters(redis, createRedisKeys('nud').shards(3))).toMatch(
        /^3 queue shards sit on 2 of 3 Redis masters \(\{nud:q0\} on [\d.:]+, .*Raise QUEUE_SHARDS/,
      );
      // {energy:q0..2} fall on the three masters.
      expect(shardsSharingMasters(redis, createRedisKeys('energy').shards(3))).toBeNull();
      // Fewer shards than masters, each on its own: nothing to say.
      expect(shardsSharingMasters(redis, createRedisKeys('nud').shards(1))).toBeNull();
    } finally {
      redis.disconnect();
    }
  });

  test('when charge points are seen, boot and record connectors together, then their live state is written, though their keys lie in several slots', async () => {
    const redis = cluster.connect();
    const keys = createRedisKeys(e.ctx.config.redisPrefix);
    const state = new ChargePointState(redis, keys, 60_000);
    const ids = ['CP-S1', 'CP-S2', 'CP-S3', 'CP-S4'];
    await state.knownConnectors(
      ids.flatMap((chargePointId) => [1, 2].map((connectorId) => ({ chargePointId, connectorId }))),
    );
    await state.booted('CP-S1', new Date('2024-07-01T00:00:00Z'));
    const at = new Date();
    await state.seen(
      ids.map((chargePointId) => ({ chargePointId, connection: 'here', connectedAt: at })),
      at,
    );
    for (const id of ids) {
      expect(await redis.smembers(keys.chargePointConnectors(id))).toEqual(
        expect.arrayContaining(['1', '2']),
      );
      expect(await redis.hget(keys.chargePoint(id), 'lastSeenAt')).toBe(at.toISOString());
    }
  });

  test('when readings are ingested, then they spread over the three shards (each on its own slot) and all reach PostgreSQL once', async () => {
    const shards = createRedisKeys(e.ctx.config.redisPrefix).shards(3);
    expect(new Set(shards.map((s) => s.slot)).size).toBe(3);
    await ingestMeters('C', 12, 50);
    await waitFor(() => drained(e, 3), 30_000, 'every shard to drain');
    const rows = await e.ctx.db('telemetry_history').count({ n: '*' });
    // Once seen at 550 (one request's readings) in a full CI run: where they went, if it recurs.
    const whereElse = async () => {
      const keys = createRedisKeys(e.ctx.config.redisPrefix);
      const failed = await Promise.all(
        [0, 1, 2].map(async (shard) => {
          const queue = openQueue(e.ctx.redis, e.ctx.config.redisPrefix, shard);
          const count = await queue.getJobCountByTypes('failed');
          await queue.close();
          return count;
        }),
      );
      return { failedJobs: failed, deadLetters: await e.ctx.redis.llen(keys.deadLetters) };
    };
    expect({
      rows: Number(rows[0].n),
      ...(Number(rows[0].n) === 600 ? {} : await whereElse()),
    }).toEqual({ rows: 600 });
    const app = request(e.api.api.app);
    // Live state (hash-tagged buckets), the rate limiter and the report cache work across slots.
    const status = await app
      .get('/v1/meters/C-7/status')
      .set('Authorization', `Bearer ${key.key}`)
      .expect(200);
    expect(status.body).toMatchObject({ source: 'live', kwhConsumedAc: 1 });
    // Every master has the replica REDIS_WAIT_REPLICAS asks for.
    const ready = await app.get('/health/ready/ingest').expect(200);
    expect(ready.body.checks).toEqual({ redis: 'ok', replicas: 'ok' });
  });

  test('when the master of some live-state buckets hangs, then once a store has waited out the deadline, the next ones are answered without waiting for those buckets', async () => {
    const redis = createRedis({
      redisUrl: 'redis://unused',
      redisClusterNodes: cluster.seeds.join(','),
    });
    try {
      await waitForRedis(redis, 5000);
      const keys = createRedisKeys(`${e.ctx.config.redisPrefix}-hang`);
      const live = new LiveStateStore(redis, keys);
      // 300 meters: in every bucket, so on every master.
      const readings = Array.from({ length: 300 }, (_, i) => ({
        type: 'meter' as const,
        id: `H-${i}`,
        ts: Date.parse('2024-07-01T00:00:00Z'),
        kwhConsumedAc: 1,
        voltage: 230,
      }));
      await live.applyReadings(readings, Date.now(), 1000);
      const hung = cluster.nodes.find((n) => n.role === 'master')!.port;
      // Stopped for well under the cluster's node timeout: no failover, just a master not answering.
      await cluster.kill(hung, 'SIGSTOP');
      try {
        const later = readings.map((r) => ({ ...r, ts: r.ts + 60_000 }));
        await expect(live.applyReadings(later, Date.now(), 200)).rejects.toThrow(
          'live state took longer than 200 ms',
        );
        // Its buckets rest: the others' states are written and the store is not held.
        const next = readings.map((r) => ({ ...r, ts: r.ts + 120_000 }));
        const moved = await live.applyReadings(next, Date.now(), 200);
        expect(moved).toBeGreaterThan(0);
        expect(moved).toBeLessThan(300);
      } finally {
        await cluster.kill(hung, 'SIGCONT');
      }
      await cluster.waitForHealthy();
    } finally {
      redis.disconnect();
    }
  });

  test("when a shard's slot is migrating and its stores are redirected to the target (ASK), then REDIS_WAIT_REPLICAS waits on the target's replicas: none answering, no store is acknowledged", async () => {
    // An API of one shard of its own: every store goes to the slot that migrates.
    const prefix = `${e.ctx.config.redisPrefix}-migrating`;
    const own = await startTestApi(e.ctx, { redisPrefix: prefix, queueShards: 1 });
    const [shard] = createRedisKeys(prefix).shards(1);
    const source = await cluster.masterForSlot(shard.slot);
    const nodes = await cluster.refreshTopology();
    const target = nodes.find((n) => n.role === 'master' && n.port !== source.port)!;
    const targetReplica = nodes.find((n) => n.role === 'replica' && n.masterPort === target.port)!;
    const store = (minute: number) =>
      request(own.api.app)
        .post('/v1/telemetry/ingest')
        .set('Authorization', `Bearer ${key.key}`)
        .send(meter('C-migrating', 1000 + minute));
    await store(0).expect(202); // the shard's keys exist on the source
    // The target's only replica hangs: nothing written on the target can be confirmed.
    await cluster.kill(targetReplica.port, 'SIGSTOP');
    const answers: { status: number; error?: string }[] = [];
    try {
      await cluster.withNode(target.port, (node) =>
        node.cluster('SETSLOT', shard.slot, 'IMPORTING', source.id),
      );
      await cluster.withNode(source.port, async (node) => {
        await node.cluster('SETSLOT', shard.slot, 'MIGRATING', target.id);
        const keys = (await node.cluster('GETKEYSINSLOT', shard.slot, 1000)) as string[];
        await node.migrate('127.0.0.1', target.port, '', 0, 5000, 'KEYS', ...keys);
      });
      for (let minute = 1; minute <= 8; minute++) {
        const res = await store(minute);
        answers.push({ status: res.status, error: res.body.error });
      }
    } finally {
      // The migration completed: the slot is the target's from now on.
      for (const port of [source.port, target.port]) {
        await cluster.withNode(port, (node) =>
          node.cluster('SETSLOT', shard.slot, 'NODE', target.id),
        );
      }
      await cluster.kill(targetReplica.port, 'SIGCONT');
      await own.close();
    }
    // Before the fix the source, holding none of these writes, confirmed them at once: 202.
    expect(answers.filter((a) => a.status !== 503)).toEqual([]);
    expect(answers).toContainEqual({ status: 503, error: 'redis_not_replicated' });
    await cluster.waitForHealthy();
  }, 60_000);

  test('when two of the three masters hang past the node timeout and come back, then every shard is drained again (a worker whose blocking client never returned is replaced)', async () => {
    const api = request(e.api.api.app);
    const hung = cluster.nodes.filter((n) => n.role === 'master').slice(0, 2);
    for (const node of hung) await cluster.kill(node.port, 'SIGSTOP');
    // Past cluster-node-timeout: the cluster fails. Its clients go on asking meanwhile.
    const flusher = request(e.flusher.flusher.healthApp);
    for (const until = Date.now() + 8_000; Date.now() < until;) {
      await Promise.all([api.get('/health/ready/ingest'), flusher.get('/health/ready')]);
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const node of hung) await cluster.kill(node.port, 'SIGCONT');
    await cluster.waitForHealthy();
    await waitFor(
      async () => (await api.get('/health/ready/ingest')).status === 200,
      30_000,
      'ingest readiness',
    );
    await ingestMeters('AFTER', 9, 20);
    await waitFor(() => drained(e, 3), WEDGED_AFTER_MS + 30_000, 'every shard to drain again');
  }, 120_000);

  test('when two of the three masters are down (no majority: no failover, every key refused), then the API and the flusher are not ready, naming the cluster state, until they are back', async () => {
    const api = request(e.api.api.app);
    const flusher = request(e.flusher.flusher.healthApp);
    const down = cluster.nodes.filter((n) => n.role === 'master').slice(0, 2);
    for (const node of down) await cluster.kill(node.port);
    try {
      // Each says so once the surviving nodes see the cluster fail (after the node timeout).
      const saysClusterFails = (res: request.Response) =>
        res.status === 503 && /^failing: Redis Cluster state is fail/.test(res.body.checks.redis);
      await waitFor(
        async () => saysClusterFails(await api.get('/health/ready/ingest')),
        15_000,
        'ingest readiness to name the cluster state',
      );
      await waitFor(
        async () => saysClusterFails(await flusher.get('/health/ready')),
        15_000,
        "the flusher's readiness to name the cluster state",
      );
    } finally {
      // Together: one back before the other is a majority that fails the other over (its replica
      // promoted, itself back as a replica), a different test than this one.
      await Promise.all(down.map((node) => cluster.restart(node.port)));
    }
    await cluster.waitForHealthy();
    await waitFor(
      async () => (await api.get('/health/ready/ingest')).status === 200,
      30_000,
      'ingest readiness to pass again',
    );
    await waitFor(
      async () => (await flusher.get('/health/ready')).status === 200,
      30_000,
      'the flusher to be ready again',
    );
  }, 120_000);
});

describe('queue shards on standalone Redis', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('when QUEUE_SHARDS is lowered from 3 to 1 between restarts, then a flusher with 1 still drains the jobs left in shards 1 and 2', async () => {
    const api = await startTestApi(ctx, { queueShards: 3 });
    const app = request(api.api.app);
    for (let batch = 0; batch < 6; batch++) {
      const readings = Array.from({ length: 20 }, (_, i) => meter(`S-${i}`, batch));
      await app.post('/v1/telemetry/ingest').send(readings).expect(202);
    }
    await api.close();
    const counts = await Promise.all(
      [0, 1, 2].map(async (shard) => {
        const queue = openQueue(ctx.redis, ctx.config.redisPrefix, shard);
        const n = (await queuedReadings(queue)).length;
        await queue.close();
        return n;
      }),
    );
    expect(counts.every((n) => n > 0)).toBe(true);
    // An API with one shard reports the whole backlog in its metrics, as its admission counts it.
    const fewer = await startTestApi(ctx, { queueShards: 1 });
    try {
      const metrics = await request(fewer.api.app).get('/metrics').expect(200);
      expect(metrics.text).toMatch(/^energy_queue_readings_waiting(\{[^}]*\})? 120$/m);
    } finally {
      await fewer.close();
    }

    const flusher = await startTestFlusher(ctx, { queueShards: 1 });
    try {
      await waitFor(
        async () => {
          const [row] = await ctx.db('telemetry_history').where('device_id', 'like', 'S-%').count({
            n: '*',
          });
          return Number(row.n) === 120;
        },
        30_000,
        'every reading of the three shards to be written',
      );
    } finally {
      await flusher.close();
    }
  });

  test('when a store in a shard fails, then the next batches go to the other shards until it has rested', () => {
    const queues = new IngestQueues({
      connection: ctx.redis,
      keys: createRedisKeys(ctx.config.redisPrefix),
      config: { queueShards: 3, flushAttempts: 1, flushBackoffMs: 100 },
    });
    const order = (n: number, now: number) =>
      Array.from({ length: n }, () => queues.next(now).keys.shard);
    try {
      expect(order(3, 0)).toEqual([0, 1, 2]);
      queues.rest(queues.shards[1], 1000);
      expect(order(4, 1000)).toEqual([0, 2, 0, 2]);
      // Every shard resting: the one resting longest is tried.
      queues.rest(queues.shards[0], 2000);
      queues.rest(queues.shards[2], 3000);
      expect(order(1, 3000)).toEqual([1]);
      // Rested: back in turn.
      expect(order(3, 3000 + SHARD_REST_MS).sort()).toEqual([0, 1, 2]);
    } finally {
      void queues.close();
    }
  });
});

describe('REDIS_WAIT_REPLICAS and readiness', () => {
  let master: OwnRedis;
  let replica: OwnRedis | null = null;
  let ctx: TestContext;

  beforeAll(async () => {
    master = await OwnRedis.create();
    ctx = await createTestContext({ REDIS_URL: master.url, REDIS_WAIT_REPLICAS: '1' });
  });
  afterAll(async () => {
    await ctx.cleanup();
    await replica?.kill();
    await master.kill();
  });

  test('when Redis has fewer replicas than ingest waits for, then ingest readiness fails naming them (the API and the MQTT process), and passes once a replica is in sync', async () => {
    const { logger, lines } = capturingLogger();
    const api = await startTestApi({ ...ctx, logger });
    const mqtt = await startTestMqtt(ctx, { mqttClientId: `${ctx.config.redisPrefix}-replicas` });
    try {
      const app = request(api.api.app);
      const alone = await app.get('/health/ready/ingest').expect(503);
      const noReplica =
        'failing: REDIS_WAIT_REPLICAS=1 but no Redis master has that many replicas (online: 0)';
      expect(alone.body.checks).toEqual({ redis: 'ok', replicas: noReplica });
      // Said at the start too, with what it means.
      await waitFor(
        async () =>
          lines.some((l) => l.level === 40 && String(l.msg).startsWith(noReplica.slice(9))),
        5_000,
        'the start-up warning',
      );
      expect(lines.find((l) => String(l.msg).startsWith(noReplica.slice(9)))?.msg).toBe(
        `${noReplica.slice(9)}: every reading is refused (503 redis_not_replicated) until one has; add replicas, or lower REDIS_WAIT_REPLICAS`,
      );
      expect((await app.get('/health/ready').expect(503)).body.checks.replicas).toMatch(/^failing/);
      // The MQTT process acknowledges readings too: it was ready while it could store none.
      const mqttHealth = request(mqtt.service.healthApp);
      const mqttAlone = await mqttHealth.get('/health/ready').expect(503);
      expect(mqttAlone.body.checks.replicas).toBe(noReplica);

      replica = await OwnRedis.create(['--replicaof', '127.0.0.1', String(master.port)]);
      await waitFor(
        async () => (await app.get('/health/ready/ingest')).status === 200,
        15_000,
        'the replica to be in sync',
      );
      const ready = await app.get('/health/ready/ingest').expect(200);
      expect(ready.body.checks).toEqual({ redis: 'ok', replicas: 'ok' });
      // And what readiness promises holds: a reading is acknowledged.
      await app.post('/v1/telemetry/ingest').send(meter('R-1', 0)).expect(202);
      expect((await mqttHealth.get('/health/ready')).body.checks.replicas).toBe('ok');
    } finally {
      await mqtt.close();
      await api.close();
    }
  });
});

describe('a Redis that evicts keys', () => {
  let own: OwnRedis;
  let ctx: TestContext;

  beforeAll(async () => {
    own = await OwnRedis.create(['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    ctx = await createTestContext({ REDIS_URL: own.url });
  });
  afterAll(async () => {
    await ctx.cleanup();
    await own.kill();
  });

  const setConfig = async (name: string, value: string) => {
    const redis = createRedis({ redisUrl: own.url, redisClusterNodes: '' }, 'command');
    try {
      await waitForRedis(redis, 3000);
      await redis.config('SET', name, value);
    } finally {
      redis.disconnect();
    }
  };

  test('when its maxmemory-policy is not noeviction, then no process that acknowledges readings starts on it, and ingest is not ready while it is set so at run time', async () => {
    const evicts =
      /maxmemory-policy is allkeys-lru with a maxmemory set: Redis may evict readings accepted but not yet stored; set it to noeviction/;
    const settings = { redisUrl: own.url, redisClusterNodes: '' };
    await expect(assertRedisReachable(settings, { acceptsReadings: true })).rejects.toThrow(evicts);
    // The flusher starts on it, to drain what it holds (and warns); without a maxmemory nothing
    // is evicted, whatever the policy.
    await assertRedisReachable(settings);
    await setConfig('maxmemory', '0');
    await assertRedisReachable(settings, { acceptsReadings: true });
    await setConfig('maxmemory', '64mb');

    await setConfig('maxmemory-policy', 'noeviction');
    const api = await startTestApi(ctx);
    try {
      const app = request(api.api.app);
      expect((await app.get('/health/ready/ingest').expect(200)).body.checks.redis).toBe('ok');
      await setConfig('maxmemory-policy', 'allkeys-lru');
      const evicting = await app.get('/health/ready/ingest').expect(503);
      expect(evicting.body.checks.redis).toMatch(evicts);
      await setConfig('maxmemory-policy', 'noeviction');
      await app.get('/health/ready/ingest').expect(200);
    } finally {
      await api.close();
    }
  });
});
