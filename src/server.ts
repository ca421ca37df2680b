/** Entry point of the API process: `npm run start:api`. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app';
import { ConfigError, loadConfig, redactUrl } from './config';
import { createDb } from '../db/create-db';
import { exitOnStartupFailure, stopOnSignals } from './lifecycle';
import { createLogger } from './logger';
import { IngestQueues } from './queue/ingest-queue';
import { createRedis, waitForRedis } from './redis';
import { createRedisKeys } from './redis-keys';
import { assertRedisReachable, postgresProblem } from './startup-checks';

async function main(): Promise<void> {
  let logger = createLogger({ level: 'info', name: 'api' });
  try {
    const config = loadConfig(process.env);
    logger = createLogger({ level: config.logLevel, name: 'api' });
    if (config.auth === 'on' && config.apiKeys.length === 0) {
      throw new ConfigError([
        'API_KEYS is empty: create a key with `npm run key -- --name gateway-1 --scopes ingest` and set API_KEYS, or set AUTH=off to serve without authentication',
      ]);
    }
    if (config.auth === 'off')
      logger.warn('AUTH=off: every client can write and read; set API_KEYS to require keys');
    // Ingest needs Redis only: a replica (re)started while PostgreSQL is down must still serve it.
    await assertRedisReachable(config);
    const postgres = await postgresProblem(config.databaseUrl);
    if (postgres) {
      logger.warn(
        { database: redactUrl(config.databaseUrl), reason: postgres },
        'PostgreSQL is not reachable: ingest works, reads answer 503 until it is back',
      );
    }

    const db = createDb(config, 'energy-api', logger);
    const redis = createRedis(config, 'command');
    await waitForRedis(redis, 5000);
    const queues = new IngestQueues({
      connection: redis,
      keys: createRedisKeys(config.redisPrefix),
      config,
    });
    const api = createApp({ config, db, redis, queues, logger });

    const server: Server = await new Promise((resolve) => {
      const s = api.app.listen(config.port, () => resolve(s));
    });
    api.ocpp.attach(server);
    // Gateways keep connections open; the load balancer's idle timeout should be below this.
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    const { port } = server.address() as AddressInfo;
    logger.info(
      {
        port,
        database: redactUrl(config.databaseUrl),
        redis: config.redisClusterNodes || redactUrl(config.redisUrl),
        queueShards: config.queueShards,
        prefix: config.redisPrefix,
      },
      `API listening on http://127.0.0.1:${port}`,
    );

    stopOnSignals(
      async () => {
        // Order: stop taking requests, store what was accepted, then close connections.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await api.close();
        // Every accepted reading is stored now; keep-alive clients must not hold the exit.
        server.closeAllConnections();
        await closed;
        await queues.close();
        await redis.quit().catch(() => redis.disconnect());
        await db.destroy();
      },
      logger,
      config.shutdownTimeoutMs,
    );
  } catch (err) {
    exitOnStartupFailure(err, logger);
  }
}

void main();
