import type { Logger } from './logger';

/** Distinct errors remembered at most: texts are few (a check's name, a connection's error). */
const REMEMBERED = 100;

/** How often an error that repeats is logged, unless a caller says otherwise. */
export const REPEATED_ERROR_INTERVAL_MS = 10_000;

/**
 * Logs an error that repeats (a BullMQ worker's reconnect attempts while Redis is down: several a
 * second per shard; a check every OCPP message skips while PostgreSQL is slow) once per
 * `intervalMs` for each error text, the next line counting those left out (`repeated`, whoever
 * they came from: the fields shown are that line's), so an outage of an hour is a line every
 * interval instead of tens of thousands. An error not seen within the interval logs at once, also
 * when two alternate.
 */
export class RepeatedErrorLog {
  private readonly seen = new Map<string, { loggedAt: number; leftOut: number }>();

  constructor(
    private readonly deps: {
      logger: Logger;
      /** Default REPEATED_ERROR_INTERVAL_MS. */
      intervalMs?: number;
      /** Default `error`. */
      level?: 'error' | 'warn';
      now?: () => number;
    },
  ) {}

  /**
   * What repeats is the message and the error's; `cause`, if given, names it instead: a message or
   * an error that holds a figure or an id new in each line (a backlog's size, a device, a
   * statement's values) needs a name that does not change, or each line would be new.
   */
  log(err: unknown, fields: Record<string, unknown>, message: string, cause?: string): void {
    const now = (this.deps.now ?? Date.now)();
    const text = cause ?? `${message}\n${err instanceof Error ? err.message : String(err)}`;
    const last = this.seen.get(text);
    if (last && now - last.loggedAt < (this.deps.intervalMs ?? REPEATED_ERROR_INTERVAL_MS)) {
      last.leftOut += 1;
      // Seen again: the last to be forgotten (a Map keeps the order texts were set in).
      this.seen.delete(text);
      this.seen.set(text, last);
      return;
    }
    const repeated = last?.leftOut ?? 0;
    this.deps.logger[this.deps.level ?? 'error'](
      { err, ...fields, ...(repeated > 0 ? { repeated } : {}) },
      message,
    );
    // The longest unseen goes first: a flood of new texts must not reset the ones that repeat.
    this.seen.delete(text);
    if (this.seen.size >= REMEMBERED) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(text, { loggedAt: now, leftOut: 0 });
  }
}
