import express, { type Express } from 'express';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import { AnalyticsStore } from './analytics/analytics-store';
import { createAnalyticsRouter } from './analytics/analytics-routes';
import { FleetService } from './analytics/fleet-service';
import { FleetStore } from './analytics/fleet-store';
import { PerformanceService } from './analytics/performance-service';
import { ReportCache } from './analytics/report-cache';
import { createAuthorize } from './auth/authorize';
import type { Config } from './config';
import { createDashboardRouter, dashboardAssetsDir } from './dashboard/dashboard-router';
import type { Registry } from 'prom-client';
import { createHealthRouter } from './health';
import {
  createAnalyticsMetrics,
  createHttpMetrics,
  createIngestMetrics,
  createRegistry,
  metricsHandler,
  registerPoolMetrics,
  registerQueueMetrics,
} from './metrics';
import { readQueueStats } from './queue/queue-stats';
import { createErrorHandler, notFoundHandler, securityHeaders } from './http/error-handler';
import { buildOpenApiDocument, createDocsRouter } from './http/openapi';
import { requestId } from './http/request-id';
import type { Logger } from './logger';
import type { IngestQueue } from './queue/ingest-queue';
import { createRedisKeys } from './redis-keys';
import { MappingStore } from './stores/mapping-store';
import { StatusStore } from './stores/status-store';
import { IngestAdmission } from './telemetry/admission';
import { createBatchStore, IngestService } from './telemetry/ingest-service';
import { LiveStateStore } from './telemetry/live-state';
import { createTelemetryRouter } from './telemetry/telemetry-routes';
import { createReadingValidator } from './telemetry/validation';

export interface AppDeps {
  config: Config;
  db: Knex;
  /** A `command` connection (see src/redis.ts); the queue may share it. */
  redis: Redis;
  queue: IngestQueue;
  logger: Logger;
  /** Where its metrics go; a new registry when not given. */
  registry?: Registry;
}

export interface Api {
  app: Express;
  ingestService: IngestService;
  admission: IngestAdmission;
  registry: Registry;
  /** Stops accepting into the buffer's background work and waits for accepted readings to be stored. */
  close(): Promise<void>;
}

/** Builds the API: stores, services and routes, wired from the given connections. Never listens. */
export function createApp({
  config,
  db,
  redis,
  queue,
  logger,
  registry = createRegistry('api'),
}: AppDeps): Api {
  const keys = createRedisKeys(config.redisPrefix);
  registerPoolMetrics(registry, db);
  registerQueueMetrics(registry, () => readQueueStats(queue, redis, keys));
  const liveState = new LiveStateStore(redis, keys);
  const statusStore = new StatusStore(db);
  const mappingStore = new MappingStore(db);
  const validator = createReadingValidator({ maxClockSkewS: config.maxClockSkewS });
  const admission = new IngestAdmission({
    redis,
    keys,
    config,
    logger: logger.child({ module: 'admission' }),
  });
  const ingestService = new IngestService({
    validator,
    admission,
    storeBatches: createBatchStore({
      queue,
      redis,
      keys,
      liveState,
      logger: logger.child({ module: 'ingest' }),
    }),
    config,
    logger: logger.child({ module: 'ingest' }),
    metrics: createIngestMetrics(registry),
  });
  const analyticsMetrics = createAnalyticsMetrics(registry);
  const performance = new PerformanceService({
    store: new AnalyticsStore(db, { preparedStatements: config.dbPreparedStatements === 'on' }),
    mappingStore,
    cache: new ReportCache({
      redis,
      ttlS: config.analyticsCacheTtlS,
      logger: logger.child({ module: 'analytics' }),
      onLookup: analyticsMetrics.onCache,
    }),
    keys,
    config,
    metrics: analyticsMetrics,
  });
  const authorize = createAuthorize({
    config,
    redis,
    rateLimitKey: keys.rateLimit,
    logger: logger.child({ module: 'auth' }),
  });
  admission.start();
  let closing = false;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestId);
  app.use(createHttpMetrics(registry));
  app.use(securityHeaders);
  app.get('/metrics', metricsHandler(registry));
  app.use(createDocsRouter(buildOpenApiDocument(config)));
  app.use(
    createHealthRouter({
      checks: {
        postgres: () => db.raw('SELECT 1'),
        redis: () => redis.ping(),
      },
      // Ingest needs Redis only: it keeps accepting while PostgreSQL is down.
      parts: { ingest: ['redis'] },
      isShuttingDown: () => closing,
    }),
  );
  app.use(
    createTelemetryRouter({
      ingestService,
      liveState,
      statusStore,
      mappingStore,
      validator,
      config,
      logger: logger.child({ module: 'telemetry' }),
      authorize,
    }),
  );
  const fleet = new FleetService({
    store: new FleetStore(db),
    cache: new ReportCache({
      redis,
      ttlS: config.analyticsCacheTtlS,
      logger: logger.child({ module: 'fleet' }),
    }),
    keys,
    config,
  });
  app.use(createAnalyticsRouter({ performance, fleet, config, authorize }));
  app.use(createDashboardRouter({ assetsDir: dashboardAssetsDir() }));
  app.use(notFoundHandler);
  app.use(createErrorHandler(logger.child({ module: 'errors' })));

  return {
    app,
    ingestService,
    admission,
    registry,
    async close() {
      closing = true;
      admission.stop();
      await ingestService.drain();
    },
  };
}
