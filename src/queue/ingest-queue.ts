import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { INGEST_QUEUE_NAME, type RedisKeys } from '../redis-keys';
import type { Reading } from '../devices/device-kinds';

/** The payload of one BullMQ job: a batch of readings and when the API accepted them. */
export interface IngestJobData {
  acceptedAt: number;
  readings: Reading[];
}

export type IngestQueue = Queue<IngestJobData>;

/** Name of the capped-exponential backoff the flusher registers (see workers/flusher-worker.ts). */
export const FLUSH_BACKOFF_TYPE = 'capped-exponential';

export function ingestJobOptions(config: {
  flushAttempts: number;
  flushBackoffMs: number;
}): JobsOptions {
  return {
    attempts: config.flushAttempts,
    backoff: { type: FLUSH_BACKOFF_TYPE, delay: config.flushBackoffMs },
    // Completed jobs are deleted at once (their rows are in PostgreSQL); failed ones are kept
    // until an operator re-drives them.
    removeOnComplete: true,
    removeOnFail: false,
  };
}

/**
 * The producer side of the ingest queue. `connection` should be a `command` connection (no offline
 * queue), so a Redis outage fails an enqueue fast instead of buffering it in memory.
 */
export function createIngestQueue({
  connection,
  keys,
  config,
}: {
  connection: Redis;
  keys: RedisKeys;
  config: { flushAttempts: number; flushBackoffMs: number };
}): IngestQueue {
  const queue = new Queue<IngestJobData>(INGEST_QUEUE_NAME, {
    connection,
    prefix: keys.queuePrefix,
    defaultJobOptions: ingestJobOptions(config),
    streams: { events: { maxLen: 1000 } },
  });
  queue.on('error', () => undefined); // surfaced by the failing call and by readiness
  return queue;
}
