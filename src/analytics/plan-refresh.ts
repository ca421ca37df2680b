import type { Knex } from 'knex';
import type { Logger } from '../logger';

/**
 * What changes when PostgreSQL drops its prepared plans: statistics (any ANALYZE, autovacuum's
 * too) and relations (a new history partition). Read from the statistics views and the catalog,
 * both cheap.
 */
const CATALOG_VERSION = `
SELECT (SELECT coalesce(sum(analyze_count + autoanalyze_count), 0) FROM pg_stat_user_tables)
       || ':' || (SELECT count(*) FROM pg_class) AS version`;

export interface PlanRefresh {
  /** Resolves once the catalog's version at the start is read: later changes count from then. */
  readonly ready: Promise<void>;
  /** Stops watching; waits for a warm-up in progress. */
  stop(): Promise<void>;
}

/**
 * After such a change, PostgreSQL plans each prepared statement again on its next execution, on
 * every connection: 20-100 ms for each of a report's statements on each generic-plan connection,
 * and a burst of reports pays it on all of them at once (a bulk load's ANALYZE then stalled the
 * next reports for 0.3-0.7 s). Every `intervalMs` this checks whether the catalog changed and, once
 * it has stopped changing (unchanged since the check before), warms the report path again, so
 * that the plans are made before the next reports need them.
 *
 * Not while it is changing: a backfill over years creates a history partition after another, and
 * warming after each held the plans' locks on every partition, which each creation must wait for
 * (partitions were made at 0.1 a second instead of about 30 with the API stopped).
 */
export function startPlanRefresh({
  db,
  warmUp,
  intervalMs,
  logger,
}: {
  db: Knex;
  warmUp: () => Promise<void>;
  intervalMs: number;
  logger: Logger;
}): PlanRefresh {
  /** The version read at the last check, and the one the plans were last made for. */
  let seen: string | null = null;
  let warmed: string | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();

  async function check(): Promise<void> {
    const { rows } = (await db.raw(CATALOG_VERSION)) as { rows: { version: string }[] };
    const version = rows[0].version;
    const settled = version === seen;
    seen = version;
    if (warmed === null) warmed = version; // at the start: the API warmed up just before
    if (!settled || version === warmed || stopped) return;
    // Once per version, whether or not it works: a failed warm-up waits for the next change.
    warmed = version;
    const started = Date.now();
    await warmUp();
    logger.info({ ms: Date.now() - started }, 'catalog changed: report plans made again');
  }

  // PostgreSQL down is reported where it matters (readiness, reads' 503s); the next check retries.
  const checkOnce = () =>
    check().catch((err: unknown) => logger.debug({ err }, 'report plan refresh failed'));

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = checkOnce().finally(schedule);
    }, intervalMs);
    timer.unref();
  }

  // The version now, so that only later changes count (the API warmed up at its start).
  running = checkOnce().finally(schedule);
  return {
    ready: running,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
