import type { Logger } from './logger';

/**
 * Logs an error that repeats (a BullMQ worker's reconnect attempts while Redis is down: several a
 * second per shard; a check every OCPP message skips while PostgreSQL is slow) once per
 * `intervalMs`, the next line counting those left out, so an outage of an hour is a line every
 * interval instead of tens of thousands. A new message logs at once.
 */
export class RepeatedErrorLog {
  private lastMessage: string | null = null;
  private lastLoggedAt = 0;
  private leftOut = 0;

  constructor(
    private readonly deps: {
      logger: Logger;
      intervalMs: number;
      /** Default `error`. */
      level?: 'error' | 'warn';
      now?: () => number;
    },
  ) {}

  log(err: unknown, fields: Record<string, unknown>, message: string): void {
    const now = (this.deps.now ?? Date.now)();
    const text = err instanceof Error ? err.message : String(err);
    if (text === this.lastMessage && now - this.lastLoggedAt < this.deps.intervalMs) {
      this.leftOut += 1;
      return;
    }
    const repeated = text === this.lastMessage ? this.leftOut : 0;
    this.deps.logger[this.deps.level ?? 'error'](
      { err, ...fields, ...(repeated > 0 ? { repeated } : {}) },
      message,
    );
    this.lastMessage = text;
    this.lastLoggedAt = now;
    this.leftOut = 0;
  }
}
