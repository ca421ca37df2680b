import type { Knex } from 'knex';
import { asPrepared } from '../../db/prepared';
import type { MeterReading, Reading, VehicleReading } from '../telemetry/readings';
import type { CtePart } from './status-store';

const iso = (ms: number) => new Date(ms).toISOString();

/** The history key order: meters before vehicles, then device id, then time. */
export function compareKeys(a: Reading, b: Reading): number {
  if (a.type !== b.type) return a.type === 'meter' ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return a.ts - b.ts;
}

/**
 * One statement: insert the batch into history (duplicates skipped by the primary key), and fold
 * exactly the rows that were inserted into their hourly rollups. Rollup buckets whose register
 * increase can no longer be merged (readings arrived inside an already covered span) come back
 * as `stale` and are recomputed from history by the next statement.
 */
const insertAndRollUp = (alongside: CtePart[]) => `
WITH inserted AS (
  INSERT INTO telemetry_history
    (device_type, device_id, ts, kwh_consumed_ac, voltage, soc, kwh_delivered_dc, battery_temp, received_at)
  SELECT t.*, ?::timestamptz
  FROM unnest(?::text[], ?::text[], ?::timestamptz[], ?::float8[], ?::float8[], ?::float8[], ?::float8[], ?::float8[]) AS t
  ON CONFLICT DO NOTHING
  RETURNING device_type, device_id, ts, coalesce(kwh_consumed_ac, kwh_delivered_dc) AS energy, battery_temp, soc
),
steps AS (
  -- One sort serves the whole bucket: the previous energy (register steps) and which row is first
  -- and last in its hour, so the aggregates below need no per-group sort.
  SELECT i.*, date_trunc('hour', i.ts, 'UTC') AS hour,
         lag(i.energy) OVER w AS previous_energy,
         lag(i.ts) OVER w IS NULL AS is_first,
         lead(i.ts) OVER w IS NULL AS is_last
  FROM inserted i
  WINDOW w AS (PARTITION BY i.device_type, i.device_id, date_trunc('hour', i.ts, 'UTC') ORDER BY i.ts)
),
buckets AS (
  SELECT device_type, device_id, hour, count(*)::int AS readings, sum(energy) AS energy_sum,
         sum(register_step(previous_energy, energy)) AS register_increase,
         min(ts) AS first_ts, min(energy) FILTER (WHERE is_first) AS first_energy,
         max(ts) AS last_ts, min(energy) FILTER (WHERE is_last) AS last_energy,
         sum(battery_temp) AS temp_sum, min(battery_temp) AS temp_min, max(battery_temp) AS temp_max,
         min(soc) AS soc_min, max(soc) AS soc_max,
         min(soc) FILTER (WHERE is_first) AS first_soc, min(soc) FILTER (WHERE is_last) AS last_soc
  FROM steps
  GROUP BY device_type, device_id, hour
),
upserted AS (
  INSERT INTO telemetry_hourly AS h
  SELECT * FROM buckets ORDER BY device_type, device_id, hour
  ON CONFLICT (device_type, device_id, hour) DO UPDATE SET
    readings = h.readings + EXCLUDED.readings,
    energy_sum = h.energy_sum + EXCLUDED.energy_sum,
    register_increase = CASE
      WHEN h.register_increase IS NULL THEN NULL
      WHEN h.last_ts < EXCLUDED.first_ts
        THEN h.register_increase + register_step(h.last_energy, EXCLUDED.first_energy) + EXCLUDED.register_increase
      WHEN EXCLUDED.last_ts < h.first_ts
        THEN EXCLUDED.register_increase + register_step(EXCLUDED.last_energy, h.first_energy) + h.register_increase
      ELSE NULL END,
    first_ts = LEAST(h.first_ts, EXCLUDED.first_ts),
    first_energy = CASE WHEN EXCLUDED.first_ts < h.first_ts THEN EXCLUDED.first_energy ELSE h.first_energy END,
    first_soc = CASE WHEN EXCLUDED.first_ts < h.first_ts THEN EXCLUDED.first_soc ELSE h.first_soc END,
    last_ts = GREATEST(h.last_ts, EXCLUDED.last_ts),
    last_energy = CASE WHEN EXCLUDED.last_ts > h.last_ts THEN EXCLUDED.last_energy ELSE h.last_energy END,
    last_soc = CASE WHEN EXCLUDED.last_ts > h.last_ts THEN EXCLUDED.last_soc ELSE h.last_soc END,
    temp_sum = h.temp_sum + EXCLUDED.temp_sum,
    temp_min = LEAST(h.temp_min, EXCLUDED.temp_min),
    temp_max = GREATEST(h.temp_max, EXCLUDED.temp_max),
    soc_min = LEAST(h.soc_min, EXCLUDED.soc_min),
    soc_max = GREATEST(h.soc_max, EXCLUDED.soc_max)
  RETURNING h.device_type, h.device_id, h.hour, h.register_increase IS NULL AS stale
)${alongside.map((part) => `,\n${part.sql}`).join('')}
SELECT (SELECT count(*) FROM inserted)::int AS inserted,
       coalesce(array_agg(device_type) FILTER (WHERE stale), '{}') AS stale_types,
       coalesce(array_agg(device_id) FILTER (WHERE stale), '{}') AS stale_ids,
       coalesce(array_agg(hour) FILTER (WHERE stale), '{}') AS stale_hours
FROM upserted`;

/** Recomputes the register increase of the given buckets from their raw history rows. */
const RECOMPUTE_REGISTER_INCREASE = `
UPDATE telemetry_hourly h SET register_increase = r.increase
FROM (
  SELECT device_type, device_id, hour, sum(register_step(previous_energy, energy)) AS increase
  FROM (
    SELECT k.device_type, k.device_id, k.hour, coalesce(t.kwh_consumed_ac, t.kwh_delivered_dc) AS energy,
           lag(coalesce(t.kwh_consumed_ac, t.kwh_delivered_dc)) OVER (
             PARTITION BY k.device_type, k.device_id, k.hour ORDER BY t.ts) AS previous_energy
    FROM unnest(?::text[], ?::text[], ?::timestamptz[]) AS k(device_type, device_id, hour)
    JOIN telemetry_history t
      ON t.device_type = k.device_type AND t.device_id = k.device_id
     AND t.ts >= k.hour AND t.ts < k.hour + interval '1 hour'
  ) steps
  GROUP BY device_type, device_id, hour
) r
WHERE h.device_type = r.device_type AND h.device_id = r.device_id AND h.hour = r.hour`;

/**
 * telemetry_history (append-only, keyed by device type, id and timestamp) and its hourly rollups.
 * One set-based statement per batch; ON CONFLICT DO NOTHING makes a retried or duplicated reading
 * a no-op, and only rows actually inserted reach the rollups.
 */
export class HistoryStore {
  constructor(
    private readonly db: Knex,
    /** Run the batch insert as a named (prepared) statement; see DB_PREPARED_STATEMENTS. */
    private readonly options: { preparedStatements?: boolean } = {},
  ) {}

  /**
   * Inserts the readings; returns how many rows were new (the rest were already stored).
   * `alongside` are more CTEs (the status upserts) run in the same statement, so the batch is one
   * round trip and one atomic write. Only a late reading inside an already rolled-up span needs a
   * second statement, and until it runs the bucket reads as "recompute from raw", never wrong.
   */
  async insert(
    readings: Reading[],
    receivedAt: number,
    db: Knex = this.db,
    alongside: CtePart[] = [],
  ): Promise<number> {
    if (readings.length === 0) return 0;
    // Concurrent transactions inserting overlapping keys wait on each other's rows; inserting in
    // one global order (type, id, ts) means those waits can never form a cycle (a deadlock).
    const sorted = readings.slice().sort(compareKeys);
    const meters = sorted.filter((r): r is MeterReading => r.type === 'meter');
    const vehicles = sorted.filter((r): r is VehicleReading => r.type === 'vehicle');
    const rows = [...meters, ...vehicles];
    const pick = <T>(fm: (r: MeterReading) => T | null, fv: (r: VehicleReading) => T | null) => [
      ...meters.map(fm),
      ...vehicles.map(fv),
    ];
    const sql = insertAndRollUp(alongside);
    const statement = db.raw(sql, [
      iso(receivedAt),
      rows.map((r) => r.type),
      rows.map((r) => r.id),
      rows.map((r) => iso(r.ts)),
      pick(
        (m) => m.kwhConsumedAc,
        () => null,
      ),
      pick(
        (m) => m.voltage,
        () => null,
      ),
      pick(
        () => null,
        (v) => v.soc,
      ),
      pick(
        () => null,
        (v) => v.kwhDeliveredDc,
      ),
      pick(
        () => null,
        (v) => v.batteryTemp,
      ),
      ...alongside.flatMap((part) => part.bindings),
    ] as unknown as Knex.RawBinding[]);
    // Planning was a third of this statement's time for the small batches of single readings.
    const result = await asPrepared(statement, sql, this.options.preparedStatements ?? false);
    const summary = result.rows[0] as {
      inserted: number;
      stale_types: string[];
      stale_ids: string[];
      stale_hours: Date[];
    };
    if (summary.stale_ids.length > 0) {
      await db.raw(RECOMPUTE_REGISTER_INCREASE, [
        summary.stale_types,
        summary.stale_ids,
        summary.stale_hours.map((h) => h.toISOString()),
      ] as unknown as Knex.RawBinding[]);
    }
    return summary.inserted;
  }

  /** Recomputes the rollups of [from, to) from history; returns the number of rollup rows. */
  async rebuildRollups(from: Date, to: Date, db: Knex = this.db): Promise<number> {
    const result = await db.raw('SELECT rebuild_hourly_rollups(?, ?) AS written', [from, to]);
    return Number(result.rows[0].written);
  }
}
