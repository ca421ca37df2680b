/**
 * Every Redis key the engine uses, derived from REDIS_PREFIX so deployments and test runs sharing
 * one Redis never touch each other. Queue keys sit under `{prefix}`: the braces are a Redis Cluster
 * hash tag, which keeps all of BullMQ's keys (and our backlog counter) in one slot.
 */
export interface RedisKeys {
  readonly prefix: string;
  /** BullMQ's `prefix` option. */
  readonly queuePrefix: string;
  /** Readings enqueued and not yet committed to PostgreSQL. */
  readonly backlogReadings: string;
  /** Marks a job whose readings were already subtracted from the backlog (retries count once). */
  backlogSettled(jobId: string): string;
  /** Readings PostgreSQL rejected for good, as JSON lines, for `npm run redrive`. */
  readonly deadLetters: string;
  liveState(type: 'meter' | 'vehicle', id: string): string;
  rateLimit(keyName: string): string;
  analyticsCache(vehicleId: string, fromMs: number, toMs: number, variant: string): string;
}

export const INGEST_QUEUE_NAME = 'ingest';

export function createRedisKeys(prefix: string): RedisKeys {
  const queuePrefix = `{${prefix}}`;
  return {
    prefix,
    queuePrefix,
    backlogReadings: `${queuePrefix}:${INGEST_QUEUE_NAME}:backlog-readings`,
    backlogSettled: (jobId) => `${queuePrefix}:${INGEST_QUEUE_NAME}:settled:${jobId}`,
    deadLetters: `${queuePrefix}:${INGEST_QUEUE_NAME}:dead-letters`,
    liveState: (type, id) => `${prefix}:live:${type}:${id}`,
    rateLimit: (keyName) => `${prefix}:rate-limit:${keyName}`,
    analyticsCache: (vehicleId, fromMs, toMs, variant) =>
      `${prefix}:analytics:${variant}:${vehicleId}:${fromMs}:${toMs}`,
  };
}
