/**
 * The engine's configuration: read from the environment once, validated, frozen.
 * Every process (API, flusher, scripts) calls loadConfig(process.env) at its entry point and
 * passes the result down; nothing else reads process.env.
 */
import os from 'node:os';
import { parseApiKeys, type ApiKey } from './auth/api-keys';

export type EnergyReadingsMode = 'interval' | 'cumulative';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly port: number;
  readonly flusherPort: number;
  readonly redisPrefix: string;
  readonly logLevel: LogLevel;
  /** Readings allowed in one ingest request (array or NDJSON). */
  readonly maxBatchReadings: number;
  /** Largest request body in bytes, checked after decompression too. */
  readonly bodyLimitBytes: number;
  /** How far in the future a reading's timestamp may be, in seconds. */
  readonly maxClockSkewS: number;
  /** Readings per BullMQ job built by the group-commit buffer. */
  readonly queueBatchReadings: number;
  /** Readings waiting in the queue above which ingest answers 503. */
  readonly maxBacklogReadings: number;
  /** Share of Redis maxmemory above which ingest answers 503 (before Redis refuses writes). */
  readonly redisMemoryHighWater: number;
  readonly flusherConcurrency: number;
  /** BullMQ lock of a running job; a crashed flusher's job runs again after about this long. */
  readonly flusherLockMs: number;
  /** Days of history kept; 0 keeps everything. */
  readonly retentionDays: number;
  /** Days ahead of today for which history partitions are created in advance. */
  readonly partitionDaysAhead: number;
  readonly energyReadings: EnergyReadingsMode;
  readonly efficiencyThreshold: number;
  readonly analyticsCacheTtlS: number;
  readonly dbPoolMax: number;
  readonly dbStatementTimeoutMs: number;
  readonly dbAcquireTimeoutMs: number;
  /** `off` behind a pooler that cannot keep prepared statements (PgBouncer transaction mode < 1.21). */
  readonly dbPreparedStatements: 'on' | 'off';
  /** Attempts per flush job before it is kept as failed (backoff doubles from flushBackoffMs). */
  readonly flushAttempts: number;
  readonly flushBackoffMs: number;
  /** Time a process gets to finish its work on SIGTERM before it exits anyway. */
  readonly shutdownTimeoutMs: number;
  /** `off` serves everyone; `on` (default) requires a key from API_KEYS on /v1 routes. */
  readonly auth: 'on' | 'off';
  readonly apiKeys: readonly ApiKey[];
  /** Requests per second per key (token bucket shared through Redis); 0 turns the limit off. */
  readonly rateLimitPerS: number;
  readonly rateLimitBurst: number;
  // MQTT intake (src/mqtt/): off while mqttUrl is unset.
  /** Broker URL (mqtt:// or mqtts://); when set, the API process consumes MQTT too. */
  readonly mqttUrl: string | undefined;
  /** Topics are `{prefix}/readings` and `{prefix}/{kind plural}/{id}`. */
  readonly mqttTopicPrefix: string;
  readonly mqttUsername: string | undefined;
  readonly mqttPassword: string | undefined;
  /** The session's client id; unset: derived from REDIS_PREFIX, the host name and the process role. */
  readonly mqttClientId: string | undefined;
  /** Health and metrics port of `npm run start:mqtt`. */
  readonly mqttHealthPort: number;
  /** Unacknowledged messages the broker may send at once (MQTT 5 Receive Maximum). */
  readonly mqttReceiveMaximum: number;
  /** How long the broker keeps the session (and queues messages for it) while the engine is away. */
  readonly mqttSessionExpiryS: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Collects every problem before failing, so one start-up names all bad variables at once. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string, pattern?: RegExp, expects?: string): string {
    const value = this.raw(name) ?? fallback;
    if (pattern && !pattern.test(value)) {
      this.problems.push(`${name}=${JSON.stringify(value)}: expected ${expects}`);
    }
    return value;
  }

  url(name: string, fallback: string, protocols: string[]): string {
    const value = this.raw(name) ?? fallback;
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) throw new Error('protocol');
    } catch {
      this.problems.push(
        `${name}=${JSON.stringify(value)}: expected a ${protocols.join(' or ')}// URL`,
      );
    }
    return value;
  }

  number(name: string, fallback: number, min: number, max: number, integer = true): number {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    const kind = integer ? 'an integer' : 'a number';
    if (
      !Number.isFinite(value) ||
      (integer && !Number.isInteger(value)) ||
      value < min ||
      value > max
    ) {
      this.problems.push(`${name}=${JSON.stringify(text)}: expected ${kind} from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  bytes(name: string, fallback: number): number {
    const text = this.raw(name);
    if (text === undefined) return fallback;
    const match = /^(\d+)\s*(b|kb|mb)?$/i.exec(text);
    const units: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024 };
    const value = match ? Number(match[1]) * units[(match[2] ?? 'b').toLowerCase()] : NaN;
    if (!Number.isSafeInteger(value) || value < 1024 || value > 256 * 1024 * 1024) {
      this.problems.push(
        `${name}=${JSON.stringify(text)}: expected a size such as 4mb, 512kb or 1048576 (1kb to 256mb)`,
      );
      return fallback;
    }
    return value;
  }

  apiKeys(name: string): ApiKey[] {
    const { keys, problems } = parseApiKeys(this.raw(name) ?? '');
    this.problems.push(...problems);
    return keys;
  }

  optionalUrl(name: string, protocols: string[]): string | undefined {
    return this.raw(name) === undefined ? undefined : this.url(name, '', protocols);
  }

  optionalString(name: string): string | undefined {
    return this.raw(name);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name) ?? fallback;
    if (!allowed.includes(value as T)) {
      this.problems.push(`${name}=${JSON.stringify(value)}: expected one of ${allowed.join(', ')}`);
      return fallback;
    }
    return value as T;
  }
}

const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

export function loadConfig(env: Env = {}): Config {
  const read = new EnvReader(env);
  const config: Config = {
    databaseUrl: read.url('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/energy', [
      'postgres:',
      'postgresql:',
    ]),
    redisUrl: read.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    port: read.number('PORT', 3000, 0, 65535),
    flusherPort: read.number('FLUSHER_PORT', 9464, 0, 65535),
    redisPrefix: read.string(
      'REDIS_PREFIX',
      'energy',
      /^[A-Za-z0-9_.-]{1,64}$/,
      '1-64 characters from A-Z a-z 0-9 _ . -',
    ),
    logLevel: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    maxBatchReadings: read.number('MAX_BATCH_READINGS', 5000, 1, 100_000),
    bodyLimitBytes: read.bytes('BODY_LIMIT', 4 * 1024 * 1024),
    maxClockSkewS: read.number('MAX_CLOCK_SKEW_S', 300, 0, 86_400),
    queueBatchReadings: read.number('QUEUE_BATCH_READINGS', 1000, 1, 100_000),
    maxBacklogReadings: read.number('MAX_BACKLOG_READINGS', 1_000_000, 1, 1_000_000_000),
    redisMemoryHighWater: read.number('REDIS_MEMORY_HIGH_WATER', 0.9, 0.1, 0.99, false),
    flusherConcurrency: read.number(
      'FLUSHER_CONCURRENCY',
      Math.max(2, os.availableParallelism()),
      1,
      256,
    ),
    flusherLockMs: read.number('FLUSHER_LOCK_MS', 30_000, 1000, 600_000),
    retentionDays: read.number('RETENTION_DAYS', 0, 0, 36_500),
    partitionDaysAhead: read.number('PARTITION_DAYS_AHEAD', 3, 1, 60),
    energyReadings: read.oneOf('ENERGY_READINGS', 'interval', ['interval', 'cumulative'] as const),
    efficiencyThreshold: read.number('EFFICIENCY_THRESHOLD', 0.85, 0, 10, false),
    analyticsCacheTtlS: read.number('ANALYTICS_CACHE_TTL_S', 30, 0, 86_400),
    dbPoolMax: read.number('DB_POOL_MAX', 10, 1, 200),
    dbStatementTimeoutMs: read.number('DB_STATEMENT_TIMEOUT_MS', 30_000, 100, 3_600_000),
    dbAcquireTimeoutMs: read.number('DB_ACQUIRE_TIMEOUT_MS', 10_000, 100, 600_000),
    dbPreparedStatements: read.oneOf('DB_PREPARED_STATEMENTS', 'on', ['on', 'off'] as const),
    flushAttempts: read.number('FLUSH_ATTEMPTS', 25, 1, 1000),
    flushBackoffMs: read.number('FLUSH_BACKOFF_MS', 1000, 1, 600_000),
    shutdownTimeoutMs: read.number('SHUTDOWN_TIMEOUT_MS', 30_000, 100, 600_000),
    auth: read.oneOf('AUTH', 'on', ['on', 'off'] as const),
    apiKeys: read.apiKeys('API_KEYS'),
    rateLimitPerS: read.number('RATE_LIMIT_PER_S', 0, 0, 1_000_000, false),
    rateLimitBurst: read.number('RATE_LIMIT_BURST', 100, 1, 1_000_000),
    mqttUrl: read.optionalUrl('MQTT_URL', ['mqtt:', 'mqtts:']),
    mqttTopicPrefix: read.string(
      'MQTT_TOPIC_PREFIX',
      'energy/v1',
      /^(?![$/])(?!.*\/$)(?!.*\/\/)[^#+]{1,200}$/,
      'topic levels without wildcards (+ #), not starting with $ or /, not ending with /',
    ),
    mqttUsername: read.optionalString('MQTT_USERNAME'),
    mqttPassword: read.optionalString('MQTT_PASSWORD'),
    mqttClientId:
      read.string(
        'MQTT_CLIENT_ID',
        '',
        /^[A-Za-z0-9_.:-]{0,128}$/,
        'up to 128 characters from A-Z a-z 0-9 _ . : -',
      ) || undefined,
    mqttHealthPort: read.number('MQTT_HEALTH_PORT', 9465, 0, 65535),
    mqttReceiveMaximum: read.number('MQTT_RECEIVE_MAXIMUM', 1000, 1, 65535),
    mqttSessionExpiryS: read.number('MQTT_SESSION_EXPIRY_S', 7 * 86_400, 60, 4_294_967_295),
  };
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return Object.freeze(config);
}

/** Hides the password of a connection URL so it can be logged or shown in an error. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
