import { createRedis, waitForRedis, type RedisClient } from '../src/redis';
import { createRedisKeys } from '../src/redis-keys';
import { startQueueLossWatch } from '../workers/queue-loss-watch';
import { capturingLogger } from './helpers/capturing-logger';
import { OwnRedis } from './helpers/own-redis';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A shard holding 42 acknowledged readings, watched every 50 ms, on a redis-server of its own
 * (started with `args`) that is killed and started again after `beforeKill`; what the watch says.
 */
async function restartWith(
  args: string[],
  beforeKill: (redis: RedisClient) => Promise<void>,
  {
    watchers = 1,
    keepLookMs,
    downMs = 0,
  }: { watchers?: number; keepLookMs?: number; downMs?: number } = {},
) {
  const own = await OwnRedis.create(args);
  const redis = createRedis({ redisUrl: own.url, redisClusterNodes: '' }, 'command');
  const { logger, lines } = capturingLogger();
  const losses: number[] = [];
  const shard = createRedisKeys('loss').shards(1)[0];
  try {
    await waitForRedis(redis, 10_000);
    await redis.set(shard.backlogReadings, 42);
    // Each as a flusher of its own would watch.
    const stops = Array.from({ length: watchers }, () =>
      startQueueLossWatch({
        redis,
        shard,
        logger,
        onLoss: (waiting) => losses.push(waiting),
        intervalMs: 50,
        keepLookMs,
      }),
    );
    await sleep(300);
    await beforeKill(redis);
    await own.kill();
    await sleep(downMs);
    await own.start();
    await waitForRedis(redis, 10_000);
    // Well past the watch's interval and ioredis's reconnection.
    await sleep(600);
    for (const stop of stops) stop();
    return { losses, lines, backlogAfter: await redis.get(shard.backlogReadings) };
  } finally {
    redis.disconnect();
    await own.kill();
  }
}

const nothing = async () => undefined;

describe('a Redis that lost the queue', () => {
  test('when Redis restarts without persistence while readings wait, then the loss is logged as an error with how many waited, and counted', async () => {
    const { losses, lines, backlogAfter } = await restartWith(['--appendonly', 'no'], nothing);
    expect(backlogAfter).toBeNull();
    expect(losses).toEqual([42]);
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ readingsWaitingBefore: 42, shard: 0, lostSince: 'ever' });
    expect(errors[0].msg).toContain("lost the ingest queue's data, all its data");
    expect(errors[0].msg).toContain("42 were waiting at this flusher's look before");
    expect(errors[0].msg).toContain('appendonly yes');
  });

  test('when several flushers watch, then each says so and counts it, not only the first to look', async () => {
    const { losses, lines } = await restartWith(['--appendonly', 'no'], nothing, { watchers: 3 });
    expect(losses).toEqual([42, 42, 42]);
    expect(lines.filter((l) => l.level === 50)).toHaveLength(3);
  });

  test('when Redis comes back empty after longer than a look is kept, then the loss is still noticed', async () => {
    const { losses } = await restartWith(['--appendonly', 'no'], nothing, {
      keepLookMs: 200,
      downMs: 500,
    });
    expect(losses).toEqual([42]);
  });

  test('when Redis restarts from an older snapshot (no appendonly), then the loss is noticed although the shard is not empty', async () => {
    const { losses, lines, backlogAfter } = await restartWith(
      ['--appendonly', 'no', '--dbfilename', 'snapshot.rdb'],
      async (redis) => {
        await redis.save();
        // Readings acknowledged after the snapshot, for longer than the loss tolerated.
        await redis.set(createRedisKeys('loss').shards(1)[0].backlogReadings, 5042);
        await sleep(2500);
      },
    );
    expect(backlogAfter).toBe('42');
    // 5,042 waited at the look before; the 42 that came back may be readings stored since.
    expect(losses).toEqual([5042]);
    const [error] = lines.filter((l) => l.level === 50);
    expect(error).toMatchObject({ readingsWaitingBefore: 5042 });
    expect(Date.parse(error.lostSince as string)).toBeLessThan(Date.now() - 2500);
  });

  /**
   * A master that hangs for 3 s with the watch's looks queued to it (one times out, the next waits
   * and is run when it wakes), replaced by a replica holding the looks as they were `behindMs`
   * before the hang: what the watch says, and whether it went on looking after.
   */
  async function hangThenFailOver(behindMs: number) {
    const own = await OwnRedis.create(['--appendonly', 'no', '--enable-debug-command', 'yes']);
    const redis = createRedis({ redisUrl: own.url, redisClusterNodes: '' }, 'command');
    // Without a command timeout: it answers when the sleep is over.
    const other = createRedis({ redisUrl: own.url, redisClusterNodes: '' }, 'blocking');
    const { logger, lines } = capturingLogger();
    const losses: number[] = [];
    const shard = createRedisKeys('loss').shards(1)[0];
    try {
      await waitForRedis(redis, 10_000);
      await waitForRedis(other, 10_000);
      const stop = startQueueLossWatch({
        redis,
        shard,
        logger,
        onLoss: (waiting) => losses.push(waiting),
        intervalMs: 200,
      });
      await sleep(700);
      // What the replica holds: the looks up to `behindMs` before the hang.
      const replica = await other.hgetall(shard.looks);
      await sleep(behindMs);
      await other.call('DEBUG', 'SLEEP', '3');
      // The master wakes, runs the looks queued to it, and learns its replica took over.
      await other.multi().del(shard.looks).hset(shard.looks, replica).exec();
      const restored = Date.now();
      // Long enough for several looks after it on a loaded machine (CI once saw none measured).
      await sleep(3000);
      stop();
      const looks = await other.hgetall(shard.looks);
      const lookedAfter = Object.entries(looks).some(
        ([field, at]) => field !== 'first' && Number(at) > restored,
      );
      return { losses, errors: lines.filter((l) => l.level === 50), lookedAfter };
    } finally {
      redis.disconnect();
      other.disconnect();
      await own.kill();
    }
  }

  test('when a master hangs and a replica that never saw its last looks takes over, then nothing is said: the looks the hung master ran when it woke are not measured from', async () => {
    const { losses, errors, lookedAfter } = await hangThenFailOver(0);
    expect(lookedAfter).toBe(true);
    expect(losses).toEqual([]);
    expect(errors).toEqual([]);
  });

  test('when a master hangs and a replica seconds behind it takes over, then the loss is said once', async () => {
    const { losses, errors, lookedAfter } = await hangThenFailOver(3000);
    expect(lookedAfter).toBe(true);
    expect(losses).toHaveLength(1);
    expect(errors).toHaveLength(1);
  });

  test('when Redis restarts from its append-only file, then nothing is said: the readings are still there', async () => {
    const { losses, lines, backlogAfter } = await restartWith([], nothing);
    expect(backlogAfter).toBe('42');
    expect(losses).toEqual([]);
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
  });
});
