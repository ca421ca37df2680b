import type { Knex } from 'knex';
import {
  DEVICE_KINDS,
  kindOf,
  valuesOf,
  type DeviceKind,
  type DeviceType,
  type Reading,
} from '../devices/device-kinds';
import { float8ArrayLiteral, textArrayLiteral } from './array-literals';
import { fromEpochMs } from './epoch-ms';

/** A device's latest stored reading: its timestamp and field values by field name. */
export interface DeviceStatus {
  ts: Date;
  values: Record<string, number>;
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

/** A data-modifying CTE (`name AS (...)`) and its bindings, to run inside another statement. */
export interface CtePart {
  sql: string;
  bindings: unknown[];
}

const columnsOf = (kind: DeviceKind) =>
  kind.fieldNames.map((name) => ({
    name,
    column: (kind.fields as Record<string, { column: string }>)[name].column,
  }));

/** The newer-only upsert of one kind's status rows, as a CTE over unnest()ed arrays. */
function upsertPart(kind: DeviceKind, readings: Reading[]): CtePart {
  const fields = columnsOf(kind);
  const columns = fields.map((f) => f.column);
  return {
    sql: `${kind.type}_status_upserted AS (
          INSERT INTO ${kind.statusTable} AS s (${kind.statusIdColumn}, ts, ${columns.join(', ')})
          SELECT t.id, ${fromEpochMs('t.ts_ms')}, ${columns.map((c) => `t.${c}`).join(', ')}
          FROM unnest(?::text[], ?::float8[]${', ?::float8[]'.repeat(columns.length)})
            AS t(id, ts_ms, ${columns.join(', ')})
          ON CONFLICT (${kind.statusIdColumn}) DO UPDATE
            SET ts = EXCLUDED.ts, ${columns.map((c) => `${c} = EXCLUDED.${c}`).join(', ')},
                updated_at = now()
            WHERE s.ts < EXCLUDED.ts
          RETURNING 1)`,
    bindings: [
      textArrayLiteral(readings.map((r) => r.id)),
      float8ArrayLiteral(readings.map((r) => r.ts)),
      ...fields.map((f) => float8ArrayLiteral(readings.map((r) => valuesOf(r)[f.name]))),
    ],
  };
}

/** The status tables (meter_status, vehicle_status, ...): one row per device, moved only forward. */
export class StatusStore {
  constructor(private readonly db: Knex) {}

  /**
   * The newer-only upserts of a batch, one CTE per kind present: the flusher runs them in the same
   * statement as the history insert, one round trip and one atomic write per batch.
   */
  upsertParts(readings: Reading[]): CtePart[] {
    return DEVICE_KINDS.flatMap((kind) => {
      const newest = newestPerDevice(readings.filter((r) => r.type === kind.type));
      return newest.length > 0 ? [upsertPart(kind, newest)] : [];
    });
  }

  async get(type: DeviceType, id: string): Promise<DeviceStatus | null> {
    const kind: DeviceKind = kindOf(type);
    const row = await this.db(kind.statusTable)
      .where({ [kind.statusIdColumn]: id })
      .first();
    if (!row) return null;
    const values: Record<string, number> = {};
    for (const { name, column } of columnsOf(kind))
      if (row[column] !== null) values[name] = row[column];
    return { ts: row.ts, values };
  }
}
