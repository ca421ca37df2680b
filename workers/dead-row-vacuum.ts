import type { Knex } from 'knex';
import type { Logger } from '../src/logger';
import { BackgroundTask } from './background-task';

/**
 * A table is vacuumed only once its dead rows are also this share of its live ones (autovacuum's
 * default scale factor): a large table (the hourly rollups) is not scanned for a few dead rows.
 */
const DEAD_SHARE_OF_LIVE = 0.2;

/** Tables of the engine's schema past both thresholds, most dead rows first. */
const TABLES_TO_VACUUM = `
SELECT relname AS name, n_dead_tup AS dead
FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND n_dead_tup >= ?::bigint AND n_dead_tup >= ?::float8 * n_live_tup
ORDER BY n_dead_tup DESC`;

/**
 * Vacuums the engine's tables whose rows come and go all day (quarter-hour marks, session marks,
 * device status), once their dead rows pass `vacuumDeadRows`, without waiting for autovacuum.
 * Every report probes the marks, and dead ones slow each probe: 80,000 dead marks in a table of
 * none made a report's first statement 5-27 ms instead of 0.1. Autovacuum looks at a database once
 * a minute at best, may be busy elsewhere, or off. SKIP_LOCKED: a table autovacuum (or another
 * flusher) is vacuuming is left to it.
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
      config.vacuumDeadRows,
      DEAD_SHARE_OF_LIVE,
    ])) as { rows: { name: string; dead: number }[] };
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
