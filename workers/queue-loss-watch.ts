import { randomUUID } from 'node:crypto';
import type { Logger } from '../src/logger';
import type { RedisClient } from '../src/redis';
import type { QueueShardKeys } from '../src/redis-keys';

/**
 * Returns the shard's marker, set to ARGV[1] first if it is missing, and its backlog counter: read
 * together, so the backlog is the one of the marker's generation.
 */
const LOOK = `
local marker = redis.call('GET', KEYS[1])
if not marker then
  redis.call('SET', KEYS[1], ARGV[1])
  marker = ARGV[1]
end
return {marker, redis.call('GET', KEYS[2]) or '0'}
`;

type RedisWithLook = RedisClient & {
  lookForQueueLoss(marker: string, backlog: string, fresh: string): Promise<[string, string]>;
};

/**
 * Notices a Redis that lost a queue shard's data: restarted without persistence (`appendonly
 * no`), flushed, or failed over to a replica that never had it. The readings waiting there were
 * acknowledged and will never be stored, and nothing else says so: the backlog merely drops. The
 * shard holds a marker, set by the first flusher to find it missing; a flusher that saw one and
 * finds it gone or replaced logs an error with the backlog of its previous look (every
 * `intervalMs`: at most that many readings are lost) and calls `onLoss`. A loss while no flusher
 * ran is not seen: nobody remembers a marker then.
 */
export function startQueueLossWatch(deps: {
  redis: RedisClient;
  shard: QueueShardKeys;
  logger: Logger;
  onLoss: (readingsWaiting: number) => void;
  intervalMs?: number;
}): () => void {
  deps.redis.defineCommand('lookForQueueLoss', { numberOfKeys: 2, lua: LOOK });
  const redis = deps.redis as RedisWithLook;
  let last: { marker: string; backlog: number } | null = null;
  const look = async () => {
    const [marker, backlog] = await redis.lookForQueueLoss(
      deps.shard.dataMarker,
      deps.shard.backlogReadings,
      randomUUID(),
    );
    if (last && marker !== last.marker) {
      deps.logger.error(
        { shard: deps.shard.shard, readingsWaitingBefore: last.backlog },
        `Redis lost the ingest queue's data (restarted without appendonly, flushed, or failed over to a replica without it): up to ${last.backlog} acknowledged readings waiting at the look before are lost. Run Redis with appendonly yes`,
      );
      deps.onLoss(last.backlog);
    }
    last = { marker, backlog: Number(backlog) };
  };
  const timer = setInterval(() => void look().catch(() => undefined), deps.intervalMs ?? 5000);
  timer.unref();
  void look().catch(() => undefined);
  return () => clearInterval(timer);
}
