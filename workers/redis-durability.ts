import { infoField as field, masters, type RedisClient } from '../src/redis';

/**
 * The queue holds accepted readings until PostgreSQL has them, so Redis must neither evict keys
 * nor forget them on restart. Checks every master of a cluster. Returns the problems found
 * (empty when Redis is set up safely).
 */
export async function checkRedisDurability(redis: RedisClient): Promise<string[]> {
  const problems = await Promise.all(
    masters(redis).map(async (node) => {
      const [memory, persistence] = await Promise.all([
        node.info('memory'),
        node.info('persistence'),
      ]);
      const where =
        masters(redis).length > 1 ? ` on ${node.options.host}:${node.options.port}` : '';
      const found: string[] = [];
      const policy = field(memory, 'maxmemory_policy');
      if (policy && policy !== 'noeviction') {
        found.push(
          `maxmemory-policy is ${policy}${where}: Redis may evict queued readings; set it to noeviction`,
        );
      }
      if (field(persistence, 'aof_enabled') !== '1') {
        found.push(
          `appendonly is off${where}: readings accepted but not yet flushed are lost if Redis restarts; set appendonly yes`,
        );
      }
      return found;
    }),
  );
  return problems.flat();
}
