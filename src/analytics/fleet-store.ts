import type { Knex } from 'knex';

/** What one vehicle's window adds up to, for the whole fleet in one statement. */
export interface FleetRow {
  vehicleId: string;
  meters: { meterId: string; from: Date; to: Date }[];
  vehicleReadings: number;
  meterReadings: number;
  /** Meter periods that had at least one reading. */
  metersWithData: number;
  dcInterval: number | null;
  dcCumulative: number | null;
  acInterval: number | null;
  acCumulative: number | null;
}

/**
 * The fleet report's one statement. Every vehicle active in the window gets a "device window" for
 * itself (DC) and one per meter period of its mapping clipped to the window (AC); each device
 * window reads the rollups of its whole hours and the raw readings of its partial edge hours, the
 * same pieces the per-vehicle report reads, so both report the same figures. Both energy modes are
 * computed; the caller picks one.
 */
const FLEET_SQL = `
WITH params AS (SELECT ?::timestamptz AS wf, ?::timestamptz AS wt),
active AS (
  SELECT DISTINCT r.device_id AS vehicle_id
  FROM telemetry_hourly r, params
  WHERE r.device_type = 'vehicle' AND r.hour >= date_trunc('hour', wf, 'UTC') AND r.hour < wt
  UNION
  SELECT m.vehicle_id FROM vehicle_meter_map m, params
  WHERE m.valid_from < wt AND (m.valid_to IS NULL OR m.valid_to > wf)
),
windows AS (
  SELECT a.vehicle_id AS key, 'dc' AS role, 'vehicle' AS device_type, a.vehicle_id AS device_id,
         wf AS wfrom, wt AS wto
  FROM active a, params
  UNION ALL
  SELECT m.vehicle_id, 'ac', 'meter', m.meter_id, greatest(m.valid_from, wf), least(coalesce(m.valid_to, 'infinity'), wt)
  FROM vehicle_meter_map m, params
  WHERE m.valid_from < wt AND (m.valid_to IS NULL OR m.valid_to > wf)
),
bounds AS (
  SELECT w.*,
         CASE WHEN date_trunc('hour', wfrom, 'UTC') = wfrom THEN wfrom
              ELSE date_trunc('hour', wfrom, 'UTC') + interval '1 hour' END AS fh,
         date_trunc('hour', wto, 'UTC') AS th
  FROM windows w
),
pieces AS (
  SELECT b.key, b.role, b.device_id, b.wfrom, r.hour AS ts, r.readings, r.energy_sum,
         coalesce(r.register_increase, 0) AS inc, r.first_energy, r.last_energy
  FROM bounds b
  JOIN telemetry_hourly r
    ON r.device_type = b.device_type AND r.device_id = b.device_id AND r.hour >= b.fh AND r.hour < b.th
  UNION ALL
  SELECT b.key, b.role, b.device_id, b.wfrom, t.ts, 1, e.energy, 0, e.energy, e.energy
  FROM bounds b
  JOIN telemetry_history t
    ON t.device_type = b.device_type AND t.device_id = b.device_id
   AND ((t.ts >= b.wfrom AND t.ts < least(b.fh, b.wto)) OR (t.ts >= greatest(b.th, b.fh) AND t.ts < b.wto))
  CROSS JOIN LATERAL (SELECT coalesce(t.kwh_consumed_ac, t.kwh_delivered_dc) AS energy) e
),
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
         sum(s.energy_sum) AS energy_interval,
         sum(s.inc) + sum(CASE WHEN coalesce(s.previous, pr.prior) IS NULL THEN 0
                               ELSE register_step(coalesce(s.previous, pr.prior), s.first_energy) END) AS energy_cumulative
  FROM stepped s
  JOIN priors pr USING (key, role, device_id, wfrom)
  GROUP BY s.key, s.role, s.device_id, s.wfrom
)
SELECT b.key AS vehicle_id,
       coalesce(json_agg(json_build_object('meterId', b.device_id, 'from', b.wfrom, 'to', b.wto) ORDER BY b.wfrom)
                FILTER (WHERE b.role = 'ac'), '[]') AS meters,
       coalesce(sum(pw.readings) FILTER (WHERE b.role = 'dc'), 0)::int AS vehicle_readings,
       coalesce(sum(pw.readings) FILTER (WHERE b.role = 'ac'), 0)::int AS meter_readings,
       count(pw.readings) FILTER (WHERE b.role = 'ac')::int AS meters_with_data,
       sum(pw.energy_interval) FILTER (WHERE b.role = 'dc') AS dc_interval,
       sum(pw.energy_cumulative) FILTER (WHERE b.role = 'dc') AS dc_cumulative,
       sum(pw.energy_interval) FILTER (WHERE b.role = 'ac') AS ac_interval,
       sum(pw.energy_cumulative) FILTER (WHERE b.role = 'ac') AS ac_cumulative
FROM bounds b
LEFT JOIN per_window pw USING (key, role, device_id, wfrom)
GROUP BY b.key`;

interface FleetSqlRow {
  vehicle_id: string;
  meters: { meterId: string; from: string; to: string }[];
  vehicle_readings: number;
  meter_readings: number;
  meters_with_data: number;
  dc_interval: number | null;
  dc_cumulative: number | null;
  ac_interval: number | null;
  ac_cumulative: number | null;
}

export class FleetStore {
  constructor(private readonly db: Knex) {}

  async vehicleWindows(from: Date, to: Date): Promise<FleetRow[]> {
    const result = await this.db.raw(FLEET_SQL, [from, to]);
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
      dcInterval: r.dc_interval,
      dcCumulative: r.dc_cumulative,
      acInterval: r.ac_interval,
      acCumulative: r.ac_cumulative,
    }));
  }
}
