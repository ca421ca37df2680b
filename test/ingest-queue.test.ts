import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker, type Job, type WorkerOptions } from 'bullmq';
import { isFlushedJobGone, isJobLockLost } from '../workers/shard-workers';
import { IngestQueues, openShard } from '../src/queue/ingest-queue';
import { createRedis, waitForRedis, type RedisClient } from '../src/redis';
import { createRedisKeys } from '../src/redis-keys';
import { freePort } from '../bench/bench-helpers';
import { OwnRedis } from './helpers/own-redis';

const QUEUE_CONFIG = { queueShards: 2, flushAttempts: 3, flushBackoffMs: 100 };

/** Resolves once the connection has failed at least once and is trying to connect again. */
async function reconnecting(redis: RedisClient): Promise<void> {
  let failed = false;
  redis.on('error', () => (failed = true));
  const deadline = Date.now() + 5000;
  while (!(failed && redis.status === 'connecting')) {
    if (Date.now() > deadline) throw new Error(`connection stayed ${redis.status}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('the ingest queues', () => {
  test('when Redis is down and the queues are closed before their connection, then nothing is thrown afterwards', async () => {
    const heard: unknown[] = [];
    const hear = (err: unknown) => heard.push(err);
    process.on('unhandledRejection', hear);
    process.on('uncaughtException', hear);
    try {
      for (let i = 0; i < 5; i++) {
        const dead = createRedis(
          { redisUrl: `redis://127.0.0.1:${await freePort()}`, redisClusterNodes: '' },
          'command',
        );
        const queues = new IngestQueues({
          connection: dead,
          keys: createRedisKeys(`down${i}`),
          config: QUEUE_CONFIG,
        });
        // The moment of a shutdown that used to throw: a reconnect in flight after an error.
        await reconnecting(dead);
        await queues.close();
        dead.disconnect();
        await sleep(50);
      }
    } finally {
      process.off('unhandledRejection', hear);
      process.off('uncaughtException', hear);
    }
    expect(heard).toEqual([]);
  });

  test('when Redis comes up after the queues were opened, then they add jobs', async () => {
    const port = await freePort();
    const redis = createRedis(
      { redisUrl: `redis://127.0.0.1:${port}`, redisClusterNodes: '' },
      'command',
    );
    const queues = new IngestQueues({
      connection: redis,
      keys: createRedisKeys('late'),
      config: QUEUE_CONFIG,
    });
    const own = new OwnRedis(port);
    try {
      await reconnecting(redis);
      await own.start();
      await waitForRedis(redis, 10_000);
      const { queue } = queues.next();
      await queue.add('readings', { acceptedAt: 1, readings: [] });
      expect(await queue.getWaitingCount()).toBe(1);
    } finally {
      await queues.close();
      redis.disconnect();
      await own.kill();
    }
  });

  test('when Redis dies just as a queue is opened, then the queue works once Redis is back', async () => {
    const own = await OwnRedis.create();
    const redis = createRedis({ redisUrl: own.url, redisClusterNodes: '' }, 'command');
    try {
      await waitForRedis(redis, 10_000);
      // Whatever the queue sends on opening gets no answer, then fails with the connection: a
      // queue that asked Redis anything on opening kept that failure for every later call.
      own.freeze();
      const { queue } = openShard(redis, createRedisKeys('dies').shards(1)[0]);
      await sleep(100);
      await own.kill();
      await reconnecting(redis);
      await sleep(500); // past ioredis's retry per request: what was in flight has failed
      await own.start();
      await waitForRedis(redis, 10_000);
      await queue.add('readings', { acceptedAt: 1, readings: [] });
      expect(await queue.getWaitingCount()).toBe(1);
      await queue.close();
    } finally {
      redis.disconnect();
      await own.kill();
    }
  });
});

/**
 * A queue and a BullMQ worker of their own on the shared Redis, for a test of what BullMQ reports:
 * `process` runs each job (given the command connection and the keys' prefix), `use` adds jobs and
 * reads the worker's errors; everything is removed after.
 */
async function withOwnWorker(
  name: string,
  process: (job: Job, redis: RedisClient, prefix: string) => Promise<void>,
  options: Partial<WorkerOptions>,
  use: (queue: Queue, errors: Error[]) => Promise<void>,
): Promise<void> {
  const settings = { redisUrl: 'redis://127.0.0.1:6379', redisClusterNodes: '' };
  const redis = createRedis(settings, 'command');
  const blocking = createRedis(settings, 'blocking');
  await waitForRedis(redis, 3000);
  const prefix = `${name}-${Date.now().toString(36)}`;
  const queue = new Queue(name, { connection: redis, prefix });
  const errors: Error[] = [];
  const worker = new Worker(name, (job) => process(job, redis, prefix), {
    ...options,
    connection: blocking,
    prefix,
  });
  worker.on('error', (err) => errors.push(err));
  try {
    await use(queue, errors);
  } finally {
    await worker.close(true);
    await queue.obliterate({ force: true });
    await queue.close();
    blocking.disconnect();
    redis.disconnect();
  }
}

describe('a job Redis lost while it was being flushed', () => {
  test('when BullMQ marks it done and its record is gone, then the flusher tells that apart from other worker errors (its readings are stored)', async () => {
    await withOwnWorker(
      'gone',
      async (job, redis, prefix) => {
        // As a Redis restarted from an append-only file without its last second loses it.
        await redis.del(`${prefix}:gone:${job.id}`);
      },
      {},
      async (queue, errors) => {
        await queue.add('readings', { readings: [] });
        const deadline = Date.now() + 5000;
        while (errors.length === 0 && Date.now() < deadline) await sleep(20);
        expect(errors.length).toBeGreaterThan(0);
        for (const err of errors) {
          expect(err.message).toMatch(/^Missing key for job \S+\. moveToFinished$/);
          expect(isFlushedJobGone(err)).toBe(true);
        }
        expect(isFlushedJobGone(new Error('Missing key for job 1. moveToDelayed'))).toBe(false);
      },
    );
  });
});

describe('a job whose lock its worker lost', () => {
  test.each([
    ['gone (it expired while Redis was out of reach)', 'del', /^Missing lock for job \S+\. /],
    [
      'held by another worker (the job was taken over as stalled)',
      'set',
      /^Lock mismatch for job /,
    ],
  ] as const)(
    'when its lock is %s as the job finishes, then the flusher tells that apart from other worker errors, and the job runs again',
    async (_how, mutation, message) => {
      let runs = 0;
      await withOwnWorker(
        'lost',
        async (job, redis, prefix) => {
          runs += 1;
          if (runs > 1) return;
          const lock = `${prefix}:lost:${job.id}:lock`;
          if (mutation === 'del') await redis.del(lock);
          else await redis.set(lock, 'another-worker', 'PX', 1000);
        },
        { lockDuration: 1000, stalledInterval: 1000 },
        async (queue, errors) => {
          const job = await queue.add('readings', { readings: [] });
          const deadline = Date.now() + 15_000;
          while ((await job.getState()) !== 'completed' && Date.now() < deadline) await sleep(50);
          expect(await job.getState()).toBe('completed');
          expect(runs).toBe(2);
          expect(errors.length).toBeGreaterThan(0);
          for (const err of errors) {
            expect(err.message).toMatch(message);
            expect(isJobLockLost(err)).toBe(true);
            expect(isFlushedJobGone(err)).toBe(false);
          }
          expect(isJobLockLost(new Error('Missing key for job 1. moveToFinished'))).toBe(false);
        },
      );
    },
    30_000,
  );
});
