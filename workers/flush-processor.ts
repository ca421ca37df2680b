import type { Job } from 'bullmq';
import type { Knex } from 'knex';
import type { RedisClient } from '../src/redis';
import type { Logger } from '../src/logger';
import type { QueueShardKeys } from '../src/redis-keys';
import type { HistoryStore } from '../src/stores/history-store';
import { statusUpsertsFrom } from '../src/stores/status-store';
import type { Reading } from '../src/devices/device-kinds';
import type { FlushMetrics } from '../src/metrics';
import type { IngestJobData } from '../src/queue/ingest-queue';
import type { PartitionMaintainer } from './partition-maintainer';
import { retainedFrom } from '../src/stores/retention';
import {
  databaseMessage,
  isDatabaseUnavailable,
  isSchemaMissing,
  isMissingPartition,
  isPermanentDataError,
} from '../src/stores/database-errors';

export interface FlushResult {
  written: number;
  duplicates: number;
  deadLettered: number;
  /** Older than RETENTION_DAYS keeps by the time they were flushed: left out. */
  expired: number;
}

/** A reading PostgreSQL refused for good, kept in Redis until re-driven. */
export interface DeadLetter {
  reading: Reading;
  acceptedAt: number;
  jobId: string | undefined;
  error: string;
  code: string | undefined;
  failedAt: string;
}

/** Subtracts a job's readings from the backlog counter once, however often the job runs. */
const SETTLE_BACKLOG = `
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return redis.call('DECRBY', KEYS[1], ARGV[1])
end
return -1
`;
/** Long enough to cover a job re-run after a crash between commit and completion. */
const SETTLED_MARK_TTL_S = 900;

/**
 * Lists a refused reading once per job, however often the job runs: a job retried after a later
 * half of its batch failed for a passing reason, or re-run after a stall, meets it again.
 */
const DEAD_LETTER_ONCE = `
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  return 1
end
return 0
`;
/** A job's retries run within its backoff (minutes); a day leaves room for a paused flusher. */
const DEAD_LETTERED_MARK_TTL_S = 86_400;

type RedisWithScripts = RedisClient & {
  deadLetterOnce(
    numKeys: 2,
    listKey: string,
    markKey: string,
    letter: string,
    ttlS: number,
  ): Promise<number>;
  settleBacklog(
    numKeys: 2,
    counterKey: string,
    markKey: string,
    readings: number,
    ttlS: number,
  ): Promise<number>;
};

/**
 * Writes one batch in one statement: history, the quarter-hour marks of its rollups and status rows
 * (each device's newest) together, atomic without an explicit transaction, in one round trip.
 */
export async function writeBatch(
  deps: { db: Knex; historyStore: HistoryStore },
  readings: Reading[],
  receivedAt: number | number[],
): Promise<number> {
  return deps.historyStore.insert(readings, receivedAt, deps.db, statusUpsertsFrom);
}

/** When the reading at `index` was accepted: one time for all, or one per reading. */
const atOf = (receivedAt: number | number[], index: number) =>
  typeof receivedAt === 'number' ? receivedAt : receivedAt[index];
const sliceOf = (receivedAt: number | number[], start: number, end?: number) =>
  typeof receivedAt === 'number' ? receivedAt : receivedAt.slice(start, end);

/**
 * A job's readings that history still keeps (RETENTION_DAYS, at `now`), each with when it was
 * accepted. The API refuses older ones, but a job can outlive the cutoff it was accepted under:
 * re-driven dead letters and failed jobs, a queue waiting out a long outage, an API that keeps
 * more days than this flusher. Stored, they would make a partition retention dropped again.
 */
function keptOf(
  readings: Reading[],
  receivedAt: number | number[],
  keptFrom: number | null,
): { readings: Reading[]; receivedAt: number | number[] } {
  if (keptFrom === null || readings.every((r) => r.ts >= keptFrom)) return { readings, receivedAt };
  const kept = readings.flatMap((r, i) => (r.ts >= keptFrom ? [i] : []));
  return {
    readings: kept.map((i) => readings[i]),
    receivedAt: typeof receivedAt === 'number' ? receivedAt : kept.map((i) => receivedAt[i]),
  };
}

/**
 * The flusher's job handler. A job commits in one statement, or throws (BullMQ retries it with
 * backoff). When PostgreSQL refuses the batch for a permanent reason, the batch is split in halves
 * until the bad readings are alone: the rest commits, the bad ones go to the dead-letter list.
 */
export function createFlushProcessor(deps: {
  db: Knex;
  redis: RedisClient;
  /** The queue shard its jobs come from (its backlog counter and settled marks). */
  shard: QueueShardKeys;
  /** The Redis list readings PostgreSQL refused for good go to, and each one's mark. */
  deadLetters: { list: string; marked(jobId: string, readingKey: string): string };
  historyStore: HistoryStore;
  partitions: PartitionMaintainer;
  /** RETENTION_DAYS: readings older than it keeps are left out (see keptOf). */
  config: { retentionDays: number };
  logger: Logger;
  metrics?: FlushMetrics;
  /** Told when PostgreSQL cannot be reached at all, or lacks migrations (it pauses the flusher). */
  onDatabaseUnavailable?: (err: unknown) => void;
  /** Whether the database lacks migrations (asked when a table or function is missing). */
  schemaBehind?: () => Promise<boolean>;
}): (job: Job<IngestJobData>) => Promise<FlushResult> {
  deps.redis.defineCommand('settleBacklog', { lua: SETTLE_BACKLOG });
  deps.redis.defineCommand('deadLetterOnce', { lua: DEAD_LETTER_ONCE });
  const redis = deps.redis as RedisWithScripts;

  /** Writes readings (each with when it was accepted), isolating those PostgreSQL refuses. */
  async function writeIsolating(
    readings: Reading[],
    receivedAt: number | number[],
    job: Job<IngestJobData>,
    result: FlushResult,
  ): Promise<void> {
    try {
      result.written += await writeBatch(deps, readings, receivedAt);
    } catch (err) {
      if (!isPermanentDataError(err)) throw err;
      if (readings.length === 1) {
        await deadLetter(readings[0], atOf(receivedAt, 0), job, err);
        result.deadLettered += 1;
        return;
      }
      const half = Math.ceil(readings.length / 2);
      await writeIsolating(readings.slice(0, half), sliceOf(receivedAt, 0, half), job, result);
      await writeIsolating(readings.slice(half), sliceOf(receivedAt, half), job, result);
    }
  }

  async function deadLetter(
    reading: Reading,
    acceptedAt: number,
    job: Job<IngestJobData>,
    err: unknown,
  ): Promise<void> {
    const letter: DeadLetter = {
      reading,
      acceptedAt,
      jobId: job.id,
      error: databaseMessage(err),
      code: (err as { code?: string }).code,
      failedAt: new Date().toISOString(),
    };
    const listed = await redis.deadLetterOnce(
      2,
      deps.deadLetters.list,
      deps.deadLetters.marked(String(job.id), `${reading.type}:${reading.id}:${reading.ts}`),
      JSON.stringify(letter),
      DEAD_LETTERED_MARK_TTL_S,
    );
    if (listed === 0) return; // listed by an earlier run of this job
    deps.logger.error(
      { reading, code: letter.code, error: letter.error, jobId: job.id },
      'reading refused by PostgreSQL: dead-lettered',
    );
  }

  return async (job) => {
    const started = Date.now();
    const { readings, acceptedAt } = job.data;
    const keptFrom = retainedFrom(started, deps.config.retentionDays);
    const kept = keptOf(readings, job.data.receivedAt ?? acceptedAt, keptFrom);
    const result: FlushResult = {
      written: 0,
      duplicates: 0,
      deadLettered: 0,
      expired: readings.length - kept.readings.length,
    };
    try {
      await deps.partitions.ensureFor(kept.readings.map((r) => r.ts));
      await writeIsolating(kept.readings, kept.receivedAt, job, result);
    } catch (err) {
      if (isMissingPartition(err)) deps.partitions.forget();
      deps.metrics?.onRetry(err);
      // Unmigrated is as unavailable as down: retried, every job would spend its attempts. A table
      // missing from a migrated database is a statement's own fault: retried as any other.
      const unmigrated = isSchemaMissing(err) && (await deps.schemaBehind?.().catch(() => true));
      if ((isDatabaseUnavailable(err) || unmigrated) && deps.onDatabaseUnavailable) {
        deps.onDatabaseUnavailable(err); // logs once per outage, not once per job
        throw err;
      }
      deps.logger.warn(
        { err, jobId: job.id, attempt: job.attemptsMade + 1 },
        'flush failed: will retry',
      );
      throw err;
    }
    result.duplicates = kept.readings.length - result.written - result.deadLettered;
    const settled = await redis.settleBacklog(
      2,
      deps.shard.backlogReadings,
      deps.shard.backlogSettled(String(job.id)),
      readings.length,
      SETTLED_MARK_TTL_S,
    );
    // Said and counted once per job: a job run again after its commit (a crash before it was
    // marked done) leaves them out again, settled already.
    const firstRun = settled !== -1;
    if (result.expired > 0 && firstRun) {
      deps.logger.warn(
        {
          jobId: job.id,
          expired: result.expired,
          keptFrom: new Date(keptFrom as number).toISOString(),
          retentionDays: deps.config.retentionDays,
        },
        'readings older than RETENTION_DAYS keeps left out of history',
      );
    }
    deps.metrics?.onFlushed(
      { ...result, expired: firstRun ? result.expired : 0 },
      Date.now() - started,
      acceptedAt,
    );
    return result;
  };
}
