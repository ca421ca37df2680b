import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../src/logger';
import { ingestJobOptions, type IngestJobData, type QueueShard } from '../src/queue/ingest-queue';
import { parseIntakeEntry, type IntakeEntry } from '../src/queue/intake';
import { isRedisFull, REDIS_FULL_HINT, type RedisClient } from '../src/redis';

/**
 * Takes (or keeps) the shard's mover lock for ARGV[1] and returns the intake's first ARGV[3]
 * entries; false while another flusher holds the lock. Only the holder removes entries, so the
 * ones it read stay at the head of the list until it does.
 */
const CLAIM_AND_PEEK = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return false end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[3]) - 1)`;

/**
 * Removes the ARGV[2] entries a move read, once every job made of them is stored (KEYS[2..], each
 * job's hash or, for a job already written and removed, its settled mark), and only if the first
 * of them (ARGV[1]; entries are numbered, so unique) still heads the list. Returns 1 when removed,
 * 0 when another flusher removed them (a lock that lapsed mid-move: removing as many again would
 * drop entries nobody moved), -1 when a job is missing (its add failed: the entries stay for the
 * next try).
 */
const TRIM_MOVED = `
for i = 2, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i], KEYS[i + 1]) == 0 then return -1 end
end
local head = redis.call('LINDEX', KEYS[1], 0)
if head == ARGV[1] then
  redis.call('LTRIM', KEYS[1], ARGV[2], -1)
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type RedisWithMover = RedisClient & {
  claimIntake(
    numKeys: 2,
    lock: string,
    intake: string,
    token: string,
    lockMs: number,
    entries: number,
  ): Promise<string[] | null>;
  releaseIntake(numKeys: 1, lock: string, token: string): Promise<number>;
  trimMoved(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
};

/** How often an intake found empty is looked at, at least (64 shards idle cost Redis little). */
const IDLE_INTERVAL_MS = 100;
/** Entries read and moved at once. */
const MOVE_ENTRIES = 1000;
/** A mover lock lapses this long after its holder last looked (a flusher that died). */
const MOVER_LOCK_MS = 10_000;
/** How often a flusher whose shard another one moves asks again; and after a failed move. */
const RETRY_MS = 1000;
/** A move failing again and again is logged once, then once every this many tries. */
const FAILURES_PER_LOG = 30;

/**
 * Groups consecutive entries into job payloads of at most `batchReadings` readings (an entry is
 * never split). A job's id names the entries it holds, so entries moved twice the same way (a lock
 * that lapsed mid-move) make one job, which BullMQ adds once.
 */
export function jobsFromEntries(
  entries: IntakeEntry[],
  batchReadings: number,
): { jobId: string; data: IngestJobData }[] {
  const groups: IntakeEntry[][] = [];
  let readings = 0;
  for (const entry of entries) {
    const current = groups.at(-1);
    if (current && readings + entry.readings.length <= batchReadings) {
      current.push(entry);
      readings += entry.readings.length;
    } else {
      groups.push([entry]);
      readings = entry.readings.length;
    }
  }
  return groups.map((group) => ({
    jobId: `intake-${group[0].seq}-${group[group.length - 1].seq}`,
    data: jobData(group),
  }));
}

function jobData(group: IntakeEntry[]): IngestJobData {
  const acceptedAt = Math.min(...group.map((e) => e.acceptedAt));
  const readings = group.flatMap((e) => e.readings);
  if (group.every((e) => e.acceptedAt === acceptedAt)) return { acceptedAt, readings };
  return {
    acceptedAt,
    readings,
    receivedAt: group.flatMap((e) => e.readings.map(() => e.acceptedAt)),
  };
}

/**
 * Moves one shard's intake into BullMQ jobs, as one flusher of the deployment at a time (a lock
 * per shard): first the jobs (each add is BullMQ's own script, and adding a job id again is a
 * no-op), then, once they are all stored, the removal of their entries. An entry is thus always in
 * the intake or in a job; a failed move is tried again with the same entries, so it makes the same
 * jobs. Should the lock lapse mid-move (a flusher stalled for MOVER_LOCK_MS), or a flusher die
 * between adding and removing, entries may be moved twice, grouped otherwise: written once all the
 * same (history skips duplicates); the backlog counter then reads low until the queue is empty.
 */
export class IntakeMover {
  private readonly token = randomUUID();
  private readonly redis: RedisWithMover;
  private readonly stopped = new AbortController();
  private loop: Promise<void> | null = null;
  private failures = 0;
  /** Entries of a move that failed after its jobs may have been added: moved first next time. */
  private unfinished: string[] | null = null;

  constructor(
    private readonly deps: {
      redis: RedisClient;
      /** The shard, its queue on `redis`. */
      shard: QueueShard;
      config: {
        queueBatchReadings: number;
        flushAttempts: number;
        flushBackoffMs: number;
        /** How often an intake holding entries is looked at (INTAKE_MOVE_INTERVAL_MS). */
        intakeMoveIntervalMs: number;
      };
      logger: Logger;
    },
  ) {
    deps.redis.defineCommand('claimIntake', { lua: CLAIM_AND_PEEK });
    deps.redis.defineCommand('releaseIntake', { lua: RELEASE });
    deps.redis.defineCommand('trimMoved', { lua: TRIM_MOVED });
    this.redis = deps.redis as RedisWithMover;
  }

  /** Moves what the intake holds now; the entries moved, or null while another flusher moves it. */
  async moveOnce(): Promise<number | null> {
    const entries = await this.claim();
    if (entries === null) return null;
    const next = this.unfinished ?? entries;
    return next.length === 0 ? 0 : this.move(next);
  }

  /** Takes or keeps the shard's lock and reads the intake's first entries; null if not ours. */
  async claim(): Promise<string[] | null> {
    const { keys } = this.deps.shard;
    return this.redis.claimIntake(
      2,
      keys.intakeMover,
      keys.intake,
      this.token,
      MOVER_LOCK_MS,
      MOVE_ENTRIES,
    );
  }

  /**
   * Adds the jobs made of entries `claim` read, then removes the entries if every job is stored;
   * the entries removed (0 when another flusher had moved them meanwhile).
   */
  async move(entries: string[]): Promise<number> {
    const { shard, config, logger } = this.deps;
    this.unfinished = entries;
    const { parsed, malformed } = parseEntries(entries);
    // Only the push script writes entries: one that does not parse was put there by hand.
    for (const raw of malformed)
      logger.error({ entry: raw.slice(0, 500) }, 'intake entry does not parse: dropped');
    const jobs = jobsFromEntries(parsed, config.queueBatchReadings);
    const opts = ingestJobOptions(config);
    await shard.queue.addBulk(
      jobs.map(({ jobId, data }) => ({ name: 'readings', data, opts: { ...opts, jobId } })),
    );
    const stored = jobs.flatMap(({ jobId }) => [
      shard.keys.queueKey(jobId),
      shard.keys.backlogSettled(jobId),
    ]);
    const trimmed = await this.redis.trimMoved(
      1 + stored.length,
      shard.keys.intake,
      ...stored,
      entries[0],
      entries.length,
    );
    if (trimmed === -1) throw new Error('a job made of intake entries was not stored');
    this.unfinished = null;
    if (trimmed === 0) {
      logger.warn(
        'intake entries were gone when trimmed: moved by another flusher meanwhile, or lost with Redis data (see the queue-loss error, if any)',
      );
      return 0;
    }
    return entries.length;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops moving (a move under way finishes) and gives the shard to another flusher. */
  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
    await this.redis
      .releaseIntake(1, this.deps.shard.keys.intakeMover, this.token)
      .catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (!this.stopped.signal.aborted) {
      const pause = await this.moveAndChoosePause();
      if (pause > 0) {
        await sleep(pause, undefined, { signal: this.stopped.signal }).catch(() => undefined);
      }
    }
  }

  private async moveAndChoosePause(): Promise<number> {
    try {
      const moved = await this.moveOnce();
      if (this.failures > 0) this.deps.logger.info('intake moving again');
      this.failures = 0;
      if (moved === null) return RETRY_MS;
      const interval = this.deps.config.intakeMoveIntervalMs;
      if (moved === 0) return Math.max(interval, IDLE_INTERVAL_MS);
      return moved >= MOVE_ENTRIES ? 0 : interval;
    } catch (err) {
      // Redis down or failing over, or out of memory: tried again every second.
      if (this.failures % FAILURES_PER_LOG === 0) {
        this.deps.logger.warn(
          { err, failures: this.failures + 1 },
          isRedisFull(err)
            ? `intake not moved: ${REDIS_FULL_HINT}`
            : 'intake not moved: trying again',
        );
      }
      this.failures += 1;
      return RETRY_MS;
    }
  }
}

/** The entries that parse, and the raw ones that do not. */
function parseEntries(entries: string[]): { parsed: IntakeEntry[]; malformed: string[] } {
  const parsed: IntakeEntry[] = [];
  const malformed: string[] = [];
  for (const raw of entries) {
    try {
      parsed.push(parseIntakeEntry(raw));
    } catch {
      malformed.push(raw);
    }
  }
  return { parsed, malformed };
}
