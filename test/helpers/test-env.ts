import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { createDb } from '../../db/create-db';
import { quoteIdent, withMaintenanceClient } from '../../db/migrate';
import { loadConfig, type Config } from '../../src/config';
import { createLogger, type Logger } from '../../src/logger';
import { createRedis, masters, waitForRedis, type RedisClient } from '../../src/redis';
import { createRedisKeys } from '../../src/redis-keys';

export const TEST_ENV = {
  runId: 'ENERGY_TEST_RUN_ID',
  template: 'ENERGY_TEST_TEMPLATE_DB',
} as const;

/** The server tests run against: TEST_DATABASE_URL / TEST_REDIS_URL, else this machine's defaults. */
export const baseDatabaseUrl = () =>
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const baseRedisUrl = () => process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function withDatabaseName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

const uniqueSuffix = () => randomBytes(4).toString('hex');

/** A test configuration: the defaults, pointed at this run's services, with overrides. */
export function createTestConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: baseDatabaseUrl(),
    REDIS_URL: baseRedisUrl(),
    REDIS_PREFIX: `test-${process.env[TEST_ENV.runId] ?? 'x'}-${uniqueSuffix()}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    FLUSH_BACKOFF_MS: '100',
    AUTH: 'off',
    ...overrides,
  });
}

export interface TestContext {
  config: Config;
  db: Knex;
  redis: RedisClient;
  logger: Logger;
  /** Drops this context's database and deletes its Redis keys. */
  cleanup(): Promise<void>;
}

/** A fresh database copied from the run's migrated template, and a Redis prefix of its own. */
export async function createTestContext(
  overrides: Record<string, string> = {},
): Promise<TestContext> {
  const runId = process.env[TEST_ENV.runId];
  const template = process.env[TEST_ENV.template];
  if (!runId || !template) throw new Error('test/helpers/global-setup.ts did not run');
  const name = `energy_test_${runId}_${uniqueSuffix()}`;
  await withMaintenanceClient(baseDatabaseUrl(), (client) =>
    client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`),
  );
  const config = createTestConfig({
    DATABASE_URL: withDatabaseName(baseDatabaseUrl(), name),
    ...overrides,
  });
  return openTestContext(config, () =>
    withMaintenanceClient(baseDatabaseUrl(), (client) =>
      client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
    ),
  );
}

/** Connects to a configuration's database and Redis; cleanup deletes its keys, then `dropDatabase`. */
export async function openTestContext(
  config: Config,
  dropDatabase: () => Promise<unknown>,
): Promise<TestContext> {
  const logger = createLogger({ level: config.logLevel, name: 'test' });
  const db = createDb(config, 'energy-test', logger);
  const redis = createRedis(config, 'command');
  await waitForRedis(redis, 3000);
  return {
    config,
    db,
    redis,
    logger,
    async cleanup() {
      // The connections close even when the keys could not be deleted (a cluster failing over):
      // an open pool would keep the test process alive.
      try {
        await deleteKeys(redis, config.redisPrefix);
      } finally {
        redis.disconnect();
        await db.destroy();
        await dropDatabase();
      }
    },
  };
}

/** Deletes every key of a prefix (on every master of a cluster). */
export async function deleteKeys(redis: RedisClient, prefix: string): Promise<void> {
  for (const node of masters(redis)) {
    for (const pattern of createRedisKeys(prefix).keyPatterns) {
      let cursor = '0';
      do {
        // The prefix is validated to [A-Za-z0-9_.-], so it holds no glob characters.
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        // One key per call: a cluster refuses multi-key commands across slots.
        await Promise.all(keys.map((key) => node.unlink(key)));
      } while (cursor !== '0');
    }
  }
}
