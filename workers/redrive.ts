import type { Redis } from 'ioredis';
import type { Logger } from '../src/logger';
import type { IngestQueue } from '../src/queue/ingest-queue';
import type { RedisKeys } from '../src/redis-keys';
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
 * that kept coming back; an unreachable PostgreSQL pauses the flusher instead) are retried, and
 * dead-lettered readings are enqueued again as new jobs. Run it once the cause is fixed; a reading
 * that is still refused lands in the dead-letter list again.
 */
export async function redrive(
  deps: { redis: Redis; queue: IngestQueue; keys: RedisKeys; logger: Logger },
  options: { dryRun?: boolean } = {},
): Promise<RedriveReport> {
  const { redis, queue, keys, logger } = deps;
  const failed = await queue.getJobCountByTypes('failed');
  const report: RedriveReport = {
    failedJobsRetried: 0,
    deadLettersRequeued: 0,
    deadLettersUnreadable: 0,
  };
  if (options.dryRun) {
    return {
      ...report,
      failedJobsRetried: failed,
      deadLettersRequeued: await redis.llen(keys.deadLetters),
    };
  }
  if (failed > 0) {
    await queue.retryJobs({ state: 'failed', count: 1000 });
    report.failedJobsRetried = failed;
  }
  for (;;) {
    const entries = await redis.lpop(keys.deadLetters, DEAD_LETTERS_PER_ROUND);
    if (!entries || entries.length === 0) break;
    const letters: DeadLetter[] = [];
    for (const entry of entries) {
      try {
        letters.push(JSON.parse(entry) as DeadLetter);
      } catch {
        report.deadLettersUnreadable += 1;
        logger.error({ entry }, 'unreadable dead letter dropped from the list');
      }
    }
    try {
      const acceptedAt = Date.now();
      await queue.addBulk(
        chunk(
          letters.map((l) => l.reading),
          DEAD_LETTERS_PER_ROUND,
        ).map((readings) => ({
          name: 'redrive',
          data: { acceptedAt, readings },
        })),
      );
      await redis.incrby(keys.backlogReadings, letters.length);
    } catch (err) {
      // Put them back so nothing is lost, then stop.
      await redis.lpush(keys.deadLetters, ...entries.reverse());
      throw err;
    }
    report.deadLettersRequeued += letters.length;
  }
  return report;
}
