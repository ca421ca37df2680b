import type { Knex } from 'knex';
import { asPrepared } from '../../db/prepared';
import type { DeviceType } from '../telemetry/readings';

/** One hour of one device, as the flusher rolls it up. */
export interface HourlyRollup {
  hour: Date;
  readings: number;
  energySum: number;
  /** Sum of register increases inside the hour; null if it still needs recomputing. */
  registerIncrease: number | null;
  firstEnergy: number;
  lastEnergy: number;
  tempSum: number | null;
  tempMin: number | null;
  tempMax: number | null;
  socMin: number | null;
  socMax: number | null;
  firstSoc: number | null;
  lastSoc: number | null;
}

/** One raw reading, reduced to what analytics needs. */
export interface RawPoint {
  ts: Date;
  energy: number;
  batteryTemp: number | null;
  soc: number | null;
}

export interface TimeRange {
  from: Date;
  to: Date;
}

const ENERGY = 'coalesce(kwh_consumed_ac, kwh_delivered_dc)';

interface RollupRow {
  hour: Date;
  readings: number;
  energy_sum: number;
  register_increase: number | null;
  first_energy: number;
  last_energy: number;
  temp_sum: number | null;
  temp_min: number | null;
  temp_max: number | null;
  soc_min: number | null;
  soc_max: number | null;
  first_soc: number | null;
  last_soc: number | null;
}

const toRollup = (r: RollupRow): HourlyRollup => ({
  hour: r.hour,
  readings: r.readings,
  energySum: r.energy_sum,
  registerIncrease: r.register_increase,
  firstEnergy: r.first_energy,
  lastEnergy: r.last_energy,
  tempSum: r.temp_sum,
  tempMin: r.temp_min,
  tempMax: r.temp_max,
  socMin: r.soc_min,
  socMax: r.soc_max,
  firstSoc: r.first_soc,
  lastSoc: r.last_soc,
});

/**
 * Reads for analytics. Every query is an index range scan: the history primary key
 * (device_type, device_id, ts) or the rollup key (device_type, device_id, hour).
 */
export class AnalyticsStore {
  constructor(
    private readonly db: Knex,
    /** Run the per-window query as a named (prepared) statement; see DB_PREPARED_STATEMENTS. */
    private readonly options: { preparedStatements?: boolean } = {},
  ) {}

  rawPointsQuery(type: DeviceType, id: string, ranges: TimeRange[]): Knex.Raw {
    const parts = ranges.map(
      () => `(SELECT ts, ${ENERGY} AS energy, battery_temp, soc FROM telemetry_history
              WHERE device_type = ? AND device_id = ? AND ts >= ? AND ts < ?)`,
    );
    const bindings = ranges.flatMap((r) => [type, id, r.from, r.to]);
    return this.db.raw(`${parts.join(' UNION ALL ')} ORDER BY ts`, bindings);
  }

  /**
   * One round trip for a device's window: the rollups of the whole hours [fromHour, toHour) and the
   * raw readings of the edge ranges, in time order (an hour sorts at its start, between the head
   * readings before it and the tail readings after the last whole hour).
   */
  windowItemsQuery(
    type: DeviceType,
    id: string,
    fromHour: Date,
    toHour: Date,
    edges: TimeRange[],
  ): Knex.Raw {
    const { sql, bindings } = this.windowItemsSql(type, id, fromHour, toHour, edges);
    // Planning took three times as long as running it (0.14 vs 0.04 ms).
    return asPrepared(
      this.db.raw(sql, bindings as Knex.RawBinding[]),
      sql,
      this.options.preparedStatements ?? false,
    );
  }

  private windowItemsSql(
    type: DeviceType,
    id: string,
    fromHour: Date,
    toHour: Date,
    edges: TimeRange[],
  ): { sql: string; bindings: unknown[] } {
    const parts: string[] = [];
    const bindings: unknown[] = [];
    if (fromHour < toHour) {
      parts.push(`(SELECT true AS rolled_up, hour AS ts, readings, energy_sum, register_increase,
                          first_energy, last_energy, temp_sum, temp_min, temp_max, soc_min, soc_max, first_soc, last_soc
                   FROM telemetry_hourly WHERE device_type = ? AND device_id = ? AND hour >= ? AND hour < ?)`);
      bindings.push(type, id, fromHour, toHour);
    }
    for (const edge of edges.filter((r) => r.from < r.to)) {
      // Column names come from the first branch of a UNION, so every branch names its columns.
      parts.push(`(SELECT false AS rolled_up, ts, 1 AS readings, ${ENERGY} AS energy_sum, NULL::float8 AS register_increase,
                          ${ENERGY} AS first_energy, ${ENERGY} AS last_energy, battery_temp AS temp_sum,
                          battery_temp AS temp_min, battery_temp AS temp_max, soc AS soc_min, soc AS soc_max,
                          soc AS first_soc, soc AS last_soc
                   FROM telemetry_history WHERE device_type = ? AND device_id = ? AND ts >= ? AND ts < ?)`);
      bindings.push(type, id, edge.from, edge.to);
    }
    if (parts.length === 0)
      parts.push('(SELECT NULL::boolean AS rolled_up, NULL::timestamptz AS ts WHERE false)');
    return { sql: `${parts.join(' UNION ALL ')} ORDER BY ts`, bindings };
  }

  async windowItems(
    type: DeviceType,
    id: string,
    fromHour: Date,
    toHour: Date,
    edges: TimeRange[],
  ): Promise<(RawPoint | HourlyRollup)[]> {
    const result = await this.windowItemsQuery(type, id, fromHour, toHour, edges);
    return (result.rows as (RollupRow & { rolled_up: boolean; ts: Date })[]).map((row) =>
      row.rolled_up
        ? toRollup({ ...row, hour: row.ts })
        : { ts: row.ts, energy: row.energy_sum, batteryTemp: row.temp_min, soc: row.soc_min },
    );
  }

  /** Raw readings inside the given ranges, oldest first. */
  async rawPoints(type: DeviceType, id: string, ranges: TimeRange[]): Promise<RawPoint[]> {
    const nonEmpty = ranges.filter((r) => r.from < r.to);
    if (nonEmpty.length === 0) return [];
    const result = await this.rawPointsQuery(type, id, nonEmpty);
    return (
      result.rows as { ts: Date; energy: number; battery_temp: number | null; soc: number | null }[]
    ).map((r) => ({ ts: r.ts, energy: r.energy, batteryTemp: r.battery_temp, soc: r.soc }));
  }

  /**
   * The energy register value of the device's last reading before `before`: from the raw rows of
   * `before`'s own hour, else from the last rollup of an earlier hour. Two short index scans,
   * however many partitions history has.
   */
  async lastEnergyBefore(
    type: DeviceType,
    id: string,
    before: Date,
    hourStart: Date,
  ): Promise<number | null> {
    const raw = await this.db('telemetry_history')
      .select(this.db.raw(`${ENERGY} AS energy`))
      .where({ device_type: type, device_id: id })
      .where('ts', '>=', hourStart)
      .where('ts', '<', before)
      .orderBy('ts', 'desc')
      .first();
    if (raw) return (raw as { energy: number }).energy;
    const rollup = await this.db('telemetry_hourly')
      .select('last_energy')
      .where({ device_type: type, device_id: id })
      .where('hour', '<', hourStart)
      .orderBy('hour', 'desc')
      .first();
    return rollup ? (rollup as { last_energy: number }).last_energy : null;
  }

  async vehicleExists(vehicleId: string): Promise<boolean> {
    const row = await this.db.raw(
      `SELECT EXISTS (SELECT 1 FROM vehicle_status WHERE vehicle_id = ?)
           OR EXISTS (SELECT 1 FROM vehicle_meter_map WHERE vehicle_id = ?) AS found`,
      [vehicleId, vehicleId],
    );
    return Boolean(row.rows[0].found);
  }
}
