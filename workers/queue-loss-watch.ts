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

/** How many of `waited` are lost when `restored` came back: a figure, or bounds. */
const lostText = (waited: number, restored: number) => {
  const least = Math.max(0, waited - restored);
  return least === waited ? `all ${waited}` : `between ${least} and ${waited}`;
};

/**
 * Notices a Redis that lost a queue shard's data: restarted without persistence (`appendonly no`:
 * empty, or from an older RDB snapshot), flushed, or failed over to a replica far behind. The
 * readings waiting there were acknowledged and will never be stored, and nothing else says so:
 * the backlog merely drops. Each look records its time in the shard; a flusher that finds the
 * last look recorded well before its own look before finds Redis gone back in time. It logs an
 * error naming since when, with the backlog of its look before and what came back (the readings
 * lost are about the difference while flushers were stalled, about the whole backlog while
 * readings flowed), and calls `onLoss` with that backlog. Every flusher
 * watches, so each may say so. A loss while no flusher ran is not seen.
 */
export function startQueueLossWatch(deps: {
  redis: RedisClient;
  shard: QueueShardKeys;
  logger: Logger;
  onLoss: (readingsWaitingBefore: number) => void;
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
      // Of the backlog at the look before, an older snapshot holds what was still waiting then:
      // all of it while flushers were stalled, little of it while readings flowed. Neither figure
      // is exact, so both are said, and the backlog at the look before counted.
      const waited = last.backlog;
      const restored = Number(backlog);
      deps.logger.error(
        { shard: deps.shard.shard, lostSince: since, readingsWaitingBefore: waited, restored },
        `Redis lost the ingest queue's data since ${since} (restarted without appendonly or from an older snapshot, flushed, or failed over to a replica behind it): readings acknowledged since then and not yet flushed are lost: ${waited} waited at this flusher's look before and ${restored} came back, so ${lostText(waited, restored)} of those, and any accepted since. Run Redis with appendonly yes`,
      );
      deps.onLoss(waited);
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
