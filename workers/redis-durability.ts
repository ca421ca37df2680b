import type { Redis } from 'ioredis';

/**
 * The queue holds accepted readings until PostgreSQL has them, so Redis must neither evict keys
 * nor forget them on restart. Returns the problems found (empty when Redis is set up safely).
 */
export async function checkRedisDurability(redis: Redis): Promise<string[]> {
  const [memory, persistence] = await Promise.all([
    redis.info('memory'),
    redis.info('persistence'),
  ]);
  const field = (info: string, name: string) =>
    new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  const problems: string[] = [];
  const policy = field(memory, 'maxmemory_policy');
  if (policy && policy !== 'noeviction') {
    problems.push(
      `maxmemory-policy is ${policy}: Redis may evict queued readings; set it to noeviction`,
    );
  }
  const aof = field(persistence, 'aof_enabled');
  if (aof !== '1') {
    problems.push(
      'appendonly is off: readings accepted but not yet flushed are lost if Redis restarts; set appendonly yes',
    );
  }
  return problems;
}
