import type { Knex } from 'knex';
import { takeTurns } from './advisory-lock';
import { FOLD, RAW_PIECE, previousEnergy, rollupPiece } from './energy-fold';
import { HOUR_MS } from '../time-units';

/**
 * Rollups per hour (telemetry_hourly) and per quarter hour (telemetry_15min, for the partial hours
 * at a report's edges), computed from history once a quarter hour has closed: its quarter, then
 * its hour again from the hour's quarters, in one statement.
 *
 * The flusher marks every (device, quarter hour) it inserts readings into in rollup_pending, in
 * the same statement as the insert. A quarter's rollup is up to date when the quarter is not
 * marked, an hour's when none of its quarters is; reports read what is not up to date raw, so they
 * are exact either way. Here, closed quarters are rolled up and their marks removed; a late
 * reading marks its quarter again and it is rolled up again. The hour in progress thus has rollups
 * for its closed quarters: a report that ends now reads raw only the quarter in progress.
 *
 * A rollup must never remove a mark while a flush that relied on it (found it there, so added
 * none) has not committed: the rollup would miss that flush's readings and leave no mark. So a
 * flush locks every mark it finds, and a rollup first locks the marks it takes (waiting for the
 * flushes holding them), then reads history in a later statement, which sees those flushes. A
 * flush meeting a mark a rollup holds waits for it, then adds the mark again. Flushes of other
 * quarters never wait for a rollup; rollups take turns among themselves (an hour is recomputed
 * from its quarters, which a concurrent rollup might be changing).
 */
const ROLLUPS_LOCK_NAME = 'energy rollups';
/** A rebuild also holds every flush back: it deletes and recomputes whole hours at once. */
const LOCK_PENDING = 'LOCK TABLE rollup_pending IN SHARE ROW EXCLUSIVE MODE';

/** A mark's touched_at is refreshed at most this often: most flushes only lock the mark. */
const TOUCH_REFRESH = "interval '10 seconds'";

/**
 * Marks the quarters of `inserted` (rows with device_type, device_id, ts), in key order (so that
 * flushes lock marks in one order). An existing mark is locked even when the WHERE leaves it as
 * it is: that is how ON CONFLICT DO UPDATE works, and what a rollup taking it waits for.
 */
export const markQuarters = (inserted: string) => `
  INSERT INTO rollup_pending AS p (device_type, device_id, quarter)
  SELECT DISTINCT device_type, device_id, ${quarterOf('ts')} FROM ${inserted}
  ORDER BY 1, 2, 3
  ON CONFLICT (device_type, device_id, quarter) DO UPDATE SET touched_at = now()
    WHERE p.touched_at < now() - ${TOUCH_REFRESH}`;

const ROLLUP_COLUMNS = [
  'readings',
  'energy_sum',
  'register_increase',
  'first_ts',
  'first_energy',
  'last_ts',
  'last_energy',
  'temp_sum',
  'temp_min',
  'temp_max',
  'soc_min',
  'soc_max',
  'first_soc',
  'last_soc',
];

/** The quarter hour (QUARTER_MS) in SQL. */
const QUARTER = `interval '15 minutes'`;

/** A quarter hour's start (UTC quarters: every time zone's offset is a multiple of 15 minutes). */
export const quarterOf = (ts: string) =>
  `date_bin(${QUARTER}, ${ts}, timestamptz '2000-01-01T00:00:00Z')`;

/** History rows `t` within the quarter hour starting at `quarter`. */
export const inQuarter = (t: string, quarter: string) =>
  `${t}.ts >= ${quarter} AND ${t}.ts < ${quarter} + ${QUARTER}`;

/**
 * The mapping row `m` (vehicle_meter_map) is one whose sessions a reading of its meter in the
 * quarter hour starting at `quarter` may change: in force during some of it, or after it (a
 * register's reading there may be the last before the period starts: its starting point).
 * (Not a range over `quarter`: looked up per meter, its marks are read by key.)
 */
export const mappedFromQuarterOn = (m: string, quarter: string) =>
  `(${m}.valid_to IS NULL OR ${m}.valid_to > ${quarter})`;

/**
 * Folds `source` (pieces with device_type, device_id and `bucket`) into one rollup row per device
 * and bucket of `table`; `firstTs` and `lastTs` are the rows' first and last reading times.
 */
const upsertRollups = (
  table: string,
  bucket: string,
  source: string,
  { firstTs, lastTs }: { firstTs: string; lastTs: string },
) => `
INSERT INTO ${table} (device_type, device_id, ${bucket}, ${ROLLUP_COLUMNS.join(', ')})
-- Grouped in the window's order, then the groups ordered: ordering the pieces for the GROUP BY
-- sorted every piece a second time, on disk past work_mem (2,000 quarters of 30,000 readings:
-- 145 ms, 125 without it).
SELECT * FROM (
SELECT device_type, device_id, ${bucket}, ${FOLD.readings}, ${FOLD.intervalEnergy}, ${FOLD.registerEnergy},
       ${firstTs}, min(first_energy) FILTER (WHERE is_first), ${lastTs}, min(last_energy) FILTER (WHERE is_last),
       ${FOLD.tempSum}, ${FOLD.tempMin}, ${FOLD.tempMax}, ${FOLD.socMin}, ${FOLD.socMax},
       min(first_soc) FILTER (WHERE is_first), min(last_soc) FILTER (WHERE is_last)
FROM (
  SELECT p.*, ${previousEnergy(`device_type, device_id, ${bucket}`)} AS previous_energy,
         lag(ts) OVER w IS NULL AS is_first, lead(ts) OVER w IS NULL AS is_last
  FROM ${source} p
  WINDOW w AS (PARTITION BY device_type, device_id, ${bucket} ORDER BY ts)
) stepped
GROUP BY device_type, device_id, ${bucket}
) grouped
-- In time order: the rollups' BRIN indexes stay selective.
ORDER BY ${bucket}, device_type, device_id
ON CONFLICT (device_type, device_id, ${bucket}) DO UPDATE SET
  ${ROLLUP_COLUMNS.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`;

/**
 * Rolls the raw pieces of `pieces` (with device_type, device_id) up at both grains in one
 * statement: quarter hours from the readings, then hours from their quarter hours (the quarter
 * rows written, and `otherQuarters`: telemetry_15min rows of the same hours written before, which
 * the statement cannot see through its own upsert). `hours` has a row per device hour written.
 */
const upsertBothGrains = (pieces: string, otherQuarters?: string) => `
raw_pieces AS (
  SELECT x.*, ${quarterOf('x.ts')} AS quarter FROM (${pieces}) x
),
quarters AS (${upsertRollups('telemetry_15min', 'quarter', 'raw_pieces', {
  firstTs: 'min(ts)',
  lastTs: 'max(ts)',
})}
  RETURNING *
),
quarter_pieces AS (
  SELECT q.device_type, q.device_id, date_trunc('hour', q.quarter, 'UTC') AS hour,
         q.first_ts, q.last_ts, ${rollupPiece('q', 'quarter')}
  FROM (SELECT * FROM quarters${otherQuarters ? ` UNION ALL ${otherQuarters}` : ''}) q
),
hours AS (${upsertRollups('telemetry_hourly', 'hour', 'quarter_pieces', {
  firstTs: 'min(first_ts)',
  lastTs: 'max(last_ts)',
})}
  RETURNING 1
)`;

/**
 * Marks for the session builder the vehicles whose readings, or whose meters' readings, changed in
 * the quarters of `changed` (rows with device_type, device_id, quarter), from the first of them.
 */
const markSessions = (changed: string) => `
sessions_changed AS (
  INSERT INTO session_dirty AS s (vehicle_id, since)
  SELECT vehicle_id, min(quarter) FROM (
    SELECT device_id AS vehicle_id, quarter FROM ${changed} WHERE device_type = 'vehicle'
    UNION ALL
    SELECT m.vehicle_id, c.quarter FROM ${changed} c
    JOIN vehicle_meter_map m ON m.meter_id = c.device_id AND ${mappedFromQuarterOn('m', 'c.quarter')}
    WHERE c.device_type = 'meter'
  ) changed
  GROUP BY vehicle_id
  ORDER BY vehicle_id
  ON CONFLICT (vehicle_id) DO UPDATE SET since = least(s.since, EXCLUDED.since), version = s.version + 1
)`;

/**
 * Locks up to `limit` marks of quarters before the cutoff, oldest first, that gained no reading
 * for some milliseconds (NULL: whichever), in key order (as flushes lock them); returns their row
 * addresses. By row address: joined to a LIMIT subquery, the planner (expecting one mark, as the
 * table's statistics say between its bursts) compared every mark with every other (2,000 marks:
 * 4 million comparisons, 2.5 s).
 */
const TAKE_MARKS = `
SELECT p.ctid::text AS address, p.device_type, p.device_id, p.quarter FROM rollup_pending p
WHERE p.ctid = ANY (ARRAY(SELECT ctid FROM rollup_pending
                          WHERE quarter < ?
                            AND (?::int IS NULL OR touched_at < now() - ?::int * interval '1 ms')
                            AND (device_type, device_id, quarter) NOT IN (
                              SELECT * FROM unnest(?::text[], ?::text[], ?::timestamptz[]))
                          ORDER BY quarter, device_type, device_id LIMIT ?))
ORDER BY p.device_type, p.device_id, p.quarter
FOR UPDATE`;

/**
 * Removes the marks taken (locked, they stay at their addresses) and rolls those quarters and
 * their hours up from history; the vehicles whose readings (or whose meters' readings) changed in
 * them get their sessions marked for the session builder.
 */
const ROLL_UP_PENDING = `
WITH due AS (
  DELETE FROM rollup_pending d WHERE d.ctid = ANY (?::tid[])
  RETURNING d.device_type, d.device_id, d.quarter
),
${markSessions('due')},
${upsertBothGrains(
  `
  SELECT d.device_type, d.device_id, ${RAW_PIECE}
  -- In key order, so history comes out grouped by device and the window only sorts each device's
  -- readings (an incremental sort), not all of them at once (the same rollup: 125 ms, 92 with it).
  FROM (SELECT * FROM due ORDER BY device_type, device_id, quarter) d
  JOIN telemetry_history t
    ON t.device_type = d.device_type AND t.device_id = d.device_id
   AND ${inQuarter('t', 'd.quarter')}`,
  `
  SELECT q.* FROM (SELECT DISTINCT device_type, device_id, date_trunc('hour', quarter, 'UTC') AS hour
                   FROM due) h
  JOIN telemetry_15min q
    ON q.device_type = h.device_type AND q.device_id = h.device_id
   AND q.quarter >= h.hour AND q.quarter < h.hour + interval '1 hour'
  WHERE NOT EXISTS (SELECT 1 FROM due d WHERE d.device_type = q.device_type
                      AND d.device_id = q.device_id AND d.quarter = q.quarter)`,
)}
SELECT (SELECT count(*) FROM due)::int AS quarters, (SELECT count(*) FROM hours)::int AS hours`;

/**
 * Every hour of [?, ?) from history; the sessions of the vehicles concerned are marked to be built
 * again (history loaded from outside has not been seen by the session builder).
 */
const REBUILD = `
WITH ${upsertBothGrains(`
  SELECT t.device_type, t.device_id, ${RAW_PIECE}
  FROM telemetry_history t
  WHERE t.ts >= ? AND t.ts < ?`)},
${markSessions('quarters')}
SELECT count(*)::int AS hours FROM hours`;

/** One device's quarter hour, as a mark names it. */
export interface DeviceQuarter {
  deviceType: string;
  deviceId: string;
  quarter: Date;
}

interface TakenMark {
  address: string;
  device_type: string;
  device_id: string;
  quarter: Date;
}

/** Rolling up these marks failed (`cause`); they stay marked. */
export class RollupFailed extends Error {
  constructor(
    readonly marks: DeviceQuarter[],
    override readonly cause: unknown,
  ) {
    super(`rolling up ${marks.length} device quarters failed: ${String(cause)}`);
    this.name = 'RollupFailed';
  }
}

export class RollupStore {
  constructor(private readonly db: Knex) {}

  /**
   * Rolls up marked quarter hours that closed before `closedBefore` and, with `quietMs`, gained
   * no reading for that long (by PostgreSQL's clock): oldest first, at most `limit` per
   * transaction, leaving out the marks `setAside`. Returns how many device quarters it took and
   * how many device hours it wrote.
   */
  async rollUpPending(
    closedBefore: Date,
    limit: number,
    quietMs: number | null = null,
    setAside: readonly DeviceQuarter[] = [],
  ): Promise<{ quarters: number; hours: number }> {
    return this.db.transaction(async (trx) => {
      await takeTurns(trx, ROLLUPS_LOCK_NAME);
      const taken = await trx.raw(TAKE_MARKS, [
        closedBefore,
        quietMs,
        quietMs,
        setAside.map((q) => q.deviceType),
        setAside.map((q) => q.deviceId),
        setAside.map((q) => q.quarter),
        limit,
      ]);
      const rows = taken.rows as TakenMark[];
      if (rows.length === 0) return { quarters: 0, hours: 0 };
      try {
        // A statement of its own: its snapshot sees the flushes the lock waited for.
        const result = await trx.raw(ROLL_UP_PENDING, [rows.map((r) => r.address)]);
        return result.rows[0] as { quarters: number; hours: number };
      } catch (err) {
        throw new RollupFailed(
          rows.map((r) => ({
            deviceType: r.device_type,
            deviceId: r.device_id,
            quarter: r.quarter,
          })),
          err,
        );
      }
    });
  }

  /**
   * Recomputes the rollups (both grains) of every hour touching [from, to) from history (for
   * repairs, or history loaded from outside) and marks the sessions concerned for the session
   * builder; returns the number of hourly rollup rows written.
   */
  async rebuild(from: Date, to: Date): Promise<number> {
    const first = new Date(Math.floor(from.getTime() / HOUR_MS) * HOUR_MS);
    const end = new Date(Math.ceil(to.getTime() / HOUR_MS) * HOUR_MS);
    return this.db.transaction(async (trx) => {
      await takeTurns(trx, ROLLUPS_LOCK_NAME);
      await trx.raw(LOCK_PENDING);
      await trx('telemetry_hourly').where('hour', '>=', first).where('hour', '<', end).del();
      await trx('telemetry_15min').where('quarter', '>=', first).where('quarter', '<', end).del();
      await trx('rollup_pending').where('quarter', '>=', first).where('quarter', '<', end).del();
      const result = await trx.raw(REBUILD, [first, end]);
      return (result.rows[0] as { hours: number }).hours;
    });
  }
}
