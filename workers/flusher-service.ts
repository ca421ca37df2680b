import { setTimeout as sleep } from 'node:timers/promises';
import type { Express } from 'express';
import type { Knex } from 'knex';
import { loginAnew } from '../db/fresh-login';
import { createSchemaCheck } from '../db/schema-check';
import { redisReadiness, type RedisClient } from '../src/redis';
import type { Config } from '../src/config';
import { healthRoutes } from '../src/health';
import { createServiceApp } from '../src/http/service-app';
import type { Logger } from '../src/logger';
import { shardsInUse } from '../src/queue/ingest-queue';
import { createRedisKeys } from '../src/redis-keys';
import { HistoryStore } from '../src/stores/history-store';
import type { Registry } from 'prom-client';
import {
  createDatabaseOutageGauge,
  createFlushMetrics,
  createQueueLossMetrics,
  createRegistry,
  metricsRoute,
  registerPoolMetrics,
  registerQueueMetrics,
} from '../src/metrics';
import { oldestUnflushedAcceptedAt, readQueueStats } from '../src/queue/queue-stats';
import { withTimeout } from '../src/with-timeout';
import { DatabaseOutageGuard } from './database-outage';
import { DeadRowVacuum } from './dead-row-vacuum';
import { createFlushProcessor } from './flush-processor';
import { PartitionMaintainer } from './partition-maintainer';
import { RollupRoller } from './rollup-roller';
import { SessionBuilder } from './session-builder';
import { SessionStore } from '../src/sessions/session-store';
import { RollupStore } from '../src/stores/rollup-store';
import { LiveStateStore } from '../src/telemetry/live-state';
import { ShardWorkers } from './shard-workers';

export { cappedExponentialBackoff } from './shard-workers';

/** How often a flusher looks for queue shards another process started using. */
const SHARD_CHECK_INTERVAL_MS = 30_000;
/** How long a starting flusher waits for Redis to say which shards to drain; how often it asks. */
const STARTUP_WAIT_MS = 30_000;
const STARTUP_RETRY_MS = 500;

export interface FlusherDeps {
  config: Config;
  db: Knex;
  /**
   * Where the session builder plans its statements once per connection (createGenericPlanDb):
   * planning its per-vehicle statement cost more than running it. Null: planned on every call.
   */
  genericDb?: Knex | null;
  /** Commands (backlog, dead letters, durability checks). */
  redis: RedisClient;
  /** A `blocking` connection, which the workers duplicate for their blocking calls. */
  workerConnection: RedisClient;
  logger: Logger;
  /** Where its metrics go; a new registry when not given. */
  registry?: Registry;
}

export interface Flusher {
  workers: ShardWorkers;
  partitions: PartitionMaintainer;
  rollups: RollupRoller;
  sessions: SessionBuilder;
  vacuum: DeadRowVacuum;
  healthApp: Express;
  registry: Registry;
  /** Epoch ms at which the oldest reading not yet in PostgreSQL was accepted, or null. */
  oldestUnflushedAcceptedAt(): Promise<number | null>;
  /**
   * Creates today's partitions, then takes jobs from every queue shard in use, and rolls up
   * closed hours and builds sessions in the background.
   */
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
    liveState: new LiveStateStore(redis, keys),
    config,
    logger: logger.child({ module: 'partitions' }),
  });
  const rollups = new RollupRoller({
    store: new RollupStore(db),
    logger: logger.child({ module: 'rollups' }),
  });
  const sessions = new SessionBuilder({
    store: new SessionStore(db, config, deps.genericDb ?? null),
    horizon: () => rollups.closedBefore(),
    config,
    logger: logger.child({ module: 'sessions' }),
  });
  const vacuum = new DeadRowVacuum({ db, config, logger: logger.child({ module: 'vacuum' }) });
  const schemaCheck = createSchemaCheck(db);
  // Resolves once PostgreSQL lets a new connection in and has its migrations applied (started
  // during an outage, the flusher could not check them at start).
  const probePostgres = () =>
    withTimeout(
      loginAnew(config.databaseUrl, PROBE_TIMEOUT_MS).then(() => schemaCheck()),
      PROBE_TIMEOUT_MS,
      'PostgreSQL probe',
    );
  // Pauses the worker (defined below) while PostgreSQL is down; probes at the retry base interval.
  const outage: DatabaseOutageGuard = new DatabaseOutageGuard({
    probe: probePostgres,
    logger: logger.child({ module: 'outage' }),
    probeIntervalMs: Math.min(config.flushBackoffMs, 1000),
    pause: () => workers.pause(),
    resume: () => workers.resume(),
    onChange: createDatabaseOutageGauge(registry),
  });
  const historyStore = new HistoryStore(db, {
    preparedStatements: config.dbPreparedStatements === 'on',
  });
  const flushMetrics = createFlushMetrics(registry);
  const workers: ShardWorkers = new ShardWorkers({
    redis,
    workerConnection: deps.workerConnection,
    process: (shard) =>
      createFlushProcessor({
        db,
        redis,
        shard,
        deadLetters: { list: keys.deadLetters, marked: keys.deadLettered },
        historyStore,
        partitions,
        config,
        logger: logger.child({ module: 'flush', shard: shard.shard }),
        metrics: flushMetrics,
        onDatabaseUnavailable: (err) => outage.report(err),
        schemaBehind: schemaCheck.behind,
      }),
    config,
    logger,
    onQueueLoss: createQueueLossMetrics(registry),
  });
  const useShardsInUse = async () =>
    workers.ensure(await shardsInUse(redis, keys, config.queueShards));
  /**
   * The shards to drain, read once Redis answers them: a cluster that is still forming or failing
   * over refuses (CLUSTERDOWN) for a few seconds, which must not stop the flusher from starting.
   */
  const firstShards = async () => {
    const deadline = Date.now() + STARTUP_WAIT_MS;
    for (;;) {
      try {
        return await useShardsInUse();
      } catch (err) {
        if (Date.now() >= deadline) throw err;
        logger.warn({ err }, 'queue shards not readable yet; trying again');
        await sleep(STARTUP_RETRY_MS);
      }
    }
  };
  let closing = false;
  const healthApp = createServiceApp(
    [
      ...healthRoutes({
        checks: {
          postgres: schemaCheck,
          redis: redisReadiness(redis),
          // The workers' own connection too: its commands alone tell it from a demoted master.
          workerRedis: redisReadiness(deps.workerConnection),
          worker: async () => {
            if (!workers.isRunning()) throw new Error('a queue worker is not running');
          },
        },
        isShuttingDown: () => closing,
      }),
      metricsRoute(registry),
    ],
    logger,
  );

  registerPoolMetrics(registry, db);
  registerQueueMetrics(registry, () => readQueueStats(workers.readers(), redis), config);
  let shardTimer: NodeJS.Timeout | null = null;

  return {
    workers,
    partitions,
    rollups,
    sessions,
    vacuum,
    healthApp,
    registry,
    oldestUnflushedAcceptedAt: () => oldestUnflushedAcceptedAt(redis, workers.readers()),
    async start() {
      await firstShards();
      try {
        await probePostgres();
      } catch (err) {
        outage.report(err); // start paused: the jobs wait, untouched, until it answers
      }
      await partitions.start();
      await workers.start();
      // A process raising QUEUE_SHARDS later gets its new shards drained here too.
      shardTimer = setInterval(() => {
        useShardsInUse().catch((err: unknown) => logger.debug({ err }, 'shard check failed'));
      }, SHARD_CHECK_INTERVAL_MS);
      shardTimer.unref();
      rollups.start();
      sessions.start();
      vacuum.start();
    },
    async close() {
      closing = true;
      if (shardTimer) clearInterval(shardTimer);
      partitions.stop();
      outage.stop();
      await rollups.stop();
      await sessions.stop();
      await vacuum.stop();
      await workers.close();
    },
  };
}
