import type { RedisClient } from '../redis';
import type { QueueShardKeys } from '../redis-keys';
import type { QueueShard } from './ingest-queue';
import { oldestInIntake } from './intake';

export interface QueueStats {
  jobs: Record<string, number>;
  /** Small stores in the shards' intakes, not yet moved into jobs. */
  intakeEntries: number;
  readingsWaiting: number;
  /** Seconds since the oldest reading not yet in PostgreSQL was accepted; null when none waits. */
  oldestUnflushedAgeS: number | null;
}

const JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

/** Epoch ms at which the oldest reading of a shard not yet in PostgreSQL was accepted, or null. */
async function oldestIn(redis: RedisClient, shard: QueueShard): Promise<number | null> {
  // Jobs and intake entries wait in arrival order, so the first of each is enough; active and
  // delayed (retrying) jobs are few and may be older. The intake is read first: an entry leaves it
  // only once its job is stored, so one moved meanwhile is seen in its job, not missed by both.
  const { queue } = shard;
  const intake = await oldestInIntake(redis, shard.keys);
  // Sent in this order on one connection: a job moving from waiting to active is seen in one.
  const groups = await Promise.all([
    queue.getJobs(['waiting'], 0, 0, true),
    queue.getJobs(['active'], 0, 199, true),
    queue.getJobs(['delayed', 'prioritized'], 0, 199, true),
  ]);
  const times = groups
    .flat()
    .flatMap((job) => (job?.data?.acceptedAt ? [job.data.acceptedAt] : []));
  if (intake !== null) times.push(intake);
  return times.length > 0 ? Math.min(...times) : null;
}

/** Epoch ms at which the oldest reading of any shard not yet in PostgreSQL was accepted, or null. */
export async function oldestUnflushedAcceptedAt(
  redis: RedisClient,
  shards: QueueShard[],
): Promise<number | null> {
  const oldest = (await Promise.all(shards.map((shard) => oldestIn(redis, shard)))).filter(
    (t): t is number => t !== null,
  );
  return oldest.length > 0 ? Math.min(...oldest) : null;
}

/** Readings waiting for PostgreSQL in these shards (each shard keeps its own counter). */
export async function backlogReadings(
  redis: RedisClient,
  shards: QueueShardKeys[],
): Promise<number> {
  // One GET per shard: on a cluster their counters sit in different slots.
  const counts = await Promise.all(shards.map((s) => redis.get(s.backlogReadings)));
  return counts.reduce((sum, n) => sum + Math.max(0, Number(n ?? 0)), 0);
}

/** Jobs, intake entries, readings waiting and lag over every shard. */
export async function readQueueStats(
  shards: QueueShard[],
  redis: RedisClient,
): Promise<QueueStats> {
  // The intakes before the jobs, as in oldestIn: an entry moved in between is counted in its job.
  const intakes = await Promise.all(shards.map((s) => redis.llen(s.keys.intake)));
  const [counts, readingsWaiting, oldest] = await Promise.all([
    Promise.all(shards.map((s) => s.queue.getJobCounts(...JOB_STATES))),
    backlogReadings(
      redis,
      shards.map((s) => s.keys),
    ),
    oldestUnflushedAcceptedAt(redis, shards),
  ]);
  const jobs: Record<string, number> = {};
  for (const state of JOB_STATES) jobs[state] = counts.reduce((sum, c) => sum + (c[state] ?? 0), 0);
  return {
    jobs,
    intakeEntries: intakes.reduce((sum, n) => sum + n, 0),
    readingsWaiting,
    oldestUnflushedAgeS: oldest === null ? null : Math.max(0, Date.now() - oldest) / 1000,
  };
}
