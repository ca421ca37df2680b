import type { Logger } from '../src/logger';

/**
 * Work a process does in the background on a schedule (rolling up hours, building sessions): one
 * run at a time, the next `intervalMs` after the last one ended, and a run asked for now waits
 * for the one in progress. `stopping()` tells a long run to end early; stop() waits for it.
 */
export class BackgroundTask<T> {
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly deps: {
      /** Named in the log. */
      name: string;
      intervalMs: number;
      logger: Logger;
      /** Whether a run did something worth a debug line. */
      describe?: (result: T) => object | null;
    },
  ) {}

  /** True once stop() was called: long runs check it between steps. */
  readonly stopping = () => this.stopped;

  /** Runs `work` after any run in progress; its result, or its error. */
  run(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  start(work: () => Promise<T>): void {
    const { name, intervalMs, logger, describe } = this.deps;
    const tick = () => {
      this.run(work)
        .then((result) => {
          const fields = describe?.(result);
          if (fields) logger.debug(fields, `${name} done`);
        })
        .catch((err: unknown) => logger.warn({ err }, `${name} failed`))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.queue;
  }
}
