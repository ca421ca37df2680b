import type { Logger } from '../logger';

/** How a charge point answered a TriggerMessage for its statuses (its `status`), or why none. */
type Outcome = 'Accepted' | 'Rejected' | 'NotImplemented' | 'failed';

/**
 * Asks for at most this many at once: after a Redis that restarted empty, every connected charge
 * point is asked, and each answers with a StatusNotification per connector, each a Redis write,
 * while the clients refused meanwhile retry their readings.
 */
const CONCURRENCY = 20;

/** A charge point that does not answer is given up on after this long (ocpp-rpc waits 60 s). */
export const ASK_TIMEOUT_MS = 10_000;

/**
 * Asks charge points whose live state Redis lost for their connectors' statuses (OCPP 1.6
 * TriggerMessage StatusNotification, of the Remote Trigger profile), a few at a time, and says
 * in one log line per wave how they answered: without the statuses a charge point's connectors
 * are unknown until each changes state.
 */
export class StatusRecovery {
  private readonly waiting: string[] = [];
  private readonly queued = new Set<string>();
  private inFlight = 0;
  private tally = new Map<Outcome, number>();
  private readonly stopped = new AbortController();

  constructor(
    private readonly deps: {
      /** Sends the TriggerMessage to the charge point connected here; its answer's `status`. */
      ask: (
        chargePointId: string,
        options: { signal: AbortSignal; timeoutMs: number },
      ) => Promise<unknown>;
      logger: Logger;
    },
  ) {}

  /** Queues charge points to ask (one already waiting is asked once). */
  add(chargePointIds: string[]): void {
    if (this.stopped.signal.aborted) return;
    for (const id of chargePointIds) {
      if (this.queued.has(id)) continue;
      this.queued.add(id);
      this.waiting.push(id);
    }
    this.pump();
  }

  /** Abandons the calls in flight and asks no more (shutdown must not wait on charge points). */
  stop(): void {
    this.stopped.abort();
    this.waiting.length = 0;
    this.queued.clear();
  }

  private pump(): void {
    while (this.inFlight < CONCURRENCY && this.waiting.length > 0) {
      const id = this.waiting.shift() as string;
      this.queued.delete(id);
      this.inFlight += 1;
      void this.askOne(id).finally(() => {
        this.inFlight -= 1;
        if (this.waiting.length > 0) this.pump();
        else if (this.inFlight === 0) this.report();
      });
    }
  }

  private async askOne(chargePointId: string): Promise<void> {
    let outcome: Outcome = 'failed';
    try {
      const answer = await this.deps.ask(chargePointId, {
        signal: this.stopped.signal,
        timeoutMs: ASK_TIMEOUT_MS,
      });
      const status = (answer as { status?: unknown } | undefined)?.status;
      if (status === 'Accepted' || status === 'Rejected' || status === 'NotImplemented') {
        outcome = status;
      }
    } catch (err) {
      // A CALLERROR (NotImplemented, NotSupported), no answer in time, or the connection closed.
      this.deps.logger.debug({ err, chargePointId }, 'charge point not asked for its statuses');
    }
    this.tally.set(outcome, (this.tally.get(outcome) ?? 0) + 1);
  }

  private report(): void {
    if (this.stopped.signal.aborted) return;
    const answers = Object.fromEntries(this.tally);
    this.tally = new Map();
    this.deps.logger.info(
      { answers },
      "asked charge points whose live state Redis had lost for their connectors' statuses (TriggerMessage StatusNotification); those that did not accept show their connectors as each next reports",
    );
  }
}
