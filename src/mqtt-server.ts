/** Entry point of the MQTT intake process: `npm run start:mqtt`. */
import { ConfigError, loadConfig, warnOfMisspelledSettings, redactUrl } from './config';
import {
  exitOnStartupFailure,
  limitHeapGrowth,
  listen,
  refuseArguments,
  stopOnSignals,
} from './lifecycle';
import { surviveIoredisStrayRejections } from './redis';
import { createLogger } from './logger';
import { createMqttService } from './mqtt/mqtt-service';
import { openIngestQueues } from './queue/ingest-queue';
import { assertDependenciesReachable } from './startup-checks';
import { warnIfRedisUnsafe } from './redis-durability';

async function main(): Promise<void> {
  refuseArguments(
    process.argv.slice(2),
    "The engine's MQTT intake: stores what meters and gateways publish (needs MQTT_URL).",
  );
  let logger = createLogger({ level: 'info', name: 'mqtt' });
  try {
    const config = loadConfig(process.env);
    limitHeapGrowth(config.heapGrowingPercent);
    logger = createLogger({ level: config.logLevel, name: 'mqtt' });
    surviveIoredisStrayRejections(logger);
    warnOfMisspelledSettings(process.env, logger);
    const { mqttUrl } = config;
    if (!mqttUrl) {
      throw new ConfigError([
        'MQTT_URL is not set: the MQTT process needs a broker, e.g. MQTT_URL=mqtt://127.0.0.1:1883',
      ]);
    }
    await assertDependenciesReachable(config, {
      postgres: false,
      mqtt: true,
      acceptsReadings: true,
    });

    const { redis, queues } = await openIngestQueues(config);
    await warnIfRedisUnsafe(redis, logger);
    const service = createMqttService({ config: { ...config, mqttUrl }, redis, queues, logger });
    const server = await listen(service.healthApp, config.mqttHealthPort, 'MQTT_HEALTH_PORT');
    logger.info(
      {
        broker: redactUrl(mqttUrl),
        clientId: service.intake.clientId,
        subscription: service.intake.subscription,
        healthPort: config.mqttHealthPort,
        redis: config.redisClusterNodes || redactUrl(config.redisUrl),
      },
      'MQTT intake running',
    );

    stopOnSignals(
      async () => {
        // Order: stop taking messages, store and acknowledge those in hand, then close.
        await service.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await queues.close();
        await redis.quit().catch(() => redis.disconnect());
      },
      logger,
      config.shutdownTimeoutMs,
    );
  } catch (err) {
    exitOnStartupFailure(err, logger);
  }
}

void main();
