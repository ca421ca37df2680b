import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { RedisKeys } from '../redis-keys';
import type { IngestJobData } from './ingest-queue';

export interface QueueStats {
  jobs: Record<string, number>;
  readingsWaiting: number;
  /** Seconds since the oldest reading not yet in PostgreSQL was accepted; null when none waits. */
  oldestUnflushedAgeS: number | null;
}

/** Epoch ms at which the oldest reading not yet in PostgreSQL was accepted, or null. */
export async function oldestUnflushedAcceptedAt(
  queue: Queue<IngestJobData>,
): Promise<number | null> {
  // Jobs wait in arrival order, so the oldest waiting job is enough; active and delayed (retrying)
  // jobs are few and may be older.
  const groups = await Promise.all([
    queue.getJobs(['waiting'], 0, 0, true),
    queue.getJobs(['active'], 0, 199, true),
    queue.getJobs(['delayed', 'prioritized'], 0, 199, true),
  ]);
  const times = groups
    .flat()
    .flatMap((job) => (job?.data?.acceptedAt ? [job.data.acceptedAt] : []));
  return times.length > 0 ? Math.min(...times) : null;
}

export async function readQueueStats(
  queue: Queue<IngestJobData>,
  redis: Redis,
  keys: RedisKeys,
): Promise<QueueStats> {
  const [jobs, backlog, oldest] = await Promise.all([
    queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed'),
    redis.get(keys.backlogReadings),
    oldestUnflushedAcceptedAt(queue),
  ]);
  return {
    jobs,
    readingsWaiting: Math.max(0, Number(backlog ?? 0)),
    oldestUnflushedAgeS: oldest === null ? null : Math.max(0, Date.now() - oldest) / 1000,
  };
}
