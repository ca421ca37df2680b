/**
 * The MQTT intake: consumes `$share/{REDIS_PREFIX}/{prefix}/#` at QoS 1 and stores every message
 * through the same IngestService as HTTP, acknowledging it only once stored (MqttMessageHandler
 * decides each PUBACK). While storage refuses, messages stay unacknowledged and the broker, at
 * Receive Maximum unacknowledged messages, stops sending.
 */
import os from 'node:os';
import type { RedisClient } from '../redis';
import type { Registry } from 'prom-client';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { createMqttMetrics, type MqttMetrics } from '../metrics';
import type { RedisKeys } from '../redis-keys';
import type { IngestService } from '../telemetry/ingest-service';
import {
  REASON_SUCCESS,
  startAckAfterStoreSubscriber,
  type AckAfterStoreSubscriber,
  type DeliveredMessage,
  type PubackReason,
} from './ack-after-store';
import { watchBrokerDrops } from './broker-drops';
import { ConcurrencyLimit } from '../concurrency-limit';
import { MqttMessageHandler } from './message-handler';
import { RejectLog } from './reject-log';
import { createMqttTopics } from './topics';

export type MqttRole = 'api' | 'mqtt';

export type MqttConfig = Pick<
  Config,
  | 'mqttUrl'
  | 'mqttTopicPrefix'
  | 'mqttUsername'
  | 'mqttPassword'
  | 'mqttClientId'
  | 'mqttReceiveMaximum'
  | 'mqttSessionExpiryS'
  | 'mqttSharedSubscription'
  | 'redisPrefix'
  | 'bodyLimitBytes'
>;

/**
 * MQTT_CLIENT_ID, else `{REDIS_PREFIX}-{host name}-{role}`: stable across restarts of the same
 * process on the same host, which is what lets the broker hand it back its session (and the
 * messages queued or unacknowledged in it). Two processes must never share one.
 */
export function mqttClientId(config: MqttConfig, role: MqttRole, hostname = os.hostname()): string {
  const host = hostname.replace(/[^A-Za-z0-9_.-]/g, '-');
  return config.mqttClientId || `${config.redisPrefix}-${host}-${role}`;
}

export interface MqttIntake {
  readonly clientId: string;
  readonly subscription: string;
  /**
   * Resolves when connected and subscribed (collecting only: connected); rejects naming the broker
   * otherwise (readiness).
   */
  ready(): Promise<void>;
  readonly unacked: number;
  /** Messages received since the start. */
  readonly delivered: number;
  /** Whether the broker held a session for the client id at the first connection (null: none yet). */
  readonly sessionFound: boolean | null;
  /**
   * Stops taking messages, acknowledges those being stored, disconnects; the session stays,
   * unless `endSession` (see AckAfterStoreSubscriber.close).
   */
  close(options?: { endSession?: boolean }): Promise<void>;
}

const CLOSE_TIMEOUT_MS = 5000;

/**
 * A message handled once one of `limit`'s slots is free. QoS 0 has no redelivery to wait for:
 * while storage refuses and the slots are taken (by QoS 1 messages held until it takes them), it
 * is dropped at once, and one whose connection went while it waited for a slot is dropped too;
 * both counted (qos0_not_stored), where before they were lost unseen.
 */
function handleWithin(
  limit: ConcurrencyLimit,
  messages: MqttMessageHandler,
  message: DeliveredMessage,
): Promise<PubackReason> {
  const run = () => limit.run(message.signal, () => messages.handle(message));
  if (message.qos !== 0) return run();
  if (limit.full && messages.refusing) return Promise.resolve(messages.dropped());
  return run().catch((err: unknown) => {
    if ((err as Error)?.name === 'AbortError') return messages.dropped();
    throw err;
  });
}

export function startMqttIntake({
  config,
  role,
  collectOnly = false,
  ingestService,
  redis,
  keys,
  registry,
  logger,
}: {
  config: MqttConfig & { mqttUrl: string };
  role: MqttRole;
  /** Only what the session queued already (AckAfterStoreOptions.collectOnly). */
  collectOnly?: boolean;
  ingestService: IngestService;
  /** A `command` connection: the rejects list is written through it. */
  redis: RedisClient;
  keys: RedisKeys;
  registry: Registry;
  logger: Logger;
}): MqttIntake {
  const log = logger.child({ module: 'mqtt' });
  const topics = createMqttTopics(config.mqttTopicPrefix, {
    group: config.redisPrefix,
    shared: config.mqttSharedSubscription === 'on',
  });
  const clientId = mqttClientId(config, role);
  let subscriber: AckAfterStoreSubscriber | null = null;
  const metrics: MqttMetrics = createMqttMetrics(registry, {
    unacked: () => subscriber?.unacked ?? 0,
  });
  const messages = new MqttMessageHandler({
    topics,
    ingestService,
    rejects: new RejectLog(redis, keys.mqttRejects),
    metrics,
    limitBytes: config.bodyLimitBytes,
    log,
  });
  // As many at once as the broker should send: beyond that, messages wait undecoded. Receive
  // Maximum alone does not bound this: Mosquitto 2.0.11 sends far beyond it once PUBACKs flow
  // while a backlog is queued (tens of thousands of messages measured), and a parsed message
  // takes several times its payload's memory.
  const limit = new ConcurrencyLimit(config.mqttReceiveMaximum);

  subscriber = startAckAfterStoreSubscriber({
    url: config.mqttUrl,
    clientId,
    // Unset may arrive as '' (an empty user name is still a user name in CONNECT).
    username: config.mqttUsername || undefined,
    password: config.mqttPassword || undefined,
    subscription: topics.subscription,
    formerSubscription: topics.formerSubscription,
    collectOnly,
    receiveMaximum: config.mqttReceiveMaximum,
    sessionExpiryS: config.mqttSessionExpiryS,
    handle: (message) => handleWithin(limit, messages, message),
    logger: log,
    onConnection: (up) => metrics.onConnection(up),
    onAck: (reason, seconds) =>
      metrics.onAcked(reason === REASON_SUCCESS ? 'stored' : 'rejected', seconds),
    onAckDropped: () => metrics.onAckDropped(),
  });
  const started = subscriber;
  const brokerDrops = watchBrokerDrops({
    url: config.mqttUrl,
    clientId,
    username: config.mqttUsername || undefined,
    password: config.mqttPassword || undefined,
    onCount: (total) => metrics.onBrokerDropped(total),
    logger: log,
  });

  return {
    clientId,
    subscription: topics.subscription,
    async ready() {
      if (!started.ready) {
        throw new Error(
          started.client.connected
            ? 'subscribing to the MQTT broker'
            : 'not connected to the MQTT broker',
        );
      }
    },
    get unacked() {
      return started.unacked;
    },
    get delivered() {
      return started.delivered;
    },
    get sessionFound() {
      return started.sessionFound;
    },
    async close(options) {
      await Promise.all([started.close(CLOSE_TIMEOUT_MS, options), brokerDrops.close()]);
      messages.close();
    },
  };
}
