import { randomUUID } from 'node:crypto';
import type { Logger } from '../src/logger';
import type { RedisClient } from '../src/redis';
import type { QueueShardKeys } from '../src/redis-keys';

/** More often than TOLERATED_MS: Redis losing the last look must not be going back further. */
const LOOK_INTERVAL_MS = 1000;

/**
 * How far back Redis may go without a loss being said: `appendfsync everysec` may lose the last
 * second of writes (the README says so), and a replica promoted in a failover lags by
 * milliseconds; neither is what this watch is for.
 */
const TOLERATED_MS = 2000;

/**
 * After a look fails or is answered late, how many prompt looks in a row are judged but not
 * measured from: a master that hung and was replaced meanwhile runs the looks queued to it when it
 * wakes, before it learns (within a second) that its replica took over, which never saw them;
 * measured from, the next look, answered by that replica, would find Redis gone back in time.
 * Counted in looks, not time, so that troubles recurring every few seconds do not blind the watch.
 */
const SETTLE_LOOKS = 3;

/** A look older than this is a flusher gone: forgotten (a flusher restarted looks under a new id). */
const KEEP_LOOK_MS = 3_600_000;

/**
 * Returns when this watcher last looked at the shard ('0' if never or forgotten), by Redis's own
 * clock, then records this look's time; also the backlog counter read in the same moment, and
 * when the looks began (`first`, set once and never forgotten: a Redis back empty after longer
 * than a look is kept still shows by it). Each watcher keeps its own look: with one shared, the
 * first flusher to look after a loss recorded the time anew, and the others found nothing wrong.
 */
const LOOK = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSETNX', KEYS[1], 'first', now)
local before = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
redis.call('HSET', KEYS[1], ARGV[1], now)
local looks = redis.call('HGETALL', KEYS[1])
for i = 1, #looks, 2 do
  if looks[i] ~= 'first' and tonumber(looks[i + 1]) < now - tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], looks[i])
  end
end
return {before, now, redis.call('GET', KEYS[2]) or '0', redis.call('HGET', KEYS[1], 'first')}
`;

type RedisWithLook = RedisClient & {
  lookForQueueLoss(
    looks: string,
    backlog: string,
    watcher: string,
    keepMs: number,
  ): Promise<[string, number, string, string]>;
};

/**
 * Notices a Redis that lost a queue shard's data: restarted without persistence (`appendonly no`:
 * empty, or from an older RDB snapshot), flushed, or failed over to a replica far behind. The
 * readings waiting there were acknowledged and will never be stored, and nothing else says so:
 * the backlog merely drops. Each look records its time in the shard; a flusher that finds its
 * look before recorded well before it was, or not at all, finds Redis gone back in time. It logs
 * an error naming since when, with the backlog of its look before (about what is lost: not
 * exactly, as some of it may have been flushed before the loss, and readings accepted after that
 * look are lost too; what came back cannot tell, as a snapshot brings back readings stored since),
 * and calls `onLoss` with that backlog. Every flusher watches, so each says so. A loss while no
 * flusher ran is not seen.
 */
export function startQueueLossWatch(deps: {
  redis: RedisClient;
  shard: QueueShardKeys;
  logger: Logger;
  onLoss: (readingsWaitingBefore: number) => void;
  intervalMs?: number;
  /** How long a look is kept; KEEP_LOOK_MS unless a test says otherwise. */
  keepLookMs?: number;
}): () => void {
  deps.redis.defineCommand('lookForQueueLoss', { numberOfKeys: 2, lua: LOOK });
  const redis = deps.redis as RedisWithLook;
  const watcher = randomUUID();
  const keepLookMs = deps.keepLookMs ?? KEEP_LOOK_MS;
  let last: { atMs: number; backlog: number; first: string } | null = null;
  let looking = false;
  /** Looks answered promptly since the latest that failed or was answered late (SETTLE_LOOKS). */
  let promptLooks = SETTLE_LOOKS;
  /** Whether Redis lost data since `last`: the looks' beginning changed, or this watcher's look. */
  const wentBack = (
    last: { atMs: number; first: string },
    now: { before: number; atMs: number; first: string },
  ) =>
    now.first !== last.first ||
    // A look before that was forgotten (this process stopped for as long) tells nothing of itself.
    (now.atMs - last.atMs < keepLookMs && now.before < last.atMs - TOLERATED_MS);
  const look = async () => {
    const sentAt = performance.now();
    const [before, atMs, backlog, first] = await redis
      .lookForQueueLoss(deps.shard.looks, deps.shard.backlogReadings, watcher, keepLookMs)
      .catch((err: unknown) => {
        promptLooks = 0;
        throw err;
      });
    promptLooks = performance.now() - sentAt <= TOLERATED_MS ? promptLooks + 1 : 0;
    const wentBackSinceLast =
      last !== null && wentBack(last, { before: Number(before), atMs, first });
    if (last && wentBackSinceLast) {
      const since = Number(before) > 0 ? new Date(Number(before)).toISOString() : 'ever';
      const waited = last.backlog;
      const lost = since === 'ever' ? 'all its data' : `its data since ${since}`;
      deps.logger.error(
        { shard: deps.shard.shard, lostSince: since, readingsWaitingBefore: waited },
        `Redis lost the ingest queue's data, ${lost} (restarted without appendonly or from an older snapshot, flushed, or failed over to a replica behind it): readings acknowledged and not yet flushed are lost. ${waited} were waiting at this flusher's look before, a second or less before the loss: all of them lost while flushers were stalled, few while they kept up; and those accepted since. Run Redis with appendonly yes`,
      );
      deps.onLoss(waited);
    }
    // One that found a loss is measured from all the same, so that the loss is said once.
    if (wentBackSinceLast || promptLooks >= SETTLE_LOOKS) {
      last = { atMs, backlog: Number(backlog), first };
    }
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
