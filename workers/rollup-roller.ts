import type { Logger } from '../src/logger';
import type { RollupStore } from '../src/stores/rollup-store';

const HOUR_MS = 3_600_000;
/** Readings of an hour still arrive a little after it ends; rolling up after this saves a redo. */
const CLOSE_DELAY_MS = 120_000;
/** Device hours per transaction: flushes wait while one runs, so it stays short. */
const BATCH_DEVICE_HOURS = 2000;

/**
 * Rolls up closed hours in the background of the flusher (see src/stores/rollup-store.ts), every
 * `intervalMs`, until no closed hour is left marked. Several flushers may run one each: the rollup
 * transactions take turns, and each takes marks the others have already removed.
 */
export class RollupRoller {
  private timer: NodeJS.Timeout | null = null;
  /** Runs in this process, one after the other. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Set on stop: a run in progress ends after its current transaction. */
  private stopping = false;

  constructor(
    private readonly deps: {
      store: RollupStore;
      logger: Logger;
      intervalMs?: number;
      now?: () => number;
    },
  ) {}

  /** The hour boundary before which hours count as closed. */
  closedBefore(): Date {
    const now = (this.deps.now ?? Date.now)() - CLOSE_DELAY_MS;
    return new Date(Math.floor(now / HOUR_MS) * HOUR_MS);
  }

  /** Rolls up every closed marked hour now; returns how many device hours it rolled up. */
  rollUpNow(closedBefore = this.closedBefore()): Promise<number> {
    const run = this.queue.then(async () => {
      let total = 0;
      while (!this.stopping) {
        const rolled = await this.deps.store.rollUpPending(closedBefore, BATCH_DEVICE_HOURS);
        total += rolled;
        if (rolled < BATCH_DEVICE_HOURS) break;
      }
      return total;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  start(): void {
    const tick = () => {
      this.rollUpNow()
        .then((rolled) => {
          if (rolled > 0) this.deps.logger.debug({ deviceHours: rolled }, 'hours rolled up');
        })
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'rolling up hours failed'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.deps.intervalMs ?? 10_000);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops the schedule and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.queue;
  }
}
