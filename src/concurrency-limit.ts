/**
 * At most `max` tasks running at once; the rest wait, in arrival order. The MQTT intake decodes
 * and stores this many messages at once (the rest wait as the raw payloads mqtt.js already holds),
 * and each OCPP charge point's calls take turns (CallTurns).
 */
export class ConcurrencyLimit {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly max: number) {}

  /** Tasks waiting for a slot. */
  get waiting(): number {
    return this.queue.length;
  }

  /** No task running or waiting. */
  get idle(): boolean {
    return this.active === 0 && this.queue.length === 0;
  }

  /** Every slot taken: a task run now waits. */
  get full(): boolean {
    return this.active >= this.max;
  }

  /** Runs `task` once a slot is free; rejects (AbortError) if `signal` aborts while waiting. */
  async run<T>(signal: AbortSignal, task: () => Promise<T>): Promise<T> {
    if (this.full) await this.slot(signal);
    else this.active += 1;
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active -= 1;
    }
  }

  /** Waits for a slot handed over by a finishing task (which keeps `active` as it is). */
  private slot(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.queue.indexOf(wake);
        if (i >= 0) this.queue.splice(i, 1);
        const err = new Error('aborted');
        err.name = 'AbortError';
        reject(err);
      };
      const wake = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(wake);
    });
  }
}
