import { SimulatedChargePoint, meterValue, meterValuesReq } from '../../scripts/ocpp-charge-point';
import { connectorMeterId } from '../../src/ocpp/charge-point-state';
import type { Ledger } from './harness';

const BASE_MS = Date.parse('2024-05-01T00:00:00Z');

/**
 * Charge points under load with a ledger: each of `count` simulated charge points (real
 * RPCClients, strict OCPP 1.6) sends MeterValues of its connector one after another, each with a
 * new timestamp and a higher register, and keeps a message until it gets its .conf, as a charger
 * does across reconnects. A reading enters the ledger only once its .conf has arrived.
 */
export class OcppLoadWithLedger implements Ledger {
  /** `{meterId}@{ms}` -> kWh, for each MeterValues answered with a .conf. */
  readonly acknowledged = new Map<string, number>();
  /** .confs per charge point, to see that every one of them got through again. */
  readonly answeredBy: number[];
  private readonly chargePoints: SimulatedChargePoint[];
  private running = false;
  private loops: Promise<void>[] = [];
  /** Why a charge point stopped sending before `stop` (a refused message, say). */
  readonly failures: unknown[] = [];

  constructor(
    endpoint: string,
    count: number,
    /** Pause after each .conf, per charge point. */
    private readonly pauseMs = 20,
    readonly idPrefix = 'OCPP-CP-',
  ) {
    this.chargePoints = Array.from(
      { length: count },
      (_, i) =>
        new SimulatedChargePoint({
          endpoint,
          id: `${idPrefix}${i}`,
          retryDelayMs: 200,
          callTimeoutMs: 10_000,
        }),
    );
    this.answeredBy = this.chargePoints.map(() => 0);
  }

  /** Connects every charge point, then each sends until `stop`. */
  async start(): Promise<void> {
    await Promise.all(this.chargePoints.map((cp) => cp.connect()));
    this.running = true;
    this.loops = this.chargePoints.map((cp, i) =>
      this.send(cp, i).catch((err: unknown) => {
        if (this.running) this.failures.push(err);
      }),
    );
  }

  /**
   * Lets each charge point finish the message it is on (until its .conf), then closes them;
   * `abandon` closes them at once (a scenario that failed, with the engine perhaps down).
   */
  async stop({ abandon = false } = {}): Promise<void> {
    this.running = false;
    if (!abandon) await Promise.all(this.loops);
    await Promise.all(this.chargePoints.map((cp) => cp.close({ force: true })));
    await Promise.all(this.loops);
  }

  totals(): { answered: number; resent: number; refused: number; connections: number } {
    const totals = { answered: 0, resent: 0, refused: 0, connections: 0 };
    for (const { counters } of this.chargePoints)
      for (const key of Object.keys(totals) as (keyof typeof totals)[])
        totals[key] += counters[key];
    return totals;
  }

  /** Connections each charge point has opened so far. */
  connectionsBy(): number[] {
    return this.chargePoints.map((cp) => cp.counters.connections);
  }

  private async send(cp: SimulatedChargePoint, index: number): Promise<void> {
    const meterId = connectorMeterId(cp.id, 1);
    for (let k = 0; this.running; k++) {
      const ms = BASE_MS + k * 1000;
      const wh = 1_000_000 + k * 250;
      await cp.call(
        'MeterValues',
        meterValuesReq(1, [meterValue(new Date(ms).toISOString(), wh, 230)]),
      );
      this.acknowledged.set(`${meterId}@${ms}`, wh / 1000);
      this.answeredBy[index] += 1;
      await new Promise((r) => setTimeout(r, this.pauseMs));
    }
  }
}
