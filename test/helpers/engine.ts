import type { Queue } from 'bullmq';
import { createDb, createGenericPlanDb } from '../../db/create-db';
import type { Config } from '../../src/config';
import { createApp, type Api } from '../../src/app';
import { IngestQueues, openShard, type IngestQueue } from '../../src/queue/ingest-queue';
import { createRedis, waitForRedis, type RedisClient } from '../../src/redis';
import { createRedisKeys } from '../../src/redis-keys';
import type { IngestJobData } from '../../src/queue/ingest-queue';
import { parseIntakeEntry } from '../../src/queue/intake';
import type { Reading } from '../../src/devices/device-kinds';
import { createFlusher, type Flusher } from '../../workers/flusher-service';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestContext, type TestContext } from './test-env';
import { createHttpServer } from '../../src/http/http-server';
import { LiveStateStore } from '../../src/telemetry/live-state';

export interface TestApi {
  api: Api;
  queues: IngestQueues;
  /** The first shard's queue (the only one with the default QUEUE_SHARDS=1). */
  queue: IngestQueue;
  close(): Promise<void>;
}

/**
 * The real API wired to the test context's PostgreSQL database and Redis prefix. `overrides` give
 * it PostgreSQL connections of its own (a dead port, a short statement timeout, a proxy) without
 * touching the context's, as startTestFlusher does.
 */
export async function startTestApi(
  ctx: TestContext,
  overrides: Partial<Config> = {},
): Promise<TestApi> {
  const config: Config = { ...ctx.config, ...overrides };
  const ownDb = Object.keys(overrides).length > 0;
  const db = ownDb ? createDb(config, 'energy-test-api', ctx.logger) : ctx.db;
  const genericDb = createGenericPlanDb(config, 'energy-test-api-generic', ctx.logger);
  const queues = new IngestQueues({
    connection: ctx.redis,
    keys: createRedisKeys(config.redisPrefix),
    config,
  });
  const api = createApp({
    config,
    db,
    genericDb,
    redis: ctx.redis,
    queues,
    logger: ctx.logger,
  });
  await api.admission.refresh();
  return {
    api,
    queues,
    queue: queues.shards[0].queue,
    async close() {
      await api.close();
      await queues.close();
      if (ownDb) await db.destroy();
      await genericDb?.destroy();
    },
  };
}

export interface TestFlusher {
  flusher: Flusher;
  close(): Promise<void>;
}

/**
 * A real flusher (BullMQ worker) in this process, on its own connections. `overrides` change its
 * configuration (e.g. a short statement timeout) without touching the test context's.
 */
export async function startTestFlusher(
  ctx: TestContext,
  overrides: Partial<Config> = {},
): Promise<TestFlusher> {
  const config: Config = { ...ctx.config, ...overrides };
  const db = createDb(config, 'energy-test-flusher', ctx.logger);
  const workerConnection = createRedis(config, 'blocking');
  const commands = createRedis(config, 'command');
  await waitForRedis(commands, 3000);
  const flusher = createFlusher({
    config,
    db,
    redis: commands,
    workerConnection,
    logger: ctx.logger,
  });
  await flusher.start();
  return {
    flusher,
    async close() {
      await flusher.close();
      workerConnection.disconnect();
      commands.disconnect();
      await db.destroy();
    },
  };
}

/**
 * A view of one shard of the test's ingest queue (the first by default), opened as the engine
 * opens its own: a queue opened the usual way asks Redis its version first, and if Redis dies
 * before answering, every later call of that queue fails with that answer's error.
 */
export function openQueue(redis: RedisClient, prefix: string, shard = 0): Queue<IngestJobData> {
  return openShard(redis, createRedisKeys(prefix).shards(shard + 1)[shard]).queue;
}

/** The test's live-state store: on its Redis, under its prefix. */
export const liveStateOf = (ctx: TestContext) =>
  new LiveStateStore(ctx.redis, createRedisKeys(ctx.config.redisPrefix));

/** Polls until `check` returns true, or fails after `timeoutMs`. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** The connection a queue of openQueue or startTestApi was opened on, and its shard's intake. */
function intakeOf(queue: Queue<IngestJobData>): { redis: RedisClient; key: string } {
  return { redis: queue.opts.connection as RedisClient, key: queue.toKey('intake') };
}

/*
 * The helpers below read a shard's intake before its jobs: the mover adds an entry's job before it
 * removes the entry, so an entry moved between the two reads is seen in its job. Read the other
 * way round (or at once), a move in between hides its readings from both, and a queue with a job
 * still to write reads as drained (a cluster test once counted 550 of 600 rows that way).
 */

/**
 * The readings waiting in a shard: in its unfinished jobs, then in its intake (an entry moved
 * between the two reads is in both: listed twice).
 */
export async function queuedReadings(queue: Queue<IngestJobData>): Promise<Reading[]> {
  const { redis, key } = intakeOf(queue);
  const entries = (await redis.lrange(key, 0, -1)).map(parseIntakeEntry);
  const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized']);
  return [...jobs.flatMap((job) => job.data.readings), ...entries.flatMap((e) => e.readings)];
}

/** Empties a shard: every job of its queue and every entry of its intake. */
export async function emptyQueue(queue: Queue<IngestJobData>): Promise<void> {
  const { redis, key } = intakeOf(queue);
  await queue.obliterate({ force: true });
  await redis.del(key);
}

/** Stores waiting in a shard: its waiting jobs and its intake's entries. */
export async function storesWaiting(queue: Queue<IngestJobData>): Promise<number> {
  const { redis, key } = intakeOf(queue);
  const intake = await redis.llen(key);
  return intake + (await queue.getWaitingCount());
}

/** Waits until the queue holds no unfinished job and its intake no entry. */
export async function waitForDrained(
  queue: Queue<IngestJobData>,
  timeoutMs = 30_000,
): Promise<void> {
  const { redis, key } = intakeOf(queue);
  await waitFor(
    async () => {
      if ((await redis.llen(key)) > 0) return false;
      const counts = await queue.getJobCounts(
        'waiting',
        'active',
        'delayed',
        'prioritized',
        'paused',
      );
      return Object.values(counts).every((n) => n === 0);
    },
    timeoutMs,
    'the queue to drain',
  );
}

export interface TestEngine {
  ctx: TestContext;
  api: TestApi;
  flusher: TestFlusher;
  queue: Queue<IngestJobData>;
  /** The API over real HTTP, for clients that cannot use supertest (the simulator, Prometheus). */
  url: string;
  stop(): Promise<void>;
}

/** Serves a test API on a free port of 127.0.0.1, on the server production makes. */
export async function serveTestApi(api: TestApi): Promise<{ server: Server; url: string }> {
  const server = await new Promise<Server>((resolve) => {
    const s = createHttpServer(api.api.app).listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * serveTestApi with the API's OCPP endpoint on the same server; `close` ends both (charge points'
 * WebSockets would keep the server open).
 */
export async function serveTestApiWithOcpp(
  api: TestApi,
): Promise<{ url: string; close(): Promise<void> }> {
  const { server, url } = await serveTestApi(api);
  api.api.ocpp.attach(server);
  return {
    url,
    async close() {
      await api.api.ocpp.close();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A whole engine for one test file: its own database and prefix, the API, a flusher, the queue. */
export async function startTestEngine(overrides: Record<string, string> = {}): Promise<TestEngine> {
  const ctx = await createTestContext(overrides);
  const api = await startTestApi(ctx);
  const flusher = await startTestFlusher(ctx);
  const queue = openQueue(ctx.redis, ctx.config.redisPrefix);
  const served = await serveTestApiWithOcpp(api);
  return {
    ctx,
    api,
    flusher,
    queue,
    url: served.url,
    async stop() {
      await served.close();
      await queue.close();
      await flusher.close();
      await api.close();
      await ctx.cleanup();
    },
  };
}
