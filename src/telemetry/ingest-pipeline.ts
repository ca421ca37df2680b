import type { Registry } from 'prom-client';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { createIngestMetrics } from '../metrics';
import { shardsInUse, shardsSharingMasters, type IngestQueues } from '../queue/ingest-queue';
import { backlogReadings } from '../queue/queue-stats';
import { checkReplicas, ReplicasLacking, type RedisClient } from '../redis';
import type { RedisKeys } from '../redis-keys';
import { connectorMetersAmong } from '../ocpp/charge-point-state';
import { IngestAdmission } from './admission';
import { createBatchStore, IngestService } from './ingest-service';
import { LiveStateStore } from './live-state';
import { createReadingValidator, type ReadingValidator } from './validation';

/** Everything between an intake (HTTP, OCPP, MQTT) and the queue, built once per process. */
export interface IngestPipeline {
  keys: RedisKeys;
  validator: ReadingValidator;
  liveState: LiveStateStore;
  admission: IngestAdmission;
  ingestService: IngestService;
  /** Stops the admission sampler and waits until every accepted reading is stored. */
  close(): Promise<void>;
}

/**
 * REDIS_WAIT_REPLICAS that no master meets at the start refuses every reading until one does:
 * said at once, as readiness says it, not only by the first 503s.
 */
export function warnIfReplicasLack(redis: RedisClient, wanted: number, logger: Logger): void {
  if (wanted === 0) return;
  checkReplicas(redis, wanted).catch((err: unknown) => {
    if (err instanceof ReplicasLacking) {
      logger.warn(
        `${err.message}: every reading is refused (503 redis_not_replicated) until one has; add replicas, or lower REDIS_WAIT_REPLICAS`,
      );
    } else {
      // A slow INFO under load is no missing replica: said as what it is.
      logger.warn(
        { err },
        'could not count the Redis replicas at start (REDIS_WAIT_REPLICAS): /health/ready says whether readings are refused for lack of them',
      );
    }
  });
}

/**
 * Validation, backpressure (admission), group commit into the queue and live state: the same for
 * every intake, so the API and the MQTT process store readings with one set of rules.
 */
export function createIngestPipeline({
  config,
  redis,
  queues,
  logger,
  registry,
}: {
  config: Config;
  /** A `command` connection (see src/redis.ts); the queues may share it. */
  redis: RedisClient;
  queues: IngestQueues;
  logger: Logger;
  registry: Registry;
}): IngestPipeline {
  const { keys } = queues;
  const liveState = new LiveStateStore(redis, keys);
  const validator = createReadingValidator({
    maxClockSkewS: config.maxClockSkewS,
    retentionDays: config.retentionDays,
  });
  const admission = new IngestAdmission({
    redis,
    // Every shard in use, also those another process (or an earlier configuration) wrote to.
    backlog: async () => backlogReadings(redis, await shardsInUse(redis, keys, config.queueShards)),
    config,
    logger: logger.child({ module: 'admission' }),
  });
  const ingestService = new IngestService({
    validator,
    admission,
    storeBatches: createBatchStore({
      queues,
      redis,
      liveState,
      logger: logger.child({ module: 'ingest' }),
      config,
    }),
    config,
    logger: logger.child({ module: 'ingest' }),
    metrics: createIngestMetrics(registry),
    connectorMeters: (meterIds) => connectorMetersAmong(redis, keys, meterIds),
  });
  const crowded = shardsSharingMasters(
    redis,
    queues.shards.map((s) => s.keys),
  );
  if (crowded) logger.warn(crowded);
  warnIfReplicasLack(redis, config.redisWaitReplicas, logger);
  admission.start();
  return {
    keys,
    validator,
    liveState,
    admission,
    ingestService,
    async close() {
      admission.stop();
      await ingestService.drain();
    },
  };
}
