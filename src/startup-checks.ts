import pg from 'pg';
import { maintenanceUrl } from '../db/migrate';
import { redactUrl } from './config';
import { createRedis, waitForRedis } from './redis';
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

export async function assertRedisReachable(redisUrl: string, timeoutMs = 3000): Promise<void> {
  const redis = createRedis(redisUrl, 'command');
  try {
    await waitForRedis(redis, timeoutMs);
    await redis.ping();
  } catch (err) {
    throw new DependencyUnavailableError(
      `Redis is not reachable at ${redactUrl(redisUrl)} (${describe(err)}).\n` +
        '  Start it, or point REDIS_URL at a running server:\n' +
        '    Debian/Ubuntu: sudo apt-get install -y redis-server && sudo service redis-server start\n' +
        '    Docker:        docker compose up -d redis',
    );
  } finally {
    redis.disconnect();
  }
}

/** Checks both, in parallel, and reports every dependency that is missing. */
export async function assertDependenciesReachable(config: {
  databaseUrl: string;
  redisUrl: string;
}): Promise<void> {
  const results = await Promise.allSettled([
    assertPostgresReachable(config.databaseUrl),
    assertRedisReachable(config.redisUrl),
  ]);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [describe(r.reason)] : []));
  if (failures.length > 0) throw new DependencyUnavailableError(failures.join('\n'));
}
