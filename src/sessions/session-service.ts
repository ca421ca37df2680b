import type { Freshness, ReportCache } from '../reports/report-cache';
import { isBelow, roundFigure as round } from '../reports/rounding';
import {
  atChargerPower,
  efficiencyWarnings,
  looksMisread,
  missingEfficiencyReasons,
} from '../reports/efficiency';
import { notFound } from '../errors';
import type { RedisKeys } from '../redis-keys';
import type { Session, SessionMinute, SessionSummary } from './session-schemas';
import {
  DETECTED_SESSION_ID,
  sessionEfficiency,
  type SessionCoverage,
  type SessionRow,
  type SessionStore,
} from './session-store';
import { DRIFT_MIN_SESSIONS, parseThresholdClasses, thresholdFor } from './thresholds';
import { DAY_MS } from '../time-units';
import { sharedMeterWarning, unmappedStretches } from '../reports/mapping-warnings';

/** A vehicle whose sessions were never built is computed from this long before the window. */
const UNBUILT_LOOKBACK_MS = 2 * DAY_MS;

export interface SessionConfig {
  sessionGapS: number;
  efficiencyThreshold: number;
  efficiencyThresholds: string;
  efficiencyDrift: number;
}

const overlaps = (s: SessionRow, from: Date, to: Date) => s.end >= from && s.start < to;

/** The sessions of a window, and what drift baselines need beyond them. */
interface Collected {
  rows: SessionRow[];
  /** Where each vehicle's kept sessions stop counting (live ones replace them from there). */
  liveFrom: Map<string, number>;
  /** Every session computed live, in the window or not (of vehicles live before its end). */
  computed: SessionRow[];
}

/** What a session is judged by, before its drift. */
interface SessionFigures {
  durationS: number;
  efficiency: number | null;
  meanAcPowerKw: number | null;
  threshold: number;
  /** Below its threshold; null without an efficiency. */
  alert: boolean | null;
  /** What its efficiency calls for (efficiencyWarnings). */
  efficiencyWarnings: string[];
  /** Its AC looks misread (looksMisread), as those warnings say. */
  misread: boolean;
}

/** A judged session, with its efficiency before rounding (which ranks it, as it decides its alert). */
interface Judged {
  session: Session;
  exactEfficiency: number | null;
  /** Its AC looks misread (looksMisread, by its unrounded figures), as its warnings say. */
  misread: boolean;
}

/**
 * What a session's mappings leave out of its AC, or count twice, from its first (charging)
 * reading on: its span starts a reading's interval before it, whose meter reading comes with it.
 * Stretches are half-open, `[from, to)`, as its windows are: a mapping that ends at its last
 * reading leaves that reading's AC out.
 */
function coverageWarnings(session: SessionRow, coverage: SessionCoverage | undefined): string[] {
  const first = coverage?.firstReadingAt;
  if (!coverage || !first) return [];
  const upTo = new Date(session.end.getTime() + 1);
  // Shown within [first, end]: a stretch's half-open end `end + 1 ms` is the session's end.
  const within = (at: Date) => (at < first ? first : at > session.end ? session.end : at);
  const periods = coverage.periods.filter((p) => p.to > first);
  const gaps = periods.length === 0 ? [{ from: first, to: upTo }] : [];
  const when = (stretch: { from: Date; to: Date }) => {
    const [from, to] = [within(stretch.from).toISOString(), within(stretch.to).toISOString()];
    return from === to ? `at ${from}` : `from ${from} to ${to}`;
  };
  const unmapped = [...gaps, ...unmappedStretches(first, upTo, periods)].map(
    (gap) =>
      `Vehicle ${session.vehicleId} was mapped to no meter ${when(gap)} of this session: the AC energy drawn then is unknown, while its DC counts`,
  );
  // A session none of whose meters sent a reading says so among its missing-efficiency reasons.
  const silent = session.meterReadings === 0 ? [] : periods.filter((p) => p.silent);
  const unread = silent.map(
    (p) =>
      `Meter ${p.meterId} sent no readings ${when(p)} of this session, while the vehicle was mapped to it: the AC energy drawn then is unknown, while its DC counts`,
  );
  const shared = periods.flatMap((p) =>
    p.sharedWith
      .filter((other) => other.to > first)
      .map((other) =>
        sharedMeterWarning(
          p.meterId,
          { vehicleId: other.vehicleId, from: within(other.from), to: within(other.to) },
          'sessions',
        ),
      ),
  );
  return [...new Set([...unmapped, ...unread, ...shared])];
}

/** Worst efficiency first; sessions without one (no AC) last. */
const worstFirst = (judged: Judged[]): Session[] =>
  [...judged]
    .sort(
      (a, b) =>
        (a.exactEfficiency ?? Infinity) - (b.exactEfficiency ?? Infinity) ||
        (a.session.vehicleId < b.session.vehicleId
          ? -1
          : a.session.vehicleId > b.session.vehicleId
            ? 1
            : 0) ||
        a.session.start.localeCompare(b.session.start),
    )
    .map((j) => j.session);

const sessionsOf = (judged: Judged[]): Session[] => judged.map((j) => j.session);

/**
 * Charging sessions as operators read them: the kept ones (built in the background) joined to
 * the ones computed live for what is newer, each judged against the threshold of its power class
 * and against the vehicle's own recent sessions on the same meter (drift).
 */
export class SessionService {
  private readonly classes;

  constructor(
    private readonly deps: {
      store: SessionStore;
      cache: ReportCache<Session[]>;
      keys: RedisKeys;
      config: SessionConfig;
      /** Whether the engine knows the vehicle (a reading flushed or a meter mapped). */
      vehicleExists: (vehicleId: string) => Promise<boolean>;
      /** The 404 for a vehicle with nothing stored, saying whether it sent readings not stored yet. */
      unknownVehicleError: (vehicleId: string) => Promise<Error>;
      now?: () => number;
    },
  ) {
    this.classes = parseThresholdClasses(deps.config.efficiencyThresholds);
  }

  private now(): Date {
    return new Date((this.deps.now ?? Date.now)());
  }

  /** Sessions overlapping [from, to), whole, of one vehicle (or null: the fleet), unjudged. */
  private async collect(vehicleId: string | null, from: Date, to: Date): Promise<Collected> {
    const { store } = this.deps;
    const now = this.now();
    // The kept sessions do not depend on where live computing starts: read both at once.
    const [live, kept] = await Promise.all([
      store.liveFrom(
        vehicleId === null ? null : [vehicleId],
        new Date(from.getTime() - UNBUILT_LOOKBACK_MS),
      ),
      store.kept(vehicleId, from, to),
    ]);
    const liveFrom = new Map(live.map((l) => [l.vehicleId, l.from.getTime()]));
    // A vehicle whose live sessions start at or after the window's end has none in the window, and
    // none that a baseline of one in it counts (only sessions before it): a past window skips them.
    const computed = await store.compute(
      live.filter((l) => l.from < to),
      now,
    );
    return {
      rows: [
        ...kept.filter((s) => s.start.getTime() < (liveFrom.get(s.vehicleId) ?? Infinity)),
        ...computed.filter((s) => overlaps(s, from, to)),
      ],
      liveFrom,
      computed,
    };
  }

  /** A session's efficiency, its mean AC power and the threshold of its power class. */
  private figuresOf(r: SessionRow): SessionFigures {
    const durationS = (r.end.getTime() - r.start.getTime()) / 1000;
    const efficiency = sessionEfficiency(r);
    // A running transaction's span ends now, its AC at its newest meter reading: its power is
    // over that time (else a charger gone quiet, or a car left plugged in, lowered it by the
    // minute, and with it the efficiency class and threshold it is judged by).
    const poweredS =
      r.running && r.lastAcAt ? (r.lastAcAt.getTime() - r.start.getTime()) / 1000 : durationS;
    const meanAcPowerKw = r.acKwh !== null && poweredS > 0 ? r.acKwh / (poweredS / 3600) : null;
    const threshold = thresholdFor(
      this.classes,
      meanAcPowerKw,
      this.deps.config.efficiencyThreshold,
    );
    const drawnAtChargerPower = atChargerPower(meanAcPowerKw);
    return {
      durationS,
      efficiency,
      meanAcPowerKw,
      threshold,
      alert: efficiency === null ? null : isBelow(efficiency, threshold),
      efficiencyWarnings: efficiencyWarnings(efficiency, drawnAtChargerPower),
      misread: looksMisread(efficiency, drawnAtChargerPower),
    };
  }

  /**
   * For each detected session with a meter whose efficiency is doubtful (none, or one its
   * warnings or its alert speak of), what its mappings cover: a part mapped to no meter, a meter
   * silent for its part, or a meter another vehicle held too, is often why, and is said. Others
   * (most) cost no statement.
   */
  private async coverageOfDoubtful(
    rows: SessionRow[],
    figures: SessionFigures[],
  ): Promise<Map<number, SessionCoverage>> {
    const doubtful = rows.flatMap((r, i) => {
      const { alert, efficiencyWarnings: warned } = figures[i];
      const doubted = alert === null || alert || warned.length > 0;
      return r.source === 'detected' && r.meterIds.length > 0 && doubted ? [i] : [];
    });
    const coverage = await this.deps.store.coverageOf(doubtful.map((i) => rows[i]));
    return new Map(doubtful.map((i, k) => [i, coverage[k]]));
  }

  /** Judges sessions: efficiency, power, threshold of its class, alert, drift. */
  private async judge({ rows, liveFrom, computed }: Collected): Promise<Judged[]> {
    const { config, store } = this.deps;
    const now = this.now().getTime();
    const figures = rows.map((r) => this.figuresOf(r));
    const [baselines, coverage] = await Promise.all([
      store.baselinesOf(
        rows,
        (vehicleId) => {
          const at = liveFrom.get(vehicleId);
          return at === undefined ? null : new Date(at);
        },
        computed,
      ),
      this.coverageOfDoubtful(rows, figures),
    ]);
    return rows.map((r, i) => {
      const { durationS, efficiency, meanAcPowerKw, threshold, alert, misread } = figures[i];
      const base = baselines[i];
      // Judged before rounding, as the alert is: of two shown alike, one can be just inside.
      const baseline =
        base && base.median !== null && base.sessions >= DRIFT_MIN_SESSIONS
          ? { median: base.median, sessions: base.sessions }
          : null;
      const session: Session = {
        id: r.key,
        vehicleId: r.vehicleId,
        source: r.source,
        transactionId: r.transactionId,
        start: r.start.toISOString(),
        end: r.end.toISOString(),
        durationS,
        open: r.source === 'ocpp' ? r.running : r.end.getTime() + config.sessionGapS * 1000 > now,
        meters: r.meterIds,
        acConsumedKwh: round(r.acKwh, 4),
        dcDeliveredKwh: round(r.dcKwh, 4),
        efficiency: round(efficiency, 4),
        meanAcPowerKw: round(meanAcPowerKw, 3),
        peakAcPowerKw: round(r.peakAcKw, 3),
        socStart: round(r.socStart, 2),
        socEnd: round(r.socEnd, 2),
        batteryTempMeanC: round(r.tempMean, 2),
        batteryTempMaxC: round(r.tempMax, 2),
        threshold,
        alert,
        drift:
          efficiency === null || !baseline
            ? null
            : isBelow(efficiency, baseline.median - config.efficiencyDrift),
        baseline: baseline && {
          medianEfficiency: round(baseline.median, 4) as number,
          sessions: baseline.sessions,
        },
        counts: { vehicleReadings: r.vehicleReadings, meterReadings: r.meterReadings },
        warnings: [
          ...figures[i].efficiencyWarnings,
          ...missingEfficiencyReasons(r),
          ...coverageWarnings(r, coverage.get(i)),
        ],
      };
      return { session, exactEfficiency: efficiency, misread };
    });
  }

  private async cached(key: string, compute: () => Promise<Session[]>, options: Freshness = {}) {
    const { value, cache } = await this.deps.cache.through(key, compute, options);
    return { sessions: value, cache };
  }

  /** A vehicle's sessions overlapping the window, newest first. */
  async ofVehicle(vehicleId: string, from: Date, to: Date, options: Freshness = {}) {
    const key = this.deps.keys.analyticsCache(
      { vehicleId },
      from.getTime(),
      to.getTime(),
      'sessions',
    );
    return this.cached(
      key,
      async () => {
        const sessions = sessionsOf(await this.judge(await this.collect(vehicleId, from, to)));
        // No sessions of a vehicle never seen is a mistyped id, not a vehicle that did not charge;
        // told before caching, so that the empty list is not served once the vehicle is known.
        if (sessions.length === 0 && !(await this.deps.vehicleExists(vehicleId))) {
          throw await this.deps.unknownVehicleError(vehicleId);
        }
        return sessions.sort((a, b) => b.start.localeCompare(a.start));
      },
      options,
    );
  }

  /**
   * What the per-vehicle report shows of the window's sessions. Computed, not looked up: it is part
   * of a report that is cached itself, and a cache of its own cost an uncached report two more
   * Redis round trips (a lookup that missed, then a write).
   */
  async summary(
    vehicleId: string,
    from: Date,
    to: Date,
  ): Promise<{ summary: SessionSummary; anyMisread: boolean }> {
    const judged = await this.judge(await this.collect(vehicleId, from, to));
    const sessions = sessionsOf(judged);
    const worst = worstFirst(judged.filter((j) => j.exactEfficiency !== null))[0] ?? null;
    return {
      summary: {
        count: sessions.length,
        flagged: sessions.filter((s) => s.alert === true || s.drift === true).length,
        worst,
      },
      anyMisread: judged.some((j) => j.misread),
    };
  }

  /** Every vehicle's sessions overlapping the window, worst efficiency first. */
  async ofFleet(from: Date, to: Date) {
    const key = this.deps.keys.analyticsCache('fleet', from.getTime(), to.getTime(), 'sessions');
    return this.cached(key, () => this.ofFleetComputed(from, to));
  }

  /**
   * The same, computed, not looked up: for the fleet report ranked by session, which is cached
   * itself (made of a cached copy, it would be served past the cache's lifetime).
   */
  async ofFleetComputed(from: Date, to: Date): Promise<Session[]> {
    return worstFirst(await this.judge(await this.collect(null, from, to)));
  }

  /**
   * One session with its per-minute series. A detected session's id is its start: when a late
   * reading moved the start earlier (or merged it into an earlier session), the id asked for is
   * answered with the session that now holds that instant, under its current id, so links given
   * out before keep working.
   */
  async detail(vehicleId: string, id: string): Promise<Session & { series: SessionMinute[] }> {
    const start = await this.deps.store.startOf(vehicleId, id);
    const missing = () => notFound(`Vehicle ${vehicleId} has no session ${id}`);
    if (!start) throw missing();
    const around = new Date(start.getTime() + 1);
    const found = sessionsOf(await this.judge(await this.collect(vehicleId, start, around)));
    const holds = (s: Session) =>
      s.source === 'detected' && Date.parse(s.start) < +start && +start <= Date.parse(s.end);
    const session = found.find((s) => s.id === id) ?? found.find(holds);
    if (!session || (session.id !== id && !DETECTED_SESSION_ID.test(id))) throw missing();
    const minutes = await this.deps.store.minutes(
      vehicleId,
      session.id,
      new Date(Date.parse(session.start) - this.deps.config.sessionGapS * 1000),
      this.now(),
    );
    return {
      ...session,
      series: minutes.map((m) => ({
        minute: m.minute.toISOString(),
        acPowerKw: round(m.acKw, 3),
        dcPowerKw: round(m.dcKw, 3),
        soc: round(m.soc, 2),
        batteryTempC: round(m.temp, 2),
      })),
    };
  }
}
