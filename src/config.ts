/**
 * The engine's configuration: read from the environment once, validated, frozen.
 * Every engine process (API, flusher, MQTT) and script calls loadConfig(process.env) at its entry
 * point and passes the result down; nothing below an entry point reads process.env. (`npm start`
 * sets AUTH=off before loading when no key is configured; the simulator, a client, takes its
 * default URL from PORT; the bench passes settings to the processes it starts.)
 *
 * Each variable is declared once, in `settingsSchema`: its type, default, limits, allowed values
 * and meaning. The `Config` type, the validation (ajv), the error messages and the README's
 * Configuration table (`describeSettings`) are all derived from that declaration.
 */
import os from 'node:os';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import Ajv, { type AnySchemaObject, type ErrorObject, type SchemaValidateFunction } from 'ajv';
import { FLUSHER_BACKGROUND_CONNECTIONS, GENERIC_POOL_MAX } from '../db/knex-config';
import { parseApiKeys, type ApiKey } from './auth/api-keys';
import { LOG_LEVELS } from './logger';
import { INTAKE_BELOW_READINGS } from './queue/intake';
import {
  DRIFT_BASELINE_DAYS,
  DRIFT_MIN_SESSIONS,
  parseThresholdClasses,
  thresholdClassProblems,
} from './sessions/thresholds';
import { DECIMAL, isNumberText, notationNote } from './schema/validator';
import { StartupError } from './startup-error';
import { COMMAND_TIMEOUT_MS } from './redis';

export const ENERGY_READINGS_MODES = ['interval', 'cumulative'] as const;
export type EnergyReadingsMode = (typeof ENERGY_READINGS_MODES)[number];

const KB = 1024;
const MB = 1024 * KB;

/** Annotations on a setting's schema, beyond JSON Schema's own keywords. */
interface SettingOptions {
  description: string;
  /** The README's default when the value depends on the machine. */
  defaultText?: string;
  /** What a valid value looks like, for rules no other keyword describes (a pattern). */
  expected?: string;
  /** URL schemes accepted (`postgres:`); the URL must also name a host, and any port be 1-65535. */
  protocols?: readonly string[];
  /** The host may be `?host=` instead: libpq's way to name a Unix socket's directory. */
  hostQuery?: true;
  /**
   * The path names a database: without one node-postgres connects to the database named after the
   * user (`postgres`: the server's maintenance database, where migrations would then go).
   */
  databaseName?: true;
  /** A Redis URL's database (its path, or `?db=`) is a number: ioredis would send SELECT NaN. */
  redisDatabase?: true;
  /** A size such as `4mb`, `512kb` or `1048576`, in bytes from minimum to maximum. */
  byteSize?: { minimum: number; maximum: number };
  /** Parsed by parseApiKeys, which names every bad entry. */
  apiKeys?: true;
}

const integer = (defaultValue: number, minimum: number, maximum: number, options: SettingOptions) =>
  Type.Integer({ default: defaultValue, minimum, maximum, ...options });

const number = (defaultValue: number, minimum: number, maximum: number, options: SettingOptions) =>
  Type.Number({ default: defaultValue, minimum, maximum, ...options });

const oneOf = <T extends string>(values: readonly T[], defaultValue: T, options: SettingOptions) =>
  Type.Unsafe<T>({ type: 'string', enum: values, default: defaultValue, ...options });

const text = (defaultValue: string, options: SettingOptions & { pattern?: string }) =>
  Type.String({ default: defaultValue, ...options });

const code = (value: string) => `\`${value}\``;

/** A Redis Cluster seed node: a host (an IPv6 address in brackets) and a port from 1 to 65535. */
const CLUSTER_NODE =
  '([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\]):([1-9]\\d{0,3}|[1-5]\\d{4}|6[0-4]\\d{3}|65[0-4]\\d{2}|655[0-2]\\d|6553[0-5])';

/** A class of EFFICIENCY_THRESHOLDS: a power limit in kW (`*`: any) and its threshold. */
const THRESHOLD_CLASS = `(${DECIMAL}|\\*):${DECIMAL}`;

/**
 * An efficiency threshold's range (EFFICIENCY_THRESHOLD, each class of EFFICIENCY_THRESHOLDS, the
 * fleet report's `below`): an efficiency is DC over AC, at most 1 (a threshold above would flag
 * every vehicle).
 */
export const EFFICIENCY_BOUNDS = { minimum: 0, maximum: 1 };

/** An MQTT client id (MQTT_CLIENT_ID, and the id `npm run mqtt:retire` is given). */
export const MQTT_CLIENT_ID_RULE = {
  pattern: '^[A-Za-z0-9_.:-]{0,128}$',
  expected: 'up to 128 characters from A-Z a-z 0-9 _ . : -',
};

export const settingsSchema = Type.Object({
  DATABASE_URL: text('postgres://postgres@127.0.0.1:5432/energy', {
    protocols: ['postgres:', 'postgresql:'],
    hostQuery: true,
    databaseName: true,
    description:
      'PostgreSQL; `npm run migrate` creates the database. A Unix socket by `?host=`: `postgres://app@/energy?host=/var/run/postgresql`',
  }),
  REDIS_URL: text('redis://127.0.0.1:6379', {
    protocols: ['redis:', 'rediss:'],
    redisDatabase: true,
    expected:
      'a redis:// or rediss:// URL whose path or ?db=, if any, is a database number (redis://host:6379/0)',
    description: 'Redis (queue, live state, caches)',
  }),
  REDIS_CLUSTER_NODES: text('', {
    pattern: `^$|^${CLUSTER_NODE}(,${CLUSTER_NODE})*$`,
    expected: 'comma-separated host:port seed nodes, e.g. 10.0.0.1:6379,[fd00::2]:6379',
    description:
      'comma-separated `host:port` seed nodes of a Redis Cluster (an IPv6 address in brackets: `[fd00::1]:6379`); unset: the standalone `REDIS_URL` (its password and TLS apply to the cluster nodes too)',
  }),
  QUEUE_SHARDS: integer(1, 1, 64, {
    description:
      'BullMQ queues the ingest stream is split over, each under its own hash tag (`{REDIS_PREFIX:q0}`, ...); every flusher consumes every shard',
  }),
  REDIS_WAIT_REPLICAS: integer(0, 0, 10, {
    description:
      'acknowledge readings only once they reached this many replicas (Redis `WAIT`), else `503`; readiness (also `/health/ready/ingest`) fails while no master has that many replicas in sync; 0: once on the master',
  }),
  // WAIT is a command of the connection that stored the readings: past its command timeout it
  // failed as Redis unavailable, not as replicas missing; the margin is its round trip.
  REDIS_WAIT_TIMEOUT_MS: integer(1000, 1, COMMAND_TIMEOUT_MS - 500, {
    description: `how long \`REDIS_WAIT_REPLICAS\` waits for the replicas (below the ${COMMAND_TIMEOUT_MS / 1000} s after which a command to Redis fails)`,
  }),
  REDIS_PREFIX: text('energy', {
    pattern: '^[A-Za-z0-9_.-]{1,64}$',
    expected: '1-64 characters from A-Z a-z 0-9 _ . -',
    description:
      'prefix of every Redis key and queue; deployments sharing a Redis use different ones',
  }),
  PORT: integer(3000, 0, 65535, { description: 'API port' }),
  FLUSHER_PORT: integer(9464, 0, 65535, { description: "flusher's health (and metrics) port" }),
  LOG_LEVEL: oneOf(LOG_LEVELS, 'info', { description: LOG_LEVELS.map(code).join(' ') }),
  HEAP_GROWING_PERCENT: integer(20, 0, 400, {
    description:
      "how far a long-running process's JavaScript heap may grow past its last full collection's, in percent (lower: less memory, more collections, a longer latency tail); `0`: V8's own choice",
  }),
  MAX_BATCH_READINGS: integer(5000, 1, 100_000, { description: 'readings per ingest request' }),
  BODY_LIMIT: text('4mb', {
    byteSize: { minimum: 1 * KB, maximum: 256 * MB },
    description: 'largest body, also after gzip decompression',
  }),
  MAX_CLOCK_SKEW_S: integer(300, 0, 86_400, {
    description: 'how far in the future a timestamp may be',
  }),
  QUEUE_BATCH_READINGS: integer(1000, 1, 100_000, {
    description:
      'readings per queue job (group commit; the intake moves small stores into jobs of up to this many)',
  }),
  // 20 ms made jobs of 20 readings at 1,000 single readings/s; 50 ms, of 50, for 40 % less flusher
  // CPU and a quarter less Redis CPU, at 30 ms more flush lag.
  INTAKE_MOVE_INTERVAL_MS: integer(50, 1, 10_000, {
    description: `how often a flusher moves a shard's intake (stores of fewer than ${INTAKE_BELOW_READINGS} readings) into jobs while it holds entries: longer makes fewer, larger jobs (less CPU in the flusher, Redis and PostgreSQL) and a longer flush lag`,
  }),
  MAX_BACKLOG_READINGS: integer(1_000_000, 1, 1_000_000_000, {
    description:
      'readings waiting for PostgreSQL above which ingest answers 503; at least MAX_BATCH_READINGS',
  }),
  // Below 1: ingest must refuse before Redis itself refuses writes.
  REDIS_MEMORY_HIGH_WATER: number(0.9, 0.1, 0.99, {
    description: 'share of Redis `maxmemory` above which ingest answers 503',
  }),
  // Twice the cores: while a job is between PostgreSQL and Redis (taken, completed), another keeps
  // PostgreSQL busy; 2 on 2 cores drained a backlog at 26-29k rows/s, 4 at 34-39k.
  FLUSHER_CONCURRENCY: integer(Math.max(4, 2 * os.availableParallelism()), 1, 256, {
    defaultText: 'twice the cores, at least 4',
    description: 'jobs one flusher process writes at once',
  }),
  FLUSHER_NICE: integer(10, 0, 19, {
    description:
      "the flusher's CPU priority below the API's, as nice(1): where they share cores, requests are answered first and the flusher catches up in between; 0: the same priority",
  }),
  FLUSHER_LOCK_MS: integer(30_000, 1000, 600_000, {
    description: "job lock; a crashed flusher's job runs again after about this long",
  }),
  FLUSH_ATTEMPTS: integer(25, 1, 1000, {
    description: 'attempts per job before it is kept as failed (about 20 minutes of retries)',
  }),
  FLUSH_BACKOFF_MS: integer(1000, 1, 600_000, {
    description: 'first retry delay; doubles per attempt, capped at 60 s',
  }),
  RETENTION_DAYS: integer(0, 0, 36_500, {
    description:
      'keep this many whole UTC days of history (a partition a day): older partitions are dropped with their rollups and detected sessions, and older readings refused (`timestamp_before_retention`); 0 keeps everything (a partition a month)',
  }),
  PARTITION_DAYS_AHEAD: integer(3, 1, 60, {
    description:
      "days ahead of today that have a partition (theirs, or their month's) made ahead of time",
  }),
  // The figure the quarter-hour marks' own autovacuum settings use (migration 20261130220000).
  VACUUM_DEAD_ROWS: integer(10_000, 0, 1_000_000_000, {
    description:
      "dead rows in one of the engine's churning tables (quarter-hour and session marks, device status), and a fifth of its live ones, at which a flusher vacuums it without waiting for autovacuum; `0`: autovacuum alone",
  }),
  DB_POOL_MAX: integer(10, 1, 200, {
    description: `PostgreSQL connections per process (the API and a flusher each open up to ${GENERIC_POOL_MAX} more for their generic-plan statements while DB_PREPARED_STATEMENTS is on; a flusher at least FLUSHER_CONCURRENCY + ${FLUSHER_BACKGROUND_CONNECTIONS})`,
  }),
  DB_STATEMENT_TIMEOUT_MS: integer(30_000, 100, 3_600_000, {
    description: '`statement_timeout` of every connection',
  }),
  DB_PREPARED_STATEMENTS: oneOf(['on', 'off'] as const, 'on', {
    description:
      "the flusher's batch insert, the report's window query and one vehicle's sessions (live in reports, built by the flusher) as prepared statements; `off` behind PgBouncer in transaction mode before 1.21",
  }),
  DB_ACQUIRE_TIMEOUT_MS: integer(10_000, 100, 600_000, {
    description: 'longest wait for a pooled connection',
  }),
  SHUTDOWN_TIMEOUT_MS: integer(30_000, 100, 600_000, {
    description: 'time to finish work on SIGTERM before exiting anyway',
  }),
  ENERGY_READINGS: oneOf(ENERGY_READINGS_MODES, 'interval', {
    description:
      '`interval` or `cumulative` meter/vehicle energy values, for devices without their own setting (OCPP connectors are registers)',
  }),
  EFFICIENCY_THRESHOLD: number(0.85, EFFICIENCY_BOUNDS.minimum, EFFICIENCY_BOUNDS.maximum, {
    description:
      "a vehicle's window (performance report, the fleet report's default `below`) with efficiency below this raises an alert; sessions are judged by `EFFICIENCY_THRESHOLDS`",
  }),
  ANALYTICS_CACHE_TTL_S: integer(30, 0, 86_400, { description: 'analytics cache lifetime' }),
  // A hot report then costs no Redis round trip; a copy never outlives its Redis entry.
  ANALYTICS_CACHE_LOCAL_KB: integer(1024, 0, 1_048_576, {
    description: 'copy of cached reports in each API process, per cache (KB of JSON; 0: none)',
  }),
  // `on` requires a key from API_KEYS on /v1 routes.
  AUTH: oneOf(['on', 'off'] as const, 'on', {
    description: '`off` serves every client without a key',
  }),
  API_KEYS: text('', {
    apiKeys: true,
    description: '`name:scopes:sha256hex` entries, comma-separated (`npm run key`)',
  }),
  // A token bucket per key, shared through Redis.
  RATE_LIMIT_PER_S: number(0, 0, 1_000_000, {
    description:
      'requests per second per key (with AUTH=on; AUTH=off has no keys to limit); 0 turns the limit off',
  }),
  RATE_LIMIT_BURST: integer(100, 1, 1_000_000, {
    description: 'requests a key may send at once before the rate applies',
  }),
  EFFICIENCY_THRESHOLDS: text('', {
    pattern: `^$|^${THRESHOLD_CLASS}(,${THRESHOLD_CLASS})*$`,
    expected: 'classes kW:threshold, e.g. 3.7:0.75,11:0.82,22:0.85,*:0.88',
    description:
      "a charging session's threshold by its mean AC power: `3.7:0.75,11:0.82,*:0.88` is 0.75 up to 3.7 kW, 0.82 up to 11 kW, 0.88 above; `EFFICIENCY_THRESHOLD` for a power above every class (no `*`) or unknown, and for all when empty",
  }),
  EFFICIENCY_DRIFT: number(0.04, 0, 1, {
    description: `a session is flagged \`drift\` when its efficiency is this far below the median of the vehicle's previous ${DRIFT_BASELINE_DAYS} days of sessions on the same meter (at least ${DRIFT_MIN_SESSIONS})`,
  }),
  SESSION_GAP_S: integer(600, 60, 86_400, {
    description:
      'charging readings at most this far apart belong to one charging session (sessions detected from readings)',
  }),
  OCPP_UNKNOWN_ID_TAGS: oneOf(['accept', 'reject'] as const, 'accept', {
    description:
      'what Authorize and StartTransaction answer for an idTag no vehicle is registered to (`PUT /v1/id-tags/{idTag}`)',
  }),
  MQTT_URL: text('', {
    protocols: ['mqtt:', 'mqtts:'],
    description:
      'MQTT broker (`mqtt://` or `mqtts://`); when set, the API consumes MQTT too; `npm run start:mqtt` requires it',
  }),
  MQTT_TOPIC_PREFIX: text('energy/v1', {
    pattern: '^(?![$/])(?!.*/$)(?!.*//)[^#+]{1,200}$',
    expected: 'topic levels without wildcards (+ #), not starting with $ or /, not ending with /',
    description:
      'topics `{prefix}/readings`, `{prefix}/meters/{meterId}`, `{prefix}/vehicles/{vehicleId}`',
  }),
  MQTT_SHARED_SUBSCRIPTION: oneOf(['on', 'off'] as const, 'on', {
    description:
      '`on`: every process consuming MQTT is in one shared subscription (`$share/{REDIS_PREFIX}/...`) and gets its share of the messages; `off`: a plain subscription, for a deployment with one consuming process (Mosquitto 2.0.11 keeps a plain one across its restarts, not a shared one: see MQTT)',
  }),
  MQTT_USERNAME: text('', { description: 'broker user name' }),
  MQTT_PASSWORD: text('', { description: 'broker password' }),
  MQTT_CLIENT_ID: text('', {
    ...MQTT_CLIENT_ID_RULE,
    defaultText: '`{REDIS_PREFIX}-{host name}-{role}`',
    description:
      "the session's client id (role `api` or `mqtt`): one per process, the same across its restarts (see MQTT)",
  }),
  MQTT_HEALTH_PORT: integer(9465, 0, 65535, {
    description: 'health and metrics port of `npm run start:mqtt`',
  }),
  MQTT_RECEIVE_MAXIMUM: integer(1000, 1, 65535, {
    description:
      'unacknowledged messages the broker may send a process at once; it stores that many at once and holds at most twice as many',
  }),
  MQTT_SESSION_EXPIRY_S: integer(7 * 86_400, 60, 4_294_967_295, {
    description:
      "how long the broker keeps a process's session, and queues for it, while it is away (7 days)",
  }),
});

type Settings = Static<typeof settingsSchema>;
type SettingName = keyof Settings & string;

/** `MAX_CLOCK_SKEW_S` -> `maxClockSkewS`: the config key of a variable. */
type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Lowercase<Head>}${Capitalize<CamelCase<Tail>>}`
  : Lowercase<S>;

const camelCase = (name: string) =>
  name.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Variables whose config value is parsed from the validated text, under a key of its own. */
const PARSED = ['BODY_LIMIT', 'API_KEYS'] as const;

type PlainSettings = {
  readonly [K in Exclude<SettingName, (typeof PARSED)[number]> as CamelCase<K>]: Settings[K];
};

export interface Config extends PlainSettings {
  /** BODY_LIMIT in bytes: the largest request body, checked after decompression too. */
  readonly bodyLimitBytes: number;
  /** API_KEYS parsed; only the keys' SHA-256 hashes are ever configured. */
  readonly apiKeys: readonly ApiKey[];
}

/**
 * What is wrong with PORT and FLUSHER_PORT for npm start, which runs the API and the flusher on one
 * host: one port for both (0, any free port, is each its own). Null when nothing is. Processes
 * started alone, each in a container of its own, may use one number.
 */
export function sharedPortProblem(config: { port: number; flusherPort: number }): string | null {
  if (config.port === 0 || config.port !== config.flusherPort) return null;
  return `FLUSHER_PORT=${config.flusherPort}: expected another port than PORT's; npm start runs the API and the flusher on one host, which cannot listen on one port`;
}

export class ConfigError extends StartupError {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

const BYTE_UNITS: Record<string, number> = { b: 1, kb: KB, mb: MB };

/** `4mb`, `512kb`, `1048576` -> bytes; NaN when the text is not a size. */
export function parseByteSize(value: string): number {
  const match = /^(\d+)\s*(b|kb|mb)?$/i.exec(value);
  return match ? Number(match[1]) * BYTE_UNITS[(match[2] ?? 'b').toLowerCase()] : NaN;
}

const formatBytes = (bytes: number) =>
  bytes % MB === 0 ? `${bytes / MB}mb` : bytes % KB === 0 ? `${bytes / KB}kb` : String(bytes);

type SettingSchema = TSchema & SettingOptions & Record<string, unknown>;
const schemaOf = (name: string) =>
  (settingsSchema.properties as Record<string, SettingSchema>)[name];

/** What a valid value of the setting looks like, from its schema. */
function expectation(schema: SettingSchema): string {
  if (schema.expected) return schema.expected;
  if (schema.protocols) return `a ${schema.protocols.map((p) => `${p}//`).join(' or ')} URL`;
  if (schema.byteSize) {
    const { minimum, maximum } = schema.byteSize;
    return `a size such as 4mb, 512kb or 1048576 (${formatBytes(minimum)} to ${formatBytes(maximum)})`;
  }
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.join(', ')}`;
  const kind = schema.type === 'integer' ? 'an integer' : 'a number';
  return `${kind} from ${String(schema.minimum)} to ${String(schema.maximum)}`;
}

/** A URL's scheme, host and port as written: `new URL` refuses a port above 65535 without saying so. */
const URL_PARTS = /^([^:/?#]+):\/\/(?:[^/?#]*@)?(\[[^\]/?#]*\]|[^:/?#]*)(?::([^/?#]*))?/;

const isPort = (text: string) => /^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;

/**
 * A PostgreSQL URL naming a Unix socket by `?host=` and a user without a host
 * (`postgres://app@/energy?host=/var/run/postgresql`) as the WHATWG URL parser takes it: with
 * `localhost` as its host, which node-postgres overrides by `?host=` as libpq does. Every use of
 * DATABASE_URL (`new URL` to name the database to create, to hide the password) can then read it.
 */
export function withSocketPlaceholder(url: string): string {
  const [whole = '', , host = ''] = URL_PARTS.exec(url) ?? [];
  if (URL.canParse(url) || whole === '' || host !== '' || !/[?&]host=[^&#]/.test(url)) return url;
  return `${whole}localhost${url.slice(whole.length)}`;
}

/** Why a connection URL cannot be used (what the problem says after `NAME="value": `), if it cannot. */
function urlProblem(value: string, schema: SettingSchema): string | undefined {
  const [, scheme = '', host = '', port = ''] = URL_PARTS.exec(value) ?? [];
  if (!schema.protocols?.includes(`${scheme.toLowerCase()}:`))
    return `expected ${expectation(schema)}`;
  if (port !== '' && !isPort(port)) return `the port must be from 1 to 65535, not ${port}`;
  if (host === '' && !(schema.hostQuery && /[?&]host=[^&#]/.test(value)))
    return `the host is missing${schema.hostQuery ? ' (or ?host= for a Unix socket)' : ''}`;
  const parsed = schema.hostQuery ? withSocketPlaceholder(value) : value;
  if (!URL.canParse(parsed)) return `expected ${expectation(schema)}`;
  if (schema.databaseName && new URL(parsed).pathname.replace(/^\//, '') === '')
    return 'the database name is missing: end the URL with it (/energy); without one the driver connects to the one PGDATABASE or the user names';
  return undefined;
}

const checkUrl: SchemaValidateFunction = (_: unknown, value: string, schema?: AnySchemaObject) => {
  // Blank variables are dropped before validation: '' is an optional URL's default (unset).
  const problem = value === '' ? undefined : urlProblem(value, schema as SettingSchema);
  checkUrl.errors = problem ? [{ keyword: 'protocols', message: problem, params: {} }] : [];
  return problem === undefined;
};

/** The database a Redis URL names, as ioredis reads it: its path, else `?db=`; '' for none. */
export function redisDatabaseOf(redisUrl: string): string {
  const url = new URL(redisUrl);
  return url.pathname.replace(/^\//, '') || (url.searchParams.get('db') ?? '');
}

const checkRedisDatabase: SchemaValidateFunction = (_: true, value: string) => {
  try {
    return /^\d*$/.test(redisDatabaseOf(value));
  } catch {
    return false;
  }
};

const checkByteSize: SchemaValidateFunction = (
  range: { minimum: number; maximum: number },
  value: string,
) => {
  const bytes = parseByteSize(value);
  return Number.isSafeInteger(bytes) && bytes >= range.minimum && bytes <= range.maximum;
};

const checkApiKeys: SchemaValidateFunction = (_: true, value: string) => {
  const { problems } = parseApiKeys(value);
  checkApiKeys.errors = problems.map((message) => ({ keyword: 'apiKeys', message, params: {} }));
  return problems.length === 0;
};

function compileSettings() {
  // coerceTypes turns numeric text into numbers. Two of its traps are guarded against:
  // - '' would become 0: loadConfig drops blank variables first, so a blank means the default;
  // - 'Infinity' and '1e400' become Infinity, and with strictNumbers ajv skips minimum/maximum
  //   for a number that is not finite, so PORT=Infinity would pass. Without strictNumbers the
  //   bounds refuse it (every numeric setting has both: see `integer` and `number`).
  const ajv = new Ajv({
    allErrors: true,
    strict: true,
    strictNumbers: false,
    coerceTypes: true,
    useDefaults: true,
  });
  ajv.addVocabulary(['defaultText', 'expected', 'hostQuery', 'databaseName']);
  ajv.addKeyword({ keyword: 'protocols', type: 'string', errors: true, validate: checkUrl });
  ajv.addKeyword({ keyword: 'redisDatabase', type: 'string', validate: checkRedisDatabase });
  ajv.addKeyword({ keyword: 'byteSize', type: 'string', validate: checkByteSize });
  ajv.addKeyword({ keyword: 'apiKeys', type: 'string', errors: true, validate: checkApiKeys });
  return ajv.compile<Settings>(settingsSchema);
}

/**
 * Variables of `env` that are no setting but one letter or two away from one (`REDIS_PREFX`,
 * `FLUSHER_CONCURENCY`): ignored, they would leave the setting at its default without a word
 * (a default REDIS_PREFIX joins another deployment's queue). Warnings naming the setting meant.
 */
export function misspelledSettings(env: Env): string[] {
  const names = Object.keys(settingsSchema.properties);
  return Object.keys(env).flatMap((variable) => {
    if (names.includes(variable) || !/^[A-Z][A-Z0-9]*_[A-Z0-9_]+$/.test(variable)) return [];
    // The nearest (EFFICIENCY_TRESHOLDS is EFFICIENCY_THRESHOLDS, not EFFICIENCY_THRESHOLD).
    const [meant] = names
      .filter((name) => name.length >= 6)
      .map((name) => ({ name, distance: editDistance(variable, name) }))
      .filter(({ name, distance }) => distance <= (name.length < 10 ? 1 : 2))
      .sort((a, b) => a.distance - b.distance);
    return meant ? [`${variable} is not a setting (ignored): did you mean ${meant.name}?`] : [];
  });
}

/**
 * Logs misspelledSettings as warnings: each process and command reading the settings does, before
 * it acts on them (`npm start` migrated a database a misspelled DATABASE_URL left at its default).
 */
export function warnOfMisspelledSettings(env: Env, logger: { warn(message: string): void }): void {
  for (const warning of misspelledSettings(env)) logger.warn(warning);
}

/** Letters to insert, delete, replace or swap with the next to turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

let validateSettings: ReturnType<typeof compileSettings> | undefined;

type Env = Record<string, string | undefined>;

/** Reads and checks every setting; one ConfigError lists every bad variable at once. */
export function loadConfig(env: Env = {}): Config {
  validateSettings ??= compileSettings();
  const names = Object.keys(settingsSchema.properties);
  const given: Record<string, string> = {};
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) given[name] = value;
  }
  // ajv fills in the defaults and converts numbers in place.
  const values: Record<string, unknown> = { ...given };
  const notDecimal = names.filter(
    (name) => isNumber(schemaOf(name)) && !isDecimal(schemaOf(name), given[name]),
  );
  if (!validateSettings(values) || notDecimal.length > 0) {
    const errors = validateSettings.errors ?? [];
    throw new ConfigError(
      names.flatMap((name) =>
        notDecimal.includes(name)
          ? [
              problemOf(
                name,
                given[name],
                `expected ${expectation(schemaOf(name))}${notationNote(given[name])}`,
              ),
            ]
          : problemsOf(name, given[name], errors),
      ),
    );
  }
  const conflicts = conflictsOf(values as unknown as Settings);
  if (conflicts.length > 0) throw new ConfigError(conflicts);
  const config: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(values)) {
    if (!(PARSED as readonly string[]).includes(name)) config[camelCase(name)] = value;
  }
  config.databaseUrl = withSocketPlaceholder(values.DATABASE_URL);
  config.bodyLimitBytes = parseByteSize(values.BODY_LIMIT);
  config.apiKeys = parseApiKeys(values.API_KEYS).keys;
  return Object.freeze(config as unknown as Config);
}

/** Settings each well written but not usable as given (alone or together), each naming the one to change. */
function conflictsOf(settings: Settings): string[] {
  const conflicts: string[] = [];
  if (settings.MAX_BACKLOG_READINGS < settings.MAX_BATCH_READINGS) {
    conflicts.push(
      `MAX_BACKLOG_READINGS=${settings.MAX_BACKLOG_READINGS}: expected at least MAX_BATCH_READINGS (${settings.MAX_BATCH_READINGS}); a request or message of that many readings could never be admitted, and an MQTT one would block the messages after it`,
    );
  }
  const classes = parseThresholdClasses(settings.EFFICIENCY_THRESHOLDS);
  for (const problem of thresholdClassProblems(classes, EFFICIENCY_BOUNDS)) {
    conflicts.push(
      `EFFICIENCY_THRESHOLDS=${JSON.stringify(settings.EFFICIENCY_THRESHOLDS)}: ${problem}`,
    );
  }
  return conflicts;
}

const isNumber = (schema: SettingSchema) => schema.type === 'number' || schema.type === 'integer';

/** Unset, or a number written in decimal; an integer setting in digits (see isNumberText). */
const isDecimal = (schema: SettingSchema, value: string | undefined) =>
  value === undefined || isNumberText(schema, value);

const problemOf = (
  name: string,
  value: string | undefined,
  problem = `expected ${expectation(schemaOf(name))}`,
) => {
  const shown = schemaOf(name).protocols && value ? hidePassword(value) : value;
  return `${name}=${JSON.stringify(shown)}: ${problem}`;
};

/** A URL's password as `***`, also in a URL too malformed to parse (the problem shows the rest). */
const hidePassword = (url: string) => url.replace(/(\/\/[^/@:]*:)[^/@]*@/, '$1***@');

function problemsOf(name: string, value: string | undefined, errors: ErrorObject[]): string[] {
  const own = errors.filter((e) => e.instancePath === `/${name}`);
  if (own.length === 0) return [];
  // parseApiKeys names the entry and what is wrong with it; its messages stand on their own.
  const listed = own.filter((e) => e.keyword === 'apiKeys').map((e) => e.message ?? '');
  if (listed.length > 0) return listed;
  // A URL's own problem (its port, its host) before any other check of it.
  const url = own.find((e) => e.keyword === 'protocols');
  return [problemOf(name, value, url?.message)];
}

export interface SettingDescription {
  name: string;
  /** As the README shows it: `` `4mb` ``, `(empty)`, or a phrase for machine-dependent ones. */
  default: string;
  description: string;
}

/** Every setting with its default and meaning, in declaration order. */
export function listSettings(): SettingDescription[] {
  return Object.keys(settingsSchema.properties).map((name) => {
    const schema = schemaOf(name);
    const value = String(schema.default);
    // A number's range, as a bad value's start-up message says it (not written twice).
    const range = isNumber(schema) || schema.byteSize ? `; valid: ${expectation(schema)}` : '';
    return {
      name,
      default: schema.defaultText ?? (value === '' ? '(empty)' : code(value)),
      description: `${schema.description}${range}`,
    };
  });
}

/** The rows of the README's Configuration table (before Prettier aligns them). */
export function describeSettings(): string[] {
  return [
    '| variable | default | meaning |',
    '| --- | --- | --- |',
    ...listSettings().map((s) => `| ${code(s.name)} | ${s.default} | ${s.description} |`),
  ];
}

/**
 * Hides the password of a connection URL so it can be logged or shown in an error: in its user
 * part, or as a `password` parameter (node-postgres reads `?password=` too).
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', '***');
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
