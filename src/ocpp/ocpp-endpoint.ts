/**
 * `ws://HOST:PORT/ocpp/{chargePointId}`: OCPP 1.6J on the API's own HTTP server. ocpp-rpc does the
 * OCPP-J framing, validates every message both ways against the official OCPP 1.6 JSON schemas
 * (strict mode) and keeps connections alive with pings; this module decides who may connect and
 * hands each action to the ChargePointService.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type RPCServerClient from 'ocpp-rpc/lib/server-client';
import { parseSubprotocols } from 'ocpp-rpc/lib/ws-util';
import { findChargePointKey, type ApiKey } from '../auth/api-keys';
import { authorizationHeaders } from '../auth/authorize';
import { CallTurns } from './call-turns';
import {
  endWithError,
  onWebSocketUpgrade,
  type Refusal,
  type RefuseUpgrade,
} from '../http/http-server';
import type { Logger } from '../logger';
import type { OcppMetrics } from '../metrics';
import type { ChargePointState, LiveConnection } from './charge-point-state';
import { ocppRpcFor, validatorWithoutEcho } from './ocpp-rpc';
import { RepeatedErrorLog } from '../repeated-errors';
import { CHARGE_POINT_ID, CHARGE_POINT_ID_RULE } from './charge-point-id';
import { PresenceRefresh } from './presence-refresh';
import { StatusRecovery } from './status-recovery';
import {
  NotStoredError,
  RefusedCallError,
  refuseUnstorableText,
  type BootNotificationReq,
  type ChargePointService,
  type MeterValuesReq,
  type SecurityEventNotificationReq,
  type StartTransactionReq,
  type StatusNotificationReq,
  type StopTransactionReq,
} from './charge-point-service';

export const OCPP_PATH = '/ocpp';
export const OCPP_PROTOCOL = 'ocpp1.6';
const { RPCServer, createRPCError, NOREPLY } = ocppRpcFor(OCPP_PROTOCOL);

/** One action's answer: what the service makes of a charge point's (schema-checked) params. */
type ActionHandler = (service: ChargePointService, id: string, params: never) => unknown;

/**
 * The actions this engine answers, and how. Another action of OCPP 1.6 (one a central system
 * sends, as Reset, or one of the security extension's it does not use) gets NotSupported; an
 * action 1.6 does not know, the library's NotImplemented. The core, firmware-management and
 * security messages a charge point sends on its own that the engine has no use for are answered
 * as the specification says a central system that uses none of them does.
 */
const ACTIONS = {
  BootNotification: (service, id, p: BootNotificationReq) => service.bootNotification(id, p),
  Heartbeat: (service) => service.heartbeat(),
  StatusNotification: (service, id, p: StatusNotificationReq) => service.statusNotification(id, p),
  Authorize: (service, id, p: { idTag: string }) => service.authorize(id, p),
  StartTransaction: (service, id, p: StartTransactionReq) => service.startTransaction(id, p),
  StopTransaction: (service, id, p: StopTransactionReq) => service.stopTransaction(id, p),
  MeterValues: (service, id, p: MeterValuesReq) => service.meterValues(id, p),
  DataTransfer: (service) => service.dataTransfer(),
  DiagnosticsStatusNotification: () => ({}),
  FirmwareStatusNotification: () => ({}),
  SecurityEventNotification: (service, id, p: SecurityEventNotificationReq) =>
    service.securityEvent(id, p),
  LogStatusNotification: () => ({}),
  SignedFirmwareStatusNotification: () => ({}),
} satisfies Record<string, ActionHandler>;

export type OcppAction = keyof typeof ACTIONS;
export const OCPP_ACTIONS = Object.keys(ACTIONS) as OcppAction[];
const isAnswered = (method: string): method is OcppAction => Object.hasOwn(ACTIONS, method);

/** The CALLERROR codes of OCPP-J 1.6 (section 4.2.3); ocpp-rpc also sends later versions' own. */
const OCPP16_ERROR_CODES = new Set([
  'NotImplemented',
  'NotSupported',
  'InternalError',
  'ProtocolError',
  'SecurityError',
  'FormationViolation',
  'PropertyConstraintViolation',
  'OccurenceConstraintViolation',
  'TypeConstraintViolation',
  'GenericError',
]);

/**
 * A CALLERROR code as OCPP 1.6 words it: ocpp-rpc answers a frame it cannot read with OCPP
 * 2.0.1's RpcFrameworkError (1.6: FormationViolation) and a missing required field with 2.0.1's
 * spelling OccurrenceConstraintViolation (1.6's has one r).
 */
export function ocpp16ErrorCode(code: string): string {
  if (OCPP16_ERROR_CODES.has(code)) return code;
  if (code === 'RpcFrameworkError') return 'FormationViolation';
  if (code === 'OccurrenceConstraintViolation') return 'OccurenceConstraintViolation';
  return 'GenericError';
}

/**
 * ocpp-rpc's answer to a message of a type OCPP-J does not know (`[5, ...]`): 1.6 has no such
 * answer, and says such a message is ignored (OCPP-J 1.6, 4.1.3).
 */
const UNKNOWN_MESSAGE_TYPE = 'MessageTypeNotSupported';

/**
 * A frame as OCPP 1.6 words it: a CALLERROR's code in 1.6's words, any other frame as it is;
 * null for a frame 1.6 does not send (the answer to a message of an unknown type).
 */
export function asOcpp16Frame(frame: string): string | null {
  if (!frame.startsWith('[4,')) return frame;
  const message = JSON.parse(frame) as unknown[];
  const code = message[2];
  if (code === UNKNOWN_MESSAGE_TYPE) return null;
  if (typeof code !== 'string' || ocpp16ErrorCode(code) === code) return frame;
  message[2] = ocpp16ErrorCode(code);
  return JSON.stringify(message);
}

/**
 * Whether an outgoing frame is ocpp-rpc's refusal of a copy of a call still being answered (a
 * CALLERROR for a message id in `answering`; the call's own answer is sent once it is not).
 */
function isRefusalOfCopy(frame: string, answering: ReadonlyMap<string, unknown>): boolean {
  return frame.startsWith('[4,') && answering.has(String((JSON.parse(frame) as unknown[])[1]));
}

/** OCPP-J 1.6 (4.1.3): a message id is at most 36 characters, room for a GUID. */
const MAX_MESSAGE_ID_LENGTH = 36;

/**
 * Answers a connection may leave unread before it is closed. A charge point that sends and never
 * reads made this process hold every answer (four such, echoing 1 MB message ids: 1.4 GB). Far
 * above what a live charger leaves: its answers are a few hundred bytes each.
 */
const MAX_UNREAD_ANSWER_BYTES = 1024 * 1024;

/** ocpp-rpc's `client.state` once its connection is gone (the WebSocket readyState CLOSED). */
const CLIENT_CLOSED = 3;

/** What a call waiting its turn is answered when this process shuts down before it starts. */
const goingAway = () =>
  createRPCError(
    'InternalError',
    'The central system is shutting down before this call was handled; send it again once reconnected',
  );

/**
 * Calls of one charge point waiting their turn (CallTurns) at most; the next is answered
 * InternalError at once (the charger sends it again later). Bounds what one charge point holds:
 * each waits parsed.
 */
const CALLS_WAITING_PER_CHARGE_POINT = 100;

/** How often this process tells Redis each of its charge points is still connected. */
const SEEN_INTERVAL_MS = 30_000;
/** Slices of the interval: a thirtieth of the charge points is told each second. */
const SEEN_TICKS = 30;

/** The charge point id of an upgrade URL `/ocpp/{id}` (query ignored), or null. */
export function chargePointIdOf(url: string | undefined): string | null {
  const match = /^\/ocpp\/([^/?]+)(\?.*)?$/.exec(url ?? '');
  if (!match) return null;
  try {
    const id = decodeURIComponent(match[1]);
    return CHARGE_POINT_ID.test(id) ? id : null;
  } catch {
    // A malformed escape; ocpp-rpc 2.2.1 would throw it out of handleUpgrade unhandled.
    return null;
  }
}

/**
 * Why a WebSocket upgrade is refused, in words a charge point's installer can act on, as the API's
 * other errors: JSON with a code (`error`) and a message (the OpenAPI document lists them).
 */
export const UPGRADE_REFUSALS = {
  400: {
    error: 'subprotocol_required',
    message: `Offer the WebSocket subprotocol ${OCPP_PROTOCOL} (Sec-WebSocket-Protocol: ${OCPP_PROTOCOL}); this endpoint speaks OCPP 1.6J`,
  },
  401: {
    error: 'invalid_charge_point_key',
    message:
      'Send HTTP Basic with the charge point id as user and, as password, a key with the charge-point scope named after that id',
  },
  404: {
    error: 'not_found',
    message: `Charge points connect to /ocpp/{chargePointId}, the id ${CHARGE_POINT_ID_RULE}`,
  },
  503: {
    error: 'shutting_down',
    message: 'This engine is shutting down; connect again',
  },
};

/** A 401 names the scheme: a client that sends credentials only when challenged needs it. */
const CHALLENGE = 'WWW-Authenticate: Basic realm="ocpp", charset="UTF-8"\r\n';

/** Headers a refusal adds: a 401 names the scheme, a 503 when to come back. */
const REFUSAL_HEADERS: Partial<Record<keyof typeof UPGRADE_REFUSALS, string>> = {
  401: CHALLENGE,
  503: 'Retry-After: 5\r\n',
};

/**
 * Refuses an upgrade, counts it by its error code and logs it once an interval for each code (the
 * first of the interval named, with how many were left out): a charge point that cannot connect
 * was otherwise seen only in its own log, which its operator may not reach. Not per address or
 * id, which anyone may vary at will: a log of its own, five texts at most.
 */
function upgradeRefuser(metrics: OcppMetrics, logger: Logger): RefuseUpgrade {
  const refusals = new RepeatedErrorLog({ logger, level: 'warn' });
  return (req, socket, status, refusal, extraHeaders = '') => {
    metrics.onUpgradeRefused(refusal.error);
    refusals.logFor(
      '',
      refusal.error,
      {
        chargePointId: chargePointIdOf(req.url) ?? undefined,
        remoteAddress: req.socket.remoteAddress,
        status,
        error: refusal.error,
        reason: refusal.message.slice(0, 300),
      },
      'charge point connection refused',
    );
    endWithError(socket, status, refusal, extraHeaders);
  };
}

/** Refuses an upgrade with one of UPGRADE_REFUSALS, and the headers its status adds. */
const refuseAs = (
  refuse: RefuseUpgrade,
  req: IncomingMessage,
  socket: Duplex,
  status: keyof typeof UPGRADE_REFUSALS,
): void => refuse(req, socket, status, UPGRADE_REFUSALS[status], REFUSAL_HEADERS[status]);

/** A message id as OCPP-J 1.6 has it: at most 36 characters, and no NUL, as no text here holds. */
function checkMessageId(messageId: string): void {
  if (messageId.length > MAX_MESSAGE_ID_LENGTH) {
    throw new RefusedCallError(
      'FormationViolation',
      `The message id is ${messageId.length} characters long; OCPP-J allows at most ${MAX_MESSAGE_ID_LENGTH}`,
    );
  }
  if (messageId.includes('\u0000')) {
    throw new RefusedCallError(
      'FormationViolation',
      'The message id holds the character U+0000 (NUL), which no text may hold',
    );
  }
}

/**
 * Why an upgrade's subprotocols do not offer OCPP 1.6J, or null when they do. Read by ocpp-rpc's
 * own parser: a list it cannot read (an empty entry, one offered twice) it answered with a bare 500.
 */
function subprotocolRefusal(req: IncomingMessage): Refusal | null {
  const header = req.headers['sec-websocket-protocol'];
  if (header === undefined || header.trim() === '') return UPGRADE_REFUSALS[400];
  try {
    return parseSubprotocols(header).has(OCPP_PROTOCOL) ? null : UPGRADE_REFUSALS[400];
  } catch (err) {
    const { error, message } = UPGRADE_REFUSALS[400];
    return {
      error,
      message: `Sec-WebSocket-Protocol is not a list of subprotocols (${(err as Error).message}). ${message}`,
    };
  }
}

/**
 * Why an upgrade is no WebSocket handshake the WebSocket library takes (RFC 6455 4.2.1: a
 * Sec-WebSocket-Key of 16 bytes in base64, version 13; the library also takes 8), or null. Said
 * here in the API's JSON, where the library answered a text/html 400.
 */
function handshakeRefusal(req: IncomingMessage): Refusal | null {
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !/^[+/0-9A-Za-z]{22}==$/.test(key)) {
    return {
      error: 'bad_request',
      message:
        'A WebSocket upgrade needs a Sec-WebSocket-Key: 16 random bytes in base64 (RFC 6455)',
    };
  }
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') {
    return {
      error: 'bad_request',
      message: `Sec-WebSocket-Version ${version === undefined ? 'is missing' : `${JSON.stringify(version)} is not supported`}: send 13 (RFC 6455)`,
    };
  }
  return null;
}

interface PendingCall {
  action: string;
  startedAt: number;
}

export interface OcppEndpoint {
  /** Takes the WebSocket upgrades of `/ocpp/...` on this server. */
  attach(server: Server): void;
  /** Charge points connected to this process. */
  connected(): number;
  /** Refuses new connections, lets calls in progress answer, then closes every connection. */
  close(): Promise<void>;
}

/** What decides whether an upgrade becomes a charge point's connection. */
type AuthCallback = Parameters<InstanceType<typeof RPCServer>['auth']>[0];

/**
 * Who may connect: a charge point id at `/ocpp/{id}`, and with AUTH=on security profile 1: HTTP
 * Basic, user = the charge point id (ocpp-rpc checks that), password = a key with the
 * charge-point scope whose name is that id.
 */
function authorizeUpgrade(
  config: { auth: 'on' | 'off'; apiKeys: readonly ApiKey[] },
  refuse: RefuseUpgrade,
): AuthCallback {
  const keys = [...config.apiKeys];
  return (accept, _reject, handshake) => {
    const { request } = handshake;
    if (handshake.endpoint !== OCPP_PATH || !CHARGE_POINT_ID.test(handshake.identity)) {
      refuseAs(refuse, request, request.socket, 404);
      return;
    }
    if (config.auth === 'on') {
      // Two Authorization headers: which one a proxy in front read is unknown, so neither counts.
      const ambiguous = authorizationHeaders(request.rawHeaders) > 1;
      // Its own key only: of the forms a password may take, none can then match another's first.
      const own = keys.filter(
        (k) => k.name === handshake.identity && k.scopes.includes('charge-point'),
      );
      const key =
        handshake.password && !ambiguous ? findChargePointKey(own, handshake.password) : null;
      if (!key) {
        // Answered here, not by reject(), which cannot add the challenge; the library cleans up
        // when the socket closes.
        refuseAs(refuse, request, request.socket, 401);
        return;
      }
    }
    // A client that did not offer it was refused at the upgrade (subprotocolRefusal).
    accept({}, OCPP_PROTOCOL);
  };
}

/**
 * Answers one call of a charge point: its action's answer, or a CALLERROR in our own words (never
 * a driver's) when it fails. One function for every connection and action: a closure per action
 * and connection cost 10,000 charge points about 25 MB of heap.
 */
function answerCalls(service: ChargePointService, logger: Logger, faults: RepeatedErrorLog) {
  // While Redis or PostgreSQL is away every charger's every call fails alike: once an interval.
  const failures = new RepeatedErrorLog({ logger, level: 'warn' });
  return async (
    id: string,
    action: string,
    params: Record<string, unknown> | undefined,
    messageId: string,
  ) => {
    try {
      checkMessageId(messageId);
      refuseUnstorableText(params);
      if (!isAnswered(action)) {
        throw new RefusedCallError(
          'NotSupported',
          `${action} is an OCPP 1.6 action this central system does not support; it answers ${OCPP_ACTIONS.join(', ')}`,
        );
      }
      const handle = ACTIONS[action] as (s: ChargePointService, id: string, p: unknown) => unknown;
      return (await handle(service, id, params)) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof RefusedCallError) {
        logFault(
          faults,
          id,
          `${action} ${err.code}`,
          { action, reason: err.message },
          'OCPP call refused',
        );
        throw createRPCError(err.code, err.message);
      }
      const stored = err instanceof NotStoredError;
      failures.log(
        err,
        { chargePointId: id, action },
        'OCPP call answered with InternalError',
        `${action} ${(err as Error).name}: ${(err as Error).message}`,
      );
      throw createRPCError(
        'InternalError',
        stored ? err.message : 'The engine could not handle this message; retry later',
      );
    }
  };
}

/**
 * Logs a connection closed for what its charge point sent: frames in a row that were no OCPP-J
 * message to take (ocpp-rpc closes with 1002 after 10) or a message over BODY_LIMIT (the WebSocket
 * library closes with 1009). The close code in the 'close' event is the one the charger sends
 * back, if any: it does not tell.
 */
function logClosesForWhatItSent(client: RPCServerClient, id: string, logger: Logger): void {
  const close = client.close.bind(client);
  client.close = (options) => {
    if (options?.code === 1002) {
      logger.warn(
        { chargePointId: id, reason: options.reason },
        'OCPP connection closed (1002): frames in a row were no OCPP-J message it could take',
      );
    }
    return close(options);
  };
  client.on('socketError', (err: Error & { code?: string }) => {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      logger.warn(
        { chargePointId: id },
        'OCPP connection closed (1009): a message larger than BODY_LIMIT',
      );
    }
  });
}

/**
 * Logs what a charge point does wrong (a refusal of what it sent, a connection replacing its own)
 * once an interval for each charge point and `kind`: one that repeats a bad message wrote a line
 * each, 2,000 in 4 s. The first line says what was wrong; one at the interval's end counts those
 * left out (`repeated`).
 */
function logFault(
  faults: RepeatedErrorLog,
  id: string,
  kind: string,
  fields: Record<string, unknown>,
  message: string,
): void {
  faults.logFor(id, kind, { chargePointId: id, ...fields }, message);
}

/**
 * Counts a connection's calls by action and outcome, and logs messages that fail their schema. A
 * copy of a call being answered (`answering`) is neither: the call's own answer is its answer.
 */
function watchCalls(
  client: RPCServerClient,
  id: string,
  {
    metrics,
    faults,
    answering,
  }: { metrics: OcppMetrics; faults: RepeatedErrorLog; answering: ReadonlyMap<string, unknown> },
): void {
  const pending = new Map<string, PendingCall>();
  client.on('call', ({ outbound, payload }: { outbound: boolean; payload: unknown[] }) => {
    const messageId = String(payload[1]);
    if (outbound || answering.has(messageId)) return;
    pending.set(messageId, { action: String(payload[2]), startedAt: Date.now() });
  });
  client.on('response', ({ outbound, payload }: { outbound: boolean; payload: unknown[] }) => {
    if (!outbound || answering.has(String(payload[1]))) return;
    const call = pending.get(String(payload[1]));
    if (!call) return;
    pending.delete(String(payload[1]));
    // A call dropped as the connection went is "answered" to no one: not counted as an answer.
    if (client.state === CLIENT_CLOSED) return;
    const failed = payload[0] === 4;
    metrics.onResponse(
      call.action,
      failed ? 'callerror' : 'ok',
      // The code as the charge point gets it (asOcpp16Frame).
      failed ? ocpp16ErrorCode(String(payload[2])) : null,
      Date.now() - call.startedAt,
    );
  });
  // A frame that is no readable CALL never becomes a call: its CALLERROR is counted here, and a
  // message of an unknown type, which gets none, is counted and logged.
  client.on(
    'badMessage',
    ({ response, buffer }: { response: unknown[] | null; buffer: Buffer }) => {
      if (!response) {
        // An answer to no call of ours (one late past our timeout, or to a call never made): not
        // answered, as OCPP-J has it, but it counts to the 1002 below, and said why here.
        logFault(
          faults,
          id,
          'answer to no call',
          { message: buffer.toString('utf8', 0, 200) },
          'OCPP answer to no call of this central system ignored (late, or to a call never made)',
        );
        return;
      }
      if (response[2] !== UNKNOWN_MESSAGE_TYPE) {
        metrics.onUnreadable(ocpp16ErrorCode(String(response[2])));
        return;
      }
      metrics.onUnreadable(null);
      logFault(
        faults,
        id,
        UNKNOWN_MESSAGE_TYPE,
        { message: buffer.toString('utf8', 0, 200) },
        'OCPP message of an unknown type ignored: OCPP-J 1.6 knows CALL (2), CALLRESULT (3) and CALLERROR (4)',
      );
    },
  );
  client.on(
    'strictValidationFailure',
    (event: { method: string; outbound: boolean; error: Error & { rpcErrorCode?: string } }) => {
      const code = event.error.rpcErrorCode;
      // An action OCPP 1.6 does not know is any text (FooBar1, FooBar2, ...): one kind, all.
      const action = code === 'NotImplemented' ? 'an unknown action' : event.method;
      logFault(
        faults,
        id,
        `${action} ${code}`,
        { action: event.method, outbound: event.outbound, reason: event.error.message },
        event.outbound ? 'our OCPP answer failed its schema' : 'OCPP message failed its schema',
      );
    },
  );
}

export function createOcppEndpoint({
  service,
  state,
  config,
  metrics,
  logger,
  pingIntervalMs = 30_000,
}: {
  service: ChargePointService;
  state: ChargePointState;
  /**
   * bodyLimitBytes (BODY_LIMIT) bounds one message as it bounds an HTTP body: a StopTransaction
   * carrying a day offline of transactionData cannot be split (420 KB for 12 hours of four
   * measurands a minute), and was closed with 1009 at every resend.
   */
  config: { auth: 'on' | 'off'; apiKeys: readonly ApiKey[]; bodyLimitBytes: number };
  metrics: OcppMetrics;
  logger: Logger;
  pingIntervalMs?: number;
}): OcppEndpoint {
  const rpc = new RPCServer({
    protocols: [OCPP_PROTOCOL],
    strictMode: true,
    strictModeValidators: [validatorWithoutEcho(OCPP_PROTOCOL)],
    pingIntervalMs,
    maxBadMessages: 10,
    wssOptions: { maxPayload: config.bodyLimitBytes },
  });
  rpc.on('error', (err: Error) => logger.error({ err }, 'OCPP server error'));
  // What a charge point does wrong or oddly: once an interval for each charge point and kind.
  const faults = new RepeatedErrorLog({ logger, level: 'warn' });
  const refuse = upgradeRefuser(metrics, logger);
  rpc.auth(authorizeUpgrade(config, refuse));
  const answer = answerCalls(service, logger, faults);
  /** The charge points connected here, each with its connection (recorded again while it lives). */
  const live = new Map<string, { client: RPCServerClient; connection: LiveConnection }>();
  const turns = new CallTurns();
  /** Calls being answered (or waiting their turn): a shutdown waits for them. */
  const inFlight = new Set<Promise<unknown>>();
  let closing = false;

  /**
   * A charge point whose connection Redis had to record again (it lost its data, or another
   * connection of its id took the record away) is asked for its connectors' statuses, also lost.
   */
  const recovery = new StatusRecovery({
    // Only a connection still the charge point's own here: one closed or replaced meanwhile (the
    // wave may take minutes with thousands of charge points) has nothing to ask.
    ask: (connection, { signal, timeoutMs }) => {
      const here = live.get(connection.chargePointId);
      if (here?.connection !== connection) return null;
      return here.client.call(
        'TriggerMessage',
        { requestedMessage: 'StatusNotification' },
        { signal, callTimeoutMs: timeoutMs },
      );
    },
    logger,
  });
  /** Tells Redis these connections are still here; asks those it had lost for their statuses. */
  const refresh = (connections: LiveConnection[]) =>
    state
      .seen(connections, new Date())
      .then((again) => recovery.add(again))
      .catch((err: unknown) => {
        logger.debug({ err }, 'charge point presence not refreshed');
      });
  const presence = new PresenceRefresh(refresh, {
    intervalMs: SEEN_INTERVAL_MS,
    ticks: SEEN_TICKS,
  });
  presence.start();
  // A Redis back from an outage may have restarted empty: every connection is told at once, not
  // over the next SEEN_INTERVAL_MS, for the charge points to read as connected again (a
  // standalone Redis; a Cluster's client says nothing when one master comes back).
  const stopWatchingRedis = state.onReady(
    () => void refresh([...live.values()].map((l) => l.connection)),
  );

  rpc.on('client', (client: RPCServerClient) => {
    const id = client.identity as string;
    const connection = randomBytes(6).toString('hex');
    // A charge point that reconnects before its old connection is seen dead: keep the newest.
    // Two charge points configured with one id do this to each other, each time one reconnects.
    const previous = live.get(id);
    const here: LiveConnection = { chargePointId: id, connection, connectedAt: new Date() };
    live.set(id, { client, connection: here });
    presence.add(here);
    if (previous) {
      presence.remove(previous.connection);
      metrics.onReplaced();
      // Once an interval: two charge points sharing an id replace each other for ever.
      logFault(
        faults,
        id,
        'replaced',
        {},
        'charge point connected again while connected: the older connection is closed (if this repeats, two charge points share this id)',
      );
      void previous.client.close({ code: 1000, reason: 'Replaced by a new connection' });
    }
    metrics.onConnections(live.size);
    state.connected(id, connection, here.connectedAt).catch((err: unknown) => {
      logger.warn({ err, chargePointId: id }, 'charge point connection not recorded');
    });
    service.connected(id);
    // The message ids of this connection's calls being answered. A charger that sends a call
    // again before its answer came (a resend after its own timeout) had ocpp-rpc refuse the copy
    // ("Already processing a call with message ID"), then got the first's answer: two answers to
    // one id, the refusal first, though the call was stored. That refusal is not sent, nor
    // counted (watchCalls). Refusing it, ocpp-rpc also forgets the first (its `finally`), so a
    // further copy reaches the handler: not handled again. One answer, the call's own. Forgotten
    // so, the first is no longer aborted by ocpp-rpc when the connection goes: each call's own
    // controller is, here.
    const answering = new Map<string, AbortController>();
    watchCalls(client, id, { metrics, faults, answering });
    const sendRaw = client.sendRaw.bind(client);
    const socket = client.handshake.request.socket;
    client.sendRaw = (frame: string) => {
      if (isRefusalOfCopy(frame, answering)) return;
      const sent = asOcpp16Frame(frame);
      if (sent === null) return;
      sendRaw(sent);
      if (socket.writableLength > MAX_UNREAD_ANSWER_BYTES && !socket.destroyed) {
        logger.warn(
          { chargePointId: id, unreadBytes: socket.writableLength },
          'OCPP connection closed: the charge point does not read its answers',
        );
        // No close frame, which would wait behind the rest; destroyed even while already closing.
        socket.destroy();
      }
    };
    logClosesForWhatItSent(client, id, logger);
    client.once('close', ({ code }: { code: number }) => {
      if (live.get(id)?.client === client) live.delete(id);
      presence.remove(here);
      metrics.onConnections(live.size);
      logger.debug({ chargePointId: id, code }, 'charge point disconnected');
      for (const call of answering.values()) call.abort();
      state.disconnected(id, connection, new Date()).catch(() => undefined);
    });
    client.handle(
      async ({
        method = '',
        params,
        messageId = '',
        signal,
      }: {
        method?: string;
        params?: Record<string, unknown>;
        messageId?: string;
        signal?: AbortSignal;
      }) => {
        service.heardFrom(id);
        if (answering.has(messageId)) return NOREPLY;
        const call = new AbortController();
        answering.set(messageId, call);
        const abort = () => call.abort();
        signal?.addEventListener('abort', abort, { once: true });
        const answered = answerInTurn(
          method,
          () => answer(id, method, params, messageId),
          call.signal,
        );
        inFlight.add(answered);
        try {
          return await answered;
        } finally {
          answering.delete(messageId);
          signal?.removeEventListener('abort', abort);
          inFlight.delete(answered);
        }
      },
    );
    /**
     * A call answered in its charge point's turn (CallTurns; OCPP-J has a charge point wait for
     * each answer, and 3,000 calls sent at once took the API's whole database pool from every
     * other client). A heartbeat does no I/O: answered at once, also while slow calls wait.
     */
    const answerInTurn = async (
      method: string,
      call: () => Promise<Record<string, unknown>>,
      signal: AbortSignal,
    ) => {
      if (method === 'Heartbeat') return call();
      if (turns.waiting(id) >= CALLS_WAITING_PER_CHARGE_POINT) {
        throw createRPCError(
          'InternalError',
          `${CALLS_WAITING_PER_CHARGE_POINT} calls of this charge point are waiting for their turn: send one at a time, each after the answer to the one before (OCPP-J), and send this one again`,
        );
      }
      // Calls still waiting when the connection goes (a hang-up, a replacement: `signal`) are
      // dropped, as are those this process, shutting down, has not started.
      return turns.run(id, signal, () => (closing ? Promise.reject(goingAway()) : call()));
    };
  });

  return {
    attach(server) {
      onWebSocketUpgrade(
        server,
        (req, socket, head) => {
          if (closing) return refuseAs(refuse, req, socket, 503);
          if (chargePointIdOf(req.url) === null) return refuseAs(refuse, req, socket, 404);
          const handshake = handshakeRefusal(req);
          if (handshake) {
            return refuse(req, socket, 400, handshake, 'Sec-WebSocket-Version: 13\r\n');
          }
          const subprotocol = subprotocolRefusal(req);
          if (subprotocol) return refuse(req, socket, 400, subprotocol);
          rpc.handleUpgrade(req, socket as Socket, head).catch(() => socket.destroy());
        },
        refuse,
      );
    },
    connected: () => live.size,
    async close() {
      closing = true;
      presence.stop();
      stopWatchingRedis();
      recovery.stop();
      // Calls in progress finish (their readings are stored and answered), those waiting their
      // turn are answered InternalError unstarted; then every socket closes as "going away", and
      // charge points reconnect to another replica and send again what was not answered.
      await rpc.close({ code: 1001, reason: 'Server shutting down', awaitPending: true });
      // Those ocpp-rpc forgot (a copy refused, above) too: their answer cannot go, but their
      // storage must not be closed under them.
      await Promise.allSettled([...inFlight]);
    },
  };
}
