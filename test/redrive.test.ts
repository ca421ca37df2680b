import { Worker } from 'bullmq';
import { openShard, type IngestJobData } from '../src/queue/ingest-queue';
import { createRedis, waitForRedis, type RedisClient } from '../src/redis';
import { createRedisKeys, INGEST_QUEUE_NAME } from '../src/redis-keys';
import type { DeadLetter } from '../workers/flush-processor';
import { redrive } from '../workers/redrive';
import { waitFor } from './helpers/engine';
import { meterReading } from './helpers/readings';
import { createTestConfig, deleteKeys } from './helpers/test-env';
import { createLogger } from '../src/logger';

const T0 = Date.UTC(2030, 0, 1);
const LETTERS = 2500; // three rounds of the redrive

describe('re-driving dead letters while a flusher refuses them again', () => {
  const config = createTestConfig();
  const keys = createRedisKeys(config.redisPrefix);
  const shard = keys.shards(1)[0];
  let redis: RedisClient;
  let blocking: RedisClient;
  let worker: Worker<IngestJobData> | null = null;

  beforeAll(async () => {
    redis = createRedis(config, 'command');
    blocking = createRedis(config, 'blocking');
    await Promise.all([waitForRedis(redis, 3000), waitForRedis(blocking, 3000)]);
  });
  afterAll(async () => {
    await worker?.close();
    await deleteKeys(redis, config.redisPrefix);
    redis.disconnect();
    blocking.disconnect();
  });

  /** Re-drives the test's dead-letter list into `target`, its only shard. */
  const redriveInto = (target: ReturnType<typeof openShard>) =>
    redrive({
      redis,
      shards: [target],
      target,
      deadLetters: [keys.deadLetters],
      logger: createLogger({ level: 'silent', name: 'test' }),
    });

  const letter = (n: number): DeadLetter => ({
    reading: meterReading(`M-${n}`, T0 + n * 60_000),
    acceptedAt: T0,
    jobId: 'poisoned',
    error: 'new row violates check constraint',
    code: '23514',
    failedAt: new Date(T0).toISOString(),
  });

  test('when every re-driven reading is refused again at once, then each letter there at the start is re-driven once and the refused ones wait for the next run', async () => {
    await redis.rpush(
      keys.deadLetters,
      ...Array.from({ length: LETTERS }, (_, n) => JSON.stringify(letter(n))),
    );
    // A flusher for which every reading is still poison: it appends each one to the list again,
    // at the tail (RPUSH), as the flush processor does.
    worker = new Worker<IngestJobData>(
      INGEST_QUEUE_NAME,
      async (job) => {
        await redis.rpush(
          keys.deadLetters,
          ...job.data.readings.map((reading) =>
            JSON.stringify({ ...letter(0), reading, jobId: job.id }),
          ),
        );
      },
      { connection: blocking, prefix: shard.prefix, concurrency: 4 },
    );
    const target = openShard(redis, shard);

    const report = await redriveInto(target);

    expect(report.deadLettersRequeued).toBe(LETTERS);
    // Every re-driven reading comes back once, and nothing else is left behind.
    await waitFor(
      async () => (await redis.llen(keys.deadLetters)) === LETTERS,
      20_000,
      'the refused readings back in the list',
    );
    const back = (await redis.lrange(keys.deadLetters, 0, -1)).map(
      (l) => (JSON.parse(l) as DeadLetter).reading.id,
    );
    expect(new Set(back).size).toBe(LETTERS);
    await target.queue.close();
  });

  test('when the list holds entries that parse but are no dead letter (put there by hand), then they are dropped as unreadable and the letters among them re-driven', async () => {
    await worker?.close();
    worker = null;
    await redis.del(keys.deadLetters);
    const target = openShard(redis, shard);
    await target.queue.obliterate({ force: true });
    await redis.rpush(
      keys.deadLetters,
      'null',
      '{"x":1}',
      JSON.stringify({ ...letter(1), reading: { type: 'kettle', id: 'K-1', ts: T0 } }),
      JSON.stringify(letter(7)),
    );
    // A dry run says what the run does, and changes nothing.
    const dryRun = await redrive(
      {
        redis,
        shards: [target],
        target,
        deadLetters: [keys.deadLetters],
        logger: createLogger({ level: 'silent', name: 'test' }),
      },
      { dryRun: true },
    );
    expect(dryRun).toMatchObject({ deadLettersRequeued: 1, deadLettersUnreadable: 3 });
    expect(await redis.llen(keys.deadLetters)).toBe(4);
    const report = await redriveInto(target);
    expect(report).toMatchObject({ deadLettersRequeued: 1, deadLettersUnreadable: 3 });
    expect(await redis.llen(keys.deadLetters)).toBe(0);
    const [job] = await target.queue.getJobs(['wait']);
    expect(job.data.readings).toEqual([letter(7).reading]);
    await target.queue.close();
  });
  test('when failed jobs are re-driven, then each gets all its attempts again, not one', async () => {
    await worker?.close();
    worker = null;
    const target = openShard(redis, shard);
    await target.queue.obliterate({ force: true }); // the jobs the tests before left
    const attempts = 2;
    const jobs = await target.queue.addBulk(
      [1, 2, 3].map((n) => ({
        name: 'readings',
        data: { acceptedAt: T0, readings: [meterReading(`M-f${n}`, T0)] },
        opts: { attempts },
      })),
    );
    // A flusher meeting an error every time (a lock held, say): each job uses its attempts.
    const failing = new Worker<IngestJobData>(
      INGEST_QUEUE_NAME,
      async () => {
        throw new Error('lock timeout');
      },
      { connection: blocking, prefix: shard.prefix },
    );
    await waitFor(
      async () => (await target.queue.getJobCountByTypes('failed')) === jobs.length,
      10_000,
      'the jobs to fail for good',
    );
    await failing.close();

    const report = await redriveInto(target);

    expect(report.failedJobsRetried).toBe(jobs.length);
    for (const { id } of jobs) {
      const job = await target.queue.getJob(id as string);
      expect(await job?.getState()).toBe('waiting');
      expect(job?.attemptsMade).toBe(0);
    }
    await target.queue.obliterate({ force: true });
    await target.queue.close();
  });
});
