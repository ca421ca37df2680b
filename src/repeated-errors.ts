import type { Logger } from './logger';

/**
 * Distinct texts remembered at most, of those seen within an interval (older ones, with nothing
 * left to count, are forgotten as new ones come). Texts kept per charge point or connector make
 * thousands where a fleet's chargers share a fault: with 100, each new one forgot another, and
 * every message was logged again.
 */
export const REMEMBERED_ERRORS = 10_000;

/** How often an error that repeats is logged, unless a caller says otherwise. */
export const REPEATED_ERROR_INTERVAL_MS = 10_000;

/**
 * Logs holding a count not yet written. Their timers are unref'd (a process must not wait for a
 * log line to exit), so at exit, after a stop that came before an interval ended, the counts are
 * written then: the exit is the one moment every log of the process shares.
 */
const pending = new Set<RepeatedErrorLog>();
process.on('exit', writeRepeatedCounts);

/**
 * Writes every count not yet written, of every log. A process that stops calls it before saying it
 * stopped, so that no line about its work comes after that one.
 */
export function writeRepeatedCounts(): void {
  for (const log of pending) log.flush();
}

/** One text's state: when it was last logged, and what was left out since. */
interface Seen {
  loggedAt: number;
  leftOut: number;
  /** The last occurrence left out, logged with the count when the interval ends. */
  last?: { err: unknown; fields: Record<string, unknown>; message: string };
  /** Logs what was left out at the interval's end, if nothing else has by then. */
  timer?: NodeJS.Timeout;
}

/**
 * Logs an error that repeats (a BullMQ worker's reconnect attempts while Redis is down: several a
 * second per shard; a check every OCPP message skips while PostgreSQL is slow) once per
 * `intervalMs` for each error text; at the end of an interval in which it came again, one more
 * line counts those left out (`repeated`, with the last one's fields), so an outage of an hour is
 * a line every interval instead of tens of thousands, and one of seconds says how many it cost
 * as soon as its interval ends. An error not seen within the interval logs at once, also when two
 * alternate.
 */
export class RepeatedErrorLog {
  private readonly seen = new Map<string, Seen>();
  /** Texts whose left-out count waits for its interval's end (this log is then `pending`). */
  private counting = 0;

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

  private get intervalMs(): number {
    return this.deps.intervalMs ?? REPEATED_ERROR_INTERVAL_MS;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /**
   * What repeats is the message and the error's; `cause`, if given, names it instead: a message or
   * an error that holds a figure or an id new in each line (a backlog's size, a device, a
   * statement's values) needs a name that does not change, or each line would be new.
   */
  log(err: unknown, fields: Record<string, unknown>, message: string, cause?: string): void {
    const now = this.now();
    const text = cause ?? `${message}\n${err instanceof Error ? err.message : String(err)}`;
    const seen = this.seen.get(text);
    if (seen && now - seen.loggedAt < this.intervalMs) {
      seen.leftOut += 1;
      seen.last = { err, fields, message };
      if (!seen.timer) {
        seen.timer = setTimeout(
          () => this.logLeftOut(text),
          seen.loggedAt + this.intervalMs - now,
        ).unref();
        this.counting += 1;
        pending.add(this);
      }
      // Seen again: the last to be forgotten (a Map keeps the order texts were set in).
      this.seen.delete(text);
      this.seen.set(text, seen);
      return;
    }
    if (seen) this.stopCounting(seen);
    this.write(err, fields, message, seen?.leftOut ?? 0);
    this.seen.delete(text);
    this.forgetStale(now);
    // The longest unseen goes first: a flood of new texts must not reset the ones that repeat.
    if (this.seen.size >= REMEMBERED_ERRORS) this.forget(this.seen.keys().next().value as string);
    this.seen.set(text, { loggedAt: now, leftOut: 0 });
  }

  /**
   * Forgets, from the longest unseen on, texts last logged an interval ago with nothing left out:
   * the next of them logs at once anyway.
   */
  private forgetStale(now: number): void {
    for (const [text, seen] of this.seen) {
      if (seen.timer || now - seen.loggedAt < this.intervalMs) return;
      this.seen.delete(text);
    }
  }

  private stopCounting(seen: Seen): void {
    if (!seen.timer) return;
    clearTimeout(seen.timer);
    seen.timer = undefined;
    this.counting -= 1;
    if (this.counting === 0) pending.delete(this);
  }

  /**
   * What one source (a charge point, a connector) does wrong, with no error to log: once an
   * interval for each source and `kind` (words that do not change from one message to the next).
   */
  logFor(source: string, kind: string, fields: Record<string, unknown>, message: string): void {
    this.log(undefined, fields, message, `${source} ${message} ${kind}`);
  }

  /** Writes every count not yet written (at exit: see `pending`). */
  flush(): void {
    for (const text of this.seen.keys()) this.logLeftOut(text);
  }

  /** At an interval's end: the last occurrence left out, with how many were. */
  private logLeftOut(text: string): void {
    const seen = this.seen.get(text);
    if (!seen?.last) return;
    this.stopCounting(seen);
    this.write(seen.last.err, seen.last.fields, seen.last.message, seen.leftOut);
    this.seen.set(text, { loggedAt: this.now(), leftOut: 0 });
  }

  /** Forgets a text, saying first how many of it were left out, if any. */
  private forget(text: string): void {
    const seen = this.seen.get(text);
    if (seen) this.stopCounting(seen);
    if (seen?.last && seen.leftOut > 0) {
      this.write(seen.last.err, seen.last.fields, seen.last.message, seen.leftOut);
    }
    this.seen.delete(text);
  }

  private write(err: unknown, fields: Record<string, unknown>, message: string, repeated: number) {
    this.deps.logger[this.deps.level ?? 'error'](
      { err, ...fields, ...(repeated > 0 ? { repeated } : {}) },
      message,
    );
  }
}
