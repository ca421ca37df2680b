import { Worker, type Job } from 'bullmq';
import type { Logger } from '../src/logger';
import {
  FLUSH_BACKOFF_TYPE,
  openShard,
  type IngestJobData,
  type QueueShard,
} from '../src/queue/ingest-queue';
import { isRedisFull, REDIS_FULL_HINT, type RedisClient } from '../src/redis';
import { withTimeout } from '../src/with-timeout';
import { INGEST_QUEUE_NAME, type QueueShardKeys } from '../src/redis-keys';
import { startBacklogReconciler } from './backlog-reconciler';
import type { FlushResult } from './flush-processor';
import { IntakeMover } from './intake-mover';
import { startQueueLossWatch } from './queue-loss-watch';
import { RepeatedErrorLog } from '../src/repeated-errors';

/** A worker's repeated error (Redis down) is logged once per this long, counted. */
const WORKER_ERROR_INTERVAL_MS = 30_000;

/**
 * BullMQ marking a job done that Redis no longer has: its rows were committed, and Redis restarted
 * from an append-only file without its last writes (the job's record among them). Nothing is lost
 * (the readings are stored), so it is no error to page on.
 */
export const isFlushedJobGone = (err: unknown): boolean =>
  err instanceof Error && /^Missing key for job \S+\. moveToFinished$/.test(err.message);

/**
 * BullMQ finishing (or retrying) a job whose lock this worker no longer holds: Redis was out of
 * reach for longer than FLUSHER_LOCK_MS, or the job was taken as stalled by another flusher. The
 * job runs again (here or there) and its readings, flushed once already or not, are stored once:
 * a recovery that works, not an error to page on.
 */
export const isJobLockLost = (err: unknown): boolean =>
  err instanceof Error && /^(Missing lock|Lock mismatch) for job \S+\. /.test(err.message);

/**
 * A worker with nothing in flight that took no job while its shard had jobs waiting this long is
 * wedged: after a Redis Cluster's masters hung and came back, BullMQ's blocking client (an ioredis
 * Cluster duplicate) may never return (taskforcesh/bullmq#4138), and the shard is drained by
 * nobody while the worker says it runs. Checked every WEDGE_CHECK_MS; such a worker is replaced.
 */
export const WEDGED_AFTER_MS = 20_000;
const WEDGE_CHECK_MS = 5_000;
/** How long a wedged worker's close is waited for: its blocking client may never end. */
const WEDGED_CLOSE_WAIT_MS = 5_000;

/** Backoff between attempts: doubles from FLUSH_BACKOFF_MS, capped at a minute. */
export function cappedExponentialBackoff(attemptsMade: number, baseMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), 60_000);
}

/** What a shard's worker is doing, for the wedged-worker check (WEDGED_AFTER_MS). */
interface WorkerActivity {
  /** Jobs the worker holds now, and when it last took one (or was made). */
  inFlight: number;
  lastTakenAt: number;
  /** Since when its shard is seen with jobs waiting and the worker idle; null: not so. */
  idleWithWaitingSince: number | null;
}

interface ShardWorker {
  keys: QueueShardKeys;
  worker: Worker<IngestJobData, FlushResult>;
  activity: WorkerActivity;
  /** A reader on the command connection, for the backlog and lag figures. */
  reader: QueueShard;
  /** Moves the shard's intake (small stores) into jobs. */
  mover: IntakeMover;
  stopReconciler: () => void;
  stopLossWatch: () => void;
}

/**
 * One BullMQ worker per queue shard, all writing with the same processor: every flusher drains
 * every shard in use (BullMQ hands each job to one worker of one flusher), and offers to move each
 * shard's intake into jobs (one flusher at a time does).
 */
export class ShardWorkers {
  private readonly workers = new Map<string, ShardWorker>();
  private paused = false;
  private running = false;
  /** Set by close(): a shard check still under way must not start a worker (or a mover) after it. */
  private closed = false;
  private wedgeTimer: NodeJS.Timeout | null = null;
  /** The wedged-worker check under way, if any (replaceWedged). */
  private checking: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      redis: RedisClient;
      /** The connection workers duplicate for their blocking calls. */
      workerConnection: RedisClient;
      process: (shard: QueueShardKeys) => (job: Job<IngestJobData>) => Promise<FlushResult>;
      config: {
        flusherConcurrency: number;
        flusherLockMs: number;
        flushAttempts: number;
        flushBackoffMs: number;
        queueBatchReadings: number;
        intakeMoveIntervalMs: number;
      };
      logger: Logger;
      /** Redis lost a shard's data, with the backlog before (queue-loss-watch). */
      onQueueLoss?: (readingsWaitingBefore: number) => void;
    },
  ) {}

  /** Starts a worker for each of these shards that has none yet. */
  ensure(shards: QueueShardKeys[]): void {
    if (this.closed) return;
    for (const keys of shards) {
      if (!this.workers.has(keys.prefix)) this.workers.set(keys.prefix, this.create(keys));
    }
  }

  private create(keys: QueueShardKeys): ShardWorker {
    const { logger } = this.deps;
    const reader = openShard(this.deps.redis, keys);
    const mover = new IntakeMover({
      redis: this.deps.redis,
      shard: reader,
      config: this.deps.config,
      logger: logger.child({ module: 'intake', shard: keys.shard }),
    });
    const activity: WorkerActivity = {
      inFlight: 0,
      lastTakenAt: Date.now(),
      idleWithWaitingSince: null,
    };
    const entry: ShardWorker = {
      keys,
      worker: this.createWorker(keys, activity),
      activity,
      reader,
      mover,
      stopReconciler: startBacklogReconciler({
        redis: this.deps.redis,
        shard: keys,
        logger: logger.child({ module: 'backlog', shard: keys.shard }),
      }),
      // Not the queue of before sharding, which only drains: one loss would be counted twice.
      stopLossWatch:
        keys.shard === 'legacy'
          ? () => undefined
          : startQueueLossWatch({
              redis: this.deps.redis,
              shard: keys,
              logger: logger.child({ module: 'queue-loss' }),
              onLoss: (waiting) => this.deps.onQueueLoss?.(waiting),
            }),
    };
    if (this.running) this.run(entry.worker, mover);
    if (this.paused) void entry.worker.pause(true);
    return entry;
  }

  /** The shard's BullMQ worker, counting the jobs it holds into `activity` (WEDGED_AFTER_MS). */
  private createWorker(
    keys: QueueShardKeys,
    activity: WorkerActivity,
  ): Worker<IngestJobData, FlushResult> {
    const { config, logger } = this.deps;
    const lockDuration = config.flusherLockMs;
    const flush = this.deps.process(keys);
    // Counted around the processor itself: BullMQ's events skip a job whose finish step fails.
    const counted = async (job: Job<IngestJobData>) => {
      activity.inFlight += 1;
      activity.lastTakenAt = Date.now();
      try {
        return await flush(job);
      } finally {
        activity.inFlight -= 1;
      }
    };
    const worker = new Worker<IngestJobData, FlushResult>(INGEST_QUEUE_NAME, counted, {
      connection: this.deps.workerConnection,
      prefix: keys.prefix,
      concurrency: config.flusherConcurrency,
      autorun: false,
      lockDuration,
      stalledInterval: Math.max(1000, Math.floor(lockDuration / 2)),
      // A job whose flusher died is run again; only after many such crashes is it kept failed.
      maxStalledCount: 10,
      settings: {
        backoffStrategy: (attemptsMade: number, type?: string) =>
          type === FLUSH_BACKOFF_TYPE
            ? cappedExponentialBackoff(attemptsMade, config.flushBackoffMs)
            : 1000,
      },
    });
    const errors = new RepeatedErrorLog({ logger, intervalMs: WORKER_ERROR_INTERVAL_MS });
    const locksLost = new RepeatedErrorLog({
      logger,
      intervalMs: WORKER_ERROR_INTERVAL_MS,
      level: 'warn',
    });
    worker.on('error', (err) => {
      if (isFlushedJobGone(err)) {
        logger.warn(
          { err, shard: keys.shard },
          'a flushed job was gone from Redis when marked done (Redis restarted without its last writes): its readings are stored',
        );
        return;
      }
      if (isJobLockLost(err)) {
        locksLost.log(
          err,
          { shard: keys.shard },
          'the flusher lost its lock on a job (Redis out of reach for longer than FLUSHER_LOCK_MS, or the job taken over as stalled): the job runs again and its readings are stored once',
          'lock lost',
        );
        return;
      }
      errors.log(
        err,
        { shard: keys.shard },
        isRedisFull(err) ? REDIS_FULL_HINT : 'flusher worker error',
      );
    });
    worker.on('failed', (job: Job<IngestJobData> | undefined, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
        logger.error(
          { err, shard: keys.shard, jobId: job.id, readings: job.data.readings.length },
          'job kept as failed after its last attempt: re-drive it with `npm run redrive`',
        );
      }
    });
    return worker;
  }

  /**
   * Replaces the worker of each shard that has had jobs waiting for WEDGED_AFTER_MS while its
   * worker, holding none, took none (not while paused, nor the queue: then none is taken on
   * purpose). One check at a time; each step looks again whether the flusher paused or closed.
   */
  replaceWedged(now = Date.now()): Promise<void> {
    this.checking ??= this.checkWedged(now).finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  private readonly stillChecking = () => this.running && !this.paused && !this.closed;

  private async checkWedged(now: number): Promise<void> {
    for (const entry of this.workers.values()) {
      if (!this.stillChecking()) return;
      const queue = entry.reader.queue;
      const waiting = (await queue.isPaused()) ? 0 : await queue.getWaitingCount();
      if (waiting === 0 || entry.activity.inFlight > 0) {
        entry.activity.idleWithWaitingSince = null;
        continue;
      }
      entry.activity.idleWithWaitingSince ??= now;
      const since = Math.max(entry.activity.idleWithWaitingSince, entry.activity.lastTakenAt);
      if (now - since >= WEDGED_AFTER_MS && this.stillChecking()) {
        await this.replaceWorker(entry, waiting);
      }
    }
  }

  /**
   * Closes a shard's worker: one holding jobs once they are done; one holding none at once, not
   * waited for past WEDGED_CLOSE_WAIT_MS (its blocking client may be wedged and never end).
   */
  private async closeWorker(entry: ShardWorker): Promise<void> {
    if (entry.activity.inFlight > 0) return entry.worker.close();
    await this.closeAtOnce(entry.worker, 'idle worker');
  }

  /** Closes a worker holding no job without waiting for it past WEDGED_CLOSE_WAIT_MS. */
  private async closeAtOnce(worker: Worker<IngestJobData, FlushResult>, what: string) {
    await withTimeout(worker.close(true), WEDGED_CLOSE_WAIT_MS, `closing the ${what}`).catch(
      (err: unknown) => this.deps.logger.warn({ err }, `${what} not closed: left behind`),
    );
  }

  private async replaceWorker(entry: ShardWorker, waiting: number): Promise<void> {
    const wedged = entry.worker;
    this.deps.logger.warn(
      { shard: entry.keys.shard, waiting, idleForMs: Date.now() - entry.activity.lastTakenAt },
      'flusher worker took no job while jobs waited: replaced by a new one',
    );
    entry.activity.lastTakenAt = Date.now();
    entry.activity.idleWithWaitingSince = null;
    entry.worker = this.createWorker(entry.keys, entry.activity);
    this.runWorker(entry.worker);
    if (this.paused) void entry.worker.pause(true);
    await this.closeAtOnce(wedged, 'wedged worker');
  }

  private run(worker: Worker<IngestJobData, FlushResult>, mover: IntakeMover): void {
    this.runWorker(worker);
    mover.start();
  }

  private runWorker(worker: Worker<IngestJobData, FlushResult>): void {
    worker.run().catch((err: unknown) => this.deps.logger.error({ err }, 'worker stopped'));
  }

  async start(): Promise<void> {
    this.running = true;
    const all = [...this.workers.values()];
    all.forEach((w) => this.run(w.worker, w.mover));
    this.wedgeTimer = setInterval(() => {
      this.replaceWedged().catch((err: unknown) =>
        // Redis away: the check waits for it, as the workers do.
        this.deps.logger.debug({ err }, 'wedged-worker check failed'),
      );
    }, WEDGE_CHECK_MS);
    this.wedgeTimer.unref();
    await Promise.all(all.map((w) => w.worker.waitUntilReady()));
  }

  /** Readers of every shard drained, for the backlog and lag figures. */
  readers(): QueueShard[] {
    return [...this.workers.values()].map((w) => w.reader);
  }

  /** Every shard's worker runs (none yet, as while the flusher starts: not running). */
  isRunning(): boolean {
    const workers = [...this.workers.values()];
    return workers.length > 0 && workers.every((w) => w.worker.isRunning());
  }

  async pause(): Promise<void> {
    this.paused = true;
    for (const w of this.workers.values()) w.activity.idleWithWaitingSince = null;
    await Promise.all([...this.workers.values()].map((w) => w.worker.pause(true)));
  }

  resume(): void {
    this.paused = false;
    for (const w of this.workers.values()) {
      w.activity.idleWithWaitingSince = null;
      w.activity.lastTakenAt = Date.now();
      w.worker.resume();
    }
  }

  /** Stops moving intakes, finishes the active jobs, then closes every worker and reader. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.wedgeTimer) clearInterval(this.wedgeTimer);
    // A check under way replaces no worker from now on (stillChecking), but let it finish first.
    await this.checking?.catch(() => undefined);
    const all = [...this.workers.values()];
    all.forEach((w) => {
      w.stopReconciler();
      w.stopLossWatch();
    });
    await Promise.all(all.map((w) => w.mover.stop()));
    await Promise.all(all.map((w) => this.closeWorker(w)));
    await Promise.all(all.map((w) => w.reader.queue.close()));
  }
}
