import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

/**
 * Two kinds of connection:
 * - `command`: the API's connection. No offline queue and one retry per request, so a Redis outage
 *   turns into a fast error (and a 503) instead of requests piling up in memory.
 * - `blocking`: for BullMQ workers, which must wait through outages (`maxRetriesPerRequest: null`).
 */
export function createRedis(url: string, kind: 'command' | 'blocking' = 'command'): Redis {
  const options: RedisOptions = {
    connectTimeout: 2000,
    lazyConnect: false,
    // Reconnect quickly at first, then every 2 s: an outage is ridden out, not given up on.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    ...(kind === 'command'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000 }
      : { maxRetriesPerRequest: null }),
  };
  const redis = new Redis(url, options);
  // Connection errors are reported by readiness and by the failing command; without a listener
  // ioredis would print every reconnect attempt as an unhandled error event.
  redis.on('error', () => undefined);
  return redis;
}

/** Waits until the connection is ready, or fails after `timeoutMs`. */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
