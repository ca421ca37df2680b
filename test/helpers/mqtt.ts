import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import type { Config } from '../../src/config';
import { createMqttService, type MqttService } from '../../src/mqtt/mqtt-service';
import { IngestQueues } from '../../src/queue/ingest-queue';
import { createRedis, waitForRedis } from '../../src/redis';
import { createRedisKeys } from '../../src/redis-keys';
import type { TestContext } from './test-env';

/** The broker the tests use unless they start their own: TEST_MQTT_URL, else this machine's. */
export const testBrokerUrl = () => process.env.TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

export interface TestMqtt {
  service: MqttService;
  config: Config & { mqttUrl: string };
  /** Stops the intake (its session stays on the broker, as in production). */
  close(): Promise<void>;
}

/**
 * The MQTT process's service in this process, on the test context's prefix (its shared
 * subscription group) unless `overrides` say otherwise; with a `redisUrl` override it gets Redis
 * connections of its own.
 */
export async function startTestMqtt(
  ctx: TestContext,
  overrides: Partial<Config> & { mqttClientId: string },
  { collectOnly = false }: { collectOnly?: boolean } = {},
): Promise<TestMqtt> {
  const config = {
    ...ctx.config,
    mqttUrl: testBrokerUrl(),
    ...overrides,
  } as Config & { mqttUrl: string };
  const ownRedis = config.redisUrl !== ctx.config.redisUrl;
  const redis = ownRedis ? createRedis(config, 'command') : ctx.redis;
  if (ownRedis) await waitForRedis(redis, 3000);
  const queues = new IngestQueues({
    connection: redis,
    keys: createRedisKeys(config.redisPrefix),
    config,
  });
  const service = createMqttService({ config, redis, queues, logger: ctx.logger, collectOnly });
  return {
    service,
    config,
    async close() {
      await service.close();
      await queues.close();
      if (ownRedis) redis.disconnect();
    },
  };
}

/** Removes a client id's session from the broker (a clean start that expires at once). */
export async function purgeSession(url: string, clientId: string): Promise<void> {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 5,
    clientId,
    clean: true,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 0 },
  });
  await client.endAsync();
}

/** An mqtt.js publisher (MQTT 5, QoS 1 by the caller's choice). */
export function connectPublisher(url: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 });
}

const execFileAsync = promisify(execFile);

/** Publishes with the Mosquitto command-line client at QoS 1; `file` sends a file's bytes as they are. */
export async function mosquittoPub(
  url: string,
  topic: string,
  payload: { message: string } | { file: string },
): Promise<string> {
  const { hostname, port } = new URL(url);
  const body = 'message' in payload ? ['-m', payload.message] : ['-f', payload.file];
  const { stdout, stderr } = await execFileAsync('mosquitto_pub', [
    '-h',
    hostname,
    '-p',
    port || '1883',
    '-V',
    'mqttv5',
    '-q',
    '1',
    '-d',
    '-t',
    topic,
    ...body,
  ]);
  return stdout + stderr;
}

/** The value of a sample in a Prometheus text exposition (NaN when absent). */
export function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number {
  let total = NaN;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) {
      total = (Number.isNaN(total) ? 0 : total) + Number(match[3]);
    }
  }
  return total;
}
