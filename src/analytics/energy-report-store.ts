import type { Knex } from 'knex';
import { onGenericPlan } from '../../db/prepared';
import { historyRoleSql } from '../devices/device-kinds';
import type { EnergyReadingsMode } from '../config';
import { FOLD, RAW_PIECE, ROLLUP_PIECE, energyByMode, previousEnergy } from '../stores/energy-fold';
import { inQuarter, quarterOf } from '../stores/rollup-store';
import { HOUR_MS, QUARTER_MS } from '../time-units';

/**
 * The reports' SQL. A report is a set of "device windows": the vehicle over the window (DC) and
 * each meter it was mapped to, clipped to its mapping period (AC). A device window reads, in time
 * order, the rollups of its whole hours that are up to date, the raw readings of whole hours not
 * rolled up yet (a quarter of theirs is marked in rollup_pending), and the raw readings of the
 * partial hours at its edges: index range scans only. Pieces fold with the one definition in
 * stores/energy-fold.ts.
 *
 * The statement starts from a `windows` CTE (wid, vehicle_id, role, device_type, device_id,
 * wfrom, wto); the per-vehicle report and the fleet report differ only in that CTE and in what
 * they aggregate at the end.
 */
const ENERGY = historyRoleSql('t').energy;

/** Each device window with its semantics and the whole hours inside it. */
const BOUNDS = `
bounds AS (
  -- Each device by its own semantics (device_settings), else the configured default.
  SELECT w.*, coalesce(ds.energy_readings, $MODE::text) AS mode,
         CASE WHEN date_trunc('hour', w.wfrom, 'UTC') = w.wfrom THEN w.wfrom
              ELSE date_trunc('hour', w.wfrom, 'UTC') + interval '1 hour' END AS fh,
         date_trunc('hour', w.wto, 'UTC') AS th
  FROM windows w
  LEFT JOIN device_settings ds ON ds.device_type = w.device_type AND ds.device_id = w.device_id
)`;

/** A marked quarter in the hour of the rollup row `r`: the row is not up to date. */
const MARK_IN_HOUR = `SELECT 1 FROM rollup_pending p
  WHERE p.device_type = r.device_type AND p.device_id = r.device_id
    AND p.quarter >= r.hour AND p.quarter < r.hour + interval '1 hour'`;

/**
 * The pieces of the device windows in `source` (rows of bounds), stepped in time order.
 * `rollupRange` narrows the rollup scan to the window's hours as constants: the fleet then reads
 * them in one range scan of the (device_type, hour) index; one vehicle reads its own rollups by
 * primary key instead.
 */
const piecesSql = (rollupRange: string, source = 'bounds') => `
pieces AS (
  -- Whole hours with an up-to-date rollup.
  SELECT b.wid, ${ROLLUP_PIECE}
  FROM ${source} b
  JOIN telemetry_hourly r
    ON r.device_type = b.device_type AND r.device_id = b.device_id AND r.hour >= b.fh AND r.hour < b.th
  WHERE ${rollupRange} NOT EXISTS (${MARK_IN_HOUR})
  UNION ALL
  -- Whole hours not rolled up yet, or with readings that arrived after their rollup: raw, read
  -- hour by hour from the marks. (OFFSET 0 keeps the history scan inside the loop over the marked
  -- hours: merged into the join, a generic plan read all of the window's history first and looked
  -- up the marks for every reading, 7 ms for a day of one vehicle with nothing marked.)
  SELECT b.wid, h.*
  FROM ${source} b
  CROSS JOIN LATERAL (
    SELECT DISTINCT date_trunc('hour', p.quarter, 'UTC') AS hour FROM rollup_pending p
    WHERE p.device_type = b.device_type AND p.device_id = b.device_id
      AND p.quarter >= b.fh AND p.quarter < b.th
      AND p.quarter >= date_trunc('hour', $WF, 'UTC') AND p.quarter < $WT
  ) p
  CROSS JOIN LATERAL (
    SELECT ${RAW_PIECE} FROM telemetry_history t
    WHERE t.device_type = b.device_type AND t.device_id = b.device_id
      AND t.ts >= p.hour AND t.ts < p.hour + interval '1 hour' AND t.ts >= $WF AND t.ts < $WT
    OFFSET 0
  ) h
  UNION ALL
  -- Partial hours at the edges: two primary-key range scans per device window. (The window's
  -- own bounds, repeated as constants, let the planner prune history partitions.)
  SELECT b.wid, e.*
  FROM ${source} b
  CROSS JOIN LATERAL (
    SELECT ${RAW_PIECE} FROM telemetry_history t
    WHERE t.device_type = b.device_type AND t.device_id = b.device_id
      AND t.ts >= b.wfrom AND t.ts < least(b.fh, b.wto) AND t.ts >= $WF AND t.ts < $WT
    UNION ALL
    SELECT ${RAW_PIECE} FROM telemetry_history t
    WHERE t.device_type = b.device_type AND t.device_id = b.device_id
      AND t.ts >= greatest(b.th, b.fh) AND t.ts < b.wto AND t.ts >= $WF AND t.ts < $WT
  ) e
  -- Hour-aligned windows have no partial hours: skip their lookups altogether.
  WHERE b.wfrom < least(b.fh, b.wto) OR greatest(b.th, b.fh) < b.wto
),
priors AS MATERIALIZED (
  -- Register semantics step from the device's last reading before its window: the raw readings
  -- of the window's first hour, else the newest earlier hour (its rollup when up to date, else
  -- its raw readings), else the one before what retention dropped.
  SELECT b.wid, coalesce((
    SELECT c.energy FROM (
      (SELECT t.ts, ${ENERGY} AS energy FROM telemetry_history t
        WHERE t.device_type = b.device_type AND t.device_id = b.device_id
          AND t.ts >= date_trunc('hour', b.wfrom, 'UTC') AND t.ts < b.wfrom
          AND t.ts >= date_trunc('hour', $WF, 'UTC') AND t.ts < $WT
        ORDER BY t.ts DESC LIMIT 1)
      UNION ALL
      (SELECT r.last_ts, r.last_energy FROM telemetry_hourly r
        WHERE r.device_type = b.device_type AND r.device_id = b.device_id
          AND r.hour < date_trunc('hour', b.wfrom, 'UTC')
          AND NOT EXISTS (${MARK_IN_HOUR})
        ORDER BY r.hour DESC LIMIT 1)
      UNION ALL
      -- The newest hour with a marked quarter: its newest reading.
      (SELECT x.ts, x.energy FROM rollup_pending p
        CROSS JOIN LATERAL (
          SELECT t.ts, ${ENERGY} AS energy FROM telemetry_history t
          WHERE t.device_type = p.device_type AND t.device_id = p.device_id
            AND t.ts >= date_trunc('hour', p.quarter, 'UTC')
            AND t.ts < date_trunc('hour', p.quarter, 'UTC') + interval '1 hour' AND t.ts < $WT
          ORDER BY t.ts DESC LIMIT 1) x
        WHERE p.device_type = b.device_type AND p.device_id = b.device_id
          AND p.quarter < date_trunc('hour', b.wfrom, 'UTC')
        ORDER BY p.quarter DESC LIMIT 1)
    ) c ORDER BY c.ts DESC LIMIT 1), (
    -- The last reading before what retention dropped (history_baseline), older than any kept.
    SELECT ${ENERGY} FROM history_baseline bl
    CROSS JOIN LATERAL jsonb_populate_record(NULL::telemetry_history, bl.reading) t
    WHERE bl.device_type = b.device_type AND bl.device_id = b.device_id AND bl.ts < b.wfrom
  )) AS prior
  FROM ${source} b
  WHERE b.mode = 'cumulative'
),
stepped AS (
  SELECT p.*, ${previousEnergy('p.wid', 'pr.prior')} AS previous_energy
  FROM pieces p
  LEFT JOIN priors pr USING (wid)
)`;

/**
 * The windows of one vehicle: itself, and each meter period overlapping the window, clipped; with
 * each period of another vehicle mapped to the same meter during it (`shared_with`: the vehicle
 * and the stretch both held the meter), whose report counts the same AC energy.
 */
const VEHICLE_WINDOWS = `
windows AS (
  SELECT 0 AS wid, $V::text AS vehicle_id, 'dc' AS role, 'vehicle' AS device_type, $V::text AS device_id,
         $WF AS wfrom, $WT AS wto, NULL::json AS shared_with
  UNION ALL
  SELECT row_number() OVER (ORDER BY m.valid_from)::int, m.vehicle_id, 'ac', 'meter', m.meter_id,
         greatest(m.valid_from, $WF), least(coalesce(m.valid_to, 'infinity'), $WT),
         (SELECT json_agg(json_build_object(
                   'vehicleId', o.vehicle_id,
                   'from', greatest(o.valid_from, m.valid_from, $WF),
                   'to', least(coalesce(o.valid_to, 'infinity'), coalesce(m.valid_to, 'infinity'), $WT))
                 ORDER BY o.valid_from, o.vehicle_id)
          FROM vehicle_meter_map o
          WHERE o.meter_id = m.meter_id AND o.vehicle_id <> m.vehicle_id
            AND o.valid_from < least(coalesce(m.valid_to, 'infinity'), $WT)
            AND (o.valid_to IS NULL OR o.valid_to > greatest(m.valid_from, $WF)))
  FROM vehicle_meter_map m
  WHERE m.vehicle_id = $V AND m.valid_from < $WT AND (m.valid_to IS NULL OR m.valid_to > $WF)
)`;

/** Each device window's `hour` and `whole` columns, and the groups its rows are folded in. */
const FOLD_GROUPS = {
  // Each window whole, and each of its hours (for charts).
  hours: {
    columns: `date_trunc('hour', ts, 'UTC') AS hour, GROUPING(date_trunc('hour', ts, 'UTC')) = 1 AS whole`,
    groupBy: `GROUPING SETS ((wid), (wid, date_trunc('hour', ts, 'UTC')))`,
  },
  // Each window whole only: a day's report without a chart folds two rows, not fifty.
  whole: { columns: 'NULL::timestamptz AS hour, true AS whole', groupBy: 'wid' },
};

/** Per device window (and per hour when asked), energy and battery behaviour. */
const vehicleReportSql = ({ columns, groupBy }: (typeof FOLD_GROUPS)[keyof typeof FOLD_GROUPS]) => `
WITH ${VEHICLE_WINDOWS},
${BOUNDS},
${piecesSql('')},
folded AS (
  SELECT wid, ${columns},
         ${FOLD.readings} AS readings, ${FOLD.intervalEnergy} AS interval_energy,
         ${FOLD.registerEnergy} AS register_energy,
         ${FOLD.tempSum} AS temp_sum, ${FOLD.tempCount} AS temp_count,
         ${FOLD.tempMin} AS temp_min, ${FOLD.tempMax} AS temp_max,
         ${FOLD.socMin} AS soc_min, ${FOLD.socMax} AS soc_max,
         (array_agg(first_soc ORDER BY ts) FILTER (WHERE first_soc IS NOT NULL))[1] AS soc_start,
         (array_agg(last_soc ORDER BY ts DESC) FILTER (WHERE last_soc IS NOT NULL))[1] AS soc_end
  FROM stepped
  GROUP BY ${groupBy}
)
SELECT b.wid, b.role, b.device_id, b.mode, b.wfrom, b.wto, b.shared_with,
       f.hour, coalesce(f.whole, true) AS whole,
       coalesce(f.readings, 0) AS readings,
       ${energyByMode('b.mode', 'f.interval_energy', 'f.register_energy')} AS energy,
       f.temp_sum, coalesce(f.temp_count, 0) AS temp_count, f.temp_min, f.temp_max,
       f.soc_min, f.soc_max, f.soc_start, f.soc_end
FROM bounds b
LEFT JOIN folded f USING (wid)
ORDER BY b.wid, f.hour NULLS FIRST`;

const VEHICLE_REPORT = {
  hours: vehicleReportSql(FOLD_GROUPS.hours),
  whole: vehicleReportSql(FOLD_GROUPS.whole),
};

/**
 * No mark for the quarter `quarter` of the row `x`'s device. Looked up in the table, by its primary
 * key: against the CTE of marks (no statistics) the planner compared every row with every mark
 * when it expected few rows (65 s with a quarter marked for 20,000 devices).
 */
const unmarked = (x: string, quarter: string) => `NOT EXISTS (SELECT 1 FROM rollup_pending p
  WHERE p.device_type = ${x}.device_type AND p.device_id = ${x}.device_id AND p.quarter = ${quarter})`;

/**
 * A span at a window's edge ([from, to) inside one hour, named as $ placeholders): each device's
 * readings and energy in it, as one piece, folded per device here so the raw minutes reach the
 * fleet's aggregate as one row per device. `quarters` reads quarter-hour rollups, `raw` history,
 * `less` history taken away (the minutes of an edge quarter outside the window). Marked quarters
 * are left out: the fleet reads them raw. (A raw span lies inside one quarter.)
 */
const edgeSpan = (source: 'quarters' | 'raw' | 'less', from: string, to: string) => {
  if (source === 'quarters') {
    return `SELECT q.device_type, q.device_id, sum(q.readings)::int AS readings, sum(q.energy_sum) AS energy_sum
      FROM telemetry_15min q
      WHERE q.quarter >= ${from} AND q.quarter < ${to} AND ${unmarked('q', 'q.quarter')}
      GROUP BY q.device_type, q.device_id`;
  }
  const sign = source === 'less' ? '-' : '';
  return `SELECT g.* FROM (
        SELECT t.device_type, t.device_id, ${sign}count(*)::int AS readings, ${sign}sum(${ENERGY}) AS energy_sum
        FROM telemetry_history t
        WHERE t.ts >= ${from} AND t.ts < ${to}
        GROUP BY t.device_type, t.device_id
      ) g
      WHERE ${unmarked('g', quarterOf(from))}`;
};

/**
 * Every device's readings and interval energy over the whole fleet window, read by time, not per
 * device: hourly rollups for its whole hours, quarter-hour rollups for the whole quarters of its
 * partial hours, raw readings for the minutes short of a quarter at its edges (the spans $H, $Q,
 * $R, $L of fleetSpans). Quarters marked in rollup_pending (the quarter in progress, or a late
 * reading made their rollups stale) are read raw instead, from the small set of marks, and the
 * other quarters of their hours from quarter-hour rollups. Interval energy is a plain sum: no
 * ordering.
 */
const DEVICE_TOTALS = `
pending AS MATERIALIZED (
  SELECT device_type, device_id, quarter FROM rollup_pending
  WHERE quarter >= date_trunc('hour', $WF, 'UTC') AND quarter < $WT
),
pending_hours AS MATERIALIZED (
  SELECT DISTINCT device_type, device_id, date_trunc('hour', quarter, 'UTC') AS hour FROM pending
),
device_totals AS MATERIALIZED (
  SELECT device_type, device_id, ${FOLD.readings} AS readings, ${FOLD.intervalEnergy} AS interval_energy
  FROM (
    SELECT r.device_type, r.device_id, r.readings, r.energy_sum
    FROM telemetry_hourly r
    WHERE r.hour >= $H0 AND r.hour < $H1
      AND NOT EXISTS (SELECT 1 FROM pending_hours p WHERE p.device_type = r.device_type
                        AND p.device_id = r.device_id AND p.hour = r.hour)
    UNION ALL
    -- The unmarked quarters of whole hours with a marked one.
    SELECT q.device_type, q.device_id, q.readings, q.energy_sum
    FROM pending_hours h
    JOIN telemetry_15min q
      ON q.device_type = h.device_type AND q.device_id = h.device_id
     AND q.quarter >= h.hour AND q.quarter < h.hour + interval '1 hour'
    WHERE h.hour >= $H0 AND h.hour < $H1 AND ${unmarked('q', 'q.quarter')}
    UNION ALL
    ${edgeSpan('quarters', '$Q0', '$Q1')}
    UNION ALL
    ${edgeSpan('quarters', '$Q2', '$Q3')}
    UNION ALL
    ${edgeSpan('raw', '$R0', '$R1')}
    UNION ALL
    ${edgeSpan('raw', '$R2', '$R3')}
    UNION ALL
    ${edgeSpan('less', '$L0', '$L1')}
    UNION ALL
    ${edgeSpan('less', '$L2', '$L3')}
    UNION ALL
    -- Marked quarters: raw.
    SELECT t.device_type, t.device_id, 1, ${ENERGY}
    FROM pending p
    JOIN telemetry_history t
      ON t.device_type = p.device_type AND t.device_id = p.device_id
     AND ${inQuarter('t', 'p.quarter')}
    WHERE t.ts >= $WF AND t.ts < $WT
  ) pieces
  GROUP BY device_type, device_id
  -- Readings taken away can leave none (all of a device's were outside the window): no line.
  HAVING ${FOLD.readings} > 0
)`;

/** Every vehicle with readings in the window or mapped during it, and its meter periods. */
const FLEET_WINDOWS = `
active AS (
  SELECT device_id AS vehicle_id FROM device_totals WHERE device_type = 'vehicle'
  UNION
  SELECT m.vehicle_id FROM vehicle_meter_map m
  WHERE m.valid_from < $WT AND (m.valid_to IS NULL OR m.valid_to > $WF)
),
windows AS (
  SELECT row_number() OVER ()::int AS wid, w.* FROM (
    SELECT a.vehicle_id, 'dc' AS role, 'vehicle' AS device_type, a.vehicle_id AS device_id,
           $WF AS wfrom, $WT AS wto
    FROM active a
    UNION ALL
    SELECT m.vehicle_id, 'ac', 'meter', m.meter_id,
           greatest(m.valid_from, $WF), least(coalesce(m.valid_to, 'infinity'), $WT)
    FROM vehicle_meter_map m
    WHERE m.valid_from < $WT AND (m.valid_to IS NULL OR m.valid_to > $WF)
  ) w
)`;

/** A device window that is its device's totals: interval semantics over the whole window. */
const BY_TOTALS = `b.mode = 'interval' AND b.wfrom = $WF AND b.wto = $WT`;

/**
 * Per vehicle: DC, AC over its meter periods, and reading counts. Interval windows over the whole
 * window are their devices' totals; the rest (register semantics, a meter period that starts or
 * ends inside the window) fold their own pieces in time order, as one vehicle's report does.
 */
const FLEET_REPORT = `
WITH ${DEVICE_TOTALS},
${FLEET_WINDOWS},
${BOUNDS},
folded_bounds AS (SELECT * FROM bounds b WHERE NOT (${BY_TOTALS})),
${piecesSql("r.hour >= date_trunc('hour', $WF, 'UTC') AND r.hour < $WT AND", 'folded_bounds')},
per_window AS (
  SELECT wid, ${FOLD.readings} AS readings, ${FOLD.intervalEnergy} AS interval_energy,
         ${FOLD.registerEnergy} AS register_energy
  FROM stepped
  GROUP BY wid
  UNION ALL
  SELECT b.wid, d.readings, d.interval_energy, NULL
  FROM bounds b
  JOIN device_totals d ON d.device_type = b.device_type AND d.device_id = b.device_id
  WHERE ${BY_TOTALS}
)
SELECT b.vehicle_id,
       coalesce(json_agg(json_build_object('meterId', b.device_id, 'from', b.wfrom, 'to', b.wto,
                                           'energyReadings', b.mode) ORDER BY b.wfrom)
                FILTER (WHERE b.role = 'ac'), '[]') AS meters,
       coalesce(sum(pw.readings) FILTER (WHERE b.role = 'dc'), 0)::int AS vehicle_readings,
       coalesce(sum(pw.readings) FILTER (WHERE b.role = 'ac'), 0)::int AS meter_readings,
       count(pw.readings) FILTER (WHERE b.role = 'ac')::int AS meters_with_data,
       sum(${energyByMode('b.mode', 'pw.interval_energy', 'pw.register_energy')}) FILTER (WHERE b.role = 'dc') AS dc,
       sum(${energyByMode('b.mode', 'pw.interval_energy', 'pw.register_energy')}) FILTER (WHERE b.role = 'ac') AS ac
FROM bounds b
LEFT JOIN per_window pw USING (wid)
GROUP BY b.vehicle_id`;

const floorTo = (ms: number, step: number) => Math.floor(ms / step) * step;
const ceilTo = (ms: number, step: number) => Math.ceil(ms / step) * step;

/**
 * How the fleet reads [from, to): whole hours [H0, H1) from hourly rollups, the whole quarters
 * [Q0, Q1) and [Q2, Q3) of the partial hours from quarter-hour rollups, [R0, R1) and [R2, R3) raw,
 * less the raw readings of [L0, L1) and [L2, L3). An edge more than half a quarter short of its
 * quarter boundary reads that whole quarter less the minutes outside the window ([L0, L1) before
 * it starts, [L2, L3) after it ends): at most 7.5 raw minutes per edge instead of 15. Each span
 * lies inside one hour; an empty span starts where it ends. Counts stay exact; the energy differs
 * from a sum of the window's own readings only in float rounding, as any summing order does.
 */
export function fleetSpans(from: Date, to: Date): Record<string, Date> {
  const wf = from.getTime();
  const wt = to.getTime();
  const [fh, th] = [ceilTo(wf, HOUR_MS), floorTo(wt, HOUR_MS)];
  const [fq, tq] = [ceilTo(wf, QUARTER_MS), floorTo(wt, QUARTER_MS)];
  let spans: number[];
  if (fh <= th) {
    const lessBefore = fq - wf > QUARTER_MS / 2;
    const lessAfter = wt - tq > QUARTER_MS / 2;
    spans = [
      ...[fh, th],
      ...(lessBefore ? [fq - QUARTER_MS, fh] : [fq, fh]),
      ...(lessAfter ? [th, tq + QUARTER_MS] : [th, tq]),
      ...(lessBefore ? [wf, wf] : [wf, fq]),
      ...(lessAfter ? [wt, wt] : [tq, wt]),
      ...(lessBefore ? [fq - QUARTER_MS, wf] : [wf, wf]),
      ...(lessAfter ? [wt, tq + QUARTER_MS] : [wt, wt]),
    ];
  } else if (fq <= tq) spans = [wf, wf, fq, tq, wf, wf, wf, fq, tq, wt, wf, wf, wt, wt];
  else spans = [wf, wf, wf, wf, wf, wf, wf, wt, wt, wt, wf, wf, wt, wt];
  const names = 'H0 H1 Q0 Q1 Q2 Q3 R0 R1 R2 R3 L0 L1 L2 L3'.split(' ');
  return Object.fromEntries(names.map((name, i) => [name, new Date(spans[i])]));
}

/** Binds `$NAME` placeholders (each as often as it appears) as positional parameters. */
function bind(template: string, values: Record<string, unknown>) {
  const bindings: unknown[] = [];
  const sql = template.replace(/\$([A-Z][A-Z0-9]*)\b/g, (_m, name: string) => {
    if (!(name in values)) throw new Error(`no value for $${name}`);
    bindings.push(values[name]);
    return values[name] instanceof Date ? '?::timestamptz' : '?';
  });
  return { sql, bindings: bindings as Knex.RawBinding[] };
}

/** Another vehicle mapped to a meter while the report's vehicle was, and for how long. */
export interface SharedStretch {
  vehicleId: string;
  from: Date;
  to: Date;
}

/** One device window of a vehicle report, whole (`hour` null) or one hour of it. */
export interface WindowRow {
  wid: number;
  role: 'dc' | 'ac';
  deviceId: string;
  /** The device's energy semantics. */
  mode: EnergyReadingsMode;
  from: Date;
  to: Date;
  /** A meter's: each period of another vehicle mapped to it during [from, to) (none: empty). */
  sharedWith: SharedStretch[];
  /** Start of the hour; null for the whole window. */
  hour: Date | null;
  readings: number;
  /** kWh by the device's semantics; null without readings. */
  energy: number | null;
  tempSum: number | null;
  tempCount: number;
  tempMin: number | null;
  tempMax: number | null;
  socMin: number | null;
  socMax: number | null;
  socStart: number | null;
  socEnd: number | null;
}

/** What one vehicle's window adds up to, as one line of the fleet. */
export interface FleetRow {
  vehicleId: string;
  meters: { meterId: string; from: Date; to: Date; energyReadings: EnergyReadingsMode }[];
  vehicleReadings: number;
  meterReadings: number;
  /** Meter periods that had at least one reading. */
  metersWithData: number;
  dc: number | null;
  ac: number | null;
}

interface VehicleSqlRow {
  wid: number;
  role: 'dc' | 'ac';
  device_id: string;
  mode: EnergyReadingsMode;
  wfrom: Date;
  wto: Date;
  /** JSON: the stretch's bounds are text. */
  shared_with: { vehicleId: string; from: string; to: string }[] | null;
  hour: Date | null;
  whole: boolean;
  readings: number;
  energy: number | null;
  temp_sum: number | null;
  temp_count: number;
  temp_min: number | null;
  temp_max: number | null;
  soc_min: number | null;
  soc_max: number | null;
  soc_start: number | null;
  soc_end: number | null;
}

interface FleetSqlRow {
  vehicle_id: string;
  meters: { meterId: string; from: string; to: string; energyReadings: EnergyReadingsMode }[];
  vehicle_readings: number;
  meter_readings: number;
  meters_with_data: number;
  dc: number | null;
  ac: number | null;
}

export class EnergyReportStore {
  constructor(
    private readonly db: Knex,
    private readonly options: {
      /** Run the per-vehicle statement prepared; see DB_PREPARED_STATEMENTS. */
      preparedStatements?: boolean;
      /** Where it runs prepared with a generic plan (db/create-db.ts createGenericPlanDb). */
      genericDb?: Knex | null;
    } = {},
  ) {}

  /**
   * The vehicle report's statement (exposed so tests can read its plan). `hours`: each device
   * window per hour as well (for charts), not only whole.
   */
  vehicleQuery(
    vehicleId: string,
    from: Date,
    to: Date,
    mode: EnergyReadingsMode,
    { hours }: { hours: boolean },
  ): Knex.Raw {
    const template = hours ? VEHICLE_REPORT.hours : VEHICLE_REPORT.whole;
    const { sql, bindings } = bind(template, { V: vehicleId, WF: from, WT: to, MODE: mode });
    // Planning this statement costs more than running it for a day of one vehicle, even when
    // prepared (a custom plan each call: 2.6 ms a day, 0.7 ms with a generic plan).
    const { genericDb = null, preparedStatements = false } = this.options;
    return onGenericPlan(genericDb, this.db, sql, bindings, preparedStatements);
  }

  /**
   * Each device window of the vehicle's report whole (`hour` null), then, with `hours`, per hour;
   * in window then time order.
   */
  async vehicleWindows(
    vehicleId: string,
    from: Date,
    to: Date,
    mode: EnergyReadingsMode,
    options: { hours: boolean },
  ): Promise<WindowRow[]> {
    const result = await this.vehicleQuery(vehicleId, from, to, mode, options);
    return (result.rows as VehicleSqlRow[]).map((r) => ({
      wid: r.wid,
      role: r.role,
      deviceId: r.device_id,
      mode: r.mode,
      from: r.wfrom,
      to: r.wto,
      sharedWith: (r.shared_with ?? []).map((o) => ({
        vehicleId: o.vehicleId,
        from: new Date(o.from),
        to: new Date(o.to),
      })),
      hour: r.whole ? null : r.hour,
      readings: r.readings,
      energy: r.readings > 0 ? r.energy : null,
      tempSum: r.temp_sum,
      tempCount: r.temp_count,
      tempMin: r.temp_min,
      tempMax: r.temp_max,
      socMin: r.soc_min,
      socMax: r.soc_max,
      socStart: r.soc_start,
      socEnd: r.soc_end,
    }));
  }

  async vehicleExists(vehicleId: string): Promise<boolean> {
    const row = await this.db.raw(
      `SELECT EXISTS (SELECT 1 FROM vehicle_status WHERE vehicle_id = ?)
           OR EXISTS (SELECT 1 FROM vehicle_meter_map WHERE vehicle_id = ?) AS found`,
      [vehicleId, vehicleId],
    );
    return Boolean(row.rows[0].found);
  }

  /**
   * Whether the vehicle took DC energy in [from, to) by its semantics: an interval reading above 0,
   * or a register that rose within it. One primary-key range scan of its readings there.
   */
  async vehicleChargedBetween(
    vehicleId: string,
    from: Date,
    to: Date,
    mode: EnergyReadingsMode,
  ): Promise<boolean> {
    const row = await this.db.raw(
      `SELECT coalesce(max(${ENERGY}) > 0 AND (? = 'interval' OR max(${ENERGY}) > min(${ENERGY})), false)
         AS charged
       FROM telemetry_history t
       WHERE t.device_type = 'vehicle' AND t.device_id = ? AND t.ts >= ? AND t.ts < ?`,
      [mode, vehicleId, from, to],
    );
    return Boolean(row.rows[0].charged);
  }

  /** The whole fleet over [from, to) in one statement. */
  async fleet(from: Date, to: Date, mode: EnergyReadingsMode): Promise<FleetRow[]> {
    const { sql, bindings } = bind(FLEET_REPORT, {
      WF: from,
      WT: to,
      MODE: mode,
      ...fleetSpans(from, to),
    });
    const result = await this.db.transaction(async (trx) => {
      // Sorting and grouping the fleet's pieces wants memory, not disk; JIT compilation costs
      // more (~100 ms) than this statement saves from it; and with marks in rollup_pending (a CTE
      // without statistics) the planner sorted the whole day's rollups for a merge anti join,
      // where a hash one takes a fraction (hour in progress marked: 2.0 -> 1.3 s at 10,000).
      await trx.raw(`SET LOCAL work_mem = '64MB'`);
      await trx.raw('SET LOCAL jit = off');
      await trx.raw('SET LOCAL enable_mergejoin = off');
      return (await trx.raw(sql, bindings)) as { rows: FleetSqlRow[] };
    });
    return result.rows.map((r) => ({
      vehicleId: r.vehicle_id,
      meters: r.meters.map((m) => ({
        meterId: m.meterId,
        from: new Date(m.from),
        to: new Date(m.to),
        energyReadings: m.energyReadings,
      })),
      vehicleReadings: r.vehicle_readings,
      meterReadings: r.meter_readings,
      metersWithData: r.meters_with_data,
      dc: r.dc,
      ac: r.ac,
    }));
  }
}
