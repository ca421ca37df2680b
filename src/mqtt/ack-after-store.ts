/**
 * An MQTT 5 subscriber that PUBACKs each QoS 1 message only once its handler has stored it, with
 * many messages in flight at once (up to the Receive Maximum it announces). Tested with
 * mqtt@5.16.0 (pinned exactly in package.json) against Mosquitto 2.0.11; see test/mqtt.test.ts.
 *
 * Why not mqtt.js's own hooks: `handleMessage` and `customHandleAcks` both delay the PUBACK, but
 * mqtt.js reads the next packet (PINGRESP included) only after their callback, so they store one
 * message at a time. Instead:
 *   1. `handleMessage` is replaced right after `mqtt.connect`, before the CONNACK can be read: a
 *      session's queued messages arrive right behind it, and the default handler would PUBACK
 *      them before any store.
 *   2. It calls its callback at once with an error, which makes mqtt.js skip the automatic PUBACK
 *      (handlers/publish.js) and read the next packet; no 'error' event is emitted.
 *   3. When the handler resolves, the PUBACK goes out through mqtt.js's private `_sendPacket`, in
 *      the order the PUBLISHes arrived (MQTT 5 4.6.0-2), and only on the connection that delivered
 *      the message: a PUBACK of an older connection is dropped (mqtt.js would queue it for the
 *      next one); the broker redelivers such messages, and storage is idempotent.
 * Backpressure: a handler that cannot store yet keeps its message unacknowledged; once Receive
 * Maximum messages are, the broker stops sending and queues the rest. The socket is not paused
 * (mqtt.js's pipe resumes it); reading stops only past a hard bound (HELD_PER_RECEIVE_MAXIMUM).
 */
import { setMaxListeners } from 'node:events';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from '../logger';
import { createFlappingDetector } from './flapping-connection';

export const REASON_SUCCESS = 0x00;
/** MQTT 5 "Payload format invalid": final, the broker does not redeliver the message. */
export const REASON_PAYLOAD_FORMAT_INVALID = 0x99;
const REASON_SESSION_TAKEN_OVER = 0x8e;

export type PubackReason = typeof REASON_SUCCESS | typeof REASON_PAYLOAD_FORMAT_INVALID;

export interface DeliveredMessage {
  topic: string;
  payload: Buffer;
  /** 2 only from a broker that sends above the subscription's QoS 1: handled as 1. */
  qos: 0 | 1 | 2;
  /** The broker sends it again (after a reconnect); it may already be stored. */
  redelivered: boolean;
  /** Published as retained (the subscription keeps the flag as published). */
  retained: boolean;
  /** Aborts when the connection that delivered the message closes, or on close(). */
  signal: AbortSignal;
}

/**
 * Stores a message and says how to acknowledge it. Rejecting means "no PUBACK": the connection is
 * gone or the subscriber is closing, and the broker will deliver the message again.
 */
export type MessageHandler = (message: DeliveredMessage) => Promise<PubackReason>;

export interface AckAfterStoreOptions {
  url: string;
  /** Must be the same across restarts of this process: the broker keeps the session under it. */
  clientId: string;
  username?: string;
  password?: string;
  /** Topic filter subscribed at QoS 1 on every connection. */
  subscription: string;
  receiveMaximum: number;
  sessionExpiryS: number;
  handle: MessageHandler;
  logger: Logger;
  /** Taking messages (connected and subscribed at QoS 1), or not any more. */
  onConnection?: (connected: boolean) => void;
  onAck?: (reason: PubackReason, seconds: number) => void;
  onAckDropped?: () => void;
}

export interface AckAfterStoreSubscriber {
  readonly client: MqttClient;
  /** Connected and subscribed. */
  readonly ready: boolean;
  /** Messages received and not yet acknowledged. */
  readonly unacked: number;
  /** Messages handed to the handler since the start. */
  readonly delivered: number;
  /** Whether the broker held a session for the client id at the first connection (null: none yet). */
  readonly sessionFound: boolean | null;
  /**
   * Unsubscribes, now and on every later connection: the broker sends no new messages, only
   * those it already queued in the session (Mosquitto 2.0.11 sends them all).
   */
  unsubscribe(): Promise<void>;
  /**
   * Stops taking messages, waits up to `timeoutMs` for those being stored, acknowledges them,
   * disconnects: the session stays, unless `endSession` (the broker then forgets it and what it
   * still queues for it).
   */
  close(timeoutMs: number, options?: { endSession?: boolean }): Promise<void>;
}

/** Keepalive below 30 s made Mosquitto's post-outage bursts (PINGRESP behind them) cut connections. */
const KEEPALIVE_S = 30;
/**
 * The memory bound. Mosquitto 2.0.11 honours Receive Maximum while nothing is acknowledged, but
 * once PUBACKs flow while a backlog is queued it sends far more (52,948 unacknowledged measured
 * with Receive Maximum 1000). Past this many messages, or bytes, held at once, mqtt.js is not given
 * its callback, so it reads no further (TCP pushes back to the broker) until a store finishes.
 * Reading held back also holds back PINGRESP: were stores stuck for 1.5 x keepalive, the client
 * would reconnect and the broker redeliver, which loses nothing.
 */
const HELD_PER_RECEIVE_MAXIMUM = 2;
const MAX_HELD_BYTES = 64 * 1024 * 1024;
const RESUBSCRIBE_DELAY_MS = 5000;
/** This many connections dropped within the window are logged as an error (see 'close'). */
const FLAPPING_DROPS = 3;
const FLAPPING_WINDOW_MS = 60_000;
/** What to do when two processes share a session (the broker lets only one connect at a time). */
const ONE_CLIENT_ID_EACH = 'give each engine process its own MQTT_CLIENT_ID';

type Stream = MqttClient['stream'];

const payloadOf = (packet: IPublishPacket): Buffer =>
  Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
type SendPacket = (packet: {
  cmd: 'puback' | 'pubcomp';
  messageId: number;
  reasonCode?: number;
}) => void;

interface Entry {
  messageId: number;
  stream: Stream;
  receivedAt: number;
  reason?: PubackReason;
}

/** An error the PUBACK-deferring callback hands mqtt.js; it surfaces nowhere. */
const DEFERRED = new Error('PUBACK deferred until the message is stored');

export function startAckAfterStoreSubscriber(o: AckAfterStoreOptions): AckAfterStoreSubscriber {
  const client = mqtt.connect(o.url, {
    protocolVersion: 5,
    clientId: o.clientId,
    username: o.username,
    password: o.password,
    clean: false,
    keepalive: KEEPALIVE_S,
    reconnectPeriod: 1000,
    // A refused CONNACK (a password changed on the broker, a broker busy) is retried too: without
    // it mqtt.js stopped reconnecting after the first, for good, while the log said "retrying".
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
    resubscribe: false,
    // No topicAliasMaximum (packet.topic would be empty in handleMessage) and no
    // maximumPacketSize (the broker would silently drop larger messages for this client).
    properties: { sessionExpiryInterval: o.sessionExpiryS, receiveMaximum: o.receiveMaximum },
  });
  const internal = client as unknown as {
    _sendPacket?: unknown;
    _releaseIncomingQoS2Publish?: unknown;
  };
  if (
    typeof internal._sendPacket !== 'function' ||
    typeof internal._releaseIncomingQoS2Publish !== 'function'
  ) {
    client.end(true);
    throw new Error(
      'mqtt.js has no MqttClient._sendPacket or _releaseIncomingQoS2Publish: run the exact mqtt version pinned',
    );
  }
  const sendPacket = (internal._sendPacket as SendPacket).bind(client);
  const releaseIncomingQoS2 = (internal._releaseIncomingQoS2Publish as (id: number) => void).bind(
    client,
  );

  let fifo: Entry[] = [];
  let subscribed = false;
  let wasConnected = false;
  /** Errors while reconnecting repeat every second: one log line per outage is enough. */
  let errorReported = false;
  let closing = false;
  let unsubscribed = false;
  /** Aborts when the current connection closes, or on close(); every waiting message listens to it. */
  const newConnection = () => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  };
  let connection = newConnection();
  const pending = new Set<Promise<unknown>>();
  let heldBytes = 0;
  /** mqtt.js's callback for the last message, kept while too much is held: it reads nothing meanwhile. */
  let paused: (() => void) | null = null;
  const maxHeld = o.receiveMaximum * HELD_PER_RECEIVE_MAXIMUM;
  const tooMuchHeld = () =>
    pending.size >= maxHeld || (pending.size > 1 && heldBytes >= MAX_HELD_BYTES);
  const resumeReading = () => {
    const resume = paused;
    paused = null;
    resume?.();
  };

  const flushAcks = () => {
    while (fifo.length > 0 && fifo[0].reason !== undefined) {
      const entry = fifo.shift() as Entry;
      if (!client.connected || client.stream !== entry.stream) {
        o.onAckDropped?.();
        continue;
      }
      sendPacket({ cmd: 'puback', messageId: entry.messageId, reasonCode: entry.reason as number });
      o.onAck?.(entry.reason as PubackReason, (performance.now() - entry.receivedAt) / 1000);
    }
  };

  // Installed before the first CONNACK is read (see 1. above).
  client.handleMessage = (packet: IPublishPacket, callback: (error?: Error) => void): void => {
    if (packet.qos === 2) {
      // Subscribed at QoS 1, a broker should never send QoS 2. mqtt.js hands one over at its
      // PUBREL and answers PUBCOMP on `callback()`: only once stored, as a PUBACK would be.
      handleQos2(packet, callback);
      return;
    }
    // An error makes mqtt.js skip its own PUBACK (QoS 1); without one it has nothing to send (QoS 0).
    const next = packet.qos === 1 ? () => callback(DEFERRED) : () => callback();
    if (closing) return next(); // not acknowledged: the broker delivers it again after the restart
    const entry: Entry | null =
      packet.qos === 1 && packet.messageId !== undefined
        ? { messageId: packet.messageId, stream: client.stream, receivedAt: performance.now() }
        : null;
    if (entry) fifo.push(entry);
    const payload = payloadOf(packet);
    heldBytes += payload.length;
    const work = deliver(packet, payload)
      .then(
        (reason) => {
          if (entry) entry.reason = reason;
        },
        (err: unknown) => {
          if (entry) fifo = fifo.filter((e) => e !== entry);
          reportFailure(err, packet.topic);
        },
      )
      .finally(() => {
        pending.delete(work);
        heldBytes -= payload.length;
        flushAcks();
        if (paused && !tooMuchHeld()) resumeReading();
      });
    pending.add(work);
    if (tooMuchHeld()) paused = next;
    else next();
  };

  const handleQos2 = (packet: IPublishPacket, callback: (error?: Error) => void): void => {
    // mqtt.js reads no packet until the callback: released at once, PUBCOMP sent once stored.
    callback(DEFERRED);
    if (closing || packet.messageId === undefined) return; // the broker sends its PUBREL again
    const { messageId } = packet;
    const stream = client.stream;
    const work = deliver(packet, payloadOf(packet))
      .then(
        () => {
          if (client.stream !== stream || stream.destroyed) return;
          sendPacket({ cmd: 'pubcomp', messageId });
          // What mqtt.js does after its own PUBCOMP (handlers/pubrel.js): else each message
          // stayed counted against Receive Maximum, and the client disconnected at that many.
          client.incomingStore.del({ messageId } as IPublishPacket, () => undefined);
          releaseIncomingQoS2(messageId);
        },
        (err: unknown) => reportFailure(err, packet.topic),
      )
      .finally(() => pending.delete(work));
    pending.add(work);
  };

  let delivered = 0;
  let sessionFound: boolean | null = null;
  /** Hands a delivered packet to the handler, as a message of the current connection. */
  const deliver = (packet: IPublishPacket, payload: Buffer) => {
    delivered += 1;
    return o.handle({
      topic: packet.topic,
      payload,
      qos: packet.qos,
      redelivered: packet.dup,
      retained: packet.retain,
      signal: connection.signal,
    });
  };

  /** Aborted (the connection went, or close()): the broker delivers the message again. */
  const reportFailure = (err: unknown, topic: string) => {
    if ((err as Error)?.name !== 'AbortError') {
      o.logger.error({ err, topic }, 'MQTT message handler failed');
    }
  };

  const subscribe = (stream: Stream) => {
    // rh 1: retained messages come only with a new subscription, not again with a renewed one.
    // rap: the retain flag as published, so a zero-byte retained message (how MQTT clears one)
    // is told from an empty payload.
    client.subscribe(o.subscription, { qos: 1, rh: 1, rap: true }, (err, granted) => {
      if (client.stream !== stream) return;
      // Granted QoS 0, messages would come unacknowledged: nothing to hold until stored.
      const grantedQos = granted?.[0]?.qos;
      const refusal =
        err ??
        (grantedQos === 1
          ? null
          : new Error(
              `the broker granted QoS ${String(grantedQos)}; storing before acknowledging needs QoS 1`,
            ));
      if (!refusal) {
        subscribed = true;
        o.onConnection?.(true);
        o.logger.info({ subscription: o.subscription }, 'MQTT subscribed');
        return;
      }
      o.logger.error(
        { err: refusal, subscription: o.subscription },
        'MQTT subscribe refused; retrying in 5 s',
      );
      setTimeout(() => {
        if (client.connected && client.stream === stream && !closing) subscribe(stream);
      }, RESUBSCRIBE_DELAY_MS).unref();
    });
  };

  // Mosquitto 2.0.11 closes a session's connection when another client connects with its id,
  // without the DISCONNECT (0x8E) that says so: connections dropped again and again say it.
  const flapping = createFlappingDetector({ drops: FLAPPING_DROPS, windowMs: FLAPPING_WINDOW_MS });
  const noteDroppedConnection = () => {
    const drops = flapping.dropped();
    if (drops === null) return;
    o.logger.error(
      { clientId: o.clientId, drops, withinS: FLAPPING_WINDOW_MS / 1000 },
      `MQTT connection dropped again and again after connecting: either another process connects with the same client id (${ONE_CLIENT_ID_EACH}), or the broker keeps restarting or closing connections (see its log)`,
    );
  };

  client.on('connect', (connack) => {
    // Anything unacknowledged from the previous connection comes again on this one.
    fifo = fifo.filter((e) => e.stream === client.stream);
    wasConnected = true;
    errorReported = false;
    sessionFound ??= connack.sessionPresent;
    o.logger.info(
      { clientId: o.clientId, sessionPresent: connack.sessionPresent },
      'MQTT connected',
    );
    // Subscribed again even with a session kept: the session may hold another subscription (an
    // earlier MQTT_TOPIC_PREFIX), and renewing the same one changes nothing. Ready once it is.
    subscribed = false;
    if (unsubscribed) void client.unsubscribeAsync(o.subscription).catch(() => undefined);
    else subscribe(client.stream);
  });
  client.on('close', () => {
    resumeReading(); // lets the closed connection's packet pump finish
    if (wasConnected && !closing) {
      o.logger.warn('MQTT connection closed; reconnecting');
      noteDroppedConnection();
    }
    wasConnected = false;
    subscribed = false;
    o.onConnection?.(false);
    connection.abort();
    connection = newConnection();
  });
  client.on('disconnect', (packet) => {
    if (packet.reasonCode === REASON_SESSION_TAKEN_OVER) {
      o.logger.error(
        { clientId: o.clientId },
        `MQTT session taken over: another process connected with the same client id (${ONE_CLIENT_ID_EACH})`,
      );
    } else {
      o.logger.warn({ reasonCode: packet.reasonCode }, 'MQTT broker disconnected us');
    }
  });
  client.on('error', (err) => {
    if (errorReported) return;
    errorReported = true;
    o.logger.warn({ err }, 'MQTT connection error; retrying every second');
  });

  return {
    client,
    get ready() {
      return client.connected && subscribed;
    },
    get unacked() {
      return fifo.length;
    },
    get delivered() {
      return delivered;
    },
    get sessionFound() {
      return sessionFound;
    },
    async unsubscribe() {
      unsubscribed = true;
      subscribed = false;
      if (client.connected) await client.unsubscribeAsync(o.subscription);
    },
    async close(timeoutMs, { endSession = false } = {}) {
      closing = true;
      // Messages still waiting for storage stay unacknowledged, for the next start; those being
      // stored right now finish and are acknowledged.
      connection.abort();
      const timer = new Promise((resolve) => setTimeout(resolve, timeoutMs).unref());
      await Promise.race([Promise.allSettled([...pending]), timer]);
      flushAcks();
      // MQTT 5 lets a DISCONNECT shorten the session's expiry, to 0: it ends with the connection.
      await client.endAsync(false, endSession ? { properties: { sessionExpiryInterval: 0 } } : {});
    },
  };
}
