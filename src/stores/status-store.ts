import type { Knex } from 'knex';
import type { MeterReading, Reading, VehicleReading } from '../telemetry/readings';

export interface MeterStatus {
  meterId: string;
  ts: Date;
  kwhConsumedAc: number;
  voltage: number;
}

export interface VehicleStatus {
  vehicleId: string;
  ts: Date;
  soc: number;
  kwhDeliveredDc: number;
  batteryTemp: number;
}

/** Keeps only the newest reading per device, sorted by id so concurrent upserts lock in one order. */
export function newestPerDevice<T extends { id: string; ts: number }>(readings: T[]): T[] {
  const newest = new Map<string, T>();
  for (const reading of readings) {
    const seen = newest.get(reading.id);
    if (!seen || seen.ts < reading.ts) newest.set(reading.id, reading);
  }
  return [...newest.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

const iso = (ms: number) => new Date(ms).toISOString();

/** A data-modifying CTE (`name AS (...)`) and its bindings, to run inside another statement. */
export interface CtePart {
  sql: string;
  bindings: unknown[];
}

/** meter_status and vehicle_status: one row per device, moved only forward in time. */
export class StatusStore {
  constructor(private readonly db: Knex) {}

  /**
   * The newer-only upserts of a batch's meters and vehicles, as CTEs: the flusher runs them in the
   * same statement as the history insert, one round trip and one atomic write per batch.
   */
  upsertParts(readings: Reading[]): CtePart[] {
    const parts: CtePart[] = [];
    const meters = newestPerDevice(readings.filter((r): r is MeterReading => r.type === 'meter'));
    if (meters.length > 0)
      parts.push({
        sql: `meter_status_upserted AS (
          INSERT INTO meter_status AS s (meter_id, ts, kwh_consumed_ac, voltage)
          SELECT * FROM unnest(?::text[], ?::timestamptz[], ?::float8[], ?::float8[])
          ON CONFLICT (meter_id) DO UPDATE
            SET ts = EXCLUDED.ts, kwh_consumed_ac = EXCLUDED.kwh_consumed_ac,
                voltage = EXCLUDED.voltage, updated_at = now()
            WHERE s.ts < EXCLUDED.ts
          RETURNING 1)`,
        bindings: [
          meters.map((r) => r.id),
          meters.map((r) => iso(r.ts)),
          meters.map((r) => r.kwhConsumedAc),
          meters.map((r) => r.voltage),
        ],
      });
    const vehicles = newestPerDevice(
      readings.filter((r): r is VehicleReading => r.type === 'vehicle'),
    );
    if (vehicles.length > 0)
      parts.push({
        sql: `vehicle_status_upserted AS (
          INSERT INTO vehicle_status AS s (vehicle_id, ts, soc, kwh_delivered_dc, battery_temp)
          SELECT * FROM unnest(?::text[], ?::timestamptz[], ?::float8[], ?::float8[], ?::float8[])
          ON CONFLICT (vehicle_id) DO UPDATE
            SET ts = EXCLUDED.ts, soc = EXCLUDED.soc, kwh_delivered_dc = EXCLUDED.kwh_delivered_dc,
                battery_temp = EXCLUDED.battery_temp, updated_at = now()
            WHERE s.ts < EXCLUDED.ts
          RETURNING 1)`,
        bindings: [
          vehicles.map((r) => r.id),
          vehicles.map((r) => iso(r.ts)),
          vehicles.map((r) => r.soc),
          vehicles.map((r) => r.kwhDeliveredDc),
          vehicles.map((r) => r.batteryTemp),
        ],
      });
    return parts;
  }

  async getMeter(meterId: string): Promise<MeterStatus | null> {
    const row = await this.db('meter_status').where({ meter_id: meterId }).first();
    return row
      ? {
          meterId: row.meter_id,
          ts: row.ts,
          kwhConsumedAc: row.kwh_consumed_ac,
          voltage: row.voltage,
        }
      : null;
  }

  async getVehicle(vehicleId: string): Promise<VehicleStatus | null> {
    const row = await this.db('vehicle_status').where({ vehicle_id: vehicleId }).first();
    return row
      ? {
          vehicleId: row.vehicle_id,
          ts: row.ts,
          soc: row.soc,
          kwhDeliveredDc: row.kwh_delivered_dc,
          batteryTemp: row.battery_temp,
        }
      : null;
  }
}
