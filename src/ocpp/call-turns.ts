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
  /** Each charge point with calls running or waiting: its turns. */
  private readonly byChargePoint = new Map<string, ConcurrencyLimit>();

  /** Calls of the charge point waiting for their turn. */
  waiting(chargePointId: string): number {
    return this.byChargePoint.get(chargePointId)?.waiting ?? 0;
  }

  /** Runs `call` in the charge point's turn; rejects (AbortError) if `signal` aborts while waiting. */
  async run<T>(chargePointId: string, signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    let turns = this.byChargePoint.get(chargePointId);
    if (!turns) {
      turns = new ConcurrencyLimit(1);
      this.byChargePoint.set(chargePointId, turns);
    }
    try {
      return await turns.run(signal, call);
    } finally {
      // The last call out (a finishing one hands its turn to the next, which keeps it busy).
      if (turns.idle && this.byChargePoint.get(chargePointId) === turns) {
        this.byChargePoint.delete(chargePointId);
      }
    }
  }
}
