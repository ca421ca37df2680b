import type { Knex } from 'knex';
import type { Logger } from '../src/logger';
import { DEVICE_KINDS } from '../src/devices/device-kinds';
import { BackgroundTask } from './background-task';

/**
 * The engine's tables whose rows come and go all day, each probed by every report or flush: the
 * quarter-hour marks, the vehicles whose sessions must be built again and how far each is built,
 * and each device kind's status. The large ones (history, rollups, sessions) are left to
 * autovacuum, which no statement timeout cuts short.
 */
const CHURNING_TABLES = [
  'rollup_pending',
  'session_dirty',
  'session_built',
  ...DEVICE_KINDS.map((k) => k.statusTable),
];

/**
 * A table is vacuumed only once its dead rows are also this share of its live ones (autovacuum's
 * default scale factor): a fleet's status table is not scanned for a few dead rows.
 */
const DEAD_SHARE_OF_LIVE = 0.2;

/** Those tables past both thresholds that this role may vacuum (it owns them), most dead first. */
const TABLES_TO_VACUUM = `
SELECT s.relname AS name
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema() AND s.relname = ANY(?::text[])
  AND s.n_dead_tup >= ?::bigint AND s.n_dead_tup >= ?::float8 * s.n_live_tup
  AND pg_has_role(c.relowner, 'MEMBER')
ORDER BY s.n_dead_tup DESC`;

/**
 * Vacuums the engine's churning tables once their dead rows pass `vacuumDeadRows`, without waiting
 * for autovacuum, which looks at a database once a minute at best, may be busy elsewhere, or off.
 * Dead rows slow every probe: 80,000 dead marks in a table of none made a report's first statement
 * 5-27 ms instead of 0.1. SKIP_LOCKED: a table autovacuum (or another flusher) is vacuuming is left
 * to it.
 */
export class DeadRowVacuum {
  private readonly task: BackgroundTask<string[]>;

  constructor(
    private readonly deps: {
      db: Knex;
      /** Dead rows at which a table is vacuumed; 0: never (autovacuum alone). */
      config: { vacuumDeadRows: number };
      logger: Logger;
      intervalMs?: number;
    },
  ) {
    this.task = new BackgroundTask({
      name: 'vacuuming dead rows',
      intervalMs: deps.intervalMs ?? 10_000,
      logger: deps.logger,
      describe: (tables) => (tables.length > 0 ? { tables } : null),
    });
  }

  /** Vacuums every table past the thresholds now; the tables vacuumed. */
  vacuumNow(): Promise<string[]> {
    return this.task.run(() => this.vacuum());
  }

  private async vacuum(): Promise<string[]> {
    const { db, config } = this.deps;
    const { rows } = (await db.raw(TABLES_TO_VACUUM, [
      CHURNING_TABLES,
      config.vacuumDeadRows,
      DEAD_SHARE_OF_LIVE,
    ])) as { rows: { name: string }[] };
    const vacuumed: string[] = [];
    for (const { name } of rows) {
      if (this.task.stopping()) break;
      await db.raw('VACUUM (SKIP_LOCKED) ??', [name]);
      vacuumed.push(name);
    }
    return vacuumed;
  }

  start(): void {
    if (this.deps.config.vacuumDeadRows > 0) this.task.start(() => this.vacuum());
  }

  /** Stops the schedule; a table being vacuumed is finished. */
  stop(): Promise<void> {
    return this.task.stop();
  }
}
