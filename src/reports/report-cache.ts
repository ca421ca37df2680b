import type { RedisClient } from '../redis';
import type { Logger } from '../logger';

/**
 * Computed reports in Redis for `ttlS` seconds (0: no caching). The cache is an optimisation:
 * when Redis fails, the caller computes from PostgreSQL, so errors are logged, never thrown.
 */
export class ReportCache<T> {
  constructor(
    private readonly deps: {
      redis: RedisClient;
      ttlS: number;
      logger: Logger;
      onLookup?: (result: 'hit' | 'miss' | 'error') => void;
    },
  ) {}

  get enabled(): boolean {
    return this.deps.ttlS > 0;
  }

  async get(key: string): Promise<T | null> {
    if (!this.enabled) return null;
    try {
      const value = await this.deps.redis.get(key);
      this.deps.onLookup?.(value ? 'hit' : 'miss');
      return value ? (JSON.parse(value) as T) : null;
    } catch (err) {
      this.deps.onLookup?.('error');
      this.deps.logger.warn({ err }, 'analytics cache unavailable: reading PostgreSQL');
      return null;
    }
  }

  /**
   * Stores without waiting: the caller answers at once. Redis runs one connection's commands in
   * order, so a later `get` through this client already sees the value.
   */
  set(key: string, value: T): void {
    if (!this.enabled) return;
    this.deps.redis.set(key, JSON.stringify(value), 'EX', this.deps.ttlS).catch(() => undefined);
  }
}
