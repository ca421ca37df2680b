import { setTimeout } from 'node:timers/promises';
import type { Logger } from '../src/logger';
import type { RollupStore } from '../src/stores/rollup-store';
import { BackgroundTask } from './background-task';

const QUARTER_MS = 900_000;
/** Readings of a quarter still arrive a little after it ends; rolling up after this saves a redo. */
const CLOSE_DELAY_MS = 120_000;
/**
 * A quarter still gaining readings (a backlog being drained, a device catching up) is left until
 * none came for this long: rolled up meanwhile, it would be rolled up again after every flush.
 */
const QUIET_MS = 30_000;
/** Device quarters per transaction: flushes of those quarters wait while one runs. */
const BATCH_DEVICE_QUARTERS = 2000;

/**
 * Rolls up closed quarter hours in the background of the flusher (see
 * src/stores/rollup-store.ts), every `intervalMs`, until no closed quarter is left marked. Several
 * flushers may run one each: the rollup transactions take turns, and each takes marks the others
 * have already removed.
 */
export class RollupRoller {
  private readonly task: BackgroundTask<number>;

  constructor(
    private readonly deps: {
      store: RollupStore;
      logger: Logger;
      intervalMs?: number;
      now?: () => number;
    },
  ) {
    this.task = new BackgroundTask({
      name: 'rolling up quarter hours',
      intervalMs: deps.intervalMs ?? 10_000,
      logger: deps.logger,
      describe: (deviceHours) => (deviceHours > 0 ? { deviceHours } : null),
    });
  }

  /** The quarter-hour boundary before which quarters count as closed. */
  closedBefore(): Date {
    const now = (this.deps.now ?? Date.now)() - CLOSE_DELAY_MS;
    return new Date(Math.floor(now / QUARTER_MS) * QUARTER_MS);
  }

  /**
   * Rolls up every closed marked quarter now, quiet or not; returns how many device hours it
   * rolled up.
   */
  rollUpNow(closedBefore = this.closedBefore()): Promise<number> {
    return this.task.run(() => this.rollUp(closedBefore, null));
  }

  private async rollUp(closedBefore: Date, quietMs: number | null): Promise<number> {
    let total = 0;
    while (!this.task.stopping()) {
      const started = Date.now();
      const rolled = await this.deps.store.rollUpPending(
        closedBefore,
        BATCH_DEVICE_QUARTERS,
        quietMs,
      );
      total += rolled.hours;
      if (rolled.quarters < BATCH_DEVICE_QUARTERS) break;
      // Catching up on old hours: PostgreSQL's time goes to rollups instead of flushes; give
      // flushes as long again before the next batch, so catching up never starves durability.
      await setTimeout(Date.now() - started);
    }
    return total;
  }

  start(): void {
    this.task.start(() => this.rollUp(this.closedBefore(), QUIET_MS));
  }

  /** Stops the schedule; a run in progress ends after its current transaction. */
  stop(): Promise<void> {
    return this.task.stop();
  }
}
