/**
 * A simulated OCPP 1.6J charge point: ocpp-rpc's RPCClient in strict mode (it checks what it sends
 * and what it gets against the OCPP 1.6 schemas), reconnecting by itself once it has connected.
 * It keeps each message until the engine answers it with a .conf, as a charger keeps its
 * transaction messages: a CALLERROR InternalError (the engine could not store it yet), a lost
 * connection or a timeout means "send it again later"; any other CALLERROR means resending
 * cannot help, and the message is given up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import { RPCClient } from 'ocpp-rpc';
import { OCPP_PROTOCOL } from '../src/ocpp/ocpp-endpoint';
import { ENERGY_REGISTER } from '../src/ocpp/meter-values';

type ClientOptions = ConstructorParameters<typeof RPCClient>[0];

export interface ChargePointOptions {
  /** The engine's OCPP endpoint, `ws://HOST:PORT/ocpp`. */
  endpoint: string;
  id: string;
  /** Basic auth password: a key with the charge-point scope named like the charge point. */
  password?: string | null;
  /** Wait before resending a message that got no .conf; grows with each attempt, up to 10x. */
  retryDelayMs?: number;
  callTimeoutMs?: number;
  /** The client's own WebSocket pings; 0 leaves keep-alive to the engine's pings. */
  pingIntervalMs?: number;
  /** Check what it sends and gets against the OCPP 1.6 schemas (default true). */
  strict?: boolean;
}

/** The engine refused a message for good (a CALLERROR other than InternalError). */
export class MessageRefused extends Error {
  constructor(
    readonly action: string,
    readonly code: string,
    description: string,
  ) {
    super(`${action} refused with ${code}: ${description}`);
    this.name = 'MessageRefused';
  }
}

/** The engine refused the connection itself (401 bad key, 404 bad id, 400 no subprotocol). */
export class ConnectionRefused extends Error {
  constructor(
    readonly chargePointId: string,
    readonly status: number,
  ) {
    super(`charge point ${chargePointId}: the engine refused the connection with HTTP ${status}`);
    this.name = 'ConnectionRefused';
  }
}

/** CALLERRORs that say "not now": the message is kept and sent again. */
const RESEND_CODES = new Set(['InternalError', 'GenericError']);

/** A failure without a CALLERROR (disconnected, timed out, not connected) is worth resending too. */
function worthResending(err: unknown): boolean {
  const code = (err as { rpcErrorCode?: string }).rpcErrorCode;
  return code === undefined || RESEND_CODES.has(code);
}

/** Waits for a reconnecting client to open or give up, leaving no listener behind. */
async function openedOrClosed(client: RPCClient): Promise<void> {
  const done = new AbortController();
  try {
    await Promise.race([
      once(client, 'open', { signal: done.signal }),
      once(client, 'close', { signal: done.signal }),
    ]);
  } finally {
    done.abort();
  }
}

export class SimulatedChargePoint {
  /** .confs received; messages sent again; messages given up; connections opened. */
  readonly counters = { answered: 0, resent: 0, refused: 0, connections: 0 };
  private readonly client: RPCClient;
  private readonly retryDelayMs: number;
  private closed = false;

  constructor(private readonly options: ChargePointOptions) {
    this.retryDelayMs = options.retryDelayMs ?? 1000;
    this.client = new RPCClient({
      endpoint: options.endpoint,
      identity: options.id,
      protocols: [OCPP_PROTOCOL],
      strictMode: options.strict ?? true,
      reconnect: true,
      callTimeoutMs: options.callTimeoutMs ?? 30_000,
      pingIntervalMs: options.pingIntervalMs ?? 30_000,
      backoff: { initialDelay: 250, maxDelay: 5000, factor: 2, randomisationFactor: 0.5 },
      ...(options.password ? { password: options.password } : {}),
    } as Partial<ClientOptions> as ClientOptions);
    this.client.on('open', () => this.counters.connections++);
  }

  get id(): string {
    return this.options.id;
  }

  get connected(): boolean {
    return this.client.state === RPCClient.OPEN;
  }

  /**
   * Resolves once connected. The first connection is retried here until the engine answers
   * (RPCClient reconnects by itself only after one); a refused upgrade is thrown.
   */
  async connect(): Promise<void> {
    for (let attempt = 1; !this.closed; attempt++) {
      if (this.client.state === RPCClient.OPEN) return;
      if (this.client.state === RPCClient.CONNECTING) {
        await openedOrClosed(this.client);
        continue;
      }
      try {
        await this.client.connect();
        return;
      } catch (err) {
        const status = (err as { code?: unknown }).code;
        if (typeof status === 'number') throw new ConnectionRefused(this.options.id, status);
        await sleep(Math.min(attempt, 10) * this.retryDelayMs);
      }
    }
    throw new Error(`charge point ${this.options.id} is closed`);
  }

  /** Sends one CALL once, on the connection as it is: the .conf, or why there is none. */
  async callOnce<T = Record<string, unknown>>(action: string, params: object): Promise<T> {
    const conf = (await this.client.call(action, params)) as T;
    this.counters.answered++;
    return conf;
  }

  /** Sends one CALL until it gets its .conf; throws MessageRefused if resending cannot help. */
  async call<T = Record<string, unknown>>(action: string, params: object): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.connect();
      try {
        return await this.callOnce<T>(action, params);
      } catch (err) {
        if (this.closed) throw err;
        if (!worthResending(err)) {
          this.counters.refused++;
          const { rpcErrorCode, message } = err as { rpcErrorCode: string; message: string };
          throw new MessageRefused(action, rpcErrorCode, message);
        }
        this.counters.resent++;
        await sleep(Math.min(attempt, 10) * this.retryDelayMs);
      }
    }
  }

  /** Closes the connection; with `force` at once, else after the calls in flight. */
  async close({ force = false } = {}): Promise<void> {
    this.closed = true;
    await this.client.close(force ? { force: true } : { code: 1000, awaitPending: true });
  }
}

/** One `meterValue` element: the register in Wh and, if given, the voltage, at `timestamp`. */
export function meterValue(timestamp: string, registerWh: number, voltage?: number) {
  return {
    timestamp,
    sampledValue: [
      {
        value: String(registerWh),
        measurand: ENERGY_REGISTER,
        unit: 'Wh',
        context: 'Sample.Periodic',
      },
      ...(voltage === undefined
        ? []
        : [{ value: voltage.toFixed(1), measurand: 'Voltage', unit: 'V' }]),
    ],
  };
}

export type MeterValueElement = ReturnType<typeof meterValue>;

/** A MeterValues.req of one connector: one element, or several a charger sends when catching up. */
export function meterValuesReq(
  connectorId: number,
  elements: MeterValueElement[],
  transactionId?: number,
) {
  return {
    connectorId,
    meterValue: elements,
    ...(transactionId === undefined ? {} : { transactionId }),
  };
}
