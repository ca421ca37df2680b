import { Queue, Worker, type Job } from 'bullmq';
import express, { type Express } from 'express';
import type { Knex } from 'knex';
import type { Redis } from 'ioredis';
import type { Config } from '../src/config';
import { healthRoutes } from '../src/health';
import { mountRoutes } from '../src/http/mount-routes';
import type { Logger } from '../src/logger';
import { FLUSH_BACKOFF_TYPE } from '../src/queue/ingest-queue';
import { INGEST_QUEUE_NAME, createRedisKeys } from '../src/redis-keys';
import { HistoryStore } from '../src/stores/history-store';
import { StatusStore } from '../src/stores/status-store';
import type { IngestJobData } from '../src/queue/ingest-queue';
import type { Registry } from 'prom-client';
import {
  createDatabaseOutageGauge,
  createFlushMetrics,
  createRegistry,
  metricsRoute,
  registerPoolMetrics,
  registerQueueMetrics,
} from '../src/metrics';
import { oldestUnflushedAcceptedAt, readQueueStats } from '../src/queue/queue-stats';
import { startBacklogReconciler } from './backlog-reconciler';
import { withTimeout } from '../src/with-timeout';
import { DatabaseOutageGuard } from './database-outage';
import { createFlushProcessor, type FlushResult } from './flush-processor';
import { PartitionMaintainer } from './partition-maintainer';
import { RollupRoller } from './rollup-roller';
import { SessionBuilder } from './session-builder';
import { SessionStore } from '../src/sessions/session-store';
import { RollupStore } from '../src/stores/rollup-store';

/** Backoff between attempts: doubles from FLUSH_BACKOFF_MS, capped at a minute. */
export function cappedExponentialBackoff(attemptsMade: number, baseMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), 60_000);
}

export interface FlusherDeps {
  config: Config;
  db: Knex;
  /** Commands (backlog, dead letters, durability checks). */
  redis: Redis;
  /** The worker's own blocking connection (`createRedis(url, 'blocking')`). */
  workerConnection: Redis;
  logger: Logger;
  /** Where its metrics go; a new registry when not given. */
  registry?: Registry;
}

export interface Flusher {
  worker: Worker<IngestJobData, FlushResult>;
  partitions: PartitionMaintainer;
  rollups: RollupRoller;
  sessions: SessionBuilder;
  healthApp: Express;
  registry: Registry;
  /** Epoch ms at which the oldest reading not yet in PostgreSQL was accepted, or null. */
  oldestUnflushedAcceptedAt(): Promise<number | null>;
  /** Creates today's partitions, then takes jobs and rolls up closed hours in the background. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** A probe of a server that hangs rather than refuses gives up this early (its query is cut later). */
const PROBE_TIMEOUT_MS = 5000;

/** Builds the flusher: the BullMQ worker writing PostgreSQL, its partition upkeep and health app. */
export function createFlusher(deps: FlusherDeps): Flusher {
  const { config, db, redis, logger } = deps;
  const keys = createRedisKeys(config.redisPrefix);
  const registry = deps.registry ?? createRegistry('flusher');
  const partitions = new PartitionMaintainer({
    db,
    config,
    logger: logger.child({ module: 'partitions' }),
  });
  const rollups = new RollupRoller({
    store: new RollupStore(db),
    logger: logger.child({ module: 'rollups' }),
  });
  const sessions = new SessionBuilder({
    store: new SessionStore(db, config),
    horizon: () => rollups.closedBefore(),
    config,
    logger: logger.child({ module: 'sessions' }),
  });
  // Pauses the worker (defined below) while PostgreSQL is down; probes at the retry base interval.
  const outage = new DatabaseOutageGuard({
    probe: () => withTimeout(db.raw('SELECT 1'), PROBE_TIMEOUT_MS, 'PostgreSQL probe'),
    logger: logger.child({ module: 'outage' }),
    probeIntervalMs: Math.min(config.flushBackoffMs, 1000),
    pause: () => worker.pause(true),
    resume: () => worker.resume(),
    onChange: createDatabaseOutageGauge(registry),
  });
  const processor = createFlushProcessor({
    db,
    redis,
    keys,
    historyStore: new HistoryStore(db, {
      preparedStatements: config.dbPreparedStatements === 'on',
    }),
    statusStore: new StatusStore(db),
    partitions,
    logger: logger.child({ module: 'flush' }),
    metrics: createFlushMetrics(registry),
    onDatabaseUnavailable: (err) => outage.report(err),
  });
  const lockDuration = config.flusherLockMs;
  const worker = new Worker<IngestJobData, FlushResult>(INGEST_QUEUE_NAME, processor, {
    connection: deps.workerConnection,
    prefix: keys.queuePrefix,
    concurrency: config.flusherConcurrency,
    autorun: false,
    lockDuration,
    stalledInterval: Math.max(1000, Math.floor(lockDuration / 2)),
    // A job whose flusher died is run again; only after many such crashes is it parked as failed.
    maxStalledCount: 10,
    settings: {
      backoffStrategy: (attemptsMade: number, type?: string) =>
        type === FLUSH_BACKOFF_TYPE
          ? cappedExponentialBackoff(attemptsMade, config.flushBackoffMs)
          : 1000,
    },
  });
  worker.on('error', (err) => logger.error({ err }, 'flusher worker error'));
  worker.on('failed', (job: Job<IngestJobData> | undefined, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      logger.error(
        { err, jobId: job.id, readings: job.data.readings.length },
        'job kept as failed after its last attempt: re-drive it with `npm run redrive`',
      );
    }
  });

  let closing = false;
  const healthApp = express();
  healthApp.disable('x-powered-by');
  healthApp.use(
    mountRoutes([
      ...healthRoutes({
        checks: {
          postgres: () => db.raw('SELECT 1'),
          redis: () => redis.ping(),
          worker: async () => {
            if (!worker.isRunning()) throw new Error('worker is not running');
          },
        },
        isShuttingDown: () => closing,
      }),
      metricsRoute(registry),
    ]),
  );

  // A reader on the command connection, for the lag figure (the worker's own connection blocks).
  const queue = new Queue<IngestJobData>(INGEST_QUEUE_NAME, {
    connection: redis,
    prefix: keys.queuePrefix,
  });
  queue.on('error', () => undefined);
  registerPoolMetrics(registry, db);
  registerQueueMetrics(registry, () => readQueueStats(queue, redis, keys));
  const stopReconciler = startBacklogReconciler({
    redis,
    keys,
    logger: logger.child({ module: 'backlog' }),
  });

  return {
    worker,
    partitions,
    rollups,
    sessions,
    healthApp,
    registry,
    oldestUnflushedAcceptedAt: () => oldestUnflushedAcceptedAt(queue),
    async start() {
      await partitions.start();
      void worker.run();
      await worker.waitUntilReady();
      rollups.start();
      sessions.start();
    },
    async close() {
      closing = true;
      stopReconciler();
      partitions.stop();
      outage.stop();
      await rollups.stop();
      await sessions.stop();
      await worker.close();
      await queue.close();
    },
  };
}
