import { SchemaNotMigratedError } from '../db/schema-check';
import type { Logger } from '../src/logger';
import { isDatabaseUnreachable, isSchemaMissing } from '../src/stores/database-errors';

/**
 * Pauses the flusher while PostgreSQL is unavailable (unreachable, or refusing its database or
 * login). Without it every job would spend its retry attempts against a dead server (a long outage
 * would park jobs as failed) and log each attempt; paused, the jobs simply wait in the queue, where
 * they are durable, and one probe per interval finds out when the database is back.
 */
/**
 * While PostgreSQL answers but refuses (a login, a database, migrations: what an operator must
 * fix), the probes slow down to this, doubling from the probe interval: each refused login is a
 * FATAL line in PostgreSQL's log, one a second for as long as it lasts.
 */
export const REFUSED_PROBE_MAX_MS = 30_000;

export class DatabaseOutageGuard {
  private downSince: number | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastProbeFailure: string | null = null;
  private probeDelayMs: number;

  constructor(
    private readonly deps: {
      /** Resolves when PostgreSQL answers (with a deadline of its own: it may hang, not refuse). */
      probe: () => Promise<unknown>;
      logger: Logger;
      probeIntervalMs: number;
      /** Stop and restart taking jobs (the BullMQ worker's pause/resume). */
      pause: () => Promise<void>;
      resume: () => void;
      onChange?: (down: boolean) => void;
      refusedProbeMaxMs?: number;
    },
  ) {
    this.probeDelayMs = deps.probeIntervalMs;
  }

  /** A flush failed because PostgreSQL is unavailable: pause until a probe succeeds. */
  report(err: unknown): void {
    if (this.downSince !== null || this.stopped) return;
    this.downSince = Date.now();
    this.lastProbeFailure = null;
    this.probeDelayMs = this.deps.probeIntervalMs;
    this.deps.logger.warn(
      { err },
      err instanceof SchemaNotMigratedError || isSchemaMissing(err)
        ? 'PostgreSQL lacks migrations: flusher paused, readings wait in the queue until npm run migrate'
        : 'PostgreSQL unavailable: flusher paused, readings wait in the queue until it is back',
    );
    this.deps.onChange?.(true);
    this.deps
      .pause()
      .catch((pauseErr) => this.deps.logger.error({ err: pauseErr }, 'pause failed'));
    this.scheduleProbe();
  }

  /**
   * A probe that fails for another reason than an outage (PostgreSQL answers, but the database
   * lacks migrations or does not exist, or the login is refused) says why, once per reason: that
   * one the operator must fix. Returns whether it was such a refusal.
   */
  private logProbeFailure(err: unknown): boolean {
    const answered =
      err instanceof SchemaNotMigratedError ||
      (typeof (err as { code?: unknown })?.code === 'string' &&
        (err as { code: string }).code.length === 5);
    if (!answered || isDatabaseUnreachable(err)) return false;
    const reason = (err as Error)?.message ?? String(err);
    if (reason !== this.lastProbeFailure) {
      this.lastProbeFailure = reason;
      this.deps.logger.warn({ reason }, 'PostgreSQL answers but the flusher cannot resume yet');
    }
    return true;
  }

  stop(): void {
    this.stopped = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
  }

  private scheduleProbe(): void {
    if (this.stopped) return;
    this.probeTimer = setTimeout(() => void this.probe(), this.probeDelayMs);
  }

  private async probe(): Promise<void> {
    try {
      await this.deps.probe();
    } catch (err) {
      const { probeIntervalMs, refusedProbeMaxMs = REFUSED_PROBE_MAX_MS } = this.deps;
      // Back to the probe interval once it is an outage again: its end is found at once.
      this.probeDelayMs = this.logProbeFailure(err)
        ? Math.min(this.probeDelayMs * 2, Math.max(refusedProbeMaxMs, probeIntervalMs))
        : probeIntervalMs;
      this.scheduleProbe();
      return;
    }
    if (this.stopped || this.downSince === null) return;
    const downForMs = Date.now() - this.downSince;
    this.downSince = null;
    this.deps.onChange?.(false);
    this.deps.resume();
    this.deps.logger.info({ downForMs }, 'PostgreSQL is back: flusher resumed');
  }
}
