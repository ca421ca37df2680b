import { Worker, type Job } from 'bullmq';
import type { Logger } from '../src/logger';
import {
  FLUSH_BACKOFF_TYPE,
  openShard,
  type IngestJobData,
  type QueueShard,
} from '../src/queue/ingest-queue';
import type { RedisClient } from '../src/redis';
import { INGEST_QUEUE_NAME, type QueueShardKeys } from '../src/redis-keys';
import { startBacklogReconciler } from './backlog-reconciler';
import type { FlushResult } from './flush-processor';
import { IntakeMover } from './intake-mover';
import { RepeatedErrorLog } from './repeated-errors';

/** A worker's repeated error (Redis down) is logged once per this long, counted. */
const REPEATED_ERROR_INTERVAL_MS = 30_000;

/** Backoff between attempts: doubles from FLUSH_BACKOFF_MS, capped at a minute. */
export function cappedExponentialBackoff(attemptsMade: number, baseMs: number): number {
  return Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), 60_000);
}

interface ShardWorker {
  worker: Worker<IngestJobData, FlushResult>;
  /** A reader on the command connection, for the backlog and lag figures. */
  reader: QueueShard;
  /** Moves the shard's intake (small stores) into jobs. */
  mover: IntakeMover;
  stopReconciler: () => void;
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
    const { config, logger } = this.deps;
    const lockDuration = config.flusherLockMs;
    const worker = new Worker<IngestJobData, FlushResult>(
      INGEST_QUEUE_NAME,
      this.deps.process(keys),
      {
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
      },
    );
    const errors = new RepeatedErrorLog({ logger, intervalMs: REPEATED_ERROR_INTERVAL_MS });
    worker.on('error', (err) => errors.error(err, { shard: keys.shard }, 'flusher worker error'));
    worker.on('failed', (job: Job<IngestJobData> | undefined, err) => {
      if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
        logger.error(
          { err, shard: keys.shard, jobId: job.id, readings: job.data.readings.length },
          'job kept as failed after its last attempt: re-drive it with `npm run redrive`',
        );
      }
    });
    const reader = openShard(this.deps.redis, keys);
    const mover = new IntakeMover({
      redis: this.deps.redis,
      shard: reader,
      config,
      logger: logger.child({ module: 'intake', shard: keys.shard }),
    });
    if (this.running) this.run(worker, mover);
    if (this.paused) void worker.pause(true);
    return {
      worker,
      reader,
      mover,
      stopReconciler: startBacklogReconciler({
        redis: this.deps.redis,
        shard: keys,
        logger: logger.child({ module: 'backlog', shard: keys.shard }),
      }),
    };
  }

  private run(worker: Worker<IngestJobData, FlushResult>, mover: IntakeMover): void {
    worker.run().catch((err: unknown) => this.deps.logger.error({ err }, 'worker stopped'));
    mover.start();
  }

  async start(): Promise<void> {
    this.running = true;
    const all = [...this.workers.values()];
    all.forEach((w) => this.run(w.worker, w.mover));
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
    await Promise.all([...this.workers.values()].map((w) => w.worker.pause(true)));
  }

  resume(): void {
    this.paused = false;
    for (const w of this.workers.values()) w.worker.resume();
  }

  /** Stops moving intakes, finishes the active jobs, then closes every worker and reader. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.workers.values()];
    all.forEach((w) => w.stopReconciler());
    await Promise.all(all.map((w) => w.mover.stop()));
    await Promise.all(all.map((w) => w.worker.close()));
    await Promise.all(all.map((w) => w.reader.queue.close()));
  }
}
