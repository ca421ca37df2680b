import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { databaseName } from '../../db/migrate';
import { hashKey } from '../../src/auth/api-keys';
import {
  ConfigError,
  describeSettings,
  listSettings,
  loadConfig,
  misspelledSettings,
  redactUrl,
  settingsSchema,
  sharedPortProblem,
  type Config,
} from '../../src/config';
import { clusterSeeds } from '../../src/redis';
import { StartupError } from '../../src/startup-error';

/** The problems loadConfig reports for this environment (none when it loads). */
function problemsFor(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems;
  }
}

const MB = 1024 * 1024;

describe('configuration defaults', () => {
  test('when nothing is set, then every documented default applies and the result is frozen', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/energy',
      redisUrl: 'redis://127.0.0.1:6379',
      redisClusterNodes: '',
      queueShards: 1,
      redisWaitReplicas: 0,
      redisWaitTimeoutMs: 1000,
      redisPrefix: 'energy',
      port: 3000,
      flusherPort: 9464,
      heapGrowingPercent: 20,
      logLevel: 'info',
      maxBatchReadings: 5000,
      bodyLimitBytes: 4 * MB,
      maxClockSkewS: 300,
      queueBatchReadings: 1000,
      intakeMoveIntervalMs: 50,
      maxBacklogReadings: 1_000_000,
      redisMemoryHighWater: 0.9,
      flusherConcurrency: Math.max(4, 2 * os.availableParallelism()),
      flusherNice: 10,
      flusherLockMs: 30_000,
      flushAttempts: 25,
      flushBackoffMs: 1000,
      retentionDays: 0,
      partitionDaysAhead: 3,
      vacuumDeadRows: 10_000,
      dbPoolMax: 10,
      dbStatementTimeoutMs: 30_000,
      dbPreparedStatements: 'on',
      dbAcquireTimeoutMs: 10_000,
      shutdownTimeoutMs: 30_000,
      energyReadings: 'interval',
      efficiencyThreshold: 0.85,
      analyticsCacheTtlS: 30,
      analyticsCacheLocalKb: 1024,
      auth: 'on',
      apiKeys: [],
      rateLimitPerS: 0,
      rateLimitBurst: 100,
      efficiencyThresholds: '',
      efficiencyDrift: 0.04,
      sessionGapS: 600,
      ocppUnknownIdTags: 'accept',
      mqttUrl: '',
      mqttTopicPrefix: 'energy/v1',
      mqttUsername: '',
      mqttPassword: '',
      mqttClientId: '',
      mqttHealthPort: 9465,
      mqttReceiveMaximum: 1000,
      mqttSessionExpiryS: 604_800,
      mqttSharedSubscription: 'on',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  test('when the config is built, then its keys are exactly those of the Config type', () => {
    // Typed, so a key the type lacks fails typecheck; compared at run time, so the two agree.
    const keys: Array<keyof Config> = [
      'databaseUrl',
      'redisUrl',
      'redisClusterNodes',
      'queueShards',
      'redisWaitReplicas',
      'redisWaitTimeoutMs',
      'redisPrefix',
      'port',
      'flusherPort',
      'heapGrowingPercent',
      'logLevel',
      'maxBatchReadings',
      'bodyLimitBytes',
      'maxClockSkewS',
      'queueBatchReadings',
      'intakeMoveIntervalMs',
      'maxBacklogReadings',
      'redisMemoryHighWater',
      'flusherConcurrency',
      'flusherNice',
      'flusherLockMs',
      'flushAttempts',
      'flushBackoffMs',
      'retentionDays',
      'partitionDaysAhead',
      'vacuumDeadRows',
      'dbPoolMax',
      'dbStatementTimeoutMs',
      'dbPreparedStatements',
      'dbAcquireTimeoutMs',
      'shutdownTimeoutMs',
      'energyReadings',
      'efficiencyThreshold',
      'analyticsCacheTtlS',
      'analyticsCacheLocalKb',
      'auth',
      'apiKeys',
      'rateLimitPerS',
      'rateLimitBurst',
      'efficiencyThresholds',
      'efficiencyDrift',
      'sessionGapS',
      'ocppUnknownIdTags',
      'mqttUrl',
      'mqttTopicPrefix',
      'mqttUsername',
      'mqttPassword',
      'mqttClientId',
      'mqttHealthPort',
      'mqttReceiveMaximum',
      'mqttSessionExpiryS',
      'mqttSharedSubscription',
    ];
    expect(Object.keys(loadConfig({})).sort()).toEqual([...keys].sort());
  });

  test('when a variable is blank or only spaces, then it counts as unset and its default applies', () => {
    const config = loadConfig({
      PORT: '',
      MAX_CLOCK_SKEW_S: '   ',
      RETENTION_DAYS: '\t',
      BODY_LIMIT: '',
      LOG_LEVEL: ' ',
      API_KEYS: ' ',
      DATABASE_URL: '',
    });
    expect(config).toMatchObject({
      port: 3000,
      maxClockSkewS: 300,
      retentionDays: 0,
      bodyLimitBytes: 4 * MB,
      logLevel: 'info',
      apiKeys: [],
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/energy',
    });
  });

  test('when values are set, then they are trimmed and numbers become numbers', () => {
    const config = loadConfig({
      PORT: ' 8080 ',
      REDIS_MEMORY_HIGH_WATER: '.5',
      RATE_LIMIT_PER_S: '2.5',
      RETENTION_DAYS: '0',
      LOG_LEVEL: 'debug',
      ENERGY_READINGS: 'cumulative',
      DB_PREPARED_STATEMENTS: 'off',
      AUTH: 'off',
      DATABASE_URL: 'postgresql://u:p@db:5432/x',
      REDIS_URL: 'rediss://cache:6380',
      REDIS_PREFIX: 'energy-eu_1.a',
    });
    expect(config).toMatchObject({
      port: 8080,
      redisMemoryHighWater: 0.5,
      rateLimitPerS: 2.5,
      retentionDays: 0,
      logLevel: 'debug',
      energyReadings: 'cumulative',
      dbPreparedStatements: 'off',
      auth: 'off',
      databaseUrl: 'postgresql://u:p@db:5432/x',
      redisUrl: 'rediss://cache:6380',
      redisPrefix: 'energy-eu_1.a',
    });
  });

  test.each([
    ['REDIS_URL', 'REDIS://127.0.0.1:6379'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/'],
    ['REDIS_URL', 'redis://127.0.0.1:6379/3'],
    ['REDIS_URL', 'redis://127.0.0.1:6379?db=3'],
    ['REDIS_URL', 'redis://:pw@[::1]:6379/0?family=6'],
    ['REDIS_URL', 'rediss://user:pw@cache.example:6380/1'],
    ['DATABASE_URL', 'postgres://db:65535/x'],
    ['DATABASE_URL', 'postgres://[::1]:1/x'],
    // libpq's ways to name a Unix socket's directory.
    ['DATABASE_URL', 'postgres:///energy?host=/var/run/postgresql'],
    ['DATABASE_URL', 'postgres://%2Fvar%2Frun%2Fpostgresql/energy'],
  ] as const)('when %s is %s, then it is accepted', (name, url) => {
    const config = loadConfig({ [name]: url });
    expect(name === 'REDIS_URL' ? config.redisUrl : config.databaseUrl).toBe(url);
  });

  test('when DATABASE_URL names a user of a Unix socket without a host, then it is accepted and read as libpq reads it', () => {
    const url = 'postgres://app:pw@/energy?host=/var/run/postgresql';
    const { databaseUrl } = loadConfig({ DATABASE_URL: url });
    // node-postgres's own reading of it (constructing a client does not connect).
    expect(new pg.Client({ connectionString: databaseUrl })).toMatchObject({
      host: '/var/run/postgresql',
      user: 'app',
      password: 'pw',
      database: 'energy',
    });
    expect(databaseName(databaseUrl)).toBe('energy');
    expect(redactUrl(databaseUrl)).not.toContain('pw');
  });

  test('when a URL gives its password as a parameter, then it is hidden too when shown', () => {
    const url = 'postgres://app@127.0.0.1:5432/energy?password=S3cretQ&sslmode=disable';
    expect(new pg.Client({ connectionString: url })).toMatchObject({ password: 'S3cretQ' });
    expect(redactUrl(url)).toBe(
      'postgres://app@127.0.0.1:5432/energy?password=***&sslmode=disable',
    );
  });

  // Every number setting, from the declaration: one rule for all of them.
  const numberSettings = Object.entries(settingsSchema.properties)
    .filter(([, schema]) => schema.type === 'number')
    .map(([name]) => name);

  test.each(numberSettings)(
    'when %s is a plain decimal with or without its leading zero, then it is accepted; with an exponent, refused',
    (name) => {
      expect(problemsFor({ [name]: '0.5' })).toEqual([]);
      expect(problemsFor({ [name]: '.5' })).toEqual([]);
      expect(problemsFor({ [name]: '5e-1' })).toEqual([
        expect.stringMatching(
          `^${name}="5e-1": expected a number from .* written in plain digits \\(5e-1 is not\\)$`,
        ),
      ]);
    },
  );

  test('when variables outside the settings are present, then they are ignored', () => {
    expect(() => loadConfig({ HOME: '/root', PORTS: 'x', port: 'x' })).not.toThrow();
  });
});

describe('configuration problems', () => {
  test.each([
    ['PORT', 'eighty', 'PORT="eighty": expected an integer from 0 to 65535'],
    ['PORT', '80.5', 'PORT="80.5": expected an integer from 0 to 65535'],
    ['PORT', '65536', 'PORT="65536": expected an integer from 0 to 65535'],
    ['PORT', '-1', 'PORT="-1": expected an integer from 0 to 65535'],
    ['PORT', 'Infinity', 'PORT="Infinity": expected an integer from 0 to 65535'],
    ['PORT', '-Infinity', 'PORT="-Infinity": expected an integer from 0 to 65535'],
    ['PORT', '1e400', 'PORT="1e400": expected an integer from 0 to 65535'],
    // Numbers are written in decimal: ajv's coercion alone would read 0x10 as 16.
    [
      'PORT',
      '0x10',
      'PORT="0x10": expected an integer from 0 to 65535 written in plain digits (0x10 is not)',
    ],
    [
      'PORT',
      '0b11',
      'PORT="0b11": expected an integer from 0 to 65535 written in plain digits (0b11 is not)',
    ],
    // An integer setting is digits alone: an exponent is more likely a slip.
    [
      'PORT',
      '1e3',
      'PORT="1e3": expected an integer from 0 to 65535 written in plain digits (1e3 is not)',
    ],
    [
      'MAX_BATCH_READINGS',
      '5E2',
      'MAX_BATCH_READINGS="5E2": expected an integer from 1 to 100000 written in plain digits (5E2 is not)',
    ],
    [
      'EFFICIENCY_THRESHOLD',
      '0x1',
      'EFFICIENCY_THRESHOLD="0x1": expected a number from 0 to 1 written in plain digits (0x1 is not)',
    ],
    ['FLUSHER_PORT', 'x', 'FLUSHER_PORT="x": expected an integer from 0 to 65535'],
    ['MAX_BATCH_READINGS', '0', 'MAX_BATCH_READINGS="0": expected an integer from 1 to 100000'],
    [
      'MAX_BACKLOG_READINGS',
      '1e10',
      'MAX_BACKLOG_READINGS="1e10": expected an integer from 1 to 1000000000 written in plain digits (1e10 is not)',
    ],
    [
      'REDIS_MEMORY_HIGH_WATER',
      '1',
      'REDIS_MEMORY_HIGH_WATER="1": expected a number from 0.1 to 0.99',
    ],
    ['EFFICIENCY_THRESHOLD', 'NaN', 'EFFICIENCY_THRESHOLD="NaN": expected a number from 0 to 1'],
    [
      'RATE_LIMIT_PER_S',
      'Infinity',
      'RATE_LIMIT_PER_S="Infinity": expected a number from 0 to 1000000',
    ],
    ['FLUSHER_CONCURRENCY', '0', 'FLUSHER_CONCURRENCY="0": expected an integer from 1 to 256'],
    [
      'REDIS_URL',
      'http://x',
      'REDIS_URL="http://x": expected a redis:// or rediss:// URL whose path or ?db=, if any, is a database number (redis://host:6379/0)',
    ],
    [
      'REDIS_URL',
      'localhost:6379',
      'REDIS_URL="localhost:6379": expected a redis:// or rediss:// URL whose path or ?db=, if any, is a database number (redis://host:6379/0)',
    ],
    [
      'REDIS_URL',
      'redis://127.0.0.1:6379/abc',
      'REDIS_URL="redis://127.0.0.1:6379/abc": expected a redis:// or rediss:// URL whose path or ?db=, if any, is a database number (redis://host:6379/0)',
    ],
    [
      'REDIS_URL',
      'redis://127.0.0.1:6379?db=abc',
      'REDIS_URL="redis://127.0.0.1:6379?db=abc": expected a redis:// or rediss:// URL whose path or ?db=, if any, is a database number (redis://host:6379/0)',
    ],
    // The password is not shown, also in a URL too malformed to parse.
    [
      'REDIS_URL',
      'redis://app:s3cret@cache:6379/x',
      'REDIS_URL="redis://app:***@cache:6379/x": expected a redis:// or rediss:// URL whose path or ?db=, if any, is a database number (redis://host:6379/0)',
    ],
    [
      'DATABASE_URL',
      'postgres//app:s3cret@db/x',
      'DATABASE_URL="postgres//app:***@db/x": expected a postgres:// or postgresql:// URL',
    ],
    // A port out of range and a missing host are said as such, not as another kind of URL.
    [
      'DATABASE_URL',
      'postgres://db:99999/x',
      'DATABASE_URL="postgres://db:99999/x": the port must be from 1 to 65535, not 99999',
    ],
    [
      'DATABASE_URL',
      'postgres://db:0/x',
      'DATABASE_URL="postgres://db:0/x": the port must be from 1 to 65535, not 0',
    ],
    [
      'DATABASE_URL',
      'postgres://',
      'DATABASE_URL="postgres://": the host is missing (or ?host= for a Unix socket)',
    ],
    [
      'DATABASE_URL',
      'postgres://app:s3cret@/x',
      'DATABASE_URL="postgres://app:***@/x": the host is missing (or ?host= for a Unix socket)',
    ],
    // Without a database the driver would connect to the maintenance database `postgres`.
    [
      'DATABASE_URL',
      'postgres://postgres@127.0.0.1:5432/',
      'DATABASE_URL="postgres://postgres@127.0.0.1:5432/": the database name is missing: end the URL with it (/energy); without one the driver connects to the one PGDATABASE or the user names',
    ],
    [
      'DATABASE_URL',
      'postgres://app@db?sslmode=require',
      'DATABASE_URL="postgres://app@db?sslmode=require": the database name is missing: end the URL with it (/energy); without one the driver connects to the one PGDATABASE or the user names',
    ],
    [
      'REDIS_URL',
      'redis://cache:99999',
      'REDIS_URL="redis://cache:99999": the port must be from 1 to 65535, not 99999',
    ],
    ['REDIS_URL', 'redis://', 'REDIS_URL="redis://": the host is missing'],
    ['REDIS_URL', 'redis:///3', 'REDIS_URL="redis:///3": the host is missing'],
    ['MQTT_URL', 'mqtt://:1883', 'MQTT_URL="mqtt://:1883": the host is missing'],
    [
      'REDIS_CLUSTER_NODES',
      '127.0.0.1:70000',
      'REDIS_CLUSTER_NODES="127.0.0.1:70000": expected comma-separated host:port seed nodes, e.g. 10.0.0.1:6379,[fd00::2]:6379',
    ],
    [
      'REDIS_CLUSTER_NODES',
      '::1:7000',
      'REDIS_CLUSTER_NODES="::1:7000": expected comma-separated host:port seed nodes, e.g. 10.0.0.1:6379,[fd00::2]:6379',
    ],
    [
      'DATABASE_URL',
      'mysql://db/x',
      'DATABASE_URL="mysql://db/x": expected a postgres:// or postgresql:// URL',
    ],
    ['REDIS_PREFIX', 'a b', 'REDIS_PREFIX="a b": expected 1-64 characters from A-Z a-z 0-9 _ . -'],
    [
      'REDIS_PREFIX',
      'x'.repeat(65),
      `REDIS_PREFIX="${'x'.repeat(65)}": expected 1-64 characters from A-Z a-z 0-9 _ . -`,
    ],
    [
      'LOG_LEVEL',
      'loud',
      'LOG_LEVEL="loud": expected one of fatal, error, warn, info, debug, trace, silent',
    ],
    ['ENERGY_READINGS', 'weekly', 'ENERGY_READINGS="weekly": expected one of interval, cumulative'],
    ['DB_PREPARED_STATEMENTS', 'yes', 'DB_PREPARED_STATEMENTS="yes": expected one of on, off'],
    ['AUTH', 'OFF', 'AUTH="OFF": expected one of on, off'],
    ['MQTT_URL', 'http://broker', 'MQTT_URL="http://broker": expected a mqtt:// or mqtts:// URL'],
    [
      'MQTT_TOPIC_PREFIX',
      'energy/#',
      'MQTT_TOPIC_PREFIX="energy/#": expected topic levels without wildcards (+ #), not starting with $ or /, not ending with /',
    ],
    [
      'MQTT_CLIENT_ID',
      'a b',
      'MQTT_CLIENT_ID="a b": expected up to 128 characters from A-Z a-z 0-9 _ . : -',
    ],
  ])('when %s is %j, then the problem names it and what it expects', (name, value, message) => {
    expect(problemsFor({ [name]: value })).toEqual([message]);
  });

  test('when REDIS_WAIT_TIMEOUT_MS would outlast a Redis command, then the problem names it: the WAIT would fail as Redis unavailable, not as replicas missing', () => {
    expect(problemsFor({ REDIS_WAIT_TIMEOUT_MS: '5000' })).toEqual([
      expect.stringMatching(/^REDIS_WAIT_TIMEOUT_MS="?5000"?: expected .*1500/),
    ]);
    expect(problemsFor({ REDIS_WAIT_TIMEOUT_MS: '1500' })).toEqual([]);
  });

  test('when MAX_BACKLOG_READINGS is below MAX_BATCH_READINGS, then the problem names it: a full request could never be admitted', () => {
    expect(problemsFor({ MAX_BACKLOG_READINGS: '10' })).toEqual([
      expect.stringMatching(
        /^MAX_BACKLOG_READINGS=10: expected at least MAX_BATCH_READINGS \(5000\)/,
      ),
    ]);
    expect(problemsFor({ MAX_BACKLOG_READINGS: '10', MAX_BATCH_READINGS: '10' })).toEqual([]);
  });

  test.each([
    ['3.7:0.75,3.7:0.8', '3.7 kW is given more than once'],
    ['*:0.8,11:0.82,*:0.9', '* is given more than once'],
    ['3.7:11.5,*:0.88', "threshold 11.5 is outside 0 to 1 (EFFICIENCY_THRESHOLD's range)"],
  ])(
    'when EFFICIENCY_THRESHOLDS is %j, then the problem says which class cannot be used',
    (value, problem) => {
      expect(problemsFor({ EFFICIENCY_THRESHOLDS: value })).toEqual([
        `EFFICIENCY_THRESHOLDS="${value}": ${problem}`,
      ]);
    },
  );

  test('when PORT and FLUSHER_PORT are the same port, then npm start (one host, both processes) names FLUSHER_PORT; both 0 (any free port) is fine, and so is each process alone', () => {
    expect(sharedPortProblem({ port: 3841, flusherPort: 3841 })).toMatch(
      /^FLUSHER_PORT=3841: expected another port than PORT's/,
    );
    expect(sharedPortProblem({ port: 0, flusherPort: 0 })).toBeNull();
    expect(sharedPortProblem({ port: 3841, flusherPort: 3842 })).toBeNull();
    // Each in a container of its own: one number is fine.
    expect(problemsFor({ PORT: '3841', FLUSHER_PORT: '3841' })).toEqual([]);
  });

  test('when EFFICIENCY_THRESHOLDS has each power limit once, in any order, then it is accepted', () => {
    expect(problemsFor({ EFFICIENCY_THRESHOLDS: '11:0.82,3.7:0.75,*:0.88' })).toEqual([]);
  });

  test('when EFFICIENCY_THRESHOLDS writes its numbers as a number setting may, then it is accepted; an exponent is refused', () => {
    expect(loadConfig({ EFFICIENCY_THRESHOLDS: '3.7:.75,*:.88' }).efficiencyThresholds).toBe(
      '3.7:.75,*:.88',
    );
    expect(problemsFor({ EFFICIENCY_THRESHOLDS: '3.7:7.5e-1' })).toEqual([
      expect.stringMatching(/^EFFICIENCY_THRESHOLDS="3.7:7.5e-1": expected classes kW:threshold/),
    ]);
  });

  test('when several variables are bad, then one ConfigError names each of them, in the order they are documented', () => {
    let error: unknown;
    try {
      loadConfig({
        LOG_LEVEL: 'loud',
        PORT: 'eighty',
        REDIS_URL: 'http://x',
        BODY_LIMIT: '4 gigs',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toBeInstanceOf(StartupError);
    expect((error as ConfigError).problems.map((p) => p.split('=')[0])).toEqual([
      'REDIS_URL',
      'PORT',
      'LOG_LEVEL',
      'BODY_LIMIT',
    ]);
    expect((error as Error).message).toMatch(
      /^Invalid configuration:\n {2}- REDIS_URL="http:\/\/x"/,
    );
  });
});

describe('REDIS_CLUSTER_NODES', () => {
  test('when seeds are host names, IPv4 or bracketed IPv6 addresses, then each is read with its port', () => {
    const nodes = 'redis-a.internal:6379,10.0.0.2:7000,[fd00::3]:7001';
    expect(loadConfig({ REDIS_CLUSTER_NODES: nodes }).redisClusterNodes).toBe(nodes);
    expect(clusterSeeds(nodes)).toEqual([
      { node: 'redis-a.internal:6379', host: 'redis-a.internal', port: 6379 },
      { node: '10.0.0.2:7000', host: '10.0.0.2', port: 7000 },
      { node: '[fd00::3]:7001', host: 'fd00::3', port: 7001 },
    ]);
  });
});

describe('BODY_LIMIT', () => {
  test.each([
    ['4mb', 4 * MB],
    ['512kb', 512 * 1024],
    ['1048576', MB],
    ['4 MB', 4 * MB],
    ['2048b', 2048],
    ['1kb', 1024],
    ['256mb', 256 * MB],
  ])('when it is %j, then the limit is %d bytes', (value, bytes) => {
    expect(loadConfig({ BODY_LIMIT: value }).bodyLimitBytes).toBe(bytes);
  });

  test.each(['1023', '257mb', '1gb', '4.5mb', 'big', '-1kb', '99999999999999999999mb'])(
    'when it is %j, then it is refused with the sizes it accepts',
    (value) => {
      expect(problemsFor({ BODY_LIMIT: value })).toEqual([
        `BODY_LIMIT=${JSON.stringify(value)}: expected a size such as 4mb, 512kb or 1048576 (1kb to 256mb)`,
      ]);
    },
  );
});

describe('API_KEYS', () => {
  const hex = hashKey('secret').toString('hex');

  test('when entries are valid, then each key keeps its name, scopes and hash', () => {
    const other = hashKey('another').toString('hex');
    const { apiKeys } = loadConfig({ API_KEYS: ` gw-1:ingest:${hex} , ops:read+admin:${other}` });
    expect(apiKeys.map((k) => [k.name, k.scopes])).toEqual([
      ['gw-1', ['ingest']],
      ['ops', ['read', 'admin']],
    ]);
    expect(apiKeys[0].hash.equals(hashKey('secret'))).toBe(true);
  });

  test('when entries are bad, then every problem of every entry is reported with the other variables', () => {
    expect(problemsFor({ API_KEYS: `a:fly:${hex},b`, PORT: 'x' })).toEqual([
      'PORT="x": expected an integer from 0 to 65535',
      'API_KEYS entry 1 (a): unknown scope fly (use ingest, read, admin, charge-point)',
      'API_KEYS entry 2 (b): expected name:scopes:sha256hex (scopes joined with +, entries with commas)',
    ]);
  });

  test('when scopes are joined with a comma, then the entries it makes say how to join them', () => {
    expect(problemsFor({ API_KEYS: `zz:read,ingest:${hex}` })).toEqual([
      'API_KEYS entry 1 (zz): expected name:scopes:sha256hex (scopes joined with +, entries with commas)',
      'API_KEYS entry 2 (ingest): expected name:scopes:sha256hex (scopes joined with +, entries with commas)',
    ]);
  });

  test('when an entry names a scope twice, or leaves one empty, then it is said', () => {
    const other = 'b'.repeat(64);
    expect(problemsFor({ API_KEYS: `a:read+read:${hex},b:read++admin:${other}` })).toEqual([
      'API_KEYS entry 1 (a): scope read is given twice',
      "API_KEYS entry 2 (b): unknown scope '' (one + between scopes) (use ingest, read, admin, charge-point)",
    ]);
  });
});

describe('settings documentation', () => {
  /** The README's Configuration table: variable name -> default cell. */
  function readmeDefaults(): Map<string, string> {
    const readme = readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const section = readme.split(/^## Configuration$/m)[1]?.split(/^## /m)[0] ?? '';
    const rows = new Map<string, string>();
    for (const line of section.split('\n')) {
      const cells = line.split('|').map((c) => c.trim());
      const name = /^`([A-Z0-9_]+)`$/.exec(cells[1] ?? '')?.[1];
      if (name) rows.set(name, `${cells[2]} | ${cells[3]}`);
    }
    return rows;
  }

  test('when the README is read, then its Configuration table lists every setting with the same default and meaning', () => {
    const documented = readmeDefaults();
    const declared = listSettings();
    expect(declared.map((s) => [s.name, documented.get(s.name)])).toEqual(
      declared.map((s) => [s.name, `${s.default} | ${s.description}`]),
    );
    expect([...documented.keys()].sort()).toEqual(declared.map((s) => s.name).sort());
  });

  test("when the settings are described, then there is one table row per setting with its default and meaning, a number's range with it", () => {
    const rows = describeSettings();
    expect(rows[0]).toBe('| variable | default | meaning |');
    expect(rows).toHaveLength(listSettings().length + 2);
    expect(rows).toContain(
      '| `BODY_LIMIT` | `4mb` | largest body, also after gzip decompression; valid: a size such as 4mb, 512kb or 1048576 (1kb to 256mb) |',
    );
    expect(rows).toContain(
      '| `FLUSHER_CONCURRENCY` | twice the cores, at least 4 | jobs one flusher process writes at once; valid: an integer from 1 to 256 |',
    );
    expect(rows).toContain(
      '| `API_KEYS` | (empty) | `name:scopes:sha256hex` entries, comma-separated (`npm run key`) |',
    );
  });
});

describe('variables one letter or two away from a setting', () => {
  test('when a variable is a setting misspelled, then a warning names the setting meant; other variables are left alone', () => {
    expect(
      misspelledSettings({
        REDIS_PREFX: 'fleet-a',
        FLUSHER_CONCURENCY: '2',
        DATABSE_URL: 'postgres://x',
        EFFICIENCY_TRESHOLDS: '11:0.8',
        REDIS_PREFIX: 'fleet-a',
        PGPORT: '5432',
        NODE_ENV: 'production',
        REDIS_HOST: 'redis',
        PATH: '/usr/bin',
      }),
    ).toEqual([
      'REDIS_PREFX is not a setting (ignored): did you mean REDIS_PREFIX?',
      'FLUSHER_CONCURENCY is not a setting (ignored): did you mean FLUSHER_CONCURRENCY?',
      'DATABSE_URL is not a setting (ignored): did you mean DATABASE_URL?',
      'EFFICIENCY_TRESHOLDS is not a setting (ignored): did you mean EFFICIENCY_THRESHOLDS?',
    ]);
  });
});
