import type { Logger } from './logger';
import { evictionProblem, infoField as field, masters, type RedisClient } from './redis';

/**
 * The queue holds accepted readings until PostgreSQL has them, so Redis must neither evict keys
 * (the API and the MQTT process refuse such a Redis; the flusher starts, to drain it) nor forget
 * them on restart. Checks every master of a cluster. Returns the problems found (empty when Redis
 * is set up safely).
 */
export async function checkRedisDurability(redis: RedisClient): Promise<string[]> {
  const nodes = masters(redis);
  const problems = await Promise.all(
    nodes.map(async (node) => {
      if (field(await node.info('persistence'), 'aof_enabled') === '1') return [];
      const where = nodes.length > 1 ? ` on ${node.options.host}:${node.options.port}` : '';
      return [
        `appendonly is off${where}: readings accepted but not yet flushed are lost if Redis restarts; set appendonly yes`,
      ];
    }),
  );
  const evicts = await evictionProblem(redis);
  return [...(evicts ? [evicts] : []), ...problems.flat()];
}

/**
 * Says at start, in every process that holds or drains readings, what makes Redis unsafe for them:
 * an operator reading any one log sees it. (An API or MQTT process given an evicting Redis stopped
 * before this; a flusher finding a Redis that lost its data later says so: queue-loss-watch.)
 */
export async function warnIfRedisUnsafe(redis: RedisClient, logger: Logger): Promise<void> {
  for (const problem of await checkRedisDurability(redis).catch(() => [])) {
    logger.warn({ problem }, `REDIS IS NOT SAFE FOR THE QUEUE: ${problem}`);
  }
}
