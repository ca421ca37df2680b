import type { Logger } from '../src/logger';
import { readsFrom, type SessionRow, type SessionStore } from '../src/sessions/session-store';
import { isPermanentDataError } from '../src/stores/database-errors';
import { BackgroundTask } from './background-task';
import { DAY_MS } from '../src/time-units';

/** A vehicle's history is built a month at a time (a first build, or a long backfill). */
const CHUNK_MS = 31 * DAY_MS;
const MARKS_PER_ROUND = 100;
/** Rounds per run: each either finishes a vehicle or moves it a chunk on. */
const MAX_ROUNDS = 100;

/**
 * Keeps charging sessions (src/sessions/session-sql.ts) up to date in the flusher's background:
 * for each vehicle marked as changed (its readings, its meters' readings in rolled-up quarter
 * hours, its mapping or an OCPP transaction), computes its sessions again from the first one the
 * change can reach (continuing the session still going on where it was built when the change
 * is after it), up to `horizon` (where closed quarter hours end), and keeps those that are final
 * there. What is newer is computed live by reports.
 */
export class SessionBuilder {
  private readonly task: BackgroundTask<number>;
  /**
   * Vehicles whose build fails for good (a data error), set aside by this process so the others
   * are still built: left marked, and the error logged for a repair.
   */
  private readonly setAside = new Set<string>();
  /** Whether the defaults sessions are built with are recorded (once, on the first run). */
  private defaultsAdopted = false;

  constructor(
    private readonly deps: {
      store: SessionStore;
      /** Quarter hours before this are closed (the rollup roller's cutoff). */
      horizon: () => Date;
      config: { sessionGapS: number };
      logger: Logger;
      intervalMs?: number;
    },
  ) {
    this.task = new BackgroundTask({
      name: 'building charging sessions',
      intervalMs: deps.intervalMs ?? 10_000,
      logger: deps.logger,
      describe: (builds) => (builds > 0 ? { builds } : null),
    });
  }

  /** Builds every marked vehicle now; returns how many vehicle builds ran. */
  buildNow(horizon = this.deps.horizon()): Promise<number> {
    return this.task.run(() => this.build(horizon));
  }

  start(): void {
    this.task.start(() => this.build(this.deps.horizon()));
  }

  /** Stops the schedule; a run in progress ends after the vehicle it is building. */
  stop(): Promise<void> {
    return this.task.stop();
  }

  private async build(horizon: Date): Promise<number> {
    if (!this.defaultsAdopted) await this.adoptDefaults();
    let builds = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const marks = await this.deps.store.dirty(horizon, MARKS_PER_ROUND, [...this.setAside]);
      if (marks.length === 0) break;
      for (const mark of marks) {
        if (this.task.stopping()) return builds;
        try {
          await this.buildVehicle(mark, horizon);
        } catch (err) {
          if (!isPermanentDataError(err)) throw err;
          this.putAside(mark.vehicleId, err);
          continue;
        }
        builds += 1;
      }
    }
    return builds;
  }

  /** Sessions built with another ENERGY_READINGS default, SESSION_GAP_S or older rules are marked to be built again. */
  private async adoptDefaults(): Promise<void> {
    const { previous, now, marked } = await this.deps.store.adoptSessionDefaults();
    this.defaultsAdopted = true;
    if (marked > 0) {
      this.deps.logger.info(
        { previous, now, vehicles: marked },
        'ENERGY_READINGS, SESSION_GAP_S or how OCPP sessions are counted changed since the sessions were built: building them again',
      );
    }
  }

  private putAside(vehicleId: string, cause: unknown): void {
    this.setAside.add(vehicleId);
    this.deps.logger.error(
      { vehicleId, err: cause },
      "a vehicle's charging sessions cannot be built (a data error): set aside until the flusher restarts; repair its readings",
    );
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
    const { from, open: kept } = await store.rebuildFrom(mark.vehicleId, mark.since);
    const target = { vehicleId: mark.vehicleId, from, open: kept };
    // A kept session continued is read from its end on: the chunk starts there.
    let builtTo = new Date(Math.min(readsFrom(target).getTime() + CHUNK_MS, horizon.getTime()));
    let sessions = await store.compute([target], builtTo);
    let openSince = this.openSince(sessions, builtTo);
    if (openSince && openSince <= from && builtTo < horizon) {
      // One session longer than a chunk: build the rest in one go, or it would never move on.
      builtTo = horizon;
      sessions = await store.compute([target], builtTo);
      openSince = this.openSince(sessions, builtTo);
    }
    const final = sessions.filter((s) => this.isFinal(s, builtTo));
    // A detected session still going on is kept as built so far: reports continue it from there.
    const going = sessions.filter((s) => !this.isFinal(s, builtTo));
    const open = going.length === 1 && going[0].source === 'detected' ? going[0] : null;
    // Kept with their drift baselines: those depend only on the sessions before them.
    const baselines = await store.baselinesOf(final, () => from, final);
    const more = builtTo < horizon;
    await store.keep(
      mark.vehicleId,
      from,
      final.map((s, i) => ({ ...s, baseline: baselines[i] })),
      { to: builtTo, openSince, open },
      {
        version: mark.version,
        // The next chunk starts where this one's unfinished session (or its last gap) starts.
        nextSince: more
          ? (openSince ?? new Date(builtTo.getTime() - this.deps.config.sessionGapS * 1000))
          : null,
      },
    );
  }
}
