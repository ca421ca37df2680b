import { Queue, type JobsOptions } from 'bullmq';
import type { Reading } from '../devices/device-kinds';
import {
  createRedis,
  isCluster,
  REDIS_START_WAIT_MS,
  waitForRedis,
  type RedisClient,
  type RedisSettings,
} from '../redis';
import {
  createRedisKeys,
  INGEST_QUEUE_NAME,
  type QueueShardKeys,
  type RedisKeys,
} from '../redis-keys';

/** The payload of one BullMQ job: a batch of readings and when the API accepted them. */
export interface IngestJobData {
  /** When the API accepted the readings; the oldest of them, for a job made of several stores. */
  acceptedAt: number;
  readings: Reading[];
  /** Per reading, when it was accepted, if they were not all accepted at `acceptedAt`. */
  receivedAt?: number[];
}

export type IngestQueue = Queue<IngestJobData>;

/** One shard of the ingest stream: its keys and its BullMQ queue. */
export interface QueueShard {
  keys: QueueShardKeys;
  queue: IngestQueue;
}

/** Name of the capped-exponential backoff the flusher registers (see workers/flusher-service.ts). */
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

/** The BullMQ queue of one shard, on the given connection. */
export function openShard(
  connection: RedisClient,
  keys: QueueShardKeys,
  config?: { flushAttempts: number; flushBackoffMs: number },
): QueueShard {
  const queue = new Queue<IngestJobData>(INGEST_QUEUE_NAME, {
    connection,
    prefix: keys.prefix,
    ...(config ? { defaultJobOptions: ingestJobOptions(config) } : {}),
    streams: { events: { maxLen: 1000 } },
    // BullMQ would otherwise wait for the connection to be ready and then ask Redis its version.
    // That wait settles only when the connection ends: a queue closed before, while Redis was
    // down, heard its error no more (an uncaught exception at shutdown). And a version question
    // lost with the connection fails every later call of the queue, Redis back or not.
    // Readiness is ours to handle (a 503, /health/ready); the version only picks between two
    // forms of one script.
    skipWaitingForReady: true,
    skipVersionCheck: true,
  });
  queue.on('error', () => undefined); // surfaced by the failing call and by readiness
  return { keys, queue };
}

/** Remembers that this many shards are in use, so flushers drain them all (a script: atomic max). */
const RAISE_TO = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) return tonumber(ARGV[1]) end
return current`;

/**
 * Every shard a process must look at for the backlog and for draining: as many as this process
 * uses or any process of the deployment has used (QUEUE_SHARDS lowered between restarts leaves
 * jobs in the shards above), and the queue from before sharding.
 */
export async function shardsInUse(
  redis: RedisClient,
  keys: RedisKeys,
  queueShards: number,
): Promise<QueueShardKeys[]> {
  const highest = Number(await redis.eval(RAISE_TO, 1, keys.shardHighWater, queueShards));
  return [...keys.shards(Math.max(queueShards, highest)), keys.legacyShard];
}

/**
 * On a cluster, where the shards sit when they share masters while others have none, or null.
 * A shard's master is its slot's, and the slot is the hash of `{REDIS_PREFIX:qN}`: with as many
 * shards as masters, a prefix may put two on one master (`nud` did on a 3-master cluster), and
 * that master's failure takes both. Said at start, with what to do.
 */
export function shardsSharingMasters(redis: RedisClient, shards: QueueShardKeys[]): string | null {
  if (!isCluster(redis)) return null;
  const masterOf = shards.map((s) => redis.slots[s.slot]?.[0]);
  if (masterOf.some((m) => m === undefined)) return null; // the slots are not known yet
  const masters = redis.nodes('master').length;
  const used = new Set(masterOf).size;
  if (used >= Math.min(shards.length, masters)) return null;
  const placement = shards.map((s, i) => `${s.prefix} on ${masterOf[i]}`).join(', ');
  return `${shards.length} queue shards sit on ${used} of ${masters} Redis masters (${placement}): a failed master takes more shards with it than it must. Raise QUEUE_SHARDS (on every process), or pick a REDIS_PREFIX whose shards' slots (redis-cli CLUSTER KEYSLOT '{PREFIX:q0}', ...) fall on different masters`;
}

/**
 * A shard whose last store failed (its master failed over, or has no replica left to confirm a
 * WAIT) is passed over this long while the other shards take the readings; then one batch tries
 * it again.
 */
export const SHARD_REST_MS = 5000;

/**
 * The producer side of the ingest stream: QUEUE_SHARDS queues, each under its own hash tag, written
 * to in turn. `connection` should be a `command` connection (no offline queue), so a Redis outage
 * fails an enqueue fast instead of buffering it in memory.
 */
export class IngestQueues {
  readonly shards: QueueShard[];
  private turn = 0;
  /** Per shard: until when (epoch ms) it is passed over after a failed store. */
  private readonly restingUntil: number[];
  /** Shards in use by other processes (see shardsInUse) and not by this one, opened to be read. */
  private readonly others = new Map<string, QueueShard>();
  private readonly connection: RedisClient;
  /** The process's Redis keys: the pipeline built on these queues uses the same. */
  readonly keys: RedisKeys;

  constructor({
    connection,
    keys,
    config,
  }: {
    connection: RedisClient;
    keys: RedisKeys;
    config: { queueShards: number; flushAttempts: number; flushBackoffMs: number };
  }) {
    this.shards = keys.shards(config.queueShards).map((k) => openShard(connection, k, config));
    this.restingUntil = this.shards.map(() => 0);
    this.connection = connection;
    this.keys = keys;
  }

  /**
   * Every shard in use (see shardsInUse): this process's, and those another process (or an
   * earlier QUEUE_SHARDS) writes to, so what is read of the backlog is all of it.
   */
  async inUse(): Promise<QueueShard[]> {
    const keys = await shardsInUse(this.connection, this.keys, this.shards.length);
    return keys.map((k) => {
      const own = this.shards.find((s) => s.keys.prefix === k.prefix);
      if (own) return own;
      let other = this.others.get(k.prefix);
      if (!other) this.others.set(k.prefix, (other = openShard(this.connection, k)));
      return other;
    });
  }

  /**
   * The shard the next batch goes to: readings may go to any, so they take turns among the shards
   * not resting; when all rest, the one resting longest is tried.
   */
  next(now = Date.now()): QueueShard {
    const count = this.shards.length;
    let chosen = -1;
    for (let i = 0; i < count && chosen < 0; i++) {
      const index = (this.turn + i) % count;
      if (this.restingUntil[index] <= now) chosen = index;
    }
    if (chosen < 0) chosen = this.restingUntil.indexOf(Math.min(...this.restingUntil));
    this.turn = chosen + 1;
    return this.shards[chosen];
  }

  /** A store in this shard failed: the next batches go to the others for a while. */
  rest(shard: QueueShard, now = Date.now()): void {
    const index = this.shards.indexOf(shard);
    if (index >= 0) this.restingUntil[index] = now + SHARD_REST_MS;
  }

  async close(): Promise<void> {
    await Promise.all([...this.shards, ...this.others.values()].map((s) => s.queue.close()));
  }
}

/**
 * A process's ingest connection at start: its `command` Redis connection, once Redis answers
 * (REDIS_START_WAIT_MS), and the ingest queues on it under the process's keys.
 */
export async function openIngestQueues(
  config: RedisSettings & {
    redisPrefix: string;
    queueShards: number;
    flushAttempts: number;
    flushBackoffMs: number;
  },
): Promise<{ redis: RedisClient; queues: IngestQueues }> {
  const redis = createRedis(config, 'command');
  await waitForRedis(redis, REDIS_START_WAIT_MS);
  const queues = new IngestQueues({
    connection: redis,
    keys: createRedisKeys(config.redisPrefix),
    config,
  });
  return { redis, queues };
}
