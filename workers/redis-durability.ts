import { infoField as field, masters, type RedisClient } from '../src/redis';

/**
 * The queue holds accepted readings until PostgreSQL has them, so Redis must not forget them on
 * restart (a Redis that evicts keys is refused at the start: startup-checks.ts). Checks every
 * master of a cluster. Returns the problems found (empty when Redis is set up safely).
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
  return problems.flat();
}
