import { ConcurrencyLimit } from '../concurrency-limit';

/**
 * Each charge point's calls one at a time, in the order they came, across all its connections to
 * this process. A connector's calls read what the one before stored (its register, its open
 * transaction): two MeterValues of one connector handled at once each read the register before
 * the other's sample, and a sample the first had made stale was stored, billed in the reports. A
 * charger that sends without waiting for answers (OCPP-J has it wait), or one reconnecting while
 * a call of its old connection still runs, sent such pairs.
 */
export class CallTurns {
  /** Each charge point with calls running or waiting: its turns, and how many calls hold them. */
  private readonly byChargePoint = new Map<string, { turns: ConcurrencyLimit; calls: number }>();

  /** Calls of the charge point waiting for their turn. */
  waiting(chargePointId: string): number {
    return this.byChargePoint.get(chargePointId)?.turns.waiting ?? 0;
  }

  /** Runs `call` in the charge point's turn; rejects (AbortError) if `signal` aborts while waiting. */
  async run<T>(chargePointId: string, signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    let held = this.byChargePoint.get(chargePointId);
    if (!held) {
      held = { turns: new ConcurrencyLimit(1), calls: 0 };
      this.byChargePoint.set(chargePointId, held);
    }
    held.calls += 1;
    try {
      return await held.turns.run(signal, call);
    } finally {
      held.calls -= 1;
      if (held.calls === 0) this.byChargePoint.delete(chargePointId);
    }
  }
}
