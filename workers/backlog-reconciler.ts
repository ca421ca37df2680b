import type { RedisClient } from '../src/redis';
import type { Logger } from '../src/logger';
import type { QueueShardKeys } from '../src/redis-keys';

/**
 * The backlog counter is bookkeeping next to the queue, so a Redis failure at the wrong moment can
 * leave it off (e.g. a job store failing after the counter was raised, with Redis gone before the
 * API could lower it again). When the queue holds no job at all (failed ones included: their
 * readings still wait for PostgreSQL, and count until a re-driven job is written) and the intake
 * no entry, the backlog is zero by definition: this script checks that and resets the counter
 * atomically, once the same value was found so at the check before (ARGV[1]): an API raises the
 * counter and adds its job side by side, and a flusher lowers it as it completes one, so a single
 * look can fall between the two (a correct counter was reset, then went below zero). Returns
 * {value, 1} when it reset the counter, {value, 0} when it found the value for the first time, or
 * nil.
 */
const RECONCILE = `
for i = 2, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind == 'list' and redis.call('LLEN', KEYS[i]) > 0 then return nil end
  if kind == 'zset' and redis.call('ZCARD', KEYS[i]) > 0 then return nil end
end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current == 0 then return nil end
if ARGV[1] ~= tostring(current) then return {current, 0} end
redis.call('SET', KEYS[1], '0')
return {current, 1}
`;

type RedisWithReconcile = RedisClient & {
  reconcileBacklog(numKeys: number, ...keysAndSeen: string[]): Promise<[number, number] | null>;
};

/** Checks one queue shard's counter (its keys share the shard's slot) every `intervalMs`. */
export function startBacklogReconciler(deps: {
  redis: RedisClient;
  shard: QueueShardKeys;
  logger: Logger;
  intervalMs?: number;
}): () => void {
  deps.redis.defineCommand('reconcileBacklog', { lua: RECONCILE });
  const redis = deps.redis as RedisWithReconcile;
  const queueKeys = [
    ...['wait', 'active', 'delayed', 'prioritized', 'paused', 'waiting-children', 'failed'].map(
      (name) => deps.shard.queueKey(name),
    ),
    deps.shard.intake,
  ];
  /** The value found with an empty queue at the last check, if any. */
  let seen = '';
  const timer = setInterval(() => {
    redis
      .reconcileBacklog(1 + queueKeys.length, deps.shard.backlogReadings, ...queueKeys, seen)
      .then((found) => {
        seen = found && found[1] === 0 ? String(found[0]) : '';
        if (found?.[1] === 1)
          deps.logger.warn(
            { was: found[0] },
            'backlog counter drifted with an empty queue: reset to 0',
          );
      })
      .catch(() => undefined);
  }, deps.intervalMs ?? 5000);
  timer.unref();
  return () => clearInterval(timer);
}
