/**
 * Charging sessions from stored readings, in SQL: the one definition both the session builder
 * (which keeps them, workers/session-builder.ts) and live reports (for the hours not built yet)
 * run.
 *
 * A session is an OCPP transaction whose idTag names the vehicle, from its start to its stop, or
 * else a maximal run of the vehicle's charging readings (a positive interval value, or a register
 * reading that adds energy: it rose since the previous reading, or was reset to a positive value)
 * in which consecutive charging readings are at most the gap apart. A detected session spans from its first charging reading minus that reading's
 * interval to the previous reading (capped at the gap) to its last charging reading.
 *
 * Over a session's span (start, end], DC is the vehicle's energy and AC the energy of the meter(s)
 * it was mapped to (each only for its mapping period), each device by its own semantics, folded
 * with the one energy definition (stores/energy-fold.ts) from raw readings.
 *
 * Parameters: $VEHICLES text[] and $FROMS timestamptz[] (each vehicle's readings are read from
 * its `from`, plus the one reading before), $OPEN_STARTS and $OPEN_ENDS timestamptz[] (a detected
 * session already folded up to its end, whose last charging reading is the vehicle's `from`, or
 * NULLs: see below), $TO (exclusive end), $GAP (seconds), $MODE (the default semantics), and
 * $KEPT, the earliest start a session may have under RETENTION_DAYS (earliestSessionStart;
 * -infinity: any): only readings after it charge, and no session starts before it, and
 * $FIRST, the earliest of the froms less the gap: no window starts before it, and as a constant
 * (computed here: `timestamptz - interval` is not one to the planner) it lets the planner leave
 * out the history partitions before it.
 * The reading before a window may be older: `history_before` (a SQL function, see its migration)
 * finds it without planning every partition.
 *
 * Continuing an open session: the run its last charging reading (at its end, the vehicle's
 * `from`) starts is its continuation. That run keeps the session's start and id but folds only
 * what comes after the session's end, and is flagged `continues`: the caller adds the two.
 */
import { historyRoleSql } from '../devices/device-kinds';
import { RAW_PIECE, pieceEnergy, previousEnergy } from '../stores/energy-fold';

const vehicle = historyRoleSql('h');

/**
 * A device's own energy semantics (device_settings), or NULL: looked up by primary key for each
 * row. Joined instead, a generic plan expecting a hundred sessions read every device's settings
 * (4 ms of a 6 ms statement with 10,000 devices configured).
 */
const settingOf = (deviceType: string, deviceId: string) =>
  `(SELECT ds.energy_readings FROM device_settings ds
    WHERE ds.device_type = ${deviceType} AND ds.device_id = ${deviceId})`;

/** Every session (detected and OCPP) of the targets, as `spans`. */
const SPANS = `
targets AS MATERIALIZED (
  SELECT t.vehicle_id, t.from_ts, t.open_start, t.open_end,
         coalesce(${settingOf("'vehicle'", 't.vehicle_id')}, $MODE::text) AS mode
  FROM unnest($VEHICLES::text[], $FROMS::timestamptz[], $OPEN_STARTS::timestamptz[],
              $OPEN_ENDS::timestamptz[]) AS t(vehicle_id, from_ts, open_start, open_end)
),
vehicle_readings AS (
  SELECT t.vehicle_id, h.ts, ${vehicle.energy} AS energy
  FROM targets t
  JOIN telemetry_history h ON h.device_type = 'vehicle' AND h.device_id = t.vehicle_id
   AND h.ts >= t.from_ts AND h.ts < $TO AND h.ts >= $FIRST
  UNION ALL
  SELECT t.vehicle_id, h.ts, ${vehicle.energy}
  FROM targets t
  CROSS JOIN LATERAL history_before('vehicle', t.vehicle_id, t.from_ts) h
),
stepped AS (
  SELECT r.*, t.mode, t.from_ts, t.open_start, t.open_end,
         lag(r.energy) OVER w AS prev_energy, lag(r.ts) OVER w AS prev_ts
  FROM vehicle_readings r JOIN targets t USING (vehicle_id)
  WINDOW w AS (PARTITION BY r.vehicle_id ORDER BY r.ts)
),
charging AS (
  SELECT s.vehicle_id, s.ts, s.prev_ts, s.open_start, s.open_end,
         -- An open session's end continues its run (run 0 below).
         coalesce(lag(s.ts) OVER (PARTITION BY s.vehicle_id ORDER BY s.ts), s.open_end) AS prev_charging_ts
  FROM stepped s
  WHERE s.ts >= s.from_ts
    -- Readings before what history keeps (flushed after the cutoff passed them) are about to be
    -- dropped: a session of theirs would start at the cutoff and end before it.
    AND s.ts > $KEPT
    -- Charging: the reading adds energy, by the one register rule (a reset adds its new value).
    AND CASE WHEN s.mode = 'interval' THEN s.energy > 0
             ELSE register_step(s.prev_energy, s.energy) > 0 END
),
runs AS (
  SELECT c.*,
         sum((c.prev_charging_ts IS NULL OR c.ts - c.prev_charging_ts > $GAP)::int)
           OVER (PARTITION BY c.vehicle_id ORDER BY c.ts) AS run
  FROM charging c
),
detected AS (
  SELECT vehicle_id,
         CASE WHEN run = 0 THEN min(open_start)
              -- Never before what history keeps: the reading before a first kept one is dropped.
              ELSE greatest(min(ts) - least(coalesce(min(ts) - (array_agg(prev_ts ORDER BY ts))[1], $GAP), $GAP), $KEPT)
         END AS start_ts,
         max(ts) AS end_ts,
         run = 0 AS continues, min(open_end) AS folded_to
  FROM runs
  GROUP BY vehicle_id, run
),
-- A transaction: its span, and its connector's meter.
transactions AS (
  SELECT x.vehicle_id, x.id AS transaction_id, x.started_at AS start_ts,
         least(coalesce(x.stopped_at, $TO), $TO) AS end_ts, x.stopped_at IS NULL AS running,
         x.stopped_at, x.meter_start_wh, x.meter_stop_wh,
         x.charge_point_id || ':' || x.connector_id AS meter_id
  FROM targets t
  JOIN ocpp_transactions x ON x.vehicle_id = t.vehicle_id
   AND x.started_at >= t.from_ts AND x.started_at < $TO
),
-- A transaction's AC is what the charge point bills: its register at the end less meterStart,
-- exact, where the register's samples between may be rounded to kWh, carry some phases only, or
-- share the stop's instant. The register at the end is meterStop; while the transaction runs, or
-- when it was closed without one (left open, superseded), the connector's newest sample, unless
-- that one is below half the sample before it: a reset or a glitch, which only the next sample
-- tells apart, so until then (and for good, in a transaction closed) the register stands where
-- it was. A register that ended below its start (reset, replaced), or was reset between (a sample
-- that drops and adds energy by the one register rule), is folded instead: the bill would leave
-- out what came before the reset. A drop after which the register comes back to where it dropped
-- from in one step (its first sample back above half of that is above it, the stop's included)
-- was no reset but wrong samples (a glitch, kWh sent as Wh): the bill stands. A restarted register
-- climbs through what lies between. Only the final statement reads it (the minutes' skips it).
billed AS (
  SELECT x.transaction_id,
         CASE WHEN e.end_wh >= x.meter_start_wh
                   AND NOT EXISTS (
                     SELECT 1 FROM (
                       SELECT h.ts, h.kwh_consumed_ac AS energy,
                              lag(h.kwh_consumed_ac) OVER (ORDER BY h.ts) AS previous
                       FROM telemetry_history h
                       WHERE h.device_type = 'meter' AND h.device_id = x.meter_id
                         AND h.ts >= x.start_ts AND h.ts <= e.end_at
                         AND h.ts >= $FIRST AND h.ts <= $TO) r
                     WHERE r.energy < r.previous AND register_step(r.previous, r.energy) > 0
                       AND NOT coalesce((
                         SELECT u.kwh_consumed_ac >= r.previous
                         FROM telemetry_history u
                         WHERE u.device_type = 'meter' AND u.device_id = x.meter_id
                           AND u.ts > r.ts AND u.ts <= e.end_at
                           AND u.ts >= $FIRST AND u.ts <= $TO
                           AND u.kwh_consumed_ac >= r.previous / 2
                         ORDER BY u.ts LIMIT 1), false))
              THEN ((e.end_wh - x.meter_start_wh) / 1000.0)::float8 END AS billed_kwh
  FROM transactions x
  CROSS JOIN LATERAL (SELECT x.stopped_at <= $TO AND x.meter_stop_wh IS NOT NULL AS stopped) b
  -- The connector's two newest samples (meterStart's among them), read only without a meterStop.
  CROSS JOIN LATERAL (
    SELECT (array_agg(h.kwh_consumed_ac ORDER BY h.ts DESC))[1] AS newest,
           (array_agg(h.ts ORDER BY h.ts DESC))[1] AS newest_at,
           (array_agg(h.kwh_consumed_ac ORDER BY h.ts DESC))[2] AS before,
           (array_agg(h.ts ORDER BY h.ts DESC))[2] AS before_at
    FROM (SELECT h.ts, h.kwh_consumed_ac FROM telemetry_history h
          WHERE NOT b.stopped AND h.device_type = 'meter' AND h.device_id = x.meter_id
            AND h.ts >= x.start_ts AND h.ts <= x.end_ts AND h.ts >= $FIRST AND h.ts <= $TO
          ORDER BY h.ts DESC LIMIT 2) h
  ) n
  -- In Wh as the charger sent them: a float8 cast to numeric keeps 15 digits.
  CROSS JOIN LATERAL (
    SELECT CASE WHEN b.stopped THEN x.meter_stop_wh::numeric
                WHEN n.newest < n.before / 2 THEN (n.before * 1000)::numeric
                ELSE (n.newest * 1000)::numeric END AS end_wh,
           CASE WHEN b.stopped THEN x.stopped_at
                WHEN n.newest < n.before / 2 THEN n.before_at
                ELSE n.newest_at END AS end_at
  ) e
),
spans AS (
  SELECT vehicle_id, 'tx-' || transaction_id AS key, 'ocpp' AS source, transaction_id,
         start_ts, end_ts, running, false AS continues, start_ts AS fold_from
  FROM transactions
  UNION ALL
  SELECT d.vehicle_id, 'd-' || (extract(epoch FROM d.start_ts) * 1000)::bigint, 'detected', NULL,
         d.start_ts, d.end_ts, false, d.continues, CASE WHEN d.continues THEN d.folded_to ELSE d.start_ts END
  FROM detected d
  -- The transaction is the session: readings it covers form no session of their own.
  WHERE NOT EXISTS (SELECT 1 FROM transactions x
                    WHERE x.vehicle_id = d.vehicle_id AND x.start_ts <= d.end_ts AND x.end_ts >= d.start_ts)
)`;

/**
 * The device windows of every span: the vehicle over (start, end]; for a detected session each
 * mapped meter over its part of it (from the end of what is folded already, for a continuation);
 * for an OCPP transaction its own connector's meter, `<charge point>:<connector>` (as
 * connectorMeterId in src/ocpp/charge-point-state.ts names it), whatever else the vehicle was
 * mapped to meanwhile (a transaction of another connector overlapping it, its mapping refused).
 * Half-open [from, to) at millisecond precision, so both bounds move one millisecond on.
 */
const WINDOWS = `
windows AS MATERIALIZED (
  SELECT row_number() OVER ()::int AS wid, w.*,
         coalesce(${settingOf('w.device_type', 'w.device_id')}, $MODE::text) AS mode
  FROM (
    SELECT s.vehicle_id, s.key, 'dc' AS role, 'vehicle' AS device_type, s.vehicle_id AS device_id,
           s.fold_from + interval '1 millisecond' AS wfrom, s.end_ts + interval '1 millisecond' AS wto
    FROM spans s
    UNION ALL
    SELECT s.vehicle_id, s.key, 'ac', 'meter', m.meter_id,
           greatest(m.valid_from, s.fold_from + interval '1 millisecond'),
           least(coalesce(m.valid_to, 'infinity'), s.end_ts + interval '1 millisecond')
    FROM spans s
    -- Each span's mappings by index (OFFSET 0 keeps the lookup per span; joined, a generic plan
    -- expecting a hundred spans read the whole mapping table).
    CROSS JOIN LATERAL (
      SELECT m.meter_id, m.valid_from, m.valid_to FROM vehicle_meter_map m
      WHERE m.vehicle_id = s.vehicle_id AND m.valid_from < s.end_ts + interval '1 millisecond'
        AND (m.valid_to IS NULL OR m.valid_to > s.fold_from + interval '1 millisecond')
      OFFSET 0) m
    WHERE s.source = 'detected'
    UNION ALL
    SELECT s.vehicle_id, s.key, 'ac', 'meter', x.charge_point_id || ':' || x.connector_id,
           s.fold_from + interval '1 millisecond', s.end_ts + interval '1 millisecond'
    FROM spans s
    JOIN ocpp_transactions x ON x.id = s.transaction_id
    WHERE s.source = 'ocpp'
  ) w
),
window_pieces AS (
  SELECT w.wid, false AS prior, ${RAW_PIECE}
  FROM windows w
  JOIN telemetry_history t ON t.device_type = w.device_type AND t.device_id = w.device_id
   AND t.ts >= w.wfrom AND t.ts < w.wto AND t.ts >= $FIRST
  UNION ALL
  -- The reading before each window: the register's starting point, the interval of the first
  -- reading (for power), and the SoC at the start.
  SELECT w.wid, true, ${RAW_PIECE}
  FROM windows w
  CROSS JOIN LATERAL history_before(w.device_type, w.device_id, w.wfrom) t
),
window_stepped AS (
  SELECT p.*, ${previousEnergy('p.wid')} AS previous_energy,
         lag(p.ts) OVER (PARTITION BY p.wid ORDER BY p.ts) AS previous_ts
  FROM window_pieces p
),
window_energy AS (
  SELECT s.*, ${pieceEnergy('w.mode')} AS energy
  FROM window_stepped s JOIN windows w USING (wid)
),
-- A reading's power: its energy over the hours since the device's previous reading.
window_powered AS (
  SELECT e.*, e.energy / nullif(e.hours, 0) AS power_kw
  FROM (SELECT e.*, extract(epoch FROM e.ts - e.previous_ts) / 3600 AS hours
        FROM window_energy e) e
)`;

/**
 * Folded per window: energy by the device's semantics, power, SoC and temperature. Materialized:
 * the planner, expecting a single span, otherwise re-ran the whole fold once per window (a nested
 * loop: 2.1 s instead of 0.1 s for 12 vehicles' day).
 */
const FOLDED = `
folded AS MATERIALIZED (
  SELECT wid,
         count(*) FILTER (WHERE NOT prior)::int AS readings,
         max(ts) FILTER (WHERE NOT prior) AS last_ts,
         sum(energy) FILTER (WHERE NOT prior) AS energy,
         max(power_kw) FILTER (WHERE NOT prior) AS peak_kw,
         (array_agg(first_soc ORDER BY prior DESC, ts) FILTER (WHERE first_soc IS NOT NULL))[1] AS soc_start,
         (array_agg(last_soc ORDER BY ts DESC) FILTER (WHERE NOT prior AND last_soc IS NOT NULL))[1] AS soc_end,
         sum(temp_sum) FILTER (WHERE NOT prior) AS temp_sum,
         sum(temp_count) FILTER (WHERE NOT prior)::int AS temp_count,
         max(temp_max) FILTER (WHERE NOT prior) AS temp_max
  FROM window_powered
  GROUP BY wid
)`;

/** One row per session: its span, its meters, and what the vehicle and the meters did in it. */
export const SESSIONS_SQL = `
WITH ${SPANS},
${WINDOWS},
${FOLDED}
SELECT s.vehicle_id, s.key, s.source, s.transaction_id, s.start_ts, s.end_ts, s.running, s.continues,
       coalesce(array_agg(DISTINCT w.device_id) FILTER (WHERE w.role = 'ac'), '{}') AS meter_ids,
       coalesce(CASE WHEN s.source = 'ocpp' THEN (SELECT x.billed_kwh FROM billed x
                                                  WHERE x.transaction_id = s.transaction_id) END,
                sum(f.energy) FILTER (WHERE w.role = 'ac'),
                -- A transaction's register is known from its start: none counted yet is 0, not unknown.
                CASE WHEN s.source = 'ocpp' THEN 0 END) AS ac_kwh,
       sum(f.energy) FILTER (WHERE w.role = 'dc') AS dc_kwh,
       coalesce(sum(f.readings) FILTER (WHERE w.role = 'dc'), 0)::int AS vehicle_readings,
       coalesce(sum(f.readings) FILTER (WHERE w.role = 'ac'), 0)::int AS meter_readings,
       max(f.peak_kw) FILTER (WHERE w.role = 'ac') AS peak_ac_kw,
       max(f.last_ts) FILTER (WHERE w.role = 'ac') AS last_ac_ts,
       min(f.soc_start) FILTER (WHERE w.role = 'dc') AS soc_start,
       min(f.soc_end) FILTER (WHERE w.role = 'dc') AS soc_end,
       sum(f.temp_sum) FILTER (WHERE w.role = 'dc') / nullif(sum(f.temp_count) FILTER (WHERE w.role = 'dc'), 0) AS temp_mean,
       coalesce(sum(f.temp_count) FILTER (WHERE w.role = 'dc'), 0)::int AS temp_count,
       max(f.temp_max) FILTER (WHERE w.role = 'dc') AS temp_max
FROM spans s
JOIN windows w ON w.vehicle_id = s.vehicle_id AND w.key = s.key
LEFT JOIN folded f ON f.wid = w.wid
GROUP BY s.vehicle_id, s.key, s.source, s.transaction_id, s.start_ts, s.end_ts, s.running, s.continues
ORDER BY s.vehicle_id, s.start_ts`;

/**
 * One session's minutes with readings, for a chart: AC and DC power (the kWh of the minute's
 * readings over the hours they cover since each one's previous reading: a reading every 5 minutes
 * is 5 minutes of power, not one; a device's very first reading covers the time since the
 * session's start), SoC and battery temperature. Parameters as SESSIONS_SQL, plus
 * $KEY.
 */
export const SESSION_MINUTES_SQL = `
WITH ${SPANS},
${WINDOWS}
SELECT date_trunc('minute', p.ts, 'UTC') AS minute,
       sum(p.energy) FILTER (WHERE w.role = 'ac') / nullif(sum(h.span_hours) FILTER (WHERE w.role = 'ac'), 0) AS ac_kw,
       sum(p.energy) FILTER (WHERE w.role = 'dc') / nullif(sum(h.span_hours) FILTER (WHERE w.role = 'dc'), 0) AS dc_kw,
       (array_agg(p.last_soc ORDER BY p.ts DESC) FILTER (WHERE w.role = 'dc'))[1] AS soc,
       avg(p.temp_sum) FILTER (WHERE w.role = 'dc') AS temp
FROM window_powered p
JOIN windows w USING (wid)
JOIN spans s ON s.vehicle_id = w.vehicle_id AND s.key = w.key
-- A device's very first reading has no previous one: its energy, which the session counts, is
-- over the time since the session's start (where its span puts that reading's interval).
CROSS JOIN LATERAL (
  SELECT coalesce(p.hours, extract(epoch FROM p.ts - s.start_ts) / 3600) AS span_hours
) h
WHERE NOT p.prior AND w.key = $KEY
GROUP BY 1
ORDER BY 1`;

/** Binds `$NAME` placeholders (each as often as it appears) as positional parameters. */
export function bindSessionSql(
  template: string,
  values: {
    VEHICLES: string[];
    FROMS: Date[];
    /** Per vehicle, the open session continued from its `from` (see above), or null. */
    OPENS?: ({ start: Date; end: Date } | null)[];
    TO: Date;
    GAP: number;
    MODE: string;
    /** The earliest start a session may have (earliestSessionStart), or null: any. */
    KEPT: number | null;
    KEY?: string;
  },
): { sql: string; bindings: unknown[] } {
  const bindings: unknown[] = [];
  // A reduce, not Math.min(...): a fleet may hold more vehicles than a call takes arguments.
  const earliest = values.FROMS.reduce((min, d) => Math.min(min, d.getTime()), Infinity);
  const first = new Date(earliest - values.GAP * 1000);
  const opens = values.OPENS ?? values.FROMS.map(() => null);
  const named = {
    ...values,
    FIRST: first,
    KEPT: values.KEPT === null ? '-infinity' : new Date(values.KEPT).toISOString(),
    OPEN_STARTS: opens.map((o) => o?.start ?? null),
    OPEN_ENDS: opens.map((o) => o?.end ?? null),
  };
  const sql = template.replace(
    /\$(VEHICLES|FROMS|OPEN_STARTS|OPEN_ENDS|TO|GAP|MODE|KEY|FIRST|KEPT)\b/g,
    (_m, name: string) => {
      const value = named[name as keyof typeof named];
      if (name === 'GAP') {
        bindings.push(`${value as number} seconds`);
        return '?::interval';
      }
      if (name === 'FROMS' || name === 'OPEN_STARTS' || name === 'OPEN_ENDS') {
        bindings.push((value as (Date | null)[]).map((d) => d?.toISOString() ?? null));
        return '?';
      }
      bindings.push(value);
      return name === 'TO' || name === 'FIRST' || name === 'KEPT' ? '?::timestamptz' : '?';
    },
  );
  return { sql, bindings };
}
