import type { Express } from 'express';
import { releaseName } from './code-fingerprint';
import type { Knex } from 'knex';
import { createSchemaCheck } from '../db/schema-check';
import { ingestReadiness, type RedisClient } from './redis';
import type { Registry } from 'prom-client';
import { analyticsRoutes } from './analytics/analytics-routes';
import { EnergyReportStore } from './analytics/energy-report-store';
import { FleetService } from './analytics/fleet-service';
import { PerformanceService } from './analytics/performance-service';
import { ReportCache } from './reports/report-cache';
import { createAuthorize } from './auth/authorize';
import type { Config } from './config';
import { createDashboardRouter, dashboardAssetsDir } from './dashboard/dashboard-router';
import { settingsRoutes } from './telemetry/settings-routes';
import { statusRoutes } from './telemetry/status-routes';
import { healthRoutes, type ReadinessChecks } from './health';
import { createErrorHandler, notFoundHandler, securityHeaders } from './http/error-handler';
import { unknownVehicle } from './errors';
import { mountRoutes } from './http/mount-routes';
import { createExpress } from './http/http-server';
import { buildOpenApiDocument } from './http/openapi';
import { createDocsRouter } from './http/docs-router';
import { requestId } from './http/request-id';
import type { AnyRoute } from './http/route-contract';
import type { Logger } from './logger';
import { mappingRoutes } from './mapping/mapping-routes';
import { sessionRoutes } from './sessions/session-routes';
import { SessionService } from './sessions/session-service';
import { SessionStore } from './sessions/session-store';
import { createOcppIntake } from './ocpp/ocpp-intake';
import type { OcppEndpoint } from './ocpp/ocpp-endpoint';
import {
  createAnalyticsMetrics,
  createHttpMetrics,
  createRegistry,
  metricsRoute,
  registerPoolMetrics,
  registerQueueMetrics,
} from './metrics';
import type { IngestQueues } from './queue/ingest-queue';
import { readQueueStats } from './queue/queue-stats';
import { DeviceSettingsStore } from './stores/device-settings-store';
import { MappingStore } from './stores/mapping-store';
import { StatusStore } from './stores/status-store';
import type { IngestAdmission } from './telemetry/admission';
import { createIngestPipeline, type IngestPipeline } from './telemetry/ingest-pipeline';
import { ingestRoutes } from './telemetry/ingest-routes';
import type { IngestService } from './telemetry/ingest-service';

export interface AppDeps {
  config: Config;
  db: Knex;
  /** Generic plans for the hot statements over history (createGenericPlanDb); null: none. */
  genericDb?: Knex | null;
  /** A `command` connection (see src/redis.ts); the queues may share it. */
  redis: RedisClient;
  queues: IngestQueues;
  logger: Logger;
  /** Where its metrics go; a new registry when not given. */
  registry?: Registry;
  /** The ingest pipeline when the process shares it with another intake (MQTT); else built here. */
  ingest?: IngestPipeline;
  /** Readiness checks beyond PostgreSQL and Redis (e.g. the MQTT broker connection). */
  readinessChecks?: ReadinessChecks;
}

/** Enough reports at once to open and warm every connection of both pools, three times over. */
const REPORT_WARM_UP = { waves: 3, concurrency: 16 };

export interface Api {
  app: Express;
  /** Every route the API serves, as declared (the API document is built from them). */
  routes: AnyRoute[];
  ingestService: IngestService;
  admission: IngestAdmission;
  /** OCPP charge points: attach it to the HTTP server that listens (`ocpp.attach(server)`). */
  ocpp: OcppEndpoint;
  registry: Registry;
  /** Warms the report path up (PerformanceService.warmUp): run before the API takes requests. */
  warmUp(): Promise<void>;
  /** Stops the ingest pipeline's background work and waits for accepted readings to be stored. */
  close(): Promise<void>;
}

export const API_INFO = {
  title: 'Energy Ingestion Engine',
  version: releaseName(),
  description:
    'Telemetry for EV fleets: smart meters (AC) and vehicles (DC). A 202 means the reading is durably queued and will reach PostgreSQL.',
};

/** Builds the API: stores, services and routes, wired from the given connections. Never listens. */
export function createApp({
  config,
  db,
  genericDb = null,
  redis,
  queues,
  logger,
  registry = createRegistry('api'),
  ingest = createIngestPipeline({ config, redis, queues, logger, registry }),
  readinessChecks = {},
}: AppDeps): Api {
  const { keys, liveState, validator, admission, ingestService } = ingest;
  registerPoolMetrics(registry, db);
  // Every shard in use, as admission counts them: also those of processes with more shards.
  registerQueueMetrics(registry, async () => readQueueStats(await queues.inUse(), redis), config);
  const settings = new DeviceSettingsStore(db, config);
  const reports = new EnergyReportStore(db, {
    preparedStatements: config.dbPreparedStatements === 'on',
    genericDb,
  });
  const analyticsMetrics = createAnalyticsMetrics(registry);
  const reportCache = <T>(report: string) =>
    new ReportCache<T>({
      redis,
      ttlS: config.analyticsCacheTtlS,
      localBudgetChars: config.analyticsCacheLocalKb * 1024,
      logger: logger.child({ module: `${report}-cache` }),
      onLookup: analyticsMetrics.cacheLookups(report),
    });
  // A vehicle with nothing stored, explained by its live state: readings accepted but not stored
  // yet, or none sent (not known when Redis fails to answer).
  const unknownVehicleError = async (vehicleId: string) =>
    unknownVehicle(
      vehicleId,
      await liveState.get('vehicle', vehicleId).then(
        (state) => state !== null,
        () => null,
      ),
    );
  const sessions = new SessionService({
    store: new SessionStore(db, config, genericDb),
    cache: reportCache('sessions'),
    keys,
    config,
    vehicleExists: (vehicleId) => reports.vehicleExists(vehicleId),
    unknownVehicleError,
  });
  const performance = new PerformanceService({
    store: reports,
    sessions: { summary: (vehicleId, from, to) => sessions.summary(vehicleId, from, to) },
    cache: reportCache('performance'),
    unknownVehicleError,
    keys,
    config,
    metrics: analyticsMetrics,
  });
  const fleet = new FleetService({
    store: reports,
    cache: reportCache('fleet'),
    keys,
    config,
    sessions,
  });
  const mappingStore = new MappingStore(db);
  const statusStore = new StatusStore(db);
  const ocpp = createOcppIntake({
    config,
    db,
    redis,
    keys,
    ingestService,
    validator,
    liveState,
    statusStore,
    mappingStore,
    settings,
    registry,
    logger: logger.child({ module: 'ocpp' }),
  });
  let closing = false;

  const ingestChecks = ingestReadiness(redis, config);
  const schemaCheck = createSchemaCheck(db);
  const routes: AnyRoute[] = [
    ...ingestRoutes({ ingestService, config }),
    ...mappingRoutes({
      mappingStore,
      validator,
      logger: logger.child({ module: 'mapping' }),
    }),
    ...statusRoutes({
      liveState,
      statusStore,
      settings,
      config,
      logger: logger.child({ module: 'status' }),
      extensions: ocpp.statusExtensions,
    }),
    ...settingsRoutes({ settings, config, connectorOf: ocpp.connectorOf }),
    ...analyticsRoutes({ performance, fleet, config }),
    ...sessionRoutes({ sessions, config }),
    ...ocpp.routes,
    ...healthRoutes({
      checks: {
        postgres: schemaCheck,
        ...ingestChecks,
        ...readinessChecks,
      },
      // Ingest needs Redis only: it keeps accepting while PostgreSQL is down.
      parts: {
        ingest: {
          checks: Object.keys(ingestChecks),
          summary: 'What ingest needs (Redis) answers; for load balancers in front of ingest',
        },
      },
      isShuttingDown: () => closing,
    }),
    metricsRoute(registry),
  ];

  const app = createExpress();
  app.use(requestId);
  app.use(createHttpMetrics(registry));
  app.use(securityHeaders);
  // The API's routes first: the requests that must be fast never walk the docs' routes.
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
  app.use(createDocsRouter(buildOpenApiDocument(routes, API_INFO)));
  app.use(createDashboardRouter({ assetsDir: dashboardAssetsDir() }));
  app.use(notFoundHandler);
  app.use(
    createErrorHandler(logger.child({ module: 'errors' }), {
      schemaBehind: schemaCheck.behind,
    }),
  );

  return {
    app,
    routes,
    ingestService,
    admission,
    ocpp: ocpp.endpoint,
    registry,
    warmUp: () => performance.warmUp(REPORT_WARM_UP),
    async close() {
      closing = true;
      // Charge points' calls in progress are answered once their readings are stored.
      await ocpp.endpoint.close();
      await ingest.close();
    },
  };
}
