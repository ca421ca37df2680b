/**
 * What one MQTT message comes to: its readings stored through the IngestService, and the PUBACK
 * reason that says so:
 * - 0x00 once every valid reading of the message is durably queued (invalid ones, if any, go to
 *   the rejects list first, as a 207 would list them);
 * - 0x99 (payload format invalid, final) once a message with nothing to store is in the rejects
 *   list: bad input never blocks the stream;
 * - no answer while storage refuses (the 503 causes): the message is retried behind a RetryGate.
 *   A QoS 0 message, which has no redelivery to wait for, is dropped instead.
 */
import { AppError, redisUnavailable } from '../errors';
import type { Logger } from '../logger';
import type { MqttMetrics } from '../metrics';
import { isRedisUnavailable } from '../redis';
import { RepeatedErrorLog } from '../repeated-errors';
import { noValidReadings, type IngestService, type ItemError } from '../telemetry/ingest-service';
import { isGzip, TooManyReadings } from '../telemetry/ingest-input';
import {
  REASON_PAYLOAD_FORMAT_INVALID,
  REASON_SUCCESS,
  type DeliveredMessage,
  type PubackReason,
} from './ack-after-store';
import { decodePayload } from './payload';
import type { RejectLog } from './reject-log';
import { RetryGate, type GateTicket } from './retry-gate';
import { bindToTopic, topicKind, type MqttTopics } from './topics';

/** Retry delays while storage refuses: quick at first, at most 2 s behind a recovery. */
const RETRY = { minMs: 100, maxMs: 2000 };

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

const fromError = (err: AppError): Refusal => ({
  reason: err.code,
  message: err.message,
  errors: [],
  rejected: err instanceof TooManyReadings ? err.count : 1,
});

/**
 * A store's failure as the 503 it amounts to, or null when unexpected. Redis unavailable is one
 * whichever write met it: the ingest service says so itself, the rejects list's write does not.
 */
const asRefusal = (err: unknown): AppError | null =>
  err instanceof AppError
    ? err
    : isRedisUnavailable(err)
      ? redisUnavailable('Redis is not available to store MQTT messages; retrying')
      : null;

export class MqttMessageHandler {
  /** Why storage last refused, for the log line when the gate closes. */
  private lastCause = '';
  private readonly gate: RetryGate;
  // Each of up to MQTT_RECEIVE_MAXIMUM messages in flight fails an attempt of its own: an outage,
  // or a fault that repeats, is a line an interval, not one an attempt.
  private readonly unavailable: RepeatedErrorLog;
  private readonly unexpected: RepeatedErrorLog;

  constructor(
    private readonly deps: {
      topics: MqttTopics;
      ingestService: IngestService;
      rejects: RejectLog;
      metrics: MqttMetrics;
      /** BODY_LIMIT: a message's payload, decompressed, is held to it as a request body is. */
      limitBytes: number;
      log: Logger;
    },
  ) {
    const { log } = deps;
    this.unavailable = new RepeatedErrorLog({ logger: log, level: 'warn' });
    this.unexpected = new RepeatedErrorLog({ logger: log });
    this.gate = new RetryGate({
      ...RETRY,
      onClose: () =>
        log.warn(
          { cause: this.lastCause },
          'MQTT messages held unacknowledged: storage refuses them for now; retrying',
        ),
      onOpen: (closedForMs) => log.info({ closedForMs }, 'MQTT messages are stored again'),
    });
  }

  /** The PUBACK reason of `message` once it is stored or refused (for QoS 0, what nothing sends). */
  async handle(message: DeliveredMessage): Promise<PubackReason> {
    if (message.qos !== 0) return this.handleDelivery({ ...message, once: false });
    try {
      return await this.handleDelivery({ ...message, once: true });
    } catch (err) {
      if (!(err instanceof NotStored)) throw err;
      return this.dropped();
    }
  }

  /** Storage refuses for now: the gate is closed (messages that can wait, wait). */
  get refusing(): boolean {
    return !this.gate.isOpen;
  }

  /** A QoS 0 message not stored: dropped, as QoS 0 allows, and counted. */
  dropped(): PubackReason {
    this.deps.metrics.onRejected('qos0_not_stored');
    return REASON_SUCCESS; // nothing is sent for QoS 0
  }

  /** Stops the retry gate's timers (the subscriber is closed first). */
  close(): void {
    this.gate.close();
  }

  private async handleDelivery(delivery: Delivery): Promise<PubackReason> {
    const { topics, metrics, ingestService, log } = this.deps;
    const route = topics.parse(delivery.topic);
    const kind = topicKind(route);
    metrics.onMessage(kind);
    if (!route) {
      return this.refuse(delivery, delivery.payload, {
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
      limitBytes: this.deps.limitBytes,
      parse: (text) => ingestService.parse(text, 'auto', 'payload'),
    });
    if (!decoded.ok) return this.refuse(delivery, decoded.bytes, fromError(decoded.error));
    const { input, bytes } = decoded;
    const items = bindToTopic(
      input.kind === 'single' ? [{ value: input.value }] : input.items,
      route,
    );
    metrics.onReadings(kind, items.length);

    let outcome;
    try {
      outcome = await this.untilStored(delivery, () =>
        ingestService.ingest({ kind: 'batch', items }),
      );
    } catch (err) {
      if (err instanceof AppError && err.statusCode < 500) {
        return this.refuse(delivery, bytes, fromError(err));
      }
      throw err;
    }
    if (outcome.kind !== 'batch' || outcome.errors.length === 0) return REASON_SUCCESS;
    const { accepted, errors } = outcome;
    const [first] = errors;
    if (accepted === 0) {
      const none = noValidReadings(errors);
      return this.refuse(
        delivery,
        bytes,
        input.kind === 'single'
          ? { reason: first.error, message: first.message, errors }
          : { reason: none.code, message: none.message, errors },
      );
    }
    // The valid readings are stored; the invalid ones are listed before the success PUBACK.
    await this.list(delivery, bytes, {
      reason: 'some_readings_invalid',
      message: `${errors.length} of ${accepted + errors.length} readings are invalid (first: reading ${first.index}: ${first.message}); the other ${accepted} are stored`,
      accepted,
      rejected: errors.length,
      errors,
    });
    return REASON_SUCCESS;
  }

  /** Lists the message in the rejects list, then answers 0x99: it is never delivered again. */
  private async refuse(delivery: Delivery, bytes: Buffer, refusal: Refusal): Promise<PubackReason> {
    await this.list(delivery, bytes, {
      ...refusal,
      accepted: 0,
      rejected: refusal.rejected ?? Math.max(1, refusal.errors.length),
    });
    this.deps.metrics.onRejected(refusal.reason);
    this.deps.log.debug(
      { topic: delivery.topic, reason: refusal.reason },
      'MQTT message rejected (0x99)',
    );
    return REASON_PAYLOAD_FORMAT_INVALID;
  }

  /** Adds the message, with what was refused of it, to the rejects list (as storage allows). */
  private list(
    delivery: Delivery,
    bytes: Buffer,
    entry: Required<Refusal> & { accepted: number },
  ): Promise<void> {
    return this.untilStored(delivery, () =>
      this.deps.rejects.add({
        topic: delivery.topic,
        ...entry,
        payload: bytes,
        gzip: isGzip(delivery.payload),
      }),
    );
  }

  /**
   * Runs `attempt` until storage takes it: a 503, or anything unexpected, waits behind the gate
   * and tries again. A 4xx is the message's fault and is thrown to be refused.
   */
  private async untilStored<T>(delivery: Delivery, attempt: () => Promise<T>): Promise<T> {
    const { gate } = this;
    for (;;) {
      // QoS 0 cannot wait: it tries now (taking a due probe's turn, or only QoS 1 traffic could
      // reopen a closed gate) or is dropped.
      const ticket: GateTicket | null = delivery.once
        ? gate.passNow()
        : await gate.pass(delivery.signal);
      if (!ticket) throw new NotStored();
      try {
        const result = await attempt();
        gate.succeeded(ticket);
        return result;
      } catch (err) {
        if (err instanceof AppError && err.statusCode < 500) {
          gate.undecided(ticket);
          throw err;
        }
        this.onStoreFailed(err);
        gate.failed(ticket);
        if (delivery.once) throw new NotStored();
      }
    }
  }

  /** Counts the retry by its cause; logs an error that is not an AppError (whose maker logs it). */
  private onStoreFailed(err: unknown): void {
    const refusal = asRefusal(err);
    const cause = refusal?.code ?? 'unexpected_error';
    this.lastCause = cause;
    this.deps.metrics.onStoreRetry(cause);
    if (!refusal) this.unexpected.log(err, { cause }, 'MQTT store failed unexpectedly; retrying');
    else if (refusal !== err) this.unavailable.log(err, { cause }, refusal.message, cause);
  }
}
