import express, { type Express } from 'express';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { analyticsRoutes } from './analytics/analytics-routes';
import { EnergyReportStore } from './analytics/energy-report-store';
import { FleetService } from './analytics/fleet-service';
import { PerformanceService } from './analytics/performance-service';
import { ReportCache } from './analytics/report-cache';
import { createAuthorize } from './auth/authorize';
import type { Config } from './config';
import { statusRoutes } from './devices/status-routes';
import { healthRoutes, type ReadinessChecks } from './health';
import { createErrorHandler, notFoundHandler, securityHeaders } from './http/error-handler';
import { mountRoutes } from './http/mount-routes';
import { buildOpenApiDocument, createDocsRouter } from './http/openapi';
import { requestId } from './http/request-id';
import type { AnyRoute } from './http/route-contract';
import type { Logger } from './logger';
import { mappingRoutes } from './mapping/mapping-routes';
import {
  createAnalyticsMetrics,
  createHttpMetrics,
  createRegistry,
  metricsRoute,
  registerPoolMetrics,
  registerQueueMetrics,
} from './metrics';
import type { IngestQueue } from './queue/ingest-queue';
import { readQueueStats } from './queue/queue-stats';
import { MappingStore } from './stores/mapping-store';
import { StatusStore } from './stores/status-store';
import type { IngestAdmission } from './telemetry/admission';
import { createIngestPipeline, type IngestPipeline } from './telemetry/ingest-pipeline';
import { ingestRoutes } from './telemetry/ingest-routes';
import type { IngestService } from './telemetry/ingest-service';

export interface AppDeps {
  config: Config;
  db: Knex;
  /** A `command` connection (see src/redis.ts); the queue may share it. */
  redis: Redis;
  queue: IngestQueue;
  logger: Logger;
  /** Where its metrics go; a new registry when not given. */
  registry?: Registry;
  /** The ingest pipeline when the process shares it with another intake (MQTT); else built here. */
  ingest?: IngestPipeline;
  /** Readiness checks beyond PostgreSQL and Redis (e.g. the MQTT broker connection). */
  readinessChecks?: ReadinessChecks;
}

export interface Api {
  app: Express;
  /** Every route the API serves, as declared (the API document is built from them). */
  routes: AnyRoute[];
  ingestService: IngestService;
  admission: IngestAdmission;
  registry: Registry;
  /** Stops the ingest pipeline's background work and waits for accepted readings to be stored. */
  close(): Promise<void>;
}

export const API_INFO = {
  title: 'Energy Ingestion Engine',
  version: '0.2.0',
  description:
    'Telemetry for EV fleets: smart meters (AC) and vehicles (DC). A 202 means the reading is durably queued and will reach PostgreSQL.',
};

/** Builds the API: stores, services and routes, wired from the given connections. Never listens. */
export function createApp({
  config,
  db,
  redis,
  queue,
  logger,
  registry = createRegistry('api'),
  ingest = createIngestPipeline({ config, redis, queue, logger, registry }),
  readinessChecks = {},
}: AppDeps): Api {
  const { keys, liveState, validator, admission, ingestService } = ingest;
  registerPoolMetrics(registry, db);
  registerQueueMetrics(registry, () => readQueueStats(queue, redis, keys));
  const reports = new EnergyReportStore(db, {
    preparedStatements: config.dbPreparedStatements === 'on',
  });
  const analyticsMetrics = createAnalyticsMetrics(registry);
  const reportCache = <T>(module: string, onLookup?: (result: 'hit' | 'miss' | 'error') => void) =>
    new ReportCache<T>({
      redis,
      ttlS: config.analyticsCacheTtlS,
      logger: logger.child({ module }),
      onLookup,
    });
  const performance = new PerformanceService({
    store: reports,
    cache: reportCache('analytics', analyticsMetrics.onCache),
    keys,
    config,
    metrics: analyticsMetrics,
  });
  const fleet = new FleetService({ store: reports, cache: reportCache('fleet'), keys, config });
  let closing = false;

  const routes: AnyRoute[] = [
    ...ingestRoutes({ ingestService, config }),
    ...mappingRoutes({
      mappingStore: new MappingStore(db),
      validator,
      logger: logger.child({ module: 'mapping' }),
    }),
    ...statusRoutes({
      liveState,
      statusStore: new StatusStore(db),
      logger: logger.child({ module: 'status' }),
    }),
    ...analyticsRoutes({ performance, fleet, config }),
    ...healthRoutes({
      checks: {
        postgres: () => db.raw('SELECT 1'),
        redis: () => redis.ping(),
        ...readinessChecks,
      },
      // Ingest needs Redis only: it keeps accepting while PostgreSQL is down.
      parts: {
        ingest: {
          checks: ['redis'],
          summary: 'What ingest needs (Redis) answers; for load balancers in front of ingest',
        },
      },
      isShuttingDown: () => closing,
    }),
    metricsRoute(registry),
  ];

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestId);
  app.use(createHttpMetrics(registry));
  app.use(securityHeaders);
  app.use(createDocsRouter(buildOpenApiDocument(routes, API_INFO)));
  app.use(
    mountRoutes(routes, {
      authorize: createAuthorize({
        config,
        redis,
        rateLimitKey: keys.rateLimit,
        logger: logger.child({ module: 'auth' }),
      }),
    }),
  );
  app.use(notFoundHandler);
  app.use(createErrorHandler(logger.child({ module: 'errors' })));

  return {
    app,
    routes,
    ingestService,
    admission,
    registry,
    async close() {
      closing = true;
      await ingest.close();
    },
  };
}
