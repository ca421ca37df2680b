import type { Knex } from 'knex';
import { onGenericPlan } from '../../db/prepared';
import { mappedFromQuarterOn } from '../stores/rollup-store';
import { earliestSessionStart, retainedFrom } from '../stores/retention';

const keptSessionsFrom = (keptFrom: number | null) =>
  keptFrom === null ? null : earliestSessionStart(keptFrom);
import { adoptSessionDefaults, SESSION_RULES } from '../stores/session-marks';
import type { EnergyReadingsMode } from '../config';
import { SESSIONS_SQL, SESSION_MINUTES_SQL, bindSessionSql } from './session-sql';
import { MAX_TRANSACTION_ID } from '../ocpp/transaction-store';
import { LATEST_WINDOW_END_MS } from '../reports/window-params';
import { MIN_TIMESTAMP_MS } from '../telemetry/validation';
import { DRIFT_BASELINE_DAYS } from './thresholds';
import { DAY_MS } from '../time-units';
import { efficiencyOf } from '../reports/efficiency';

/**
 * Session ids, as the sessions list gives them: `d-<start, epoch ms>` for a detected session (its
 * start may be before 1970: a reading at 00:00 on 1970-01-01 starts one earlier), `tx-<id>` for
 * an OCPP transaction.
 */
export const DETECTED_SESSION_ID = /^d-(-?\d{1,15})$/;
export const TRANSACTION_SESSION_ID = /^tx-(\d{1,10})$/;

/** A charging session as computed from readings (see session-sql.ts). */
export interface SessionRow {
  vehicleId: string;
  key: string;
  source: 'ocpp' | 'detected';
  transactionId: number | null;
  start: Date;
  end: Date;
  /** An OCPP transaction not stopped yet. */
  running: boolean;
  /** A computed session's newest meter reading (null: none, or a kept row). */
  lastAcAt: Date | null;
  meterIds: string[];
  acKwh: number | null;
  dcKwh: number | null;
  vehicleReadings: number;
  meterReadings: number;
  peakAcKw: number | null;
  socStart: number | null;
  socEnd: number | null;
  tempMean: number | null;
  /** Vehicle readings with a battery temperature (what tempMean averages); 0 for kept rows. */
  tempCount: number;
  tempMax: number | null;
  /** The drift baseline stored with a kept session; null: to be computed (see baselines). */
  baseline: Baseline | null;
}

/** The median efficiency of a vehicle's sessions on one meter before a session, and their number. */
export interface Baseline {
  median: number | null;
  sessions: number;
}

/** A session's efficiency. The baselines' SQL says the same of kept rows. */
export const sessionEfficiency = (r: SessionRow) => efficiencyOf(r.acKwh, r.dcKwh);

export interface SessionMinute {
  minute: Date;
  acKw: number | null;
  dcKw: number | null;
  soc: number | null;
  temp: number | null;
}

/** A vehicle's mapping period within a session, with the other vehicles mapped to its meter then. */
export interface PeriodInSession {
  meterId: string;
  from: Date;
  to: Date;
  /** The meter sent no reading in it: none of the AC drawn then is counted. */
  silent: boolean;
  /** Each stretch of it in which another vehicle held the meter too (each counts its AC). */
  sharedWith: { vehicleId: string; from: Date; to: Date }[];
}

/** What a session's AC counts of its charging: the mappings from its first reading on. */
export interface SessionCoverage {
  /** The vehicle's first reading in the session's span (its first charging one), or null. */
  firstReadingAt: Date | null;
  /** The vehicle's mapping periods over the span, clipped to it, oldest first. */
  periods: PeriodInSession[];
}

interface JsonStretch {
  from: string;
  to: string;
}

/** Where one vehicle's kept sessions stop and must be computed live instead. */
export interface LiveFrom {
  vehicleId: string;
  /** Kept sessions starting at or after this are replaced by live ones. */
  from: Date;
  /**
   * The detected session going on where the vehicle's sessions are built, as built (it starts at
   * `from`), when nothing before its end changed since: live computing continues it from its end.
   */
  open?: SessionRow | null;
}

/** Where computing a target starts reading: a session still going on continues from its end. */
export const readsFrom = (target: LiveFrom): Date => target.open?.end ?? target.from;

interface SqlSession {
  vehicle_id: string;
  key: string;
  source: 'ocpp' | 'detected';
  transaction_id: number | null;
  start_ts: Date;
  end_ts: Date;
  running?: boolean;
  meter_ids: string[];
  ac_kwh: number | null;
  dc_kwh: number | null;
  vehicle_readings: number;
  meter_readings: number;
  peak_ac_kw: number | null;
  last_ac_ts?: Date | null;
  soc_start: number | null;
  soc_end: number | null;
  temp_mean: number | null;
  temp_count?: number;
  temp_max: number | null;
  baseline_median?: number | null;
  baseline_sessions?: number | null;
  /** A computed open session's continuation (see session-sql.ts). */
  continues?: boolean;
}

const toSession = (r: SqlSession): SessionRow => ({
  vehicleId: r.vehicle_id,
  key: r.key,
  source: r.source,
  transactionId: r.transaction_id,
  start: r.start_ts,
  end: r.end_ts,
  running: r.running ?? false,
  lastAcAt: r.last_ac_ts ?? null,
  meterIds: r.meter_ids,
  acKwh: r.ac_kwh,
  dcKwh: r.dc_kwh,
  vehicleReadings: r.vehicle_readings,
  meterReadings: r.meter_readings,
  peakAcKw: r.peak_ac_kw,
  socStart: r.soc_start,
  socEnd: r.soc_end,
  tempMean: r.temp_mean,
  tempCount: r.temp_count ?? 0,
  tempMax: r.temp_max,
  baseline:
    r.baseline_sessions === null || r.baseline_sessions === undefined
      ? null
      : { median: r.baseline_median ?? null, sessions: r.baseline_sessions },
});

const COLUMNS = [
  'vehicle_id',
  'key',
  'source',
  'transaction_id',
  'start_ts',
  'end_ts',
  'meter_ids',
  'ac_kwh',
  'dc_kwh',
  'vehicle_readings',
  'meter_readings',
  'peak_ac_kw',
  'soc_start',
  'soc_end',
  'temp_mean',
  'temp_max',
  'baseline_median',
  'baseline_sessions',
];

const toRow = (s: SessionRow) => ({
  vehicle_id: s.vehicleId,
  key: s.key,
  source: s.source,
  transaction_id: s.transactionId,
  start_ts: s.start,
  end_ts: s.end,
  meter_ids: s.meterIds,
  ac_kwh: s.acKwh,
  dc_kwh: s.dcKwh,
  vehicle_readings: s.vehicleReadings,
  meter_readings: s.meterReadings,
  peak_ac_kw: s.peakAcKw,
  soc_start: s.socStart,
  soc_end: s.socEnd,
  temp_mean: s.tempMean,
  temp_max: s.tempMax,
  baseline_median: s.baseline?.median ?? null,
  baseline_sessions: s.baseline?.sessions ?? null,
});

/** An open session as stored in session_built.open_session (JSON: its times as text). */
const openFromJson = (json: SessionRow | null): SessionRow | null =>
  json && { ...json, start: new Date(json.start), end: new Date(json.end), baseline: null };

const addOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : a + b);
const maxOrNull = (a: number | null, b: number | null) =>
  a === null ? b : b === null ? a : Math.max(a, b);

/**
 * An open session as built, continued by `rest` (what a live computation folded after its end):
 * what the session computed whole would be (sums in another order: float rounding only).
 */
function continued(open: SessionRow, rest: SessionRow): SessionRow {
  const tempCount = open.tempCount + rest.tempCount;
  const tempSum = (open.tempMean ?? 0) * open.tempCount + (rest.tempMean ?? 0) * rest.tempCount;
  return {
    ...open,
    end: rest.end,
    meterIds: rest.meterIds.every((m) => open.meterIds.includes(m))
      ? open.meterIds
      : [...new Set([...open.meterIds, ...rest.meterIds])].sort(),
    acKwh: addOrNull(open.acKwh, rest.acKwh),
    dcKwh: addOrNull(open.dcKwh, rest.dcKwh),
    vehicleReadings: open.vehicleReadings + rest.vehicleReadings,
    meterReadings: open.meterReadings + rest.meterReadings,
    peakAcKw: maxOrNull(open.peakAcKw, rest.peakAcKw),
    socStart: open.socStart ?? rest.socStart,
    socEnd: rest.socEnd ?? open.socEnd,
    tempMean: tempCount === 0 ? null : tempSum / tempCount,
    tempCount,
    tempMax: maxOrNull(open.tempMax, rest.tempMax),
  };
}

/** Charging sessions: computing them from history, and the ones the builder keeps. */
export class SessionStore {
  constructor(
    private readonly db: Knex,
    private readonly config: {
      sessionGapS: number;
      energyReadings: EnergyReadingsMode;
      /** RETENTION_DAYS: no session starts before what history keeps. */
      retentionDays: number;
    },
    /**
     * Where one vehicle's live sessions run as a prepared statement, planned once per connection
     * (db/create-db.ts createGenericPlanDb); null: planned on each call.
     */
    private readonly genericDb: Knex | null = null,
  ) {}

  /** The sessions statements' settings: the gap, the default semantics, what history keeps. */
  private sqlSettings() {
    return {
      GAP: this.config.sessionGapS,
      MODE: this.config.energyReadings,
      KEPT: keptSessionsFrom(retainedFrom(Date.now(), this.config.retentionDays)),
    };
  }

  /**
   * Computes the sessions of each vehicle from its readings since its `from` (and the one reading
   * before) up to `to`, sessions starting at or after `from` only (an earlier one may be cut).
   */
  async compute(targets: LiveFrom[], to: Date, db: Knex = this.db): Promise<SessionRow[]> {
    if (targets.length === 0) return [];
    const { sql, bindings } = bindSessionSql(SESSIONS_SQL, {
      VEHICLES: targets.map((t) => t.vehicleId),
      // An open session continues from its last charging reading, read again.
      FROMS: targets.map(readsFrom),
      OPENS: targets.map((t) => t.open ?? null),
      TO: to,
      ...this.sqlSettings(),
    });
    // One vehicle's, on every report request, is planned once per connection (it cost more to
    // plan than to run); the fleet's many vehicles are planned for their number each time.
    const generic = targets.length === 1 && db === this.db ? this.genericDb : null;
    const result = await onGenericPlan(generic, db, sql, bindings as Knex.RawBinding[]);
    const from = new Map(targets.map((t) => [t.vehicleId, t.from.getTime()]));
    const open = new Map(targets.flatMap((t) => (t.open ? [[t.vehicleId, t.open]] : [])));
    return (result.rows as SqlSession[])
      .map((r) => {
        const session = toSession(r);
        const kept = r.continues ? open.get(r.vehicle_id) : undefined;
        return kept ? continued(kept, session) : session;
      })
      .filter((s) => s.start.getTime() >= (from.get(s.vehicleId) ?? 0));
  }

  async minutes(vehicleId: string, key: string, from: Date, to: Date): Promise<SessionMinute[]> {
    const { sql, bindings } = bindSessionSql(SESSION_MINUTES_SQL, {
      VEHICLES: [vehicleId],
      FROMS: [from],
      TO: to,
      ...this.sqlSettings(),
      KEY: key,
    });
    const result = await this.db.raw(sql, bindings as Knex.RawBinding[]);
    return (
      result.rows as {
        minute: Date;
        ac_kw: number | null;
        dc_kw: number | null;
        soc: number | null;
        temp: number | null;
      }[]
    ).map((r) => ({ minute: r.minute, acKw: r.ac_kw, dcKw: r.dc_kw, soc: r.soc, temp: r.temp }));
  }

  /** Kept sessions overlapping [from, to), of one vehicle or (vehicleId null) of every one. */
  async kept(vehicleId: string | null, from: Date, to: Date): Promise<SessionRow[]> {
    const query = this.db<SqlSession>('charging_sessions')
      .where('end_ts', '>=', from)
      .where('start_ts', '<', to)
      .orderBy(['vehicle_id', 'start_ts']);
    if (vehicleId === null) return (await query).map(toSession);
    // One vehicle's, on every uncached report: planned once per connection.
    const { sql, bindings } = query.where({ vehicle_id: vehicleId }).toSQL();
    const result = await onGenericPlan(this.genericDb, this.db, sql, bindings);
    return (result.rows as SqlSession[]).map(toSession);
  }

  /**
   * Where each vehicle's kept sessions end and live computing must start: at the session still
   * going on when it was built (else a gap before where it was built), earlier where its readings
   * changed since (a session mark) or where a quarter hour of it or of its meters is still
   * pending, and never inside a kept session. A vehicle never built starts at `fallback`.
   *
   * `vehicleIds`: these vehicles; null: every vehicle that has anything live (the fleet).
   */
  async liveFrom(vehicleIds: string[] | null, fallback: Date): Promise<LiveFrom[]> {
    const gap = `${this.config.sessionGapS} seconds`;
    const candidates =
      vehicleIds !== null
        ? 'SELECT unnest(?::text[]) AS vehicle_id'
        : `SELECT device_id AS vehicle_id FROM rollup_pending WHERE device_type = 'vehicle'
           UNION SELECT vehicle_id FROM session_dirty
           UNION SELECT vehicle_id FROM session_built WHERE open_since IS NOT NULL
           UNION SELECT m.vehicle_id FROM rollup_pending p
                 JOIN vehicle_meter_map m ON m.meter_id = p.device_id
                  AND ${mappedFromQuarterOn('m', 'p.quarter')}
                 WHERE p.device_type = 'meter'`;
    const sql = `WITH vehicles AS (${candidates}),
       -- Materialized, and the marks read by primary key, each meter's on its own (each OFFSET 0
       -- keeps the planner from merging the subquery back: it then walked the quarter index, since
       -- dropped, for min(), or read every meter mark when its statistics said there were few):
       -- otherwise every mark was scanned, several times (10-13 ms with 10,000 marks).
       changes AS MATERIALIZED (
         SELECT v.vehicle_id, b.built_to, b.open_since, b.open_session,
                (SELECT d.since FROM session_dirty d WHERE d.vehicle_id = v.vehicle_id) AS marked,
                (SELECT min(x.quarter) FROM (
                   SELECT p.quarter FROM rollup_pending p
                   WHERE p.device_type = 'vehicle' AND p.device_id = v.vehicle_id
                   UNION ALL
                   SELECT p.quarter FROM vehicle_meter_map m
                   CROSS JOIN LATERAL (
                     SELECT q.quarter FROM rollup_pending q
                     WHERE q.device_type = 'meter' AND q.device_id = m.meter_id
                       AND ${mappedFromQuarterOn('m', 'q.quarter')}
                     OFFSET 0) p
                   WHERE m.vehicle_id = v.vehicle_id
                   OFFSET 0) x) AS pending
         FROM vehicles v LEFT JOIN session_built b USING (vehicle_id)
       ),
       cut AS (
         SELECT c.*, least(coalesce(c.open_since, c.built_to - ?::interval, ?::timestamptz),
                           c.marked - ?::interval, c.pending - ?::interval) AS at
         FROM changes c
       ),
       live AS (
         SELECT c.*, least(c.at, (SELECT min(s.start_ts) FROM charging_sessions s
                                  WHERE s.vehicle_id = c.vehicle_id AND s.end_ts >= c.at)) AS live_from
         FROM cut c
       )
       SELECT vehicle_id, live_from,
              -- Continued only when live computing starts at it and nothing before its end changed.
              CASE WHEN live_from = open_since AND marked IS NULL
                        AND coalesce(pending > (open_session->>'end')::timestamptz, true)
                   THEN open_session END AS open_session
       FROM live`;
    const bindings = [...(vehicleIds !== null ? [vehicleIds] : []), gap, fallback, gap, gap];
    // One vehicle's, on every report request, is planned once per connection, as in compute().
    const generic = vehicleIds?.length === 1 ? this.genericDb : null;
    const result = await onGenericPlan(generic, this.db, sql, bindings);
    return (
      result.rows as { vehicle_id: string; live_from: Date; open_session: SessionRow | null }[]
    ).map((r) => ({
      vehicleId: r.vehicle_id,
      from: r.live_from,
      open: openFromJson(r.open_session),
    }));
  }

  /**
   * Where a vehicle's sessions must be computed again for a change at `since`: a gap before it,
   * or earlier at the start of a kept session reaching that far, of the session that was still
   * going on when it was built, or of an OCPP transaction of the vehicle running over it.
   * `open`: that session still going on, as built, when the computation starts at it and the
   * change is after its end: nothing it was built from changed, so it is continued from its end
   * instead of read again from its start (a session charging for hours is not re-read every run).
   */
  async rebuildFrom(
    vehicleId: string,
    since: Date,
  ): Promise<{ from: Date; open: SessionRow | null }> {
    const gap = `${this.config.sessionGapS} seconds`;
    const result = await this.db.raw(
      `SELECT least(
         ?::timestamptz - ?::interval,
         b.open_since,
         (SELECT min(start_ts) FROM charging_sessions
           WHERE vehicle_id = ? AND end_ts >= ?::timestamptz - ?::interval),
         (SELECT min(started_at) FROM ocpp_transactions
           WHERE vehicle_id = ? AND (stopped_at IS NULL OR stopped_at >= ?::timestamptz - ?::interval))
       ) AS at, b.open_session
       FROM (SELECT 1) one LEFT JOIN session_built b ON b.vehicle_id = ?`,
      [since, gap, vehicleId, since, gap, vehicleId, since, gap, vehicleId],
    );
    const row = result.rows[0] as { at: Date; open_session: SessionRow | null };
    const open = openFromJson(row.open_session);
    const continues =
      open !== null && open.start.getTime() === row.at.getTime() && since > open.end;
    return { from: row.at, open: continues ? open : null };
  }

  /**
   * Replaces a vehicle's kept sessions from `from` on with `sessions` (those final by then), and
   * records how far it is built (and the detected session still going on there, as built so far);
   * its session mark is removed, or moved on to `nextSince` when there is more to build, unless
   * something marked it again meanwhile. One transaction.
   */
  async keep(
    vehicleId: string,
    from: Date,
    sessions: SessionRow[],
    built: { to: Date; openSince: Date | null; open: SessionRow | null },
    mark: { version: number; nextSince: Date | null },
  ): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('charging_sessions')
        .where({ vehicle_id: vehicleId })
        .where('start_ts', '>=', from)
        .del();
      if (sessions.length > 0) {
        await trx('charging_sessions')
          .insert(sessions.map(toRow))
          .onConflict(['vehicle_id', 'key'])
          .merge(COLUMNS.filter((c) => c !== 'vehicle_id' && c !== 'key'));
      }
      await trx('session_built')
        .insert({
          vehicle_id: vehicleId,
          built_to: built.to,
          open_since: built.openSince,
          open_session: built.open === null ? null : JSON.stringify(built.open),
        })
        .onConflict('vehicle_id')
        .merge();
      // Only the mark this build handled: one made meanwhile stays for the next build.
      const handled = trx('session_dirty').where({ vehicle_id: vehicleId, version: mark.version });
      if (mark.nextSince) await handled.update({ since: mark.nextSince });
      else await handled.del();
    });
  }

  /**
   * For each session (span `(start, end]`, read as the windows of SESSIONS_SQL read it: `[start +
   * 1 ms, end + 1 ms)`), the vehicle's first reading in it and its mapping periods over it, each
   * with whether its meter sent a reading in it and the stretches another vehicle held the same
   * meter: what its AC leaves out, and what it shares. One statement for all of them, planned
   * once per connection.
   */
  async coverageOf(
    sessions: readonly { vehicleId: string; start: Date; end: Date }[],
  ): Promise<SessionCoverage[]> {
    if (sessions.length === 0) return [];
    const { rows } = (await onGenericPlan(
      this.genericDb,
      this.db,
      `WITH s AS (
         SELECT vehicle_id, wfrom + interval '1 millisecond' AS wfrom,
                wto + interval '1 millisecond' AS wto, i
         FROM unnest(?::text[], ?::timestamptz[], ?::timestamptz[])
           WITH ORDINALITY AS s(vehicle_id, wfrom, wto, i))
       SELECT
         (SELECT min(h.ts) FROM telemetry_history h
          WHERE h.device_type = 'vehicle' AND h.device_id = s.vehicle_id
            AND h.ts >= s.wfrom AND h.ts < s.wto) AS first_ts,
         (SELECT json_agg(json_build_object(
                   'meterId', m.meter_id,
                   'from', greatest(m.valid_from, s.wfrom),
                   'to', least(coalesce(m.valid_to, 'infinity'), s.wto),
                   'silent', NOT EXISTS (
                     SELECT 1 FROM telemetry_history h
                     WHERE h.device_type = 'meter' AND h.device_id = m.meter_id
                       AND h.ts >= greatest(m.valid_from, s.wfrom)
                       AND h.ts < least(coalesce(m.valid_to, 'infinity'), s.wto)),
                   'sharedWith', coalesce((
                     SELECT json_agg(json_build_object(
                              'vehicleId', o.vehicle_id,
                              'from', greatest(o.valid_from, m.valid_from, s.wfrom),
                              'to', least(coalesce(o.valid_to, 'infinity'), coalesce(m.valid_to, 'infinity'), s.wto))
                            ORDER BY o.valid_from, o.vehicle_id)
                     FROM vehicle_meter_map o
                     WHERE o.meter_id = m.meter_id AND o.vehicle_id <> m.vehicle_id
                       AND o.valid_from < least(coalesce(m.valid_to, 'infinity'), s.wto)
                       AND (o.valid_to IS NULL OR o.valid_to > greatest(m.valid_from, s.wfrom))),
                     '[]'))
                 ORDER BY m.valid_from)
          FROM vehicle_meter_map m
          WHERE m.vehicle_id = s.vehicle_id AND m.valid_from < s.wto
            AND (m.valid_to IS NULL OR m.valid_to > s.wfrom)) AS periods
       FROM s
       ORDER BY s.i`,
      [
        sessions.map((x) => x.vehicleId),
        sessions.map((x) => x.start.toISOString()),
        sessions.map((x) => x.end.toISOString()),
      ],
    )) as {
      rows: {
        first_ts: Date | null;
        periods:
          | (JsonStretch & {
              meterId: string;
              silent: boolean;
              sharedWith: (JsonStretch & { vehicleId: string })[];
            })[]
          | null;
      }[];
    };
    const stretch = (x: JsonStretch) => ({ from: new Date(x.from), to: new Date(x.to) });
    return rows.map((r) => ({
      firstReadingAt: r.first_ts,
      periods: (r.periods ?? []).map((p) => ({
        meterId: p.meterId,
        ...stretch(p),
        silent: p.silent,
        sharedWith: p.sharedWith.map((o) => ({ vehicleId: o.vehicleId, ...stretch(o) })),
      })),
    }));
  }

  /**
   * Each session's drift baseline, or null for a session without exactly one meter: the one stored
   * with a kept session, else computed (see baselines) from the vehicle's sessions kept before
   * `keptBefore(vehicleId)` and the `live` ones. A stored one whose 30 days reach before what
   * history keeps now is computed again: it counted sessions retention has dropped since, which a
   * session built again (a late reading, a changed setting) would not.
   */
  async baselinesOf(
    rows: SessionRow[],
    keptBefore: (vehicleId: string) => Date | null,
    live: SessionRow[],
  ): Promise<(Baseline | null)[]> {
    const keptFrom = retainedFrom(Date.now(), this.config.retentionDays);
    const current = (r: SessionRow) =>
      r.baseline !== null &&
      (keptFrom === null || r.start.getTime() - DRIFT_BASELINE_DAYS * DAY_MS >= keptFrom);
    const missing = rows.flatMap((r, i) => (r.meterIds.length === 1 && !current(r) ? [i] : []));
    const computed = await this.baselines(
      missing.map((i) => ({
        vehicleId: rows[i].vehicleId,
        meterId: rows[i].meterIds[0],
        start: rows[i].start,
        keptBefore: keptBefore(rows[i].vehicleId),
      })),
      live.flatMap((r) => {
        const efficiency = sessionEfficiency(r);
        return r.meterIds.length === 1 && efficiency !== null
          ? [{ vehicleId: r.vehicleId, meterId: r.meterIds[0], start: r.start, efficiency }]
          : [];
      }),
    );
    const found = new Map(missing.map((i, k) => [i, computed[k]]));
    return rows.map((r, i) =>
      r.meterIds.length === 1 ? (found.get(i) ?? r.baseline ?? null) : null,
    );
  }

  /**
   * For each session, the median efficiency of the same vehicle's sessions on the same (single)
   * meter over the 30 days before it, and how many there were: the kept sessions that start before
   * `keptBefore` (the vehicle's live cut) and the live ones, which replace the kept ones after it,
   * so the baseline is the same whether or not the sessions before it are built yet.
   */
  private async baselines(
    items: { vehicleId: string; meterId: string; start: Date; keptBefore: Date | null }[],
    live: { vehicleId: string; meterId: string; start: Date; efficiency: number }[],
  ): Promise<Baseline[]> {
    if (items.length === 0) return [];
    // Planned once per connection: on every uncached report, planning cost more than running it.
    const result = await onGenericPlan(
      this.genericDb,
      this.db,
      // The live sessions are joined by hash on (vehicle, meter), not scanned once per session.
      `WITH live AS (
         SELECT * FROM unnest(?::text[], ?::text[], ?::timestamptz[], ?::float8[])
           AS l(vehicle_id, meter_id, start_ts, efficiency)),
       q AS (
         SELECT * FROM unnest(?::text[], ?::text[], ?::timestamptz[], ?::timestamptz[])
           WITH ORDINALITY AS q(vehicle_id, meter_id, start_ts, kept_before, i)),
       earlier AS (
         SELECT q.i, k.efficiency
         FROM q CROSS JOIN LATERAL (
           SELECT s.dc_kwh / s.ac_kwh AS efficiency
           FROM charging_sessions s
           WHERE s.vehicle_id = q.vehicle_id AND s.meter_ids = ARRAY[q.meter_id]
             AND s.start_ts >= q.start_ts - interval '${DRIFT_BASELINE_DAYS} days'
             AND s.start_ts < least(q.start_ts, q.kept_before)
             AND s.ac_kwh > 0 AND s.dc_kwh IS NOT NULL) k
         UNION ALL
         SELECT q.i, l.efficiency
         FROM q JOIN live l ON l.vehicle_id = q.vehicle_id AND l.meter_id = q.meter_id
         WHERE l.start_ts >= q.start_ts - interval '${DRIFT_BASELINE_DAYS} days' AND l.start_ts < q.start_ts)
       SELECT q.i, percentile_cont(0.5) WITHIN GROUP (ORDER BY e.efficiency) AS median,
              count(e.efficiency)::int AS n
       FROM q LEFT JOIN earlier e USING (i)
       GROUP BY q.i
       ORDER BY q.i`,
      [
        live.map((l) => l.vehicleId),
        live.map((l) => l.meterId),
        live.map((l) => l.start.toISOString()),
        live.map((l) => l.efficiency),
        items.map((i) => i.vehicleId),
        items.map((i) => i.meterId),
        items.map((i) => i.start.toISOString()),
        items.map((i) => i.keptBefore?.toISOString() ?? 'infinity'),
      ],
    );
    return (result.rows as { median: number | null; n: number }[]).map((r) => ({
      median: r.median,
      sessions: r.n,
    }));
  }

  /** Where a session id says the session starts (`d-<ms>`; `tx-<id>`: the transaction's start). */
  async startOf(vehicleId: string, id: string): Promise<Date | null> {
    const detected = DETECTED_SESSION_ID.exec(id);
    if (detected) {
      const start = Number(detected[1]);
      // No session starts before a day ahead of the first reading there can be, nor after 9999.
      return start >= MIN_TIMESTAMP_MS - DAY_MS && start < LATEST_WINDOW_END_MS
        ? new Date(start)
        : null;
    }
    const transaction = TRANSACTION_SESSION_ID.exec(id);
    if (!transaction || Number(transaction[1]) > MAX_TRANSACTION_ID) return null;
    const row = await this.db('ocpp_transactions')
      .select('started_at')
      .where({ id: Number(transaction[1]), vehicle_id: vehicleId })
      .first();
    return row ? (row.started_at as Date) : null;
  }

  /**
   * Records this process's ENERGY_READINGS, SESSION_GAP_S and SESSION_RULES as what sessions are built with,
   * marking the kept sessions built with others (stores/session-marks.ts adoptSessionDefaults).
   */
  adoptSessionDefaults(): ReturnType<typeof adoptSessionDefaults> {
    return adoptSessionDefaults(this.db, {
      energyReadings: this.config.energyReadings,
      sessionGapS: this.config.sessionGapS,
      sessionRules: SESSION_RULES,
    });
  }

  /** Vehicles whose sessions changed before `before`, oldest change first, with their mark. */
  async dirty(
    before: Date,
    limit: number,
    setAside: readonly string[] = [],
  ): Promise<{ vehicleId: string; since: Date; version: number }[]> {
    const rows = await this.db('session_dirty')
      .where('since', '<', before)
      .modify((q) => {
        if (setAside.length > 0) q.whereNotIn('vehicle_id', setAside);
      })
      .orderBy('since')
      .limit(limit);
    return rows.map((r: { vehicle_id: string; since: Date; version: number }) => ({
      vehicleId: r.vehicle_id,
      since: r.since,
      version: Number(r.version),
    }));
  }
}
