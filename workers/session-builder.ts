import type { Logger } from '../src/logger';
import type { SessionRow, SessionStore } from '../src/sessions/session-store';

const DAY_MS = 86_400_000;
/** A vehicle's history is built a month at a time (a first build, or a long backfill). */
const CHUNK_MS = 31 * DAY_MS;
const MARKS_PER_ROUND = 100;
/** Rounds per run: each either finishes a vehicle or moves it a chunk on. */
const MAX_ROUNDS = 100;

/**
 * Keeps charging sessions (src/sessions/session-sql.ts) up to date in the flusher's background:
 * for each vehicle marked as changed (its readings, its meters' readings in rolled-up hours, its
 * mapping or an OCPP transaction), computes its sessions again from the first one the change can
 * reach, up to `horizon` (the hours already closed), and keeps those that are final there. What
 * is newer is computed live by reports.
 */
export class SessionBuilder {
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Set on stop: a run in progress ends after the vehicle it is building. */
  private stopping = false;

  constructor(
    private readonly deps: {
      store: SessionStore;
      /** Hours before this are closed (the rollup roller's cutoff). */
      horizon: () => Date;
      config: { sessionGapS: number };
      logger: Logger;
      intervalMs?: number;
    },
  ) {}

  /** Builds every marked vehicle now; returns how many vehicle builds ran. */
  buildNow(horizon = this.deps.horizon()): Promise<number> {
    const run = this.queue.then(async () => {
      let builds = 0;
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const marks = await this.deps.store.dirty(horizon, MARKS_PER_ROUND);
        if (marks.length === 0) break;
        for (const mark of marks) {
          if (this.stopping) return builds;
          await this.buildVehicle(mark, horizon);
          builds += 1;
        }
      }
      return builds;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private isFinal(session: SessionRow, builtTo: Date): boolean {
    if (session.source === 'ocpp') return !session.running && session.end < builtTo;
    // No charging reading before builtTo can join it any more.
    return session.end.getTime() + this.deps.config.sessionGapS * 1000 < builtTo.getTime();
  }

  /** Where the first session not final at `builtTo` starts. */
  private openSince(sessions: SessionRow[], builtTo: Date): Date | null {
    return sessions.find((s) => !this.isFinal(s, builtTo))?.start ?? null;
  }

  private async buildVehicle(
    mark: { vehicleId: string; since: Date; version: number },
    horizon: Date,
  ): Promise<void> {
    const { store } = this.deps;
    const from = await store.rebuildFrom(mark.vehicleId, mark.since);
    let builtTo = new Date(Math.min(from.getTime() + CHUNK_MS, horizon.getTime()));
    let sessions = await store.compute([{ vehicleId: mark.vehicleId, from }], builtTo);
    let openSince = this.openSince(sessions, builtTo);
    if (openSince && openSince <= from && builtTo < horizon) {
      // One session longer than a chunk: build the rest in one go, or it would never move on.
      builtTo = horizon;
      sessions = await store.compute([{ vehicleId: mark.vehicleId, from }], builtTo);
      openSince = this.openSince(sessions, builtTo);
    }
    const final = sessions.filter((s) => this.isFinal(s, builtTo));
    const more = builtTo < horizon;
    await store.keep(
      mark.vehicleId,
      from,
      final,
      { to: builtTo, openSince },
      {
        version: mark.version,
        // The next week starts where this one's unfinished session (or its last gap) starts.
        nextSince: more
          ? (openSince ?? new Date(builtTo.getTime() - this.deps.config.sessionGapS * 1000))
          : null,
      },
    );
  }

  start(): void {
    const tick = () => {
      this.buildNow()
        .then((builds) => {
          if (builds > 0) this.deps.logger.debug({ builds }, 'charging sessions built');
        })
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'building sessions failed'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.deps.intervalMs ?? 10_000);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.queue;
  }
}
