import { setTimeout } from 'node:timers/promises';
import type { Logger } from '../src/logger';
import { isPermanentDataError } from '../src/stores/database-errors';
import { RollupFailed, type DeviceQuarter, type RollupStore } from '../src/stores/rollup-store';
import { BackgroundTask } from './background-task';
import { QUARTER_MS } from '../src/time-units';

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
  /**
   * Marks whose rollup fails for good (a data error), set aside by this process so the others
   * still roll up: left marked, they are reported raw, and the error is logged for a repair.
   */
  private readonly setAside: DeviceQuarter[] = [];

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
    let limit = BATCH_DEVICE_QUARTERS;
    while (!this.task.stopping()) {
      const started = Date.now();
      let rolled;
      try {
        rolled = await this.deps.store.rollUpPending(closedBefore, limit, quietMs, this.setAside);
      } catch (err) {
        if (!(err instanceof RollupFailed && isPermanentDataError(err.cause))) throw err;
        // Halve the batch (the oldest marks first) until the failing quarter is alone.
        if (err.marks.length > 1) limit = Math.ceil(err.marks.length / 2);
        else this.putAside(err.marks[0], err.cause);
        continue;
      }
      total += rolled.hours;
      if (rolled.quarters < limit) break;
      limit = Math.min(BATCH_DEVICE_QUARTERS, limit * 2); // back up after a halving
      // Catching up on old hours: PostgreSQL's time goes to rollups instead of flushes; give
      // flushes as long again before the next batch, so catching up never starves durability.
      await setTimeout(Date.now() - started);
    }
    return total;
  }

  private putAside(mark: DeviceQuarter, cause: unknown): void {
    this.setAside.push(mark);
    this.deps.logger.error(
      { ...mark, err: cause },
      'a quarter hour cannot be rolled up (a data error): set aside, reported from raw readings; repair its readings and run npm run rollups:rebuild',
    );
  }

  start(): void {
    this.task.start(() => this.rollUp(this.closedBefore(), QUIET_MS));
  }

  /** Stops the schedule; a run in progress ends after its current transaction. */
  stop(): Promise<void> {
    return this.task.stop();
  }
}
