import { randomBytes } from 'node:crypto';
import { loginAnew } from '../db/fresh-login';
import type { Knex } from 'knex';
import { maintenanceUrl } from '../db/migrate';
import { createSchemaCheck, missingMigrationsMessage } from '../db/schema-check';
import { redactUrl, redisDatabaseOf } from './config';
import { Redis } from 'ioredis';
import {
  clusterSeeds,
  createRedis,
  evictionProblem,
  isAuthError,
  isCluster,
  waitForRedis,
  type RedisClient,
  type RedisSettings,
} from './redis';
import { StartupError } from './startup-error';

/** A dependency the process cannot start without; its message tells a person what to do. */
export class DependencyUnavailableError extends StartupError {}

/**
 * PostgreSQL answered and refused the login, or the SSL that DATABASE_URL asks for: a setting to
 * fix, not an outage to ride out.
 */
class PostgresRefusesSettings extends DependencyUnavailableError {}

/** node-postgres' words (it gives no code) for a server without SSL when `sslmode` asks for it. */
const SSL_REFUSED = /does not support SSL connections/;

const describe = (err: unknown) =>
  (err instanceof Error ? err.message : String(err)) || 'no answer';

/**
 * `ownDatabase`: log in to DATABASE_URL's own database (the API and the flusher, which need it;
 * pg_hba.conf may allow the role there only), where a missing database passes (the schema check
 * says so); else to the maintenance database (migrate, npm start: it may not be created yet).
 */
export async function assertPostgresReachable(
  databaseUrl: string,
  { timeoutMs = 3000, ownDatabase = false }: { timeoutMs?: number; ownDatabase?: boolean } = {},
): Promise<void> {
  try {
    await loginAnew(ownDatabase ? databaseUrl : maintenanceUrl(databaseUrl), timeoutMs);
  } catch (err) {
    if (ownDatabase && (err as { code?: unknown }).code === MISSING_DATABASE) return;
    // SQLSTATE class 28: it answered, and refused the role or its password (or pg_hba.conf did).
    if (/^28/.test(String((err as { code?: unknown }).code))) {
      throw new PostgresRefusesSettings(
        `PostgreSQL at ${redactUrl(databaseUrl)} refused the login (${describe(err)}).\n` +
          '  Put a user and password it accepts in DATABASE_URL (or allow them in its pg_hba.conf).',
      );
    }
    if (SSL_REFUSED.test(describe(err))) {
      throw new PostgresRefusesSettings(
        `PostgreSQL at ${redactUrl(databaseUrl)} does not accept SSL, which DATABASE_URL asks for (sslmode).\n` +
          '  Turn ssl on in its postgresql.conf, or leave sslmode out of DATABASE_URL on a trusted network.',
      );
    }
    throw new DependencyUnavailableError(
      `PostgreSQL is not reachable at ${redactUrl(databaseUrl)} (${describe(err)}).\n` +
        '  Start it, or point DATABASE_URL at a running server:\n' +
        '    Debian/Ubuntu: sudo apt-get install -y postgresql && sudo service postgresql start\n' +
        '    Docker:        docker compose up -d postgres',
    );
  }
}

/**
 * `acceptsReadings`: the process acknowledges readings (the API, the MQTT process), so a Redis
 * that may evict them is refused. One that moves them out (the flusher, redrive) starts, to drain
 * what is there; every one warns (redis-durability.ts).
 */
export async function assertRedisReachable(
  settings: RedisSettings,
  {
    timeoutMs = 3000,
    acceptsReadings = false,
  }: { timeoutMs?: number; acceptsReadings?: boolean } = {},
): Promise<void> {
  const redis = createRedis(settings, 'command');
  try {
    await reachRedis(redis, settings, timeoutMs);
    if (!settings.redisClusterNodes) await assertNotClusterNode(redis, settings);
    await assertDatabaseIndex(redis, settings);
    const evicts = acceptsReadings ? await evictionProblem(redis) : null;
    if (evicts) throw new DependencyUnavailableError(`Redis: ${evicts}.`);
  } finally {
    redis.disconnect();
  }
}

/** Whether the server on `redis` runs in cluster mode (INFO's `cluster_enabled`). */
async function clusterEnabled(redis: Redis): Promise<boolean> {
  return /^cluster_enabled:1\s*$/m.test(await redis.info('cluster'));
}

/**
 * REDIS_URL naming a node of a cluster: the connection works and answers PING, but every key of a
 * slot on another node answers MOVED, so ingest would answer 503 while readiness says ready.
 */
async function assertNotClusterNode(redis: RedisClient, settings: RedisSettings): Promise<void> {
  if (isCluster(redis) || !(await clusterEnabled(redis))) return;
  throw new DependencyUnavailableError(
    `Redis at ${redactUrl(settings.redisUrl)} is a node of a Redis Cluster: one connection to it cannot reach the keys on the other nodes.\n` +
      "  Set REDIS_CLUSTER_NODES to the cluster's nodes (host:port,host:port,...); REDIS_URL then gives only the credentials.",
  );
}

/**
 * Why REDIS_CLUSTER_NODES could not be reached as a cluster although a seed answers, or null:
 * ioredis says only that it failed to refresh the slots cache, or nothing within the deadline.
 * The seed runs without cluster mode, or its cluster is down (a shard without a live master).
 */
async function seedProblem(settings: RedisSettings): Promise<string | null> {
  for (const { node, host, port } of clusterSeeds(settings.redisClusterNodes)) {
    const url = new URL(settings.redisUrl);
    url.hostname = host.includes(':') ? `[${host}]` : host;
    url.port = String(port);
    url.pathname = '';
    const seed = new Redis(url.toString(), {
      connectTimeout: 1000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    seed.on('error', () => undefined);
    try {
      await seed.connect();
      if (!(await clusterEnabled(seed))) {
        return (
          `Redis at ${node} (REDIS_CLUSTER_NODES) answers, but runs without cluster mode (cluster_enabled:0).\n` +
          `  For a single Redis, set REDIS_URL=redis://${node} and leave REDIS_CLUSTER_NODES empty; for a cluster, name its nodes.`
        );
      }
      const info = String(await seed.call('CLUSTER', 'INFO'));
      const state = /^cluster_state:(\w+)/m.exec(info)?.[1];
      if (state !== undefined && state !== 'ok') {
        const served = /^cluster_slots_ok:(\d+)/m.exec(info)?.[1] ?? '?';
        return (
          `The Redis Cluster answers at ${node} (REDIS_CLUSTER_NODES), but its state is ${state} (CLUSTER INFO; ${served} of 16384 slots served): it refuses every key until each slot has a live master.\n` +
          '  Start its failed nodes again (each shard needs its master, or a replica to take over); then start this again.'
        );
      }
    } catch {
      // not reachable, or not answering INFO: the cluster's own error says more
    } finally {
      seed.disconnect();
    }
  }
  return null;
}

async function reachRedis(
  redis: RedisClient,
  settings: RedisSettings,
  timeoutMs: number,
): Promise<void> {
  try {
    await waitForRedis(redis, timeoutMs);
    await redis.ping();
  } catch (err) {
    const where = settings.redisClusterNodes
      ? `at ${settings.redisClusterNodes} (REDIS_CLUSTER_NODES)`
      : `at ${redactUrl(settings.redisUrl)}`;
    if (isAuthError(err)) {
      throw new DependencyUnavailableError(
        `Redis ${where} refused the credentials (${describe(err)}).\n` +
          '  Put the user and password Redis expects in REDIS_URL (redis://user:password@host:port).',
      );
    }
    const seed = settings.redisClusterNodes ? await seedProblem(settings) : null;
    if (seed) throw new DependencyUnavailableError(seed);
    const what = `${settings.redisClusterNodes ? 'The Redis Cluster' : 'Redis'} is not reachable ${where}`;
    throw new DependencyUnavailableError(
      `${what} (${describe(err)}).\n` +
        '  Start it, or point REDIS_URL (or REDIS_CLUSTER_NODES) at a running server:\n' +
        '    Debian/Ubuntu: sudo apt-get install -y redis-server && sudo service redis-server start\n' +
        '    Docker:        docker compose up -d redis',
    );
  }
}

/**
 * A database index in REDIS_URL that the server does not have: ioredis goes on with database 0
 * when its SELECT fails, so the engine's keys would land where nobody meant them.
 */
async function assertDatabaseIndex(redis: RedisClient, settings: RedisSettings): Promise<void> {
  const index = redisDatabaseOf(settings.redisUrl);
  if (settings.redisClusterNodes || index === '' || index === '0') return;
  try {
    await redis.select(Number(index));
  } catch (err) {
    throw new DependencyUnavailableError(
      `REDIS_URL names the database ${index}, which the Redis at ${redactUrl(settings.redisUrl)} does not have (${describe(err)}).\n` +
        '  Name one below its databases setting (16 by default), or none for 0.',
    );
  }
}

/**
 * Why PostgreSQL cannot be reached, or null when it can: a process that does not need it to
 * start (the API's ingest, a flusher that waits) says so in one line and goes on. A refused login
 * is thrown: it would not pass once PostgreSQL is back.
 */
export async function postgresProblem(databaseUrl: string): Promise<string | null> {
  try {
    await assertPostgresReachable(databaseUrl, { ownDatabase: true });
    return null;
  } catch (err) {
    if (err instanceof PostgresRefusesSettings) throw err;
    return describe(err).split('\n')[0];
  }
}

/**
 * CONNACK reason codes of a refused login: MQTT 5's "Bad User Name or Password" and "Not
 * authorized", and MQTT 3.1.1's return codes 4 and 5 for the same. The broker runs; only the
 * credentials are wrong, which "not reachable" and install instructions did not say.
 */
const LOGIN_REFUSED = new Set([4, 5, 134, 135]);

/** Connects once with a throw-away client id (never the engine's: that would take its session). */
export async function assertMqttBrokerReachable(
  config: { mqttUrl: string; mqttUsername?: string; mqttPassword?: string },
  timeoutMs = 3000,
): Promise<void> {
  try {
    const { connectAsync } = await import('mqtt'); // loaded by processes that use MQTT only
    const client = await connectAsync(config.mqttUrl, {
      protocolVersion: 5,
      clientId: `energy-probe-${randomBytes(4).toString('hex')}`,
      username: config.mqttUsername || undefined,
      password: config.mqttPassword || undefined,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
    });
    await client.endAsync();
  } catch (err) {
    if (LOGIN_REFUSED.has((err as { code?: unknown }).code as number)) {
      throw new DependencyUnavailableError(
        `The MQTT broker at ${redactUrl(config.mqttUrl)} refused the login (${describe(err)}).\n` +
          "  Check MQTT_USERNAME and MQTT_PASSWORD, and that the broker's ACL lets that user subscribe to MQTT_TOPIC_PREFIX.",
      );
    }
    throw new DependencyUnavailableError(
      `The MQTT broker is not reachable at ${redactUrl(config.mqttUrl)} (${describe(err)}).\n` +
        '  Start it (see ops/mosquitto/mosquitto.conf for the settings), or point MQTT_URL at a running broker:\n' +
        '    Debian/Ubuntu: sudo apt-get install -y mosquitto && sudo service mosquitto start\n' +
        '    Docker:        docker compose up -d mosquitto',
    );
  }
}

/**
 * Checks what a process needs, in parallel, and reports every dependency that is missing:
 * Redis always, PostgreSQL unless `postgres: false`, the MQTT broker when MQTT_URL is set and
 * `mqtt: true`.
 */
export async function assertDependenciesReachable(
  config: {
    databaseUrl: string;
    mqttUrl?: string;
    mqttUsername?: string;
    mqttPassword?: string;
  } & RedisSettings,
  {
    postgres = true,
    mqtt = false,
    acceptsReadings = false,
  }: { postgres?: boolean; mqtt?: boolean; acceptsReadings?: boolean } = {},
): Promise<void> {
  const { mqttUrl } = config;
  const results = await Promise.allSettled([
    postgres ? assertPostgresReachable(config.databaseUrl) : Promise.resolve(),
    assertRedisReachable(config, { acceptsReadings }),
    mqtt && mqttUrl ? assertMqttBrokerReachable({ ...config, mqttUrl }) : Promise.resolve(),
  ]);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [describe(r.reason)] : []));
  if (failures.length > 0) throw new DependencyUnavailableError(failures.join('\n'));
}

/** SQLSTATE invalid_catalog_name: the database named does not exist. */
const MISSING_DATABASE = '3D000';

/**
 * Refuses to start against a database that lacks migrations: every flush and read would fail on
 * a missing table, logged as a stack trace every few seconds. Unreachable: left to the caller
 * (the API and the flusher start without PostgreSQL).
 */
export async function assertSchemaMigrated(db: Knex, databaseUrl: string): Promise<void> {
  let pending: string[];
  try {
    pending = await createSchemaCheck(db).missing();
  } catch (err) {
    // The server answers but has no such database: ingest would accept what it can never store.
    if ((err as { code?: string }).code === MISSING_DATABASE) {
      throw new StartupError(
        `The database ${redactUrl(databaseUrl)} does not exist: run npm run migrate to create it (npm start creates and migrates it by itself)`,
      );
    }
    return;
  }
  if (pending.length > 0) {
    throw new StartupError(
      `The database at ${redactUrl(databaseUrl)} ${missingMigrationsMessage(pending)} (npm start migrates by itself)`,
    );
  }
}
