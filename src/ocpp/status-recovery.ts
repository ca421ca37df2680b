import type { Logger } from '../logger';
import { TimeoutError } from 'ocpp-rpc';
import type { LiveConnection } from './charge-point-state';

/**
 * Asks for at most this many at once: after a Redis that restarted empty, every connected charge
 * point is asked, and each answers with a StatusNotification per connector, each a Redis write,
 * while the clients refused meanwhile retry their readings.
 */
const CONCURRENCY = 20;

/** A charge point that does not answer is given up on after this long (ocpp-rpc waits 60 s). */
export const ASK_TIMEOUT_MS = 10_000;

/** What the ask of one connection gives: its answer, or null when it is no longer connected here. */
export type Ask = (
  connection: LiveConnection,
  options: { signal: AbortSignal; timeoutMs: number },
) => Promise<unknown> | null;

/**
 * How a charge point answered, in the words an operator looks up: the TriggerMessage's status
 * (Accepted, Rejected, NotImplemented), a CALLERROR's code (a charge point without the Remote
 * Trigger profile may answer NotImplemented or NotSupported so), no answer in time, or gone.
 */
function outcomeOf(answer: unknown): string {
  const status = (answer as { status?: unknown } | null | undefined)?.status;
  return typeof status === 'string' ? status : 'no status';
}

function failureOf(err: unknown): string {
  const { rpcErrorCode } = err as { rpcErrorCode?: unknown };
  if (typeof rpcErrorCode === 'string') return `CALLERROR ${rpcErrorCode}`;
  // By class: ocpp-rpc's TimeoutError does not set its name (it reads "Error").
  if (err instanceof TimeoutError) return 'no answer in time';
  return 'connection closed';
}

/**
 * Asks charge points whose record Redis had to make again (it lost its data, or another
 * connection of the same id took the record away) for their connectors' statuses (OCPP 1.6
 * TriggerMessage StatusNotification, of the Remote Trigger profile), a few at a time, and says in
 * one log line per wave how they answered: without the statuses a charge point's connectors are
 * unknown until each changes state.
 */
export class StatusRecovery {
  private readonly waiting: LiveConnection[] = [];
  /** Waiting or being asked: a connection is asked once per wave. */
  private readonly pending = new Set<LiveConnection>();
  /** One per ask: a signal shared by all would keep each call (and its connection) listening. */
  private readonly asking = new Set<AbortController>();
  private tally = new Map<string, number>();
  private stopped = false;

  constructor(private readonly deps: { ask: Ask; logger: Logger }) {}

  add(connections: LiveConnection[]): void {
    if (this.stopped) return;
    for (const connection of connections) {
      if (this.pending.has(connection)) continue;
      this.pending.add(connection);
      this.waiting.push(connection);
    }
    this.pump();
  }

  /** Abandons the asks in flight and asks no more: shutdown must not wait on charge points. */
  stop(): void {
    this.stopped = true;
    this.waiting.length = 0;
    for (const controller of this.asking) controller.abort();
  }

  private pump(): void {
    while (this.asking.size < CONCURRENCY && this.waiting.length > 0) {
      const connection = this.waiting.shift() as LiveConnection;
      const controller = new AbortController();
      this.asking.add(controller);
      void this.askOne(connection, controller.signal).finally(() => {
        this.asking.delete(controller);
        this.pending.delete(connection);
        if (this.waiting.length > 0) this.pump();
        else if (this.asking.size === 0) this.report();
      });
    }
  }

  private async askOne(connection: LiveConnection, signal: AbortSignal): Promise<void> {
    let outcome: string;
    try {
      const call = this.deps.ask(connection, { signal, timeoutMs: ASK_TIMEOUT_MS });
      outcome = call === null ? 'gone' : outcomeOf(await call);
    } catch (err) {
      outcome = failureOf(err);
      const { chargePointId } = connection;
      this.deps.logger.debug({ err, chargePointId }, 'charge point not asked for its statuses');
    }
    this.tally.set(outcome, (this.tally.get(outcome) ?? 0) + 1);
  }

  private report(): void {
    // Stopped: the asks were abandoned, not answered; there is nothing to tell.
    if (this.stopped) return;
    const answers = Object.fromEntries(this.tally);
    this.tally = new Map();
    this.deps.logger.info(
      { answers },
      "asked charge points whose record Redis had to make again for their connectors' statuses (TriggerMessage StatusNotification); those that did not accept show their connectors as each next reports",
    );
  }
}
