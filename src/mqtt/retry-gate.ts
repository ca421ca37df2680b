/**
 * One gate for every store the MQTT intake retries. While storage answers "not now" (a 503: Redis
 * down, backlog full, Redis memory high) the gate is closed: a single probe tries again after a
 * delay that doubles up to `maxMs`, everyone else waits without trying (and without a log line or
 * a Redis call each). The first success opens the gate and every waiter goes at once, which the
 * group-commit buffer turns into a few large writes.
 */
export interface GateTicket {
  readonly probe: boolean;
}

const OPEN_TICKET: GateTicket = { probe: false };
const PROBE_TICKET: GateTicket = { probe: true };

export class RetryGate {
  private state: 'open' | 'closed' = 'open';
  private delayMs: number;
  /** A probe may go: its delay has passed and no probe is in flight. */
  private probeDue = false;
  private timer: NodeJS.Timeout | null = null;
  private closedAt = 0;
  private readonly waiters = new Set<{ wake: (ticket: GateTicket) => void }>();

  constructor(
    private readonly options: {
      minMs: number;
      maxMs: number;
      onClose?: () => void;
      onOpen?: (closedForMs: number) => void;
    },
  ) {
    this.delayMs = options.minMs;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get waiting(): number {
    return this.waiters.size;
  }

  /** Resolves when the caller may try; rejects (AbortError) when `signal` aborts first. */
  pass(signal: AbortSignal): Promise<GateTicket> {
    if (signal.aborted) return Promise.reject(abortError());
    if (this.state === 'open') return Promise.resolve(OPEN_TICKET);
    if (this.probeDue) {
      this.probeDue = false;
      return Promise.resolve(PROBE_TICKET);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        wake: (ticket: GateTicket) => {
          signal.removeEventListener('abort', onAbort);
          resolve(ticket);
        },
      };
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(abortError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
  }

  /**
   * For a caller that cannot wait (a QoS 0 message, stored now or never): a ticket when it may try
   * at once (the gate open, or a probe due and nobody waiting to take it), else null. A closed
   * gate with only such callers is reopened by them taking the probe's turn.
   */
  passNow(): GateTicket | null {
    if (this.state === 'open') return OPEN_TICKET;
    if (!this.probeDue) return null;
    this.probeDue = false;
    return PROBE_TICKET;
  }

  /**
   * Storage worked: open, and let every waiter go. While the gate is closed only its probe
   * reopens it: an attempt that passed before the gate closed may still succeed (admitted on an
   * older look at the backlog), and reopening on it let every waiter through, wave after wave.
   */
  succeeded(ticket: GateTicket): void {
    if (this.state === 'open' || !ticket.probe) return;
    this.state = 'open';
    this.delayMs = this.options.minMs;
    this.probeDue = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.options.onOpen?.(Date.now() - this.closedAt);
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w.wake(OPEN_TICKET);
  }

  /**
   * The attempt ended without telling whether storage takes readings (its message was refused for
   * its own fault): a probe hands probing on, so the waiters are not left without one.
   */
  undecided(ticket: GateTicket): void {
    if (this.state === 'closed' && ticket.probe) this.scheduleProbe();
  }

  /** Storage refused this attempt. The first refusal closes the gate; a failed probe doubles the delay. */
  failed(ticket: GateTicket): void {
    if (this.state === 'open') {
      this.state = 'closed';
      this.closedAt = Date.now();
      this.delayMs = this.options.minMs;
      this.options.onClose?.();
      this.scheduleProbe();
    } else if (ticket.probe) {
      this.delayMs = Math.min(this.delayMs * 2, this.options.maxMs);
      this.scheduleProbe();
    }
    // A refusal of an attempt made before the gate closed changes nothing: a probe is scheduled.
  }

  /** Stops the probe timer (waiters are released by their own signals). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private scheduleProbe(): void {
    if (this.timer) clearTimeout(this.timer);
    this.probeDue = false;
    this.timer = setTimeout(() => {
      this.timer = null;
      const [first] = this.waiters;
      if (first) {
        this.waiters.delete(first);
        first.wake(PROBE_TICKET);
      } else {
        this.probeDue = true;
      }
    }, this.delayMs);
    this.timer.unref();
  }
}

function abortError(): Error {
  const err = new Error('aborted');
  err.name = 'AbortError';
  return err;
}
