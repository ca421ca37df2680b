/**
 * The MQTT intake: consumes `$share/{REDIS_PREFIX}/{prefix}/#` at QoS 1 and stores every message
 * through the same IngestService as HTTP, acknowledging it only once stored:
 * - PUBACK 0x00 once every valid reading of the message is durably queued (invalid ones, if any,
 *   go to the rejects list first, as a 207 would list them);
 * - PUBACK 0x99 (payload format invalid, final) once a message with nothing to store is in the
 *   rejects list: bad input never blocks the stream;
 * - no PUBACK while storage refuses (the 503 causes): the message is retried behind a RetryGate and
 *   the broker, at Receive Maximum unacknowledged messages, stops sending.
 */
import os from 'node:os';
import type { RedisClient } from '../redis';
import type { Registry } from 'prom-client';
import type { Config } from '../config';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { createMqttMetrics, type MqttMetrics } from '../metrics';
import type { RedisKeys } from '../redis-keys';
import { noValidReadings, type IngestService, type ItemError } from '../telemetry/ingest-service';
import {
  REASON_PAYLOAD_FORMAT_INVALID,
  REASON_SUCCESS,
  startAckAfterStoreSubscriber,
  type AckAfterStoreSubscriber,
  type DeliveredMessage,
  type PubackReason,
} from './ack-after-store';
import { ConcurrencyLimit } from './concurrency-limit';
import { decodePayload } from './payload';
import { isGzip, TooManyReadings } from '../telemetry/ingest-input';
import { RejectLog } from './reject-log';
import { RetryGate, type GateTicket } from './retry-gate';
import { bindToTopic, createMqttTopics, topicKind } from './topics';

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
  /** Resolves when connected and subscribed; rejects naming the broker otherwise (readiness). */
  ready(): Promise<void>;
  readonly unacked: number;
  /** Messages received since the start. */
  readonly delivered: number;
  /** Whether the broker held a session for the client id at the first connection (null: none yet). */
  readonly sessionFound: boolean | null;
  /** Takes no new messages, only those the broker queued already (AckAfterStoreSubscriber). */
  unsubscribe(): Promise<void>;
  /**
   * Stops taking messages, acknowledges those being stored, disconnects; the session stays,
   * unless `endSession` (see AckAfterStoreSubscriber.close).
   */
  close(options?: { endSession?: boolean }): Promise<void>;
}

/** Retry delays while storage refuses: quick at first, at most 2 s behind a recovery. */
const RETRY = { minMs: 100, maxMs: 2000 };
const CLOSE_TIMEOUT_MS = 5000;

interface Refusal {
  reason: string;
  message: string;
  errors: ItemError[];
  /** Readings refused, when not one per error: a count refused whole, or 1 for a payload not read. */
  rejected?: number;
}

/** A message being handled; `once` for QoS 0, which has no redelivery to wait for. */
interface Delivery extends DeliveredMessage {
  once: boolean;
}

/** QoS 0 messages storage refused: dropped, as QoS 0 allows (counted as `qos0_not_stored`). */
class NotStored extends Error {
  override name = 'NotStored';
}

export function startMqttIntake({
  config,
  role,
  ingestService,
  redis,
  keys,
  registry,
  logger,
}: {
  config: MqttConfig & { mqttUrl: string };
  role: MqttRole;
  ingestService: IngestService;
  /** A `command` connection: the rejects list is written through it. */
  redis: RedisClient;
  keys: RedisKeys;
  registry: Registry;
  logger: Logger;
}): MqttIntake {
  const log = logger.child({ module: 'mqtt' });
  const topics = createMqttTopics(
    config.mqttTopicPrefix,
    config.mqttSharedSubscription === 'on' ? config.redisPrefix : null,
  );
  const rejects = new RejectLog(redis, keys.mqttRejects);
  const clientId = mqttClientId(config, role);
  let subscriber: AckAfterStoreSubscriber | null = null;
  const metrics: MqttMetrics = createMqttMetrics(registry, {
    unacked: () => subscriber?.unacked ?? 0,
  });
  // As many at once as the broker should send: beyond that, messages wait undecoded.
  const limit = new ConcurrencyLimit(config.mqttReceiveMaximum);
  let lastCause = '';
  const gate = new RetryGate({
    ...RETRY,
    onClose: () =>
      log.warn(
        { cause: lastCause },
        'MQTT messages held unacknowledged: storage refuses them for now; retrying',
      ),
    onOpen: (closedForMs) => log.info({ closedForMs }, 'MQTT messages are stored again'),
  });

  /**
   * Runs `attempt` until storage takes it: a 503, or anything unexpected, waits behind the gate
   * and tries again. A 4xx is the message's fault and is thrown to be refused.
   */
  async function untilStored<T>(delivery: Delivery, attempt: () => Promise<T>): Promise<T> {
    for (;;) {
      if (delivery.once && !gate.isOpen) throw new NotStored();
      const ticket: GateTicket = await gate.pass(delivery.signal);
      try {
        const result = await attempt();
        gate.succeeded(ticket);
        return result;
      } catch (err) {
        if (err instanceof AppError && err.statusCode < 500) {
          gate.undecided(ticket);
          throw err;
        }
        const cause = err instanceof AppError ? err.code : 'unexpected_error';
        if (!(err instanceof AppError)) {
          log.error({ err }, 'MQTT store failed unexpectedly; retrying');
        }
        lastCause = cause;
        metrics.onStoreRetry(cause);
        gate.failed(ticket);
        if (delivery.once) throw new NotStored();
      }
    }
  }

  /** Lists the message in the rejects list, then answers 0x99: it is never delivered again. */
  async function refuse(
    delivery: Delivery,
    bytes: Buffer,
    refusal: Refusal,
  ): Promise<PubackReason> {
    await untilStored(delivery, () =>
      rejects.add({
        topic: delivery.topic,
        ...refusal,
        accepted: 0,
        rejected: refusal.rejected ?? Math.max(1, refusal.errors.length),
        payload: bytes,
        gzip: isGzip(delivery.payload),
      }),
    );
    metrics.onRejected(refusal.reason);
    log.debug({ topic: delivery.topic, reason: refusal.reason }, 'MQTT message rejected (0x99)');
    return REASON_PAYLOAD_FORMAT_INVALID;
  }

  const fromError = (err: AppError): Refusal => ({
    reason: err.code,
    message: err.message,
    errors: [],
    rejected: err instanceof TooManyReadings ? err.count : 1,
  });

  async function handle(delivery: Delivery): Promise<PubackReason> {
    const route = topics.parse(delivery.topic);
    const kind = topicKind(route);
    metrics.onMessage(kind);
    if (!route) {
      return refuse(delivery, delivery.payload, {
        reason: 'unknown_topic',
        message: `${delivery.topic} is not an ingest topic; publish to ${topics.forms.join(' or ')}`,
        errors: [],
      });
    }
    if (delivery.payload.length === 0 && delivery.retained) {
      // A publisher clearing its retained message: nothing to store, nothing wrong.
      log.debug({ topic: delivery.topic }, 'retained message cleared');
      return REASON_SUCCESS;
    }
    const decoded = await decodePayload(delivery.payload, {
      limitBytes: config.bodyLimitBytes,
      parse: (text) => ingestService.parse(text, 'auto'),
    });
    if (!decoded.ok) return refuse(delivery, decoded.bytes, fromError(decoded.error));
    const { input, bytes } = decoded;
    const items = bindToTopic(
      input.kind === 'single' ? [{ value: input.value }] : input.items,
      route,
    );
    metrics.onReadings(kind, items.length);

    let outcome;
    try {
      outcome = await untilStored(delivery, () => ingestService.ingest({ kind: 'batch', items }));
    } catch (err) {
      if (err instanceof AppError && err.statusCode < 500) {
        return refuse(delivery, bytes, fromError(err));
      }
      throw err;
    }
    if (outcome.kind !== 'batch' || outcome.errors.length === 0) return REASON_SUCCESS;
    const { accepted, errors } = outcome;
    const [first] = errors;
    if (accepted === 0) {
      const none = noValidReadings(errors);
      return refuse(
        delivery,
        bytes,
        input.kind === 'single'
          ? { reason: first.error, message: first.message, errors }
          : { reason: none.code, message: none.message, errors },
      );
    }
    // The valid readings are stored; the invalid ones are listed before the success PUBACK.
    await untilStored(delivery, () =>
      rejects.add({
        topic: delivery.topic,
        reason: 'some_readings_invalid',
        message: `${errors.length} of ${accepted + errors.length} readings are invalid (first: reading ${first.index}: ${first.message}); the other ${accepted} are stored`,
        accepted,
        rejected: errors.length,
        errors,
        payload: bytes,
        gzip: isGzip(delivery.payload),
      }),
    );
    return REASON_SUCCESS;
  }

  async function handleQos0(message: DeliveredMessage): Promise<PubackReason> {
    try {
      return await handle({ ...message, once: true });
    } catch (err) {
      if (!(err instanceof NotStored)) throw err;
      metrics.onRejected('qos0_not_stored');
      return REASON_SUCCESS; // nothing is sent for QoS 0
    }
  }

  subscriber = startAckAfterStoreSubscriber({
    url: config.mqttUrl,
    clientId,
    // Unset may arrive as '' (an empty user name is still a user name in CONNECT).
    username: config.mqttUsername || undefined,
    password: config.mqttPassword || undefined,
    subscription: topics.subscription,
    receiveMaximum: config.mqttReceiveMaximum,
    sessionExpiryS: config.mqttSessionExpiryS,
    handle: (message) =>
      limit.run(message.signal, () =>
        message.qos === 0 ? handleQos0(message) : handle({ ...message, once: false }),
      ),
    logger: log,
    onConnection: (up) => metrics.onConnection(up),
    onAck: (reason, seconds) =>
      metrics.onAcked(reason === REASON_SUCCESS ? 'stored' : 'rejected', seconds),
    onAckDropped: () => metrics.onAckDropped(),
  });
  const started = subscriber;

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
    unsubscribe: () => started.unsubscribe(),
    async close(options) {
      await started.close(CLOSE_TIMEOUT_MS, options);
      gate.close();
    },
  };
}
