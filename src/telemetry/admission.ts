import { serviceUnavailable } from '../errors';
import type { Logger } from '../logger';
import { infoField, masters, type RedisClient } from '../redis';

export interface AdmissionSample {
  backlogReadings: number;
  usedMemoryBytes: number;
  maxMemoryBytes: number;
  sampledAt: number;
}

/** A number of INFO's text; 0 when absent. */
const infoNumber = (info: string, name: string): number => Number(infoField(info, name) ?? 0) || 0;

/** A sample older than this (sampling fails) no longer has this process's stores added to it. */
const FRESH_SAMPLE_MS = 5000;

/**
 * Redis memory a queued reading takes, about, with margin: readings stored since the last sample,
 * and those waiting or in flight in this process, are counted on top of its memory at this much
 * each. Measured: a meter reading in a 1,000-reading job 86 bytes, a vehicle's alone in the intake
 * (a single-reading store) 201, with a 64-character id 257. Without it, a busy API stored
 * megabytes between two samples: a 32 MB Redis went from under 90 % past its maxmemory, where the
 * flusher can take no job (its moves are writes Redis refuses) and nothing drains it.
 */
export const QUEUED_READING_BYTES = 320;

/**
 * Backpressure: refuses new readings (503 + Retry-After) when the queue backlog passes
 * MAX_BACKLOG_READINGS or Redis memory passes its high-water mark, so Redis never reaches the
 * point of refusing writes. It samples Redis in the background; the per-request check is free.
 */
export class IngestAdmission {
  private sample: AdmissionSample = {
    backlogReadings: 0,
    usedMemoryBytes: 0,
    maxMemoryBytes: 0,
    sampledAt: 0,
  };
  private timer: NodeJS.Timeout | null = null;
  /** Readings this process stored, and how many of them a sample has seen. */
  private stored = 0;
  private storedInSample = 0;

  constructor(
    private readonly deps: {
      redis: RedisClient;
      /** Readings waiting for PostgreSQL, over every queue shard. */
      backlog: () => Promise<number>;
      config: { maxBacklogReadings: number; redisMemoryHighWater: number };
      logger: Logger;
      intervalMs?: number;
    },
  ) {}

  get latest(): AdmissionSample {
    return this.sample;
  }

  start(): void {
    if (this.timer) return;
    const tick = () => {
      this.refresh()
        .catch((err: unknown) => this.deps.logger.debug({ err }, 'admission sample failed'))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, this.deps.intervalMs ?? 250);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  async refresh(): Promise<AdmissionSample> {
    const storedBefore = this.stored;
    const [backlog, memory] = await Promise.all([this.deps.backlog(), this.fullestMaster()]);
    this.sample = { backlogReadings: backlog, ...memory, sampledAt: Date.now() };
    // Stores made while the sample was read may be in it or not: kept (counted twice at worst).
    this.storedInSample = Math.max(this.storedInSample, storedBefore);
    return this.sample;
  }

  /**
   * Readings this process stored: counted against the backlog until a sample sees them, so the
   * stores of one sample's interval cannot together pass the limit by far.
   */
  noteStored(readings: number): void {
    this.stored += readings;
  }

  /**
   * Memory of the master closest to its maxmemory: on a cluster each master fills on its own, and
   * a write to the full one fails whatever the others have left.
   */
  private async fullestMaster(): Promise<{ usedMemoryBytes: number; maxMemoryBytes: number }> {
    const nodes0 = masters(this.deps.redis);
    if (nodes0.length === 0) throw new Error('no Redis master is reachable');
    const infos = await Promise.all(nodes0.map((node) => node.info('memory')));
    const nodes = infos.map((info) => ({
      usedMemoryBytes: infoNumber(info, 'used_memory'),
      maxMemoryBytes: infoNumber(info, 'maxmemory'),
    }));
    const share = (n: { usedMemoryBytes: number; maxMemoryBytes: number }) =>
      n.maxMemoryBytes > 0 ? n.usedMemoryBytes / n.maxMemoryBytes : 0;
    return nodes.reduce((a, b) => (share(b) > share(a) ? b : a), nodes[0]);
  }

  /** Throws a 503 when `incoming` more readings (plus those still in this process) would not fit. */
  check(incoming: number, pendingInProcess: number): void {
    const { usedMemoryBytes, maxMemoryBytes } = this.sample;
    // Counted on top of a recent sample only: while sampling fails, they would pile up for ever.
    const fresh = Date.now() - this.sample.sampledAt <= FRESH_SAMPLE_MS;
    const unseen = fresh ? this.stored - this.storedInSample : 0;
    const backlogReadings = this.sample.backlogReadings + unseen;
    const { maxBacklogReadings, redisMemoryHighWater } = this.deps.config;
    if (backlogReadings + pendingInProcess + incoming > maxBacklogReadings) {
      throw serviceUnavailable(
        'backlog_full',
        `The ingest backlog is full: ${backlogReadings + pendingInProcess} readings are waiting for PostgreSQL, and this request's ${incoming} would pass the limit of ${maxBacklogReadings}; retry later`,
        5,
      );
    }
    const memoryAfter =
      usedMemoryBytes + (unseen + pendingInProcess + incoming) * QUEUED_READING_BYTES;
    if (maxMemoryBytes > 0 && memoryAfter > maxMemoryBytes * redisMemoryHighWater) {
      throw serviceUnavailable(
        'redis_memory_high',
        `Redis memory would pass ${Math.round(redisMemoryHighWater * 100)}% of maxmemory with this request's readings; retry later`,
        5,
      );
    }
  }
}
