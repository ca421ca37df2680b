import type { Knex } from 'knex';
import { DEVICE_KINDS, kindOf, type DeviceKind, type DeviceType } from '../devices/device-kinds';

/** A device's latest stored reading: its timestamp and field values by field name. */
export interface DeviceStatus {
  ts: Date;
  values: Record<string, number>;
}

const columnsOf = (kind: DeviceKind) =>
  kind.fieldNames.map((name) => ({
    name,
    column: (kind.fields as Record<string, { column: string }>)[name].column,
  }));

/**
 * The newer-only upsert of one kind's status rows from `batch` (rows with device_type, device_id,
 * ts, the kind's columns and `n`, their order): each device's newest reading, the first of equals
 * (the one history keeps), in device order so that concurrent upserts lock rows in one order.
 */
function upsertFrom(kind: DeviceKind, batch: string): string {
  const columns = columnsOf(kind).map((f) => f.column);
  return `${kind.type}_status_upserted AS (
  INSERT INTO ${kind.statusTable} AS s (${kind.statusIdColumn}, ts, ${columns.join(', ')})
  SELECT DISTINCT ON (b.device_id) b.device_id, b.ts, ${columns.map((c) => `b.${c}`).join(', ')}
  FROM ${batch} b
  WHERE b.device_type = '${kind.type}'
  ORDER BY b.device_id, b.ts DESC, b.n
  ON CONFLICT (${kind.statusIdColumn}) DO UPDATE
    SET ts = EXCLUDED.ts, ${columns.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}, updated_at = now()
    WHERE s.ts < EXCLUDED.ts
  RETURNING 1)`;
}

/**
 * The newer-only upserts of every kind's status rows from a batch, as CTEs: the flusher runs them
 * in the statement that inserts the batch into history, one round trip and one atomic write.
 */
export const statusUpsertsFrom = (batch: string): string[] =>
  DEVICE_KINDS.map((kind) => upsertFrom(kind, batch));

/** The status tables (meter_status, vehicle_status, ...): one row per device, moved only forward. */
export class StatusStore {
  constructor(private readonly db: Knex) {}

  async get(type: DeviceType, id: string): Promise<DeviceStatus | null> {
    return (await this.getMany(type, [id])).get(id) ?? null;
  }

  /** Several devices' rows in one statement, by device id; a device without a row is absent. */
  async getMany(type: DeviceType, ids: readonly string[]): Promise<Map<string, DeviceStatus>> {
    const kind: DeviceKind = kindOf(type);
    const rows = await this.db(kind.statusTable).whereIn(kind.statusIdColumn, ids);
    return new Map(rows.map((row) => toEntry(kind, row)));
  }

  /**
   * A page of one kind's devices in id order, after the id `after`; with `silentSince`, only those
   * whose newest reading is older than it.
   */
  async list(
    type: DeviceType,
    {
      limit,
      after,
      silentSince,
    }: { limit: number; after: string | null; silentSince: Date | null },
  ): Promise<Array<[id: string, status: DeviceStatus]>> {
    const kind: DeviceKind = kindOf(type);
    const query = this.db(kind.statusTable).orderBy(kind.statusIdColumn).limit(limit);
    if (after !== null) query.where(kind.statusIdColumn, '>', after);
    if (silentSince) query.where('ts', '<', silentSince);
    return (await query).map((row) => toEntry(kind, row));
  }
}

/** A status row as its device id and status: a column left null is a field left out. */
function toEntry(kind: DeviceKind, row: Record<string, unknown>): [string, DeviceStatus] {
  const values: Record<string, number> = {};
  for (const { name, column } of columnsOf(kind))
    if (row[column] !== null) values[name] = row[column] as number;
  return [row[kind.statusIdColumn] as string, { ts: row.ts as Date, values }];
}
