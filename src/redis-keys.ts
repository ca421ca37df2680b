/**
 * Every Redis key the engine uses, derived from REDIS_PREFIX so deployments and test runs sharing
 * one Redis never touch each other. Braces mark Redis Cluster hash tags: the keys of one queue
 * shard sit in one slot (BullMQ requires it, and our scripts touch the queue's keys together),
 * and live state is spread over a fixed number of tagged buckets so one script call updates many
 * devices of one slot.
 */
import calculateSlot from 'cluster-key-slot';
import { codeFingerprint } from './code-fingerprint';

/** The keys of one ingest queue shard. */
export interface QueueShardKeys {
  /** Shard number, or `legacy` for the single queue from before sharding (`{prefix}`). */
  readonly shard: number | 'legacy';
  /** BullMQ's `prefix` option: `{energy:q0}`. */
  readonly prefix: string;
  /** The cluster slot of every key of this shard. */
  readonly slot: number;
  /** A key of the shard's queue as BullMQ names it: `wait`, `active`, `delayed`, a job id... */
  queueKey(name: string): string;
  /** Readings enqueued in this shard and not yet committed to PostgreSQL. */
  readonly backlogReadings: string;
  /** Marks a job whose readings were already subtracted from the backlog (retries count once). */
  backlogSettled(jobId: string): string;
  /** Small stores of readings waiting to be moved into jobs (see src/queue/intake.ts). */
  readonly intake: string;
  /** Numbers the intake's entries, so the jobs made of them get ids of their own. */
  readonly intakeSeq: string;
  /** Held by the one flusher moving this shard's intake into jobs. */
  readonly intakeMover: string;
  /** When each flusher last looked (Redis's clock): gone back in time, Redis lost data (queue-loss-watch). */
  readonly looks: string;
}

export interface RedisKeys {
  readonly prefix: string;
  /** The ingest queue shards 0..count-1. */
  shards(count: number): QueueShardKeys[];
  /** The queue of releases before sharding, drained by flushers until it is empty. */
  readonly legacyShard: QueueShardKeys;
  /** The most shards any process of this deployment has used (so none is left undrained). */
  readonly shardHighWater: string;
  /** Glob patterns that together match every key of this prefix (for cleanup). */
  readonly keyPatterns: readonly string[];
  /** Readings PostgreSQL rejected for good, as JSON lines, for `npm run redrive`. */
  readonly deadLetters: string;
  /**
   * Marks a reading of a job as dead-lettered, so a job run again (a retry, a stalled job) does not
   * list it twice; tagged to sit in the dead-letter list's slot, as one script writes both.
   */
  deadLettered(jobId: string, readingKey: string): string;
  /** Where dead letters were kept before sharding (still re-driven). */
  readonly legacyDeadLetters: string;
  /** A device's newest reading (a string, see src/telemetry/live-state.ts), in its bucket's slot. */
  liveState(type: string, id: string): string;
  /** An OCPP charge point's connection and boot, and the set of its connector ids. */
  chargePoint(id: string): string;
  chargePointConnectors(id: string): string;
  /** An OCPP connector's last StatusNotification, by its meter id. */
  connectorStatus(meterId: string): string;
  /** MQTT payloads acknowledged as invalid, newest first, capped (see src/mqtt/reject-log.ts). */
  readonly mqttRejects: string;
  rateLimit(keyName: string): string;
  /**
   * A cached report of one vehicle, or of the whole fleet: apart whatever a vehicle is named, and
   * apart from another release's (codeFingerprint), which may compute it by other rules.
   */
  analyticsCache(
    of: { vehicleId: string } | 'fleet',
    fromMs: number,
    toMs: number,
    variant: string,
  ): string;
}

export const INGEST_QUEUE_NAME = 'ingest';

/**
 * Live-state hash-tag buckets: on a cluster a script call touches one bucket's keys, so a batch
 * updates its devices in a call per bucket present (more for a bucket past 500 devices).
 */
export const LIVE_STATE_BUCKETS = 64;

/** FNV-1a: a device id's live-state bucket (stable across processes and releases). */
function bucketOf(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % LIVE_STATE_BUCKETS;
}

function shardKeys(tag: string, shard: number | 'legacy'): QueueShardKeys {
  const prefix = `{${tag}}`;
  const queueKey = (name: string) => `${prefix}:${INGEST_QUEUE_NAME}:${name}`;
  return {
    shard,
    prefix,
    slot: calculateSlot(tag),
    queueKey,
    backlogReadings: queueKey('backlog-readings'),
    backlogSettled: (jobId) => queueKey(`settled:${jobId}`),
    intake: queueKey('intake'),
    intakeSeq: queueKey('intake-seq'),
    intakeMover: queueKey('intake-mover'),
    looks: queueKey('looks'),
  };
}

export function createRedisKeys(prefix: string): RedisKeys {
  const legacyShard = shardKeys(prefix, 'legacy');
  // At start, not at the first report: the code on disk may be a newer release's by then.
  const release = codeFingerprint();
  return {
    prefix,
    shards: (count) => Array.from({ length: count }, (_, i) => shardKeys(`${prefix}:q${i}`, i)),
    legacyShard,
    shardHighWater: `${prefix}:queue-shards`,
    keyPatterns: [`${prefix}:*`, `{${prefix}:*`, `{${prefix}}:*`],
    deadLetters: `${prefix}:ingest:dead-letters`,
    deadLettered: (jobId, readingKey) =>
      `{${prefix}:ingest:dead-letters}:marked:${jobId}:${readingKey}`,
    legacyDeadLetters: legacyShard.queueKey('dead-letters'),
    liveState: (type, id) => `{${prefix}:latest:${bucketOf(id)}}:${type}:${id}`,
    chargePoint: (id) => `${prefix}:ocpp:cp:${id}`,
    chargePointConnectors: (id) => `${prefix}:ocpp:cp:${id}:connectors`,
    connectorStatus: (meterId) => `${prefix}:ocpp:connector:${meterId}`,
    mqttRejects: `${prefix}:mqtt:rejects`,
    rateLimit: (keyName) => `${prefix}:rate-limit:${keyName}`,
    analyticsCache: (of, fromMs, toMs, variant) =>
      `${prefix}:analytics:${release}:${variant}:${of === 'fleet' ? 'fleet' : `vehicle:${of.vehicleId}`}:${fromMs}:${toMs}`,
  };
}
