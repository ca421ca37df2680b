/** Entry point of the API process: `npm run start:api`. */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app';
import { startPlanRefresh } from './analytics/plan-refresh';
import {
  ConfigError,
  loadConfig,
  warnOfMisspelledSettings,
  redactUrl,
  type Config,
} from './config';
import { createDb, createGenericPlanDb } from '../db/create-db';
import {
  exitOnStartupFailure,
  limitHeapGrowth,
  listen,
  refuseArguments,
  stopOnSignals,
} from './lifecycle';
import { trackRequests } from './http/graceful-close';
import { surviveIoredisStrayRejections } from './redis';
import { createLogger, type Logger } from './logger';
import { createRegistry } from './metrics';
import { openIngestQueues } from './queue/ingest-queue';
import {
  assertDependenciesReachable,
  assertSchemaMigrated,
  postgresProblem,
} from './startup-checks';
import { warnIfRedisUnsafe } from './redis-durability';
import { createIngestPipeline } from './telemetry/ingest-pipeline';
import { withTimeout } from './with-timeout';

/** A slow database must not hold the API's start for long: the warm-up only saves time. */
const WARM_UP_TIMEOUT_MS = 15_000;

/** How often the API checks whether PostgreSQL will plan its prepared statements again. */
const PLAN_CHECK_INTERVAL_MS = 5_000;

/** The API refuses to start open by accident; AUTH=off runs, and says what it leaves open. */
function checkAuthSettings(config: Config, logger: Logger): void {
  if (config.auth === 'on' && config.apiKeys.length === 0) {
    throw new ConfigError([
      'API_KEYS is empty: create a key with `npm run key -- --name gateway-1 --scopes ingest` and set API_KEYS, or set AUTH=off to serve without authentication',
    ]);
  }
  if (config.auth === 'off') {
    const keys = config.apiKeys.length;
    logger.warn(
      keys > 0
        ? `AUTH=off: API_KEYS holds ${keys} key(s), all ignored: every client can write and read without one; set AUTH=on to require them`
        : 'AUTH=off: every client can write and read; set API_KEYS to require keys',
    );
    // The limit is per key, and AUTH=off knows none: say so rather than limit nothing silently.
    if (config.rateLimitPerS > 0) {
      logger.warn(
        `RATE_LIMIT_PER_S=${config.rateLimitPerS} has no effect with AUTH=off: the limit is per API key`,
      );
    }
  }
}

function setConnectionTimeouts(server: Server): void {
  // Gateways keep connections open; the load balancer's idle timeout should be below this.
  server.keepAliveTimeout = 65_000;
  // A request's headers must arrive within a minute, the whole request within 66 s (4 MB,
  // BODY_LIMIT, at 0.5 Mbit/s): a client that stalls mid-body is answered 408 then, not after
  // node:http's default five minutes. (Of the two, node:http takes the shorter for the headers.)
  server.headersTimeout = 60_000;
  server.requestTimeout = 66_000;
}

async function main(): Promise<void> {
  refuseArguments(
    process.argv.slice(2),
    "The engine's API (HTTP ingest, reports, OCPP; MQTT with MQTT_URL).",
  );
  let logger = createLogger({ level: 'info', name: 'api' });
  try {
    const config = loadConfig(process.env);
    limitHeapGrowth(config.heapGrowingPercent);
    logger = createLogger({ level: config.logLevel, name: 'api' });
    surviveIoredisStrayRejections(logger);
    warnOfMisspelledSettings(process.env, logger);
    checkAuthSettings(config, logger);
    // Ingest needs Redis only: a replica (re)started while PostgreSQL is down must still serve it.
    await assertDependenciesReachable(config, {
      postgres: false,
      mqtt: Boolean(config.mqttUrl),
      acceptsReadings: true,
    });
    const postgres = await postgresProblem(config.databaseUrl);
    if (postgres) {
      logger.warn(
        { database: redactUrl(config.databaseUrl), reason: postgres },
        'PostgreSQL is not reachable: ingest works, reads answer 503 until it is back',
      );
    }

    const db = createDb(config, 'energy-api', logger);
    if (!postgres) await assertSchemaMigrated(db, config.databaseUrl);
    const genericDb = createGenericPlanDb(config, 'energy-api-generic', logger);
    const { redis, queues } = await openIngestQueues(config);
    await warnIfRedisUnsafe(redis, logger);
    const registry = createRegistry('api');
    const ingest = createIngestPipeline({ config, redis, queues, logger, registry });
    // With MQTT_URL the API consumes MQTT too, into the same pipeline (so `npm start` includes it).
    // The MQTT client is loaded only then: about 5 MB resident an API without MQTT does not carry.
    const { mqttUrl } = config;
    const intake = mqttUrl
      ? (await import('./mqtt/mqtt-intake')).startMqttIntake({
          config: { ...config, mqttUrl },
          role: 'api',
          ingestService: ingest.ingestService,
          redis,
          keys: ingest.keys,
          registry,
          logger,
        })
      : null;
    const api = createApp({
      config,
      db,
      genericDb,
      redis,
      queues,
      logger,
      registry,
      ingest,
      readinessChecks: intake ? { mqtt: () => intake.ready() } : {},
    });

    const warmUpReports = () => withTimeout(api.warmUp(), WARM_UP_TIMEOUT_MS, 'report warm-up');
    if (!postgres) {
      const started = Date.now();
      try {
        await warmUpReports();
        logger.info({ ms: Date.now() - started }, 'report path warmed up');
      } catch (err) {
        logger.warn({ err }, 'report warm-up did not finish: the first reports will be slower');
      }
    }
    // Only prepared statements keep plans that a change can make stale.
    const planRefresh = genericDb
      ? startPlanRefresh({
          db,
          warmUp: warmUpReports,
          intervalMs: PLAN_CHECK_INTERVAL_MS,
          logger,
        })
      : null;
    const server = await listen(api.app, config.port, 'PORT');
    const requests = trackRequests(server);
    api.ocpp.attach(server);
    setConnectionTimeouts(server);
    const { port } = server.address() as AddressInfo;
    logger.info(
      {
        port,
        database: redactUrl(config.databaseUrl),
        redis: config.redisClusterNodes || redactUrl(config.redisUrl),
        queueShards: config.queueShards,
        prefix: config.redisPrefix,
        ...(intake && mqttUrl ? { mqtt: redactUrl(mqttUrl), mqttClientId: intake.clientId } : {}),
      },
      // Every interface, not only loopback: say so, as whoever checks exposure reads this line.
      `API listening on port ${port} of every interface (http://127.0.0.1:${port} from this machine)${intake ? ', consuming MQTT' : ''}`,
    );

    stopOnSignals(
      async () => {
        // Order: stop taking requests and messages, answer the requests in progress, store what
        // was accepted, then close connections.
        await requests.close(config.shutdownTimeoutMs / 2);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        await intake?.close();
        await api.close();
        await planRefresh?.stop();
        // Every accepted reading is stored now; keep-alive clients must not hold the exit.
        server.closeAllConnections();
        await closed;
        await queues.close();
        await redis.quit().catch(() => redis.disconnect());
        await db.destroy();
        await genericDb?.destroy();
      },
      logger,
      config.shutdownTimeoutMs,
    );
  } catch (err) {
    exitOnStartupFailure(err, logger);
  }
}

void main();
