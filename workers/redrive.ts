import { DEVICE_KINDS } from '../src/devices/device-kinds';
import type { Logger } from '../src/logger';
import type { QueueShard } from '../src/queue/ingest-queue';
import type { RedisClient } from '../src/redis';
import { isPlainObject } from '../src/schema/validator';
import { chunk } from '../src/telemetry/group-commit';
import type { DeadLetter } from './flush-processor';

export interface RedriveReport {
  failedJobsRetried: number;
  deadLettersRequeued: number;
  deadLettersUnreadable: number;
}

const DEAD_LETTERS_PER_ROUND = 1000;

/**
 * Puts what the flusher gave up on back into the queue: failed jobs (all attempts used on an error
 * that kept coming back; an unreachable PostgreSQL pauses the flusher instead) of every shard are
 * retried, and dead-lettered readings are enqueued again as new jobs in `target`. Run it once the
 * cause is fixed; a reading that is still refused lands in the dead-letter list again.
 */
export async function redrive(
  deps: {
    redis: RedisClient;
    /** Every queue shard in use (failed jobs are retried where they are). */
    shards: QueueShard[];
    /** The shard re-driven dead letters go to. */
    target: QueueShard;
    /** The dead-letter lists to empty (today's, and the one from before sharding). */
    deadLetters: string[];
    logger: Logger;
  },
  options: { dryRun?: boolean } = {},
): Promise<RedriveReport> {
  const { redis, shards, deadLetters } = deps;
  const failedPerShard = await Promise.all(shards.map((s) => s.queue.getJobCountByTypes('failed')));
  const failed = failedPerShard.reduce((sum, n) => sum + n, 0);
  if (options.dryRun) {
    const { readable, unreadable } = await countDeadLetters(redis, deadLetters);
    return {
      failedJobsRetried: failed,
      deadLettersRequeued: readable,
      deadLettersUnreadable: unreadable,
    };
  }
  await Promise.all(shards.map((s, i) => (failedPerShard[i] > 0 ? retryFailed(s) : undefined)));
  const report: RedriveReport = {
    failedJobsRetried: failed,
    deadLettersRequeued: 0,
    deadLettersUnreadable: 0,
  };
  for (const list of deadLetters) await requeue(deps, list, report);
  return report;
}

/** The dead letters a redrive would re-enqueue, and those it would drop as unreadable. */
async function countDeadLetters(
  redis: RedisClient,
  lists: string[],
): Promise<{ readable: number; unreadable: number }> {
  const counts = { readable: 0, unreadable: 0 };
  for (const list of lists) {
    for (let start = 0; ; start += DEAD_LETTERS_PER_ROUND) {
      const entries = await redis.lrange(list, start, start + DEAD_LETTERS_PER_ROUND - 1);
      for (const entry of entries) counts[parseDeadLetter(entry) ? 'readable' : 'unreadable'] += 1;
      if (entries.length < DEAD_LETTERS_PER_ROUND) break;
    }
  }
  return counts;
}

/** Failed jobs read and retried per round: a bounded number of calls in flight. */
const FAILED_JOBS_PER_ROUND = 1000;

/**
 * The shard's failed jobs back to waiting, each with all its attempts again (`FLUSH_ATTEMPTS`):
 * BullMQ's bulk retry keeps the attempts they used, so a re-driven job met by one passing error
 * (a lock held a moment) failed for good at once. Stops when a round moves none (another redrive,
 * or the jobs gone).
 */
async function retryFailed(shard: QueueShard): Promise<void> {
  for (;;) {
    const jobs = (await shard.queue.getFailed(0, FAILED_JOBS_PER_ROUND - 1)).filter(Boolean);
    if (jobs.length === 0) return;
    const retried = await Promise.allSettled(
      jobs.map((job) =>
        job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true }),
      ),
    );
    if (!retried.some((r) => r.status === 'fulfilled')) return;
  }
}

/**
 * A dead letter as the flusher writes it, or null: text that does not parse, or parses to anything
 * without a reading of a known kind (put in the list by hand), which would fail every attempt of
 * the job it went into (or stop the redrive) instead.
 */
export function parseDeadLetter(entry: string): DeadLetter | null {
  let letter: unknown;
  try {
    letter = JSON.parse(entry);
  } catch {
    return null;
  }
  if (!isPlainObject(letter) || !isPlainObject(letter.reading)) return null;
  const { type, id, ts } = letter.reading;
  const known = DEVICE_KINDS.some((kind) => kind.type === type);
  return known && typeof id === 'string' && typeof ts === 'number' && Number.isFinite(ts)
    ? (letter as unknown as DeadLetter)
    : null;
}

/**
 * Moves the letters one dead-letter list holds when it starts back into the queue, a round at a
 * time. Only those: the flusher appends at the tail (RPUSH) what it refuses again meanwhile, and
 * popping until the list was empty requeued a still-refused reading over and over.
 */
async function requeue(
  deps: { redis: RedisClient; target: QueueShard; logger: Logger },
  list: string,
  report: RedriveReport,
): Promise<void> {
  const { redis, target, logger } = deps;
  let left = await redis.llen(list);
  while (left > 0) {
    const entries = await redis.lpop(list, Math.min(DEAD_LETTERS_PER_ROUND, left));
    if (!entries || entries.length === 0) return;
    left -= entries.length;
    const letters: DeadLetter[] = [];
    for (const entry of entries) {
      const letter = parseDeadLetter(entry);
      if (letter) letters.push(letter);
      else {
        report.deadLettersUnreadable += 1;
        logger.error(
          { entry: entry.slice(0, 500) },
          'unreadable dead letter dropped from the list',
        );
      }
    }
    try {
      const acceptedAt = Date.now();
      await target.queue.addBulk(
        chunk(
          letters.map((l) => l.reading),
          DEAD_LETTERS_PER_ROUND,
        ).map((readings) => ({ name: 'redrive', data: { acceptedAt, readings } })),
      );
      await redis.incrby(target.keys.backlogReadings, letters.length);
    } catch (err) {
      // Put them back so nothing is lost, then stop.
      await redis.lpush(list, ...entries.reverse());
      throw err;
    }
    report.deadLettersRequeued += letters.length;
  }
}
