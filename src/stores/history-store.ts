import type { Knex } from 'knex';
import { asPrepared } from '../../db/prepared';
import { DEVICE_TYPES, HISTORY_COLUMNS, type Reading } from '../devices/device-kinds';
import { float8ArrayLiteral, textArrayLiteral } from './array-literals';
import { fromEpochMs } from './epoch-ms';
import { markQuarters } from './rollup-store';

/** The history key order: kinds in declaration order (meters first), then device id, then time. */
export function compareKeys(a: Reading, b: Reading): number {
  if (a.type !== b.type) return DEVICE_TYPES.indexOf(a.type) - DEVICE_TYPES.indexOf(b.type);
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return a.ts - b.ts;
}

/** The readings in key order, and the time each was accepted in the same order. */
function sortedWithTimes(readings: Reading[], receivedAt: readonly number[]) {
  const order = readings.map((_, i) => i).sort((a, b) => compareKeys(readings[a], readings[b]));
  return {
    rows: order.map((i) => readings[i]),
    oneTime: null,
    perRow: order.map((i) => receivedAt[i]),
  };
}

const columns = HISTORY_COLUMNS.map((c) => c.column);

/**
 * One statement: the batch (`batch`, in key order, `n` its position) goes into history (duplicates
 * skipped by the primary key), the quarter hours that gained readings are marked for their rollups
 * (see rollup-store.ts), and `alongside` CTEs read from the same batch (the status upserts).
 */
const insertAndMark = (alongside: string[]) => `
WITH batch AS (
  SELECT t.device_type, t.device_id, ${fromEpochMs('t.ts_ms')} AS ts, ${columns.map((c) => `t.${c}`).join(', ')},
         ${fromEpochMs('coalesce(t.received_ms, ?::float8)')} AS received_at, t.n
  FROM unnest(?::text[], ?::text[]${', ?::float8[]'.repeat(columns.length + 2)})
    WITH ORDINALITY AS t(device_type, device_id, ts_ms, ${columns.join(', ')}, received_ms, n)
),
inserted AS (
  INSERT INTO telemetry_history (device_type, device_id, ts, ${columns.join(', ')}, received_at)
  SELECT device_type, device_id, ts, ${columns.join(', ')}, received_at FROM batch ORDER BY n
  ON CONFLICT DO NOTHING
  RETURNING device_type, device_id, ts
),
marked AS (${markQuarters('inserted')})${alongside.map((part) => `,\n${part}`).join('')}
SELECT count(*)::int AS inserted FROM inserted`;

/** No more CTEs: history and the marks only. */
const NOTHING_ALONGSIDE = (): string[] => [];

/**
 * telemetry_history: append-only, keyed by device type, id and timestamp. One set-based statement
 * per batch; ON CONFLICT DO NOTHING makes a retried or duplicated reading a no-op.
 */
export class HistoryStore {
  constructor(
    private readonly db: Knex,
    /** Run the batch insert as a named (prepared) statement; see DB_PREPARED_STATEMENTS. */
    private readonly options: { preparedStatements?: boolean } = {},
  ) {}

  /**
   * The statement for each `alongside` (a function defined once, as statusUpsertsFrom): its text
   * depends on nothing else, so it is built once, not for every batch.
   */
  private readonly statements = new Map<(batch: string) => string[], string>();

  private statementWith(alongside: (batch: string) => string[]): string {
    let sql = this.statements.get(alongside);
    if (sql === undefined) {
      sql = insertAndMark(alongside('batch'));
      this.statements.set(alongside, sql);
    }
    return sql;
  }

  /**
   * Inserts the readings; returns how many rows were new (the rest were already stored).
   * `receivedAt` is when the engine accepted them: one time for all, or one per reading.
   * `alongside` makes more CTEs (the status upserts) from the name of the batch's rows, run in the
   * same statement, so the batch is one round trip and one atomic write.
   */
  async insert(
    readings: Reading[],
    receivedAt: number | readonly number[],
    db: Knex = this.db,
    alongside: (batch: string) => string[] = NOTHING_ALONGSIDE,
  ): Promise<number> {
    if (readings.length === 0) return 0;
    // Concurrent transactions inserting overlapping keys wait on each other's rows; inserting in
    // one global order (type, id, ts) means those waits can never form a cycle (a deadlock).
    // One time for all is bound once, the per-row array left empty (unnest pads it with nulls):
    // 1,000 equal times in an array cost the flusher as much as a column of readings.
    const { rows, oneTime, perRow } =
      typeof receivedAt === 'number'
        ? { rows: readings.slice().sort(compareKeys), oneTime: receivedAt, perRow: [] }
        : sortedWithTimes(readings, receivedAt);
    const sql = this.statementWith(alongside);
    const statement = db.raw(sql, [
      oneTime,
      textArrayLiteral(rows.map((r) => r.type)),
      textArrayLiteral(rows.map((r) => r.id)),
      float8ArrayLiteral(rows.map((r) => r.ts)),
      ...HISTORY_COLUMNS.map((c) => float8ArrayLiteral(rows.map(c.valueOf))),
      float8ArrayLiteral(perRow),
    ] as unknown as Knex.RawBinding[]);
    // Planning was a third of this statement's time for the small batches of single readings.
    const result = await asPrepared(statement, sql, this.options.preparedStatements ?? false);
    return (result.rows[0] as { inserted: number }).inserted;
  }
}
