import type { Logger } from '../src/logger';
import type { RedisClient } from '../src/redis';
import type { QueueShardKeys } from '../src/redis-keys';

const LOOK_INTERVAL_MS = 5000;

/**
 * How far back Redis may go without a loss being said: `appendfsync everysec` may lose the last
 * second of writes (the README says so), and a replica promoted in a failover lags by
 * milliseconds; neither is what this watch is for.
 */
const TOLERATED_MS = 2000;

/**
 * Returns when the shard was last looked at (by any flusher; '0' if never), by Redis's own clock,
 * then records this look's time, and the backlog counter read in the same moment.
 */
const LOOK = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local before = redis.call('GET', KEYS[1]) or '0'
redis.call('SET', KEYS[1], now)
return {before, now, redis.call('GET', KEYS[2]) or '0'}
`;

type RedisWithLook = RedisClient & {
  lookForQueueLoss(lastLook: string, backlog: string): Promise<[string, number, string]>;
};

/**
 * Notices a Redis that lost a queue shard's data: restarted without persistence (`appendonly no`:
 * empty, or from an older RDB snapshot), flushed, or failed over to a replica far behind. The
 * readings waiting there were acknowledged and will never be stored, and nothing else says so:
 * the backlog merely drops. Each look records its time in the shard; a flusher that finds the
 * last look recorded well before its own look before finds Redis gone back in time. It logs an
 * error naming since when, with what the backlog lost since its look before (about as many
 * readings lost: more if readings were accepted since, fewer if some were flushed), and calls
 * `onLoss`. Every flusher
 * watches, so each may say so. A loss while no flusher ran is not seen.
 */
export function startQueueLossWatch(deps: {
  redis: RedisClient;
  shard: QueueShardKeys;
  logger: Logger;
  onLoss: (readingsLost: number) => void;
  intervalMs?: number;
}): () => void {
  deps.redis.defineCommand('lookForQueueLoss', { numberOfKeys: 2, lua: LOOK });
  const redis = deps.redis as RedisWithLook;
  let last: { atMs: number; backlog: number } | null = null;
  let looking = false;
  const look = async () => {
    const [before, atMs, backlog] = await redis.lookForQueueLoss(
      deps.shard.lastLook,
      deps.shard.backlogReadings,
    );
    if (last && Number(before) < last.atMs - TOLERATED_MS) {
      const since = Number(before) > 0 ? new Date(Number(before)).toISOString() : 'ever';
      // What waited at the look before and is not there now (an older snapshot keeps some).
      const lost = Math.max(0, last.backlog - Number(backlog));
      deps.logger.error(
        { shard: deps.shard.shard, lostSince: since, readingsLost: lost },
        `Redis lost the ingest queue's data since ${since} (restarted without appendonly or from an older snapshot, flushed, or failed over to a replica behind it): readings acknowledged since then are lost, about ${lost} by the backlog at this flusher's look before. Run Redis with appendonly yes`,
      );
      deps.onLoss(lost);
    }
    last = { atMs, backlog: Number(backlog) };
  };
  const timer = setInterval(() => {
    // One look at a time: two finishing out of order would look like going back in time.
    if (looking) return;
    looking = true;
    look()
      .catch(() => undefined)
      .finally(() => (looking = false));
  }, deps.intervalMs ?? LOOK_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
