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
  /** A filter the kept session may hold from an earlier setting: unsubscribed on every connection. */
  formerSubscription?: string | null;
  /**
   * Takes only what the broker queued in the session already (`npm run mqtt:retire`; Mosquitto
   * 2.0.11 sends it all): never subscribes, and unsubscribes the session's subscription on every
   * connection, so no new messages come. Subscribed first, a client id with no session (a typo)
   * joined the live shared group and took messages it then dropped, ending the session it made.
   */
  collectOnly?: boolean;
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
  /** Connected and subscribed (collecting only: connected). */
  readonly ready: boolean;
  /** Messages received and not yet acknowledged. */
  readonly unacked: number;
  /** Messages handed to the handler since the start. */
  readonly delivered: number;
  /** Whether the broker held a session for the client id at the first connection (null: none yet). */
  readonly sessionFound: boolean | null;
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

/** The MQTT 5 client: a persistent session, the Receive Maximum announced, no automatic resubscribe. */
function connectClient(o: AckAfterStoreOptions): MqttClient {
  return mqtt.connect(o.url, {
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
}

/** The private mqtt.js methods acknowledging after the store needs (see 3. above). */
function privateSenders(client: MqttClient) {
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
  return {
    sendPacket: (internal._sendPacket as SendPacket).bind(client),
    releaseIncomingQoS2: (internal._releaseIncomingQoS2Publish as (id: number) => void).bind(
      client,
    ),
  };
}

/** An AbortController every message waiting on one connection listens to. */
function newConnection(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

export function startAckAfterStoreSubscriber(o: AckAfterStoreOptions): AckAfterStoreSubscriber {
  return new Subscriber(o);
}

class Subscriber implements AckAfterStoreSubscriber {
  readonly client: MqttClient;
  private readonly sendPacket: SendPacket;
  private readonly releaseIncomingQoS2: (messageId: number) => void;
  /** QoS 1 messages received, in order, each with its PUBACK reason once stored. */
  private fifo: Entry[] = [];
  private subscribed = false;
  private wasConnected = false;
  /** Errors while reconnecting repeat every second: one log line per outage is enough. */
  private errorReported = false;
  private closing = false;
  /** Aborts when the current connection closes, or on close(). */
  private connection = newConnection();
  /** Messages being stored. */
  private readonly pending = new Set<Promise<unknown>>();
  private heldBytes = 0;
  /** mqtt.js's callback for the last message, kept while too much is held: it reads nothing meanwhile. */
  private paused: (() => void) | null = null;
  private readonly maxHeld: number;
  private deliveredCount = 0;
  private firstSessionPresent: boolean | null = null;
  // Mosquitto 2.0.11 closes a session's connection when another client connects with its id,
  // without the DISCONNECT (0x8E) that says so: connections dropped again and again say it.
  private readonly flapping = createFlappingDetector({
    drops: FLAPPING_DROPS,
    windowMs: FLAPPING_WINDOW_MS,
  });

  constructor(private readonly o: AckAfterStoreOptions) {
    this.client = connectClient(o);
    ({ sendPacket: this.sendPacket, releaseIncomingQoS2: this.releaseIncomingQoS2 } =
      privateSenders(this.client));
    this.maxHeld = o.receiveMaximum * HELD_PER_RECEIVE_MAXIMUM;
    // Installed before the first CONNACK is read (see 1. above).
    this.client.handleMessage = (packet, callback) => this.onPublish(packet, callback);
    this.client.on('connect', (connack) => this.onConnect(connack.sessionPresent));
    this.client.on('close', () => this.onClose());
    this.client.on('disconnect', (packet) => this.onDisconnect(packet.reasonCode));
    this.client.on('error', (err) => this.onError(err));
  }

  get ready(): boolean {
    return this.client.connected && (this.subscribed || this.o.collectOnly === true);
  }

  get unacked(): number {
    return this.fifo.length;
  }

  get delivered(): number {
    return this.deliveredCount;
  }

  get sessionFound(): boolean | null {
    return this.firstSessionPresent;
  }

  async close(timeoutMs: number, { endSession = false } = {}): Promise<void> {
    this.closing = true;
    // Messages still waiting for storage stay unacknowledged, for the next start; those being
    // stored right now finish and are acknowledged.
    this.connection.abort();
    const timer = new Promise((resolve) => setTimeout(resolve, timeoutMs).unref());
    await Promise.race([Promise.allSettled([...this.pending]), timer]);
    this.flushAcks();
    // MQTT 5 lets a DISCONNECT shorten the session's expiry, to 0: it ends with the connection.
    await this.client.endAsync(
      false,
      endSession ? { properties: { sessionExpiryInterval: 0 } } : {},
    );
  }

  private tooMuchHeld(): boolean {
    const { pending } = this;
    return pending.size >= this.maxHeld || (pending.size > 1 && this.heldBytes >= MAX_HELD_BYTES);
  }

  private resumeReading(): void {
    const resume = this.paused;
    this.paused = null;
    resume?.();
  }

  /** Sends the PUBACKs now due: those of the stored messages at the head of the FIFO. */
  private flushAcks(): void {
    const { client, fifo, o } = this;
    while (fifo.length > 0 && fifo[0].reason !== undefined) {
      const entry = fifo.shift() as Entry;
      if (!client.connected || client.stream !== entry.stream) {
        o.onAckDropped?.();
        continue;
      }
      this.sendPacket({
        cmd: 'puback',
        messageId: entry.messageId,
        reasonCode: entry.reason as number,
      });
      o.onAck?.(entry.reason as PubackReason, (performance.now() - entry.receivedAt) / 1000);
    }
  }

  /** mqtt.js's handleMessage: a PUBLISH (QoS 0 or 1; for QoS 2, its PUBREL). */
  private onPublish(packet: IPublishPacket, callback: (error?: Error) => void): void {
    if (packet.qos === 2) {
      // Subscribed at QoS 1, a broker should never send QoS 2. mqtt.js hands one over at its
      // PUBREL and answers PUBCOMP on `callback()`: only once stored, as a PUBACK would be.
      this.onQos2(packet, callback);
      return;
    }
    // An error makes mqtt.js skip its own PUBACK (QoS 1); without one it has nothing to send (QoS 0).
    const next = packet.qos === 1 ? () => callback(DEFERRED) : () => callback();
    if (this.closing) return next(); // not acknowledged: the broker delivers it again after the restart
    const entry: Entry | null =
      packet.qos === 1 && packet.messageId !== undefined
        ? { messageId: packet.messageId, stream: this.client.stream, receivedAt: performance.now() }
        : null;
    if (entry) this.fifo.push(entry);
    const payload = payloadOf(packet);
    this.heldBytes += payload.length;
    const work = this.deliver(packet, payload)
      .then(
        (reason) => {
          if (entry) entry.reason = reason;
        },
        (err: unknown) => {
          if (entry) this.fifo = this.fifo.filter((e) => e !== entry);
          this.reportFailure(err, packet.topic);
        },
      )
      .finally(() => {
        this.pending.delete(work);
        this.heldBytes -= payload.length;
        this.flushAcks();
        if (this.paused && !this.tooMuchHeld()) this.resumeReading();
      });
    this.pending.add(work);
    if (this.tooMuchHeld()) this.paused = next;
    else next();
  }

  private onQos2(packet: IPublishPacket, callback: (error?: Error) => void): void {
    // mqtt.js reads no packet until the callback: released at once, PUBCOMP sent once stored.
    callback(DEFERRED);
    if (this.closing || packet.messageId === undefined) return; // the broker sends its PUBREL again
    const { messageId } = packet;
    const { client } = this;
    const stream = client.stream;
    const work = this.deliver(packet, payloadOf(packet))
      .then(
        () => {
          if (client.stream !== stream || stream.destroyed) return;
          this.sendPacket({ cmd: 'pubcomp', messageId });
          // What mqtt.js does after its own PUBCOMP (handlers/pubrel.js): else each message
          // stayed counted against Receive Maximum, and the client disconnected at that many.
          client.incomingStore.del({ messageId } as IPublishPacket, () => undefined);
          this.releaseIncomingQoS2(messageId);
        },
        (err: unknown) => this.reportFailure(err, packet.topic),
      )
      .finally(() => this.pending.delete(work));
    this.pending.add(work);
  }

  /** Hands a delivered packet to the handler, as a message of the current connection. */
  private deliver(packet: IPublishPacket, payload: Buffer): Promise<PubackReason> {
    this.deliveredCount += 1;
    return this.o.handle({
      topic: packet.topic,
      payload,
      qos: packet.qos,
      redelivered: packet.dup,
      retained: packet.retain,
      signal: this.connection.signal,
    });
  }

  /** Aborted (the connection went, or close()): the broker delivers the message again. */
  private reportFailure(err: unknown, topic: string): void {
    if ((err as Error)?.name !== 'AbortError') {
      this.o.logger.error({ err, topic }, 'MQTT message handler failed');
    }
  }

  private subscribe(stream: Stream): void {
    const { client, o } = this;
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
        this.subscribed = true;
        o.onConnection?.(true);
        o.logger.info({ subscription: o.subscription }, 'MQTT subscribed');
        return;
      }
      o.logger.error(
        { err: refusal, subscription: o.subscription },
        'MQTT subscribe refused; retrying in 5 s',
      );
      setTimeout(() => {
        if (client.connected && client.stream === stream && !this.closing) this.subscribe(stream);
      }, RESUBSCRIBE_DELAY_MS).unref();
    });
  }

  private onConnect(sessionPresent: boolean): void {
    const { client, o } = this;
    // Anything unacknowledged from the previous connection comes again on this one.
    this.fifo = this.fifo.filter((e) => e.stream === client.stream);
    this.wasConnected = true;
    this.errorReported = false;
    const reconnected = this.firstSessionPresent !== null;
    this.firstSessionPresent ??= sessionPresent;
    o.logger.info({ clientId: o.clientId, sessionPresent }, 'MQTT connected');
    if (reconnected && !sessionPresent) {
      // The session this client had is gone, with what the broker held for it meanwhile.
      o.logger.warn(
        { clientId: o.clientId },
        'the broker kept no session for this client across the reconnection: messages it held for it meanwhile are lost (a broker restarted without persistence, or MQTT_SESSION_EXPIRY_S passed)',
      );
    }
    // Subscribed again even with a session kept: the session may hold another subscription (an
    // earlier MQTT_TOPIC_PREFIX), and renewing the same one changes nothing. Ready once it is.
    this.subscribed = false;
    if (o.formerSubscription) {
      void client.unsubscribeAsync(o.formerSubscription).catch(() => undefined);
    }
    if (o.collectOnly) void client.unsubscribeAsync(o.subscription).catch(() => undefined);
    else this.subscribe(client.stream);
  }

  private onClose(): void {
    this.resumeReading(); // lets the closed connection's packet pump finish
    if (this.wasConnected && !this.closing) {
      this.o.logger.warn('MQTT connection closed; reconnecting');
      this.noteDroppedConnection();
    }
    this.wasConnected = false;
    this.subscribed = false;
    this.o.onConnection?.(false);
    this.connection.abort();
    this.connection = newConnection();
  }

  private noteDroppedConnection(): void {
    const drops = this.flapping.dropped();
    if (drops === null) return;
    this.o.logger.error(
      { clientId: this.o.clientId, drops, withinS: FLAPPING_WINDOW_MS / 1000 },
      `MQTT connection dropped again and again after connecting: either another process connects with the same client id (${ONE_CLIENT_ID_EACH}), or the broker keeps restarting or closing connections (see its log)`,
    );
  }

  private onDisconnect(reasonCode: number | undefined): void {
    if (reasonCode === REASON_SESSION_TAKEN_OVER) {
      this.o.logger.error(
        { clientId: this.o.clientId },
        `MQTT session taken over: another process connected with the same client id (${ONE_CLIENT_ID_EACH})`,
      );
    } else {
      this.o.logger.warn({ reasonCode }, 'MQTT broker disconnected us');
    }
  }

  private onError(err: Error): void {
    if (this.errorReported) return;
    this.errorReported = true;
    this.o.logger.warn({ err }, 'MQTT connection error; retrying every second');
  }
}
