import pg from 'pg';
import { maintenanceUrl } from '../db/migrate';
import { redactUrl } from './config';
import { createRedis, waitForRedis, type RedisSettings } from './redis';
import { StartupError } from './startup-error';

/** A dependency the process cannot start without; its message tells a person what to do. */
export class DependencyUnavailableError extends StartupError {}

const describe = (err: unknown) =>
  (err instanceof Error ? err.message : String(err)) || 'no answer';

export async function assertPostgresReachable(
  databaseUrl: string,
  timeoutMs = 3000,
): Promise<void> {
  // Connect to the maintenance database: the engine's own database may not be created yet.
  const client = new pg.Client({
    connectionString: maintenanceUrl(databaseUrl),
    connectionTimeoutMillis: timeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    throw new DependencyUnavailableError(
      `PostgreSQL is not reachable at ${redactUrl(databaseUrl)} (${describe(err)}).\n` +
        '  Start it, or point DATABASE_URL at a running server:\n' +
        '    Debian/Ubuntu: sudo apt-get install -y postgresql && sudo service postgresql start\n' +
        '    Docker:        docker compose up -d postgres',
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function assertRedisReachable(
  settings: RedisSettings,
  timeoutMs = 3000,
): Promise<void> {
  const redis = createRedis(settings, 'command');
  try {
    await waitForRedis(redis, timeoutMs);
    await redis.ping();
  } catch (err) {
    const what = settings.redisClusterNodes
      ? `The Redis Cluster is not reachable at ${settings.redisClusterNodes} (REDIS_CLUSTER_NODES)`
      : `Redis is not reachable at ${redactUrl(settings.redisUrl)}`;
    throw new DependencyUnavailableError(
      `${what} (${describe(err)}).\n` +
        '  Start it, or point REDIS_URL (or REDIS_CLUSTER_NODES) at a running server:\n' +
        '    Debian/Ubuntu: sudo apt-get install -y redis-server && sudo service redis-server start\n' +
        '    Docker:        docker compose up -d redis',
    );
  } finally {
    redis.disconnect();
  }
}

/**
 * Why PostgreSQL cannot be reached, or null when it can: a process that does not need it to
 * start (the API's ingest, a flusher that waits) says so in one line and goes on.
 */
export async function postgresProblem(databaseUrl: string): Promise<string | null> {
  try {
    await assertPostgresReachable(databaseUrl);
    return null;
  } catch (err) {
    return describe(err).split('\n')[0];
  }
}

/** Checks both, in parallel, and reports every dependency that is missing. */
export async function assertDependenciesReachable(
  config: { databaseUrl: string } & RedisSettings,
): Promise<void> {
  const results = await Promise.allSettled([
    assertPostgresReachable(config.databaseUrl),
    assertRedisReachable(config),
  ]);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [describe(r.reason)] : []));
  if (failures.length > 0) throw new DependencyUnavailableError(failures.join('\n'));
}
