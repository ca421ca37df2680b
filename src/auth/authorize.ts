import type { RequestHandler } from 'express';
import type { RedisClient } from '../redis';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { RepeatedErrorLog } from '../repeated-errors';
import { findKey, type ApiKey, type Scope } from './api-keys';

/**
 * The longest wait a limit answers (30 days): a tiny rate's wait overflows Redis's integer reply,
 * and its time to fill is beyond what PEXPIRE takes.
 */
const MAX_WAIT_MS = 2_592_000_000;

/** After a rate-limit call to Redis failed, how long each process counts alone before asking again. */
const REDIS_RETRY_MS = 1000;

/**
 * A token bucket per key, shared through Redis so the limit holds across API replicas. Redis's
 * clock is used, not the replica's. Returns 0 when allowed, else the milliseconds to wait.
 */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
-- Capped (MAX_WAIT_MS): an overflowed integer reply is negative, which would mean allowed.
local MAX_MS = ${MAX_WAIT_MS}
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.min(math.ceil((1 - tokens) / rate * 1000), MAX_MS)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
-- Idle until full, then gone.
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil(burst / rate * 1000), MAX_MS) + 1000)
return wait
`;

/**
 * TAKE_TOKEN's bucket kept in this process, by its monotonic clock (a wall clock stepped back
 * would owe tokens for the step): what limits a key while Redis does not answer, each API replica
 * on its own. Returns 0 when allowed, else the milliseconds to wait.
 */
export function createLocalBuckets(
  rate: number,
  burst: number,
  now: () => number = () => performance.now(),
) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return (name: string): number => {
    const at = now();
    const bucket = buckets.get(name) ?? { tokens: burst, at };
    bucket.tokens = Math.min(burst, bucket.tokens + ((at - bucket.at) / 1000) * rate);
    bucket.at = at;
    buckets.set(name, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.min(Math.ceil(((1 - bucket.tokens) / rate) * 1000), MAX_WAIT_MS);
  };
}

/** How many Authorization headers a request carries (rawHeaders: name, value, name, ...). */
export function authorizationHeaders(rawHeaders: string[]): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (rawHeaders[i].length === 13 && rawHeaders[i].toLowerCase() === 'authorization') count++;
  return count;
}

type RedisWithBucket = RedisClient & {
  takeToken(numKeys: 1, key: string, rate: number, burst: number): Promise<number>;
};

export type Authorize = (scope: Scope) => RequestHandler;

const unauthorized = (code: string, message: string) =>
  new AppError(401, code, message, [], {
    'WWW-Authenticate': 'Bearer realm="energy-ingestion-engine"',
  });

/**
 * `authorize(scope)` guards a route: a valid `Authorization: Bearer <key>` (401 otherwise), whose
 * entry has the scope (403 otherwise), within its rate limit (429 with Retry-After otherwise).
 * With AUTH=off every request passes.
 */
export function createAuthorize({
  config,
  redis,
  rateLimitKey,
  logger,
}: {
  config: {
    auth: 'on' | 'off';
    apiKeys: readonly ApiKey[];
    rateLimitPerS: number;
    rateLimitBurst: number;
  };
  redis: RedisClient;
  rateLimitKey: (keyName: string) => string;
  logger: Logger;
}): Authorize {
  redis.defineCommand('takeToken', { lua: TAKE_TOKEN });
  const bucket = redis as RedisWithBucket;
  const keys = [...config.apiKeys];
  // Keys are the configured ones: this holds one bucket per key at most.
  const takeLocalToken = createLocalBuckets(config.rateLimitPerS, config.rateLimitBurst);
  const unavailable = new RepeatedErrorLog({ logger, level: 'warn' });

  let redisFailedAt = -Infinity;

  /**
   * The limit must not take the service down with Redis, nor go while Redis is slow (a process
   * stalled by its own load sees its Redis calls time out): this process counts meanwhile. Once a
   * call failed, Redis is asked again only after REDIS_RETRY_MS, so a Redis that hangs costs a
   * request its command timeout once a second, not every request.
   */
  async function takeToken(name: string): Promise<number> {
    if (performance.now() - redisFailedAt < REDIS_RETRY_MS) return takeLocalToken(name);
    try {
      return await bucket.takeToken(
        1,
        rateLimitKey(name),
        config.rateLimitPerS,
        config.rateLimitBurst,
      );
    } catch (err) {
      redisFailedAt = performance.now();
      unavailable.log(
        err,
        {},
        'rate limit not shared while Redis does not answer: counted in this process',
      );
      return takeLocalToken(name);
    }
  }

  async function withinRateLimit(name: string): Promise<void> {
    if (config.rateLimitPerS <= 0) return;
    const waitMs = await takeToken(name);
    if (waitMs > 0) {
      throw new AppError(
        429,
        'rate_limited',
        `Key ${name} is over ${config.rateLimitPerS} requests/s; retry later`,
        [],
        {
          'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))),
        },
      );
    }
  }

  /** Said of the header sent, if any: a key sent another way (Basic, no scheme) is not read. */
  const missingKeyMessage = (header: string | undefined) => {
    if (header === undefined) return 'Send an API key: Authorization: Bearer <key>';
    // "Bearer" alone: the scheme is right, the key is missing.
    if (/^Bearer\s*$/i.test(header))
      return 'Send the API key after Bearer: Authorization: Bearer <key>';
    // "Bearer <key> <more>": the scheme is right, but a key is one token.
    if (/^Bearer\s+\S+\s+\S/i.test(header))
      return 'Send the API key alone after Bearer: the Authorization header sent has more than one token after it';
    const scheme = /^(\S+)\s+\S/.exec(header)?.[1];
    const sent = scheme ? `uses the ${scheme} scheme` : 'has no scheme';
    return `Send the API key as Authorization: Bearer <key> (the Authorization header sent ${sent})`;
  };

  return (scope) => async (req, _res, next) => {
    if (config.auth === 'off') return next();
    const sent = authorizationHeaders(req.rawHeaders);
    if (sent > 1) {
      // node:http keeps the first: a proxy in front may have read another.
      throw new AppError(
        400,
        'ambiguous_api_key',
        `Send one Authorization header; this request has ${sent}`,
      );
    }
    const header = req.headers.authorization;
    // A key (a token68) holds no comma: one is two headers a proxy joined into one.
    if (header?.includes(',')) {
      throw new AppError(
        400,
        'ambiguous_api_key',
        'Send one Authorization header with one key; this one holds several, separated by commas',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    if (!match) throw unauthorized('missing_api_key', missingKeyMessage(header));
    const key = findKey(keys, match[1]);
    if (!key) throw unauthorized('invalid_api_key', 'The API key is not valid');
    if (!key.scopes.includes(scope)) {
      throw new AppError(
        403,
        'insufficient_scope',
        `Key ${key.name} lacks the ${scope} scope this endpoint needs`,
      );
    }
    await withinRateLimit(key.name);
    next();
  };
}
