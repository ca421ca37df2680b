import { createLogger } from '../src/logger';
import { createRedis, type RedisClient } from '../src/redis';
import { ReportCache } from '../src/reports/report-cache';

const logger = createLogger({ level: 'silent', name: 'test' });
const prefix = `report-cache-test-${process.pid}-${Date.now()}`;

interface Report {
  vehicleId: string;
  kwh: number;
}

/** A cache over the machine's Redis whose clock the test moves; what it looked up is recorded. */
function cacheWith(redis: RedisClient, localBudgetChars: number) {
  const clock = { now: Date.now() };
  const lookups: string[] = [];
  const cache = new ReportCache<Report>({
    redis,
    ttlS: 30,
    localBudgetChars,
    logger,
    onLookup: (result) => lookups.push(result),
    now: () => clock.now,
  });
  return { cache, clock, lookups };
}

const settled = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('report cache: Redis, and a copy in the process', () => {
  let redis: RedisClient;
  let n = 0;
  /** A key no other test uses. */
  const key = () => `${prefix}:${n++}`;
  beforeAll(async () => {
    redis = createRedis({ redisUrl: 'redis://127.0.0.1:6379', redisClusterNodes: '' });
    // The API's connection queues nothing while connecting: stores would be dropped until ready.
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  test('when a report is stored, then it is in Redis with the TTL, and answered from the process while Redis still holds it', async () => {
    const { cache, lookups } = cacheWith(redis, 64 * 1024);
    const k = key();
    cache.set(k, { vehicleId: 'V-1', kwh: 1.5 });
    await settled();
    expect(JSON.parse((await redis.get(k)) as string)).toEqual({ vehicleId: 'V-1', kwh: 1.5 });
    expect(await redis.ttl(k)).toBeGreaterThan(25);

    // Gone from Redis (another replica's view is the same): the copy is within Redis's lifetime.
    await redis.del(k);
    expect(await cache.get(k)).toEqual({ vehicleId: 'V-1', kwh: 1.5 });
    expect(lookups).toEqual(['hit']);
  });

  test('when the Redis entry would have expired, then the copy is not served either', async () => {
    const { cache, clock } = cacheWith(redis, 64 * 1024);
    const k = key();
    cache.set(k, { vehicleId: 'V-2', kwh: 2 });
    await settled();
    await redis.del(k);
    clock.now += 30_001;
    expect(await cache.get(k)).toBeNull();
  });

  test('when another process stored the report, then this one copies it for what remains of its Redis TTL only', async () => {
    const { cache, clock, lookups } = cacheWith(redis, 64 * 1024);
    const k = key();
    await redis.set(k, JSON.stringify({ vehicleId: 'V-3', kwh: 3 }), 'PX', 5_000);
    expect(await cache.get(k)).toEqual({ vehicleId: 'V-3', kwh: 3 });
    await redis.del(k);
    clock.now += 4_000;
    expect(await cache.get(k)).toEqual({ vehicleId: 'V-3', kwh: 3 });
    clock.now += 1_500; // past the 5 s it had in Redis, though the cache's own TTL is 30 s
    expect(await cache.get(k)).toBeNull();
    expect(lookups).toEqual(['hit', 'hit', 'miss']);
  });

  test('when a caller changes the report it got, then the next caller still gets the stored one', async () => {
    const { cache } = cacheWith(redis, 64 * 1024);
    const k = key();
    cache.set(k, { vehicleId: 'V-4', kwh: 4 });
    const first = (await cache.get(k)) as Report;
    first.kwh = 999;
    expect(await cache.get(k)).toEqual({ vehicleId: 'V-4', kwh: 4 });
  });

  test('when the copies pass the budget, then the oldest are dropped and a report over an eighth of it is never copied', async () => {
    const text = JSON.stringify({ vehicleId: 'V-5', kwh: 5 }); // 27 characters
    const { cache } = cacheWith(redis, text.length * 8 + 8);
    const keys = Array.from({ length: 9 }, key);
    for (const k of keys) cache.set(k, { vehicleId: 'V-5', kwh: 5 });
    const big = key();
    cache.set(big, { vehicleId: 'V-5-with-a-longer-name', kwh: 5 });
    await settled();
    await redis.del(...keys, big);
    // Eight copies fit: the first stored was dropped for the ninth; the big one was never kept.
    expect(await cache.get(keys[0])).toBeNull();
    for (const k of keys.slice(1)) expect(await cache.get(k)).toEqual({ vehicleId: 'V-5', kwh: 5 });
    expect(await cache.get(big)).toBeNull();
  });

  test('when the budget is 0, then every lookup goes to Redis', async () => {
    const { cache } = cacheWith(redis, 0);
    const k = key();
    cache.set(k, { vehicleId: 'V-6', kwh: 6 });
    await settled();
    expect(await cache.get(k)).toEqual({ vehicleId: 'V-6', kwh: 6 });
    await redis.del(k);
    expect(await cache.get(k)).toBeNull();
  });

  test('when Redis is unreachable, then a lookup is an error answered as a miss, and copies still answer', async () => {
    const dead = createRedis({ redisUrl: 'redis://127.0.0.1:1', redisClusterNodes: '' });
    try {
      const { cache, lookups } = cacheWith(dead, 64 * 1024);
      expect(await cache.get('missing')).toBeNull();
      cache.set('kept', { vehicleId: 'V-7', kwh: 7 });
      expect(await cache.get('kept')).toEqual({ vehicleId: 'V-7', kwh: 7 });
      expect(lookups).toEqual(['error', 'hit']);
    } finally {
      dead.disconnect();
    }
  });
});
