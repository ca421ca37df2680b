import type { Express } from 'express';
import type { Registry } from 'prom-client';
import type { Config } from '../config';
import { healthRoutes } from '../health';
import { createServiceApp } from '../http/service-app';
import type { Logger } from '../logger';
import { createRegistry, metricsRoute } from '../metrics';
import type { IngestQueues } from '../queue/ingest-queue';
import { ingestReadiness, type RedisClient } from '../redis';
import { createIngestPipeline } from '../telemetry/ingest-pipeline';
import { startMqttIntake, type MqttIntake } from './mqtt-intake';

export interface MqttService {
  intake: MqttIntake;
  /** `/health/live`, `/health/ready` (Redis and the broker) and `/metrics`; never listens. */
  healthApp: Express;
  registry: Registry;
  /**
   * Stops taking messages, stores and acknowledges those in hand, then stops the pipeline;
   * `endSession` ends the broker session too (see MqttIntake.close).
   */
  close(options?: { endSession?: boolean }): Promise<void>;
}

/**
 * The MQTT process (`npm run start:mqtt`): the ingest pipeline the API uses, fed by the MQTT
 * intake instead of HTTP. It needs Redis and the broker, never PostgreSQL.
 */
export function createMqttService({
  config,
  redis,
  queues,
  logger,
  registry = createRegistry('mqtt'),
  collectOnly = false,
}: {
  config: Config & { mqttUrl: string };
  /** A `command` connection (see src/redis.ts); the queues may share it. */
  redis: RedisClient;
  queues: IngestQueues;
  logger: Logger;
  registry?: Registry;
  /** Only what the session queued already (AckAfterStoreOptions.collectOnly: mqtt:retire). */
  collectOnly?: boolean;
}): MqttService {
  const ingest = createIngestPipeline({ config, redis, queues, logger, registry });
  const intake = startMqttIntake({
    config,
    role: 'mqtt',
    collectOnly,
    ingestService: ingest.ingestService,
    redis,
    keys: ingest.keys,
    registry,
    logger,
  });
  let closing = false;
  const healthApp = createServiceApp(
    [
      ...healthRoutes({
        checks: { ...ingestReadiness(redis, config), mqtt: () => intake.ready() },
        isShuttingDown: () => closing,
      }),
      metricsRoute(registry),
    ],
    logger,
  );
  return {
    intake,
    healthApp,
    registry,
    async close(options) {
      closing = true;
      await intake.close(options);
      await ingest.close();
    },
  };
}
