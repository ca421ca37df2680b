import { Type } from '@sinclair/typebox';
import type { RedisClient } from '../redis';
import type { Logger } from '../logger';

/** An in-process copy of a Redis entry's text. */
interface LocalCopy {
  text: string;
  /** When the Redis entry expires: a copy is never served longer than Redis would serve it. */
  expiresAt: number;
}

/** Where a report came from: the cache, computed (and cached), or computed with no cache. */
export type CacheOutcome = 'hit' | 'miss' | 'off';

/** `fresh`: computed again whatever is cached. */
export interface Freshness {
  fresh?: boolean;
}

/**
 * A report's `fresh` query parameter: an explicit opt-in, not `Cache-Control: no-cache`, which
 * browsers send by themselves (a fetch with `cache: 'no-store'`, a hard reload): every dashboard
 * refresh would have computed every report again. Paged reports have none: their later pages are
 * cut from the cached report the first page made, which another client's fresh first page would
 * replace under them.
 */
export const FreshQuery = {
  fresh: Type.Optional(
    Type.Boolean({
      description: `true: computed again from what is stored now, not answered from the cache (ANALYTICS_CACHE_TTL_S), and cached in its place; other API replicas may still answer their copy of the cached one until it expires`,
    }),
  ),
};

/**
 * Computed reports in Redis for `ttlS` seconds (0: no caching), and a copy of the recent ones in
 * the process, up to `localBudgetChars` of JSON: a hot report is then answered without the Redis
 * round trip that is most of a cached report's cost. The cache is an optimisation: when Redis
 * fails, the caller computes from PostgreSQL, so errors are logged, never thrown.
 */
export class ReportCache<T> {
  private readonly local = new Map<string, LocalCopy>();
  private localChars = 0;

  constructor(
    private readonly deps: {
      redis: RedisClient;
      ttlS: number;
      /** 0: every lookup goes to Redis. */
      localBudgetChars: number;
      logger: Logger;
      onLookup?: (result: 'hit' | 'miss' | 'error') => void;
      now?: () => number;
    },
  ) {}

  get enabled(): boolean {
    return this.deps.ttlS > 0;
  }

  async get(key: string): Promise<T | null> {
    if (!this.enabled) return null;
    const text = this.localText(key) ?? (await this.redisText(key));
    if (text === undefined) return null; // Redis failed
    this.deps.onLookup?.(text === null ? 'miss' : 'hit');
    // Parsed on every hit: each caller gets its own copy to change as it likes.
    return text === null ? null : (JSON.parse(text) as T);
  }

  /**
   * The cached value of `key`, or `compute`d and cached; `fresh` (a report's `fresh=true`, see
   * FreshQuery) computes it again whatever is cached, and replaces it. `cache` says which.
   */
  async through(
    key: string,
    compute: () => Promise<T>,
    { fresh = false }: Freshness = {},
  ): Promise<{ value: T; cache: CacheOutcome }> {
    const hit = fresh ? null : await this.get(key);
    if (hit) return { value: hit, cache: 'hit' };
    const value = await compute();
    this.set(key, value);
    return { value, cache: this.enabled ? 'miss' : 'off' };
  }

  /**
   * Stores without waiting: the caller answers at once. Redis runs one connection's commands in
   * order, so a later `get` through this client already sees the value.
   */
  set(key: string, value: T): void {
    if (!this.enabled) return;
    const text = JSON.stringify(value);
    this.keepLocal(key, text, this.now() + this.deps.ttlS * 1000);
    this.deps.redis.set(key, text, 'EX', this.deps.ttlS).catch(() => undefined);
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private localText(key: string): string | null {
    const copy = this.local.get(key);
    if (!copy) return null;
    if (copy.expiresAt > this.now()) return copy.text;
    this.dropLocal(key, copy);
    return null;
  }

  /** The entry's text (null: none), copied locally until it expires in Redis; undefined: failed. */
  private async redisText(key: string): Promise<string | null | undefined> {
    let text: string | null;
    try {
      text = await this.deps.redis.get(key);
    } catch (err) {
      this.deps.onLookup?.('error');
      this.deps.logger.warn({ err }, 'analytics cache unavailable: reading PostgreSQL');
      return undefined;
    }
    // Once per entry and process: how long Redis keeps it, which is how long the copy may live.
    if (text !== null) {
      const ttlMs = await this.deps.redis.pttl(key).catch(() => -1);
      if (ttlMs > 0) this.keepLocal(key, text, this.now() + ttlMs);
    }
    return text;
  }

  private keepLocal(key: string, text: string, expiresAt: number): void {
    const old = this.local.get(key);
    if (old) this.dropLocal(key, old);
    // A fleet-sized report would push out hundreds of vehicles' ones: it stays in Redis only.
    if (text.length > this.deps.localBudgetChars / 8) return;
    this.local.set(key, { text, expiresAt });
    this.localChars += text.length;
    // Oldest first: a Map iterates in insertion order.
    for (const [oldest, copy] of this.local) {
      if (this.localChars <= this.deps.localBudgetChars) break;
      this.dropLocal(oldest, copy);
    }
  }

  private dropLocal(key: string, copy: LocalCopy): void {
    this.local.delete(key);
    this.localChars -= copy.text.length;
  }
}
