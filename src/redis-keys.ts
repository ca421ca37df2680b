/**
 * Every Redis key the engine uses, derived from REDIS_PREFIX so deployments and test runs sharing
 * one Redis never touch each other. Queue keys sit under `{prefix}`: the braces are a Redis Cluster
 * hash tag, which keeps all of BullMQ's keys (and our backlog counter) in one slot.
 */
export interface RedisKeys {
  readonly prefix: string;
  /** BullMQ's `prefix` option. */
  readonly queuePrefix: string;
  /** A key of the ingest queue as BullMQ names it: `wait`, `active`, `delayed`, a job id... */
  queueKey(name: string): string;
  /** Glob patterns that together match every key of this prefix (for cleanup). */
  readonly keyPatterns: readonly string[];
  /** Readings enqueued and not yet committed to PostgreSQL. */
  readonly backlogReadings: string;
  /** Marks a job whose readings were already subtracted from the backlog (retries count once). */
  backlogSettled(jobId: string): string;
  /** Readings PostgreSQL rejected for good, as JSON lines, for `npm run redrive`. */
  readonly deadLetters: string;
  /** MQTT payloads acknowledged as invalid, newest first, capped (see src/mqtt/reject-log.ts). */
  readonly mqttRejects: string;
  liveState(type: 'meter' | 'vehicle', id: string): string;
  rateLimit(keyName: string): string;
  analyticsCache(vehicleId: string, fromMs: number, toMs: number, variant: string): string;
}

export const INGEST_QUEUE_NAME = 'ingest';

export function createRedisKeys(prefix: string): RedisKeys {
  const queuePrefix = `{${prefix}}`;
  const queueKey = (name: string) => `${queuePrefix}:${INGEST_QUEUE_NAME}:${name}`;
  return {
    prefix,
    queuePrefix,
    queueKey,
    keyPatterns: [`${prefix}:*`, `${queuePrefix}:*`],
    backlogReadings: queueKey('backlog-readings'),
    backlogSettled: (jobId) => queueKey(`settled:${jobId}`),
    deadLetters: queueKey('dead-letters'),
    mqttRejects: `${prefix}:mqtt:rejects`,
    liveState: (type, id) => `${prefix}:live:${type}:${id}`,
    rateLimit: (keyName) => `${prefix}:rate-limit:${keyName}`,
    analyticsCache: (vehicleId, fromMs, toMs, variant) =>
      `${prefix}:analytics:${variant}:${vehicleId}:${fromMs}:${toMs}`,
  };
}
