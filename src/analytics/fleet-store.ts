import type { Knex } from 'knex';
import type { EnergyReadingsMode } from '../config';

/** What one vehicle's window adds up to, for the whole fleet in one statement. */
export interface FleetRow {
  vehicleId: string;
  meters: { meterId: string; from: Date; to: Date }[];
  vehicleReadings: number;
  meterReadings: number;
  /** Meter periods that had at least one reading. */
  metersWithData: number;
  /** kWh in the configured energy mode; null when the device sent nothing. */
  dc: number | null;
  ac: number | null;
}

/**
 * The fleet report's one statement. Every vehicle active in the window gets a "device window" for
 * itself (DC) and one per meter period of its mapping clipped to the window (AC); each device
 * window reads the rollups of its whole hours and the raw readings of its partial edge hours, the
 * same pieces the per-vehicle report reads, so both report the same figures.
 */
const COMMON_CTES = `

WITH active AS (
  SELECT DISTINCT r.device_id AS vehicle_id
  FROM telemetry_hourly r
  WHERE r.device_type = 'vehicle' AND r.hour >= date_trunc('hour', $WF, 'UTC') AND r.hour < $WT
  UNION
  SELECT m.vehicle_id FROM vehicle_meter_map m
  WHERE m.valid_from < $WT AND (m.valid_to IS NULL OR m.valid_to > $WF)
),
windows AS (
  SELECT a.vehicle_id AS key, 'dc' AS role, 'vehicle' AS device_type, a.vehicle_id AS device_id,
         $WF AS wfrom, $WT AS wto
  FROM active a
  UNION ALL
  SELECT m.vehicle_id, 'ac', 'meter', m.meter_id, greatest(m.valid_from, $WF), least(coalesce(m.valid_to, 'infinity'), $WT)
  FROM vehicle_meter_map m
  WHERE m.valid_from < $WT AND (m.valid_to IS NULL OR m.valid_to > $WF)
),
bounds AS (
  SELECT w.*,
         CASE WHEN date_trunc('hour', wfrom, 'UTC') = wfrom THEN wfrom
              ELSE date_trunc('hour', wfrom, 'UTC') + interval '1 hour' END AS fh,
         date_trunc('hour', wto, 'UTC') AS th
  FROM windows w
),
pieces AS (
  -- Whole hours: one range scan of the window's rollups (index on device_type, hour, device_id).
  SELECT b.key, b.role, b.device_id, b.wfrom, r.hour AS ts, r.readings, r.energy_sum,
         coalesce(r.register_increase, 0) AS inc, r.first_energy, r.last_energy
  FROM bounds b
  JOIN telemetry_hourly r
    ON r.device_type = b.device_type AND r.device_id = b.device_id AND r.hour >= b.fh AND r.hour < b.th
  WHERE r.hour >= date_trunc('hour', $WF, 'UTC') AND r.hour < $WT
  UNION ALL
  -- Partial edge hours: per device window, two primary-key range scans of history.
  SELECT b.key, b.role, b.device_id, b.wfrom, e.ts, 1, e.energy, 0, e.energy, e.energy
  FROM bounds b
  CROSS JOIN LATERAL (
    SELECT t.ts, coalesce(t.kwh_consumed_ac, t.kwh_delivered_dc) AS energy FROM telemetry_history t
    WHERE t.device_type = b.device_type AND t.device_id = b.device_id
      AND t.ts >= b.wfrom AND t.ts < least(b.fh, b.wto)
    UNION ALL
    SELECT t.ts, coalesce(t.kwh_consumed_ac, t.kwh_delivered_dc) FROM telemetry_history t
    WHERE t.device_type = b.device_type AND t.device_id = b.device_id
      AND t.ts >= greatest(b.th, b.fh) AND t.ts < b.wto
  ) e
  -- Hour-aligned windows have no partial hours: skip their lookups altogether.
  WHERE b.wfrom < least(b.fh, b.wto) OR greatest(b.th, b.fh) < b.wto
)`;

/** Interval readings: a window's energy is the sum of its pieces. */
const INTERVAL_WINDOWS = `
per_window AS (
  SELECT key, role, device_id, wfrom, sum(readings)::int AS readings, sum(energy_sum) AS energy
  FROM pieces
  GROUP BY key, role, device_id, wfrom
)`;

/**
 * Register readings: the increases inside each piece plus the steps between consecutive pieces,
 * starting from the device's last reading before its window (a drop is a reset).
 */
const CUMULATIVE_WINDOWS = `
priors AS (
  SELECT b.key, b.role, b.device_id, b.wfrom,
         coalesce(
           (SELECT coalesce(t.kwh_consumed_ac, t.kwh_delivered_dc) FROM telemetry_history t
             WHERE t.device_type = b.device_type AND t.device_id = b.device_id
               AND t.ts >= date_trunc('hour', b.wfrom, 'UTC') AND t.ts < b.wfrom
             ORDER BY t.ts DESC LIMIT 1),
           (SELECT r.last_energy FROM telemetry_hourly r
             WHERE r.device_type = b.device_type AND r.device_id = b.device_id
               AND r.hour < date_trunc('hour', b.wfrom, 'UTC')
             ORDER BY r.hour DESC LIMIT 1)) AS prior
  FROM bounds b
),
stepped AS (
  SELECT p.*, lag(p.last_energy) OVER (PARTITION BY p.key, p.role, p.device_id, p.wfrom ORDER BY p.ts) AS previous
  FROM pieces p
),
per_window AS (
  SELECT s.key, s.role, s.device_id, s.wfrom,
         sum(s.readings)::int AS readings,
         sum(s.inc) + sum(CASE WHEN coalesce(s.previous, pr.prior) IS NULL THEN 0
                               ELSE register_step(coalesce(s.previous, pr.prior), s.first_energy) END) AS energy
  FROM stepped s
  JOIN priors pr USING (key, role, device_id, wfrom)
  GROUP BY s.key, s.role, s.device_id, s.wfrom
)`;

const PER_VEHICLE = `
SELECT b.key AS vehicle_id,
       coalesce(json_agg(json_build_object('meterId', b.device_id, 'from', b.wfrom, 'to', b.wto) ORDER BY b.wfrom)
                FILTER (WHERE b.role = 'ac'), '[]') AS meters,
       coalesce(sum(pw.readings) FILTER (WHERE b.role = 'dc'), 0)::int AS vehicle_readings,
       coalesce(sum(pw.readings) FILTER (WHERE b.role = 'ac'), 0)::int AS meter_readings,
       count(pw.readings) FILTER (WHERE b.role = 'ac')::int AS meters_with_data,
       sum(pw.energy) FILTER (WHERE b.role = 'dc') AS dc,
       sum(pw.energy) FILTER (WHERE b.role = 'ac') AS ac
FROM bounds b
LEFT JOIN per_window pw USING (key, role, device_id, wfrom)
GROUP BY b.key`;

interface FleetSqlRow {
  vehicle_id: string;
  meters: { meterId: string; from: string; to: string }[];
  vehicle_readings: number;
  meter_readings: number;
  meters_with_data: number;
  dc: number | null;
  ac: number | null;
}

export class FleetStore {
  constructor(private readonly db: Knex) {}

  async vehicleWindows(from: Date, to: Date, mode: EnergyReadingsMode): Promise<FleetRow[]> {
    const template = `${COMMON_CTES},${mode === 'interval' ? INTERVAL_WINDOWS : CUMULATIVE_WINDOWS}${PER_VEHICLE}`;
    // $WF and $WT are the window's bounds, bound as parameters wherever they appear (as constants
    // the planner can use, rather than a joined CTE).
    const bindings: Date[] = [];
    const sql = template.replace(/\$(WF|WT)\b/g, (_m, name: string) => {
      bindings.push(name === 'WF' ? from : to);
      return '?::timestamptz';
    });
    const result = await this.db.transaction(async (trx) => {
      // Sorting and grouping the fleet's pieces wants memory, not disk; and JIT compilation costs
      // more (~100 ms) than this statement saves from it.
      await trx.raw(`SET LOCAL work_mem = '64MB'`);
      await trx.raw('SET LOCAL jit = off');
      return (await trx.raw(sql, bindings)) as { rows: FleetSqlRow[] };
    });
    return (result.rows as FleetSqlRow[]).map((r) => ({
      vehicleId: r.vehicle_id,
      meters: r.meters.map((m) => ({
        meterId: m.meterId,
        from: new Date(m.from),
        to: new Date(m.to),
      })),
      vehicleReadings: r.vehicle_readings,
      meterReadings: r.meter_readings,
      metersWithData: r.meters_with_data,
      dc: r.dc,
      ac: r.ac,
    }));
  }
}
