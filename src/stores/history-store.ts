import type { Knex } from 'knex';
import type { MeterReading, Reading, VehicleReading } from '../telemetry/readings';

const iso = (ms: number) => new Date(ms).toISOString();

/** The history key order: meters before vehicles, then device id, then time. */
export function compareKeys(a: Reading, b: Reading): number {
  if (a.type !== b.type) return a.type === 'meter' ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return a.ts - b.ts;
}

/**
 * telemetry_history: append-only, keyed by (device_type, device_id, ts). One set-based INSERT per
 * batch; ON CONFLICT DO NOTHING makes a retried or duplicated reading a no-op.
 */
export class HistoryStore {
  constructor(private readonly db: Knex) {}

  /** Inserts the readings; returns how many rows were new (the rest were already stored). */
  async insert(readings: Reading[], receivedAt: number, db: Knex = this.db): Promise<number> {
    if (readings.length === 0) return 0;
    // Concurrent transactions inserting overlapping keys wait on each other's rows; inserting in
    // one global order (type, id, ts) means those waits can never form a cycle (a deadlock).
    const sorted = readings.slice().sort(compareKeys);
    const meters = sorted.filter((r): r is MeterReading => r.type === 'meter');
    const vehicles = sorted.filter((r): r is VehicleReading => r.type === 'vehicle');
    const rows = [...meters, ...vehicles];
    const pick = <T>(fn: (r: MeterReading) => T | null, fv: (r: VehicleReading) => T | null) => [
      ...meters.map(fn),
      ...vehicles.map(fv),
    ];
    const result = await db.raw(
      `INSERT INTO telemetry_history
         (device_type, device_id, ts, kwh_consumed_ac, voltage, soc, kwh_delivered_dc, battery_temp, received_at)
       SELECT t.*, ?::timestamptz
       FROM unnest(?::text[], ?::text[], ?::timestamptz[], ?::float8[], ?::float8[], ?::float8[], ?::float8[], ?::float8[]) AS t
       ON CONFLICT DO NOTHING`,
      [
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
      ] as unknown as Knex.RawBinding[],
    );
    return (result as { rowCount: number }).rowCount;
  }
}
