import type { Knex } from 'knex';
import type { Logger } from '../src/logger';
import { DEVICE_KINDS, DEVICE_TYPES } from '../src/devices/device-kinds';
import { earliestSessionStart, retainedFrom } from '../src/stores/retention';
import { markSessionsAcross } from '../src/stores/session-marks';
import type { LiveStateStore } from '../src/telemetry/live-state';
import { DAY_MS } from '../src/time-units';

const utcDay = (ms: number) =>
  new Date(Math.floor(ms / DAY_MS) * DAY_MS).toISOString().slice(0, 10);

/**
 * Locks a statement over history takes per partition on a generic plan, which locks every
 * partition and its indexes before pruning (1,110 measured with 369 partitions, PostgreSQL 15).
 */
const LOCKS_PER_PARTITION = 3;

/** Report statements over history assumed to run at once when judging the lock table. */
const STATEMENTS_AT_ONCE = 4;

/**
 * Devices retention forgets (their status rows and live states), or takes the baselines of, in one
 * statement.
 */
const FORGET_CHUNK = 5000;

/** Rows retention deletes from a monthly partition in one statement. */
const TRIM_BATCH_ROWS = 50_000;

/** A lock table warning is repeated at most this often (a backfill creates day after day). */
const LOCK_WARNING_INTERVAL_MS = 10 * 60_000;

/** History's partitions, and what sizes the server's lock table (their product). */
export interface LockTableUse {
  partitions: number;
  locksPerTransaction: number;
  /** max_connections + max_prepared_transactions */
  connections: number;
}

/**
 * Whether history's partitions leave the server's lock table (shared by every session) too
 * small for a few report statements at once, and the max_locks_per_transaction that would do.
 */
export function lockTableShort({ partitions, locksPerTransaction, connections }: LockTableUse): {
  short: boolean;
  neededLocksPerTransaction: number;
} {
  const needed = partitions * LOCKS_PER_PARTITION * STATEMENTS_AT_ONCE;
  return {
    short: needed > locksPerTransaction * connections,
    neededLocksPerTransaction: Math.ceil(needed / Math.max(1, connections)),
  };
}

/**
 * History partitions: created ahead of time on a schedule and on demand for any other date a batch
 * carries (backfill); daily under RETENTION_DAYS (dropped a day at a time past it), monthly when
 * everything is kept, and monthly for a closed month the engine did not run through (migrations
 * 20261205230000, 20261206020000). The SQL functions take an advisory lock, so several flushers can
 * race to create the same partition safely.
 */
export class PartitionMaintainer {
  /** Days (since the epoch) known to have a partition (their own or their month's). */
  private readonly knownDays = new Set<number>();
  /** The cutoff the devices' baselines were last taken before (keepBaselinesBefore). */
  private baselinesTakenBefore: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lockWarnedAt = -Infinity;

  constructor(
    private readonly deps: {
      db: Knex;
      /** Where devices' live states are forgotten with their last stored readings. */
      liveState: Pick<LiveStateStore, 'forgetOlderThan'>;
      config: { retentionDays: number; partitionDaysAhead: number };
      logger: Logger;
      now?: () => number;
    },
  ) {}

  /**
   * Kept for good (RETENTION_DAYS=0), history needs no day granularity: a month that has no daily
   * partitions gets one partition (migration 20261206020000), 12 a year instead of 365.
   */
  private wholeMonths(): boolean {
    return this.deps.config.retentionDays === 0;
  }

  /** Makes sure a partition covers the day of every timestamp given. */
  async ensureFor(timestamps: number[]): Promise<void> {
    const missing = new Set<number>();
    for (const ts of timestamps) {
      const day = Math.floor(ts / DAY_MS);
      if (!this.knownDays.has(day)) missing.add(day);
    }
    for (const day of missing) {
      await this.deps.db.raw('SELECT ensure_history_partition_for(?::date, ?)', [
        utcDay(day * DAY_MS),
        this.wholeMonths(),
      ]);
      this.knownDays.add(day);
    }
    if (missing.size > 0) await this.warnIfLockTableShort();
  }

  async lockTableUse(): Promise<LockTableUse> {
    const { rows } = await this.deps.db.raw(
      `SELECT (SELECT count(*) FROM pg_inherits
                WHERE inhparent = 'telemetry_history'::regclass)::int AS partitions,
              current_setting('max_locks_per_transaction')::int AS locks_per_transaction,
              current_setting('max_connections')::int
                + current_setting('max_prepared_transactions')::int AS connections`,
    );
    const row = rows[0] as {
      partitions: number;
      locks_per_transaction: number;
      connections: number;
    };
    return {
      partitions: row.partitions,
      locksPerTransaction: row.locks_per_transaction,
      connections: row.connections,
    };
  }

  /**
   * Logs a warning when history has so many partitions that a few concurrent reports fill
   * the server's lock table (they then answer 503 database_busy); at most every 10 minutes.
   * Never throws.
   */
  async warnIfLockTableShort(): Promise<void> {
    const now = (this.deps.now ?? Date.now)();
    if (now - this.lockWarnedAt < LOCK_WARNING_INTERVAL_MS) return;
    // A warning only: its query failing never fails a flush or the maintenance.
    const use = await this.lockTableUse().catch((err: unknown) => {
      this.deps.logger.debug({ err }, 'lock table use not read');
      return null;
    });
    if (!use) return;
    const { short, neededLocksPerTransaction } = lockTableShort(use);
    if (!short) return;
    this.lockWarnedAt = now;
    this.deps.logger.warn(
      {
        partitions: use.partitions,
        maxLocksPerTransaction: use.locksPerTransaction,
        neededLocksPerTransaction,
      },
      `history has ${use.partitions} partitions: a report locks about ${LOCKS_PER_PARTITION} for each, and a few at once fill PostgreSQL's lock table (reports answer 503 database_busy); raise max_locks_per_transaction to ${neededLocksPerTransaction}, or keep fewer days (RETENTION_DAYS), or all of them (RETENTION_DAYS=0 makes a partition a month)`,
    );
  }

  /** Forgets what it knows, e.g. after an insert found a partition missing (dropped elsewhere). */
  forget(): void {
    this.knownDays.clear();
  }

  /**
   * Creates yesterday's to a few days ahead, and applies retention: drops the partitions before
   * the cutoff, and deletes the rows before it from a monthly partition it falls in (`trimmed`).
   */
  async maintain(): Promise<{ created: number; dropped: string[]; trimmed: string[] }> {
    const now = (this.deps.now ?? Date.now)();
    const { retentionDays, partitionDaysAhead } = this.deps.config;
    const result = await this.deps.db.raw(
      'SELECT ensure_history_partitions(?::date, ?::date, ?) AS created',
      [utcDay(now - DAY_MS), utcDay(now + partitionDaysAhead * DAY_MS), this.wholeMonths()],
    );
    const created = Number(result.rows[0].created);
    let dropped: string[] = [];
    let trimmed: string[] = [];
    const keptFrom = retainedFrom(now, retentionDays);
    if (keptFrom !== null) {
      const [cutoff, cutoffDay] = [new Date(keptFrom), utcDay(keptFrom)];
      await this.keepBaselinesBefore(cutoff);
      dropped = (
        await this.deps.db.raw('SELECT drop_history_partitions_before(?::date) AS name', [
          cutoffDay,
        ])
      ).rows.map((r: { name: string }) => r.name);
      if (dropped.length > 0) {
        this.forget();
        await this.dropDerivedBefore(cutoff);
      }
      trimmed = await this.trimBefore(cutoffDay);
      if (trimmed.length > 0) await this.dropDerivedBefore(cutoff);
      await this.forgetDevicesBefore(cutoff);
    }
    if (created > 0 || dropped.length > 0 || trimmed.length > 0)
      this.deps.logger.info({ created, dropped, trimmed }, 'history partitions maintained');
    await this.warnIfLockTableShort();
    return { created, dropped, trimmed };
  }

  /**
   * Before anything before `keptFrom` goes: each device's last reading before it, as its baseline
   * (`history_baseline`, see its migration), so that reports over the days kept stay as they were.
   * Once for each cutoff (it moves a day at a time), for every device with a reading kept.
   */
  private async keepBaselinesBefore(keptFrom: Date): Promise<void> {
    if (this.baselinesTakenBefore === keptFrom.getTime()) return;
    for (const kind of DEVICE_KINDS) {
      const { statusTable: table, statusIdColumn: id } = kind;
      // In id order, as every writer of these rows locks them. A device whose readings all go is
      // forgotten (forgetDevicesBefore): none is kept for it (below), or its return would count
      // the whole register increase since it left.
      const ids: string[] = await this.deps
        .db(table)
        .where('ts', '>=', keptFrom)
        .orderBy(id)
        .pluck(id);
      for (let start = 0; start < ids.length; start += FORGET_CHUNK) {
        await this.deps.db.raw(
          `INSERT INTO history_baseline (device_type, device_id, ts, reading)
           SELECT h.device_type, h.device_id, h.ts, to_jsonb(h)
           FROM unnest(?::text[]) AS d(id)
           CROSS JOIN LATERAL history_before(?, d.id, ?) h
           ON CONFLICT (device_type, device_id) DO UPDATE
             SET ts = excluded.ts, reading = excluded.reading
             WHERE history_baseline.ts < excluded.ts`,
          [ids.slice(start, start + FORGET_CHUNK), kind.type, keptFrom],
        );
      }
      // Those of devices with no reading kept: retention forgets them. (Also those a crash or
      // a reading arriving meanwhile left: a baseline older than the readings dropped since.)
      await this.deps.db.raw(
        `DELETE FROM history_baseline b
         WHERE b.device_type = ?
           AND NOT EXISTS (SELECT 1 FROM ?? s WHERE s.?? = b.device_id AND s.ts >= ?)`,
        [kind.type, table, id, keptFrom],
      );
    }
    this.baselinesTakenBefore = keptFrom.getTime();
  }

  /**
   * Deletes the rows before `cutoffDay` from the monthly partition it falls in, a batch per statement
   * (a backfilled month may hold more than one statement deletes within its timeout). The
   * partitions it deleted from.
   */
  private async trimBefore(cutoffDay: string): Promise<string[]> {
    const trimmed = new Set<string>();
    for (;;) {
      const { rows } = await this.deps.db.raw(
        'SELECT trim_history_partitions_before(?::date, ?) AS name',
        [cutoffDay, TRIM_BATCH_ROWS],
      );
      if (rows.length === 0) return [...trimmed];
      for (const row of rows as { name: string }[]) trimmed.add(row.name);
    }
  }

  /**
   * What was computed from the dropped days goes with them: their rollups, marks and detected
   * sessions. Kept, a report over those days read whole hours from rollups and its edges from
   * history that was gone (moving `from` by 30 s took away a tenth of the readings).
   */
  private async dropDerivedBefore(keptFrom: Date): Promise<void> {
    await this.deps.db.transaction(async (trx) => {
      await trx('telemetry_15min').where('quarter', '<', keptFrom).delete();
      await trx('telemetry_hourly')
        // Every device type: the hourly rollups are indexed by (device_type, hour).
        .whereIn('device_type', DEVICE_TYPES)
        .where('hour', '<', keptFrom)
        .delete();
      await trx('rollup_pending').where('quarter', '<', keptFrom).delete();
      // A session across the cutoff goes too, and its vehicle's are built again from there.
      const sessionsFrom = new Date(earliestSessionStart(keptFrom.getTime()));
      await markSessionsAcross(trx, sessionsFrom);
      await trx('charging_sessions').where('start_ts', '<', sessionsFrom).delete();
    });
  }

  /**
   * Devices whose latest reading is before the cutoff: their stored status and live state go too
   * (the device lists are of devices with a reading stored, and a status route showed a reading
   * retention had dropped). The live states first: should Redis fail, the statuses stay to be
   * found at the next pass. Only the rows of the devices whose live states were forgotten go (one
   * stored meanwhile, dated before the cutoff, waits for the next pass), a chunk per statement,
   * locked in id order as the flusher's upserts lock them; one a reading moved past the cutoff
   * meanwhile stays.
   */
  private async forgetDevicesBefore(keptFrom: Date): Promise<void> {
    for (const kind of DEVICE_KINDS) {
      const { statusTable: table, statusIdColumn: id } = kind;
      const ids: string[] = await this.deps.db(table).where('ts', '<', keptFrom).pluck(id);
      for (let start = 0; start < ids.length; start += FORGET_CHUNK) {
        const chunk = ids.slice(start, start + FORGET_CHUNK);
        await this.deps.liveState.forgetOlderThan(kind.type, chunk, keptFrom.getTime());
        await this.deps.db.raw(
          `DELETE FROM ?? WHERE ?? IN (
             SELECT ?? FROM ?? WHERE ?? = ANY(?) AND ts < ? ORDER BY ?? FOR UPDATE)`,
          [table, id, id, table, id, chunk, keptFrom, id],
        );
      }
    }
  }

  /** Runs `maintain` now and then every `intervalMs` (errors are logged, the schedule goes on). */
  start(intervalMs = 3_600_000): Promise<unknown> {
    const run = () =>
      this.maintain().catch((err: unknown) =>
        this.deps.logger.error({ err }, 'partition maintenance failed'),
      );
    this.timer = setInterval(run, intervalMs);
    this.timer.unref();
    return run();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
