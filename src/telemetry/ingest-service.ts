import { DeadlineError, withTimeout } from '../with-timeout';
import { AppError, redisUnavailable, type ErrorDetail } from '../errors';
import {
  parseIngestText,
  type Carrier,
  tooManyReadings,
  TooManyReadings,
  type IngestFormat,
} from './ingest-input';
import type { Logger } from '../logger';
import { RepeatedErrorLog } from '../repeated-errors';
import type { IngestQueues, QueueShard } from '../queue/ingest-queue';
import { createIntakePush, INTAKE_BELOW_READINGS } from '../queue/intake';
import { connectionFor, inOneWrite, nodeHolding, type RedisClient } from '../redis';
import type { IngestAdmission } from './admission';
import { GroupCommitBuffer, type StoreBatches } from './group-commit';
import type { LiveStateStore } from './live-state';
import type { Reading } from '../devices/device-kinds';
import { CONNECTOR_CHECK_MS } from '../ocpp/charge-point-state';
import { noIngestMetrics, type IngestMetrics } from '../metrics';
import type { ValidationFailure } from '../schema/validator';
import type { ReadingValidator } from './validation';

/**
 * One item of a list: a parsed value, a line that did not parse, or a value the intake already
 * refused for a reason of its own (e.g. an MQTT device topic naming another device).
 */
export type IngestItem =
  { value: unknown } | { parseError: string } | { invalid: ValidationFailure };

/** What a request body held: one reading, or a list (array or NDJSON) whose items may be unparseable. */
export type IngestInput =
  { kind: 'single'; value: unknown } | { kind: 'batch'; items: IngestItem[] };

export interface ItemError {
  index: number;
  error: string;
  message: string;
  details: ErrorDetail[];
}

export type IngestOutcome =
  { kind: 'single'; reading: Reading } | { kind: 'batch'; accepted: number; errors: ItemError[] };

/** A list none of whose readings is valid, as HTTP's 400 and MQTT's rejects list name it. */
export const noValidReadings = (errors: readonly ItemError[]) => ({
  code: 'no_valid_readings',
  message: `None of the ${errors.length} readings is valid (first: reading ${errors[0].index}: ${errors[0].message})`,
});

/** A Redis that accepts connections but does not answer must still give a fast 503. */
const ENQUEUE_TIMEOUT_MS = 1000;

/**
 * Why a store failed, for the client. Past its deadline a write already sent to Redis may still
 * land: the client must send the same readings again (stored once), not count them as not stored.
 */
const enqueueRefusal = (err: unknown) =>
  err instanceof DeadlineError
    ? `The ingest queue (Redis) did not answer within ${ENQUEUE_TIMEOUT_MS} ms: the readings may have been stored or not; send them again as they are (a reading sent twice is stored once)`
    : 'The ingest queue (Redis) is not available; retry shortly';

/** The job holding the readings did not reach REDIS_WAIT_REPLICAS replicas in time. */
export class NotReplicatedError extends Error {
  override name = 'NotReplicatedError';

  /** Fewer than `wanted` replicas confirmed within `timeoutMs`. */
  static tooFew(acked: number, wanted: number, timeoutMs: number): NotReplicatedError {
    return new NotReplicatedError(
      `${acked} of ${wanted} Redis replicas confirmed the readings within ${timeoutMs} ms`,
    );
  }

  /** The shard's slot moved after the write: no replica of the master that took it can be asked. */
  static masterChanged(): NotReplicatedError {
    return new NotReplicatedError(
      "the queue shard's Redis master changed (a failover or a slot migration) before its replicas confirmed the readings",
    );
  }
}

/**
 * Waits until the master that holds the shard has passed our writes on to `replicas` replicas.
 * WAIT counts the writes made on its own connection, so it goes over the connection the queue
 * wrote with: the shard's master's, or, while its slot migrates, the target's the writes were
 * redirected to (nodeHolding; the source would confirm at once what it does not hold). If the
 * slot moved meanwhile, the writes may be on a master that is gone: not confirmed.
 */
async function confirmReplicated(
  redis: RedisClient,
  keys: QueueShard['keys'],
  writer: ReturnType<typeof connectionFor>,
  wait: { replicas: number; timeoutMs: number },
): Promise<void> {
  const now = connectionFor(redis, keys.slot);
  if (!writer || now !== writer) throw NotReplicatedError.masterChanged();
  // The backlog counter, written by every store of the shard, is never deleted.
  const holder = await nodeHolding(redis, writer, keys.backlogReadings);
  if (!holder) throw NotReplicatedError.masterChanged();
  const acked = Number(await holder.wait(wait.replicas, wait.timeoutMs));
  if (acked < wait.replicas) {
    throw NotReplicatedError.tooFew(acked, wait.replicas, wait.timeoutMs);
  }
}

/**
 * Stores a group of batches in the next queue shard: a small group in the shard's intake, a large
 * one as a BullMQ job per batch (one Redis round trip through addBulk), the shard's backlog
 * counter, and the devices' live state; with
 * REDIS_WAIT_REPLICAS, also waits for the shard's replicas. Resolves only when the readings are stored.
 */
export function createBatchStore({
  queues,
  redis,
  liveState,
  logger,
  config,
}: {
  queues: IngestQueues;
  redis: RedisClient;
  liveState: LiveStateStore;
  logger: Logger;
  config: { redisWaitReplicas: number; redisWaitTimeoutMs: number; queueBatchReadings: number };
}): StoreBatches {
  const pushToIntake = createIntakePush(redis);
  // While a Redis master fails over, every batch would log the same warning.
  const partialFailures = new RepeatedErrorLog({ logger, level: 'warn' });
  // Below the job size too: entries are never split, so each job stays within QUEUE_BATCH_READINGS.
  const intakeBelow = Math.min(INTAKE_BELOW_READINGS, config.queueBatchReadings);
  /** Small stores go to the intake (counted in the same script); large ones become jobs at once. */
  const enqueue = async (
    shard: QueueShard,
    batches: Reading[][],
    readings: Reading[],
    acceptedAt: number,
  ) => {
    if (readings.length < intakeBelow) {
      await withTimeout(
        pushToIntake(shard.keys, acceptedAt, readings),
        ENQUEUE_TIMEOUT_MS,
        'enqueue',
      );
      return;
    }
    const jobs = batches.map((batch) => ({
      name: 'readings',
      data: { acceptedAt, readings: batch },
    }));
    const [added, counted] = await Promise.allSettled([
      withTimeout(shard.queue.addBulk(jobs), ENQUEUE_TIMEOUT_MS, 'enqueue'),
      withTimeout(
        redis.incrby(shard.keys.backlogReadings, readings.length),
        ENQUEUE_TIMEOUT_MS,
        'backlog counter',
      ),
    ]);
    if (added.status === 'rejected') {
      if (counted.status === 'fulfilled') {
        redis.decrby(shard.keys.backlogReadings, readings.length).catch(() => undefined);
      }
      throw added.reason;
    }
    // The jobs are stored: the readings are accepted even if the counter was not raised.
    if (counted.status === 'rejected') {
      partialFailures.log(
        counted.reason,
        {},
        'backlog counter not incremented; backlog under-counted',
      );
    }
  };
  const storeIn = async (shard: QueueShard, batches: Reading[][]): Promise<void> => {
    const { keys } = shard;
    const writer = connectionFor(redis, keys.slot);
    const acceptedAt = Date.now();
    const readings = batches.flat();
    // Every part has the deadline: on a cluster the counter and the live-state buckets may sit on
    // a master that is failing over, whose commands ioredis retries for well over a second.
    const [stored, live] = await Promise.allSettled(
      inOneWrite(redis, () => [
        enqueue(shard, batches, readings, acceptedAt),
        liveState.applyReadings(readings, acceptedAt, ENQUEUE_TIMEOUT_MS),
      ]),
    );
    if (stored.status === 'rejected') throw stored.reason;
    // The readings are stored: they are accepted even if live state was not updated.
    if (live.status === 'rejected') {
      partialFailures.log(live.reason, {}, 'live state not updated for an accepted batch');
    }
    if (config.redisWaitReplicas > 0) {
      await confirmReplicated(redis, keys, writer, {
        replicas: config.redisWaitReplicas,
        timeoutMs: config.redisWaitTimeoutMs,
      });
    }
  };
  return async (batches) => {
    // BullMQ waits for a connection that is down instead of failing: answer 503 at once instead.
    if (redis.status !== 'ready') throw new Error(`Redis connection is ${redis.status}`);
    const shard = queues.next();
    try {
      await storeIn(shard, batches);
    } catch (err) {
      // A shard whose master is failing over is left alone while the others take the readings.
      queues.rest(shard);
      throw err;
    }
  };
}
export class IngestService {
  private readonly buffer: GroupCommitBuffer;
  /** While Redis is down every request is refused: one line an interval, not two a request. */
  private readonly refusals: RepeatedErrorLog;

  constructor(
    private readonly deps: {
      validator: ReadingValidator;
      admission: IngestAdmission;
      storeBatches: StoreBatches;
      config: { maxBatchReadings: number; queueBatchReadings: number };
      logger: Logger;
      metrics?: IngestMetrics;
      /**
       * Of these meter ids, those of OCPP charge points' connectors: refused from any intake but
       * the charge point's own (their register is the charge point's).
       */
      connectorMeters?: (meterIds: string[]) => Promise<Set<string>>;
    },
  ) {
    this.refusals = new RepeatedErrorLog({ logger: deps.logger, level: 'warn' });
    this.buffer = new GroupCommitBuffer(
      deps.storeBatches,
      {
        batchSize: deps.config.queueBatchReadings,
        maxBatchesPerStore: 20,
        // Two: the requests parsed while one store is in Redis are stored at once, not after it.
        maxStoresInFlight: 2,
      },
      (readings, jobs) => {
        // Counted as stored the moment they stop counting as pending (admission sees both).
        deps.admission.noteStored(readings);
        this.metrics.onBatchStored(readings, jobs);
      },
    );
  }

  /**
   * A request body's or a message's text to IngestInput (parseIngestText), at most
   * MAX_BATCH_READINGS readings. NDJSON lines are counted before any is parsed, so a refusal for
   * their number comes from here, and is counted as the service's own is.
   */
  parse(text: string, format: IngestFormat, carrier: Carrier = 'body'): IngestInput {
    try {
      return parseIngestText(text, format, this.deps.config.maxBatchReadings, carrier);
    } catch (err) {
      if (err instanceof TooManyReadings) throw this.counted(err);
      throw err;
    }
  }

  /** Every reading of a request or message refused for their number counts as rejected. */
  private counted(err: TooManyReadings): TooManyReadings {
    this.metrics.onRejected(err.code, err.count);
    return err;
  }

  private get metrics(): IngestMetrics {
    return this.deps.metrics ?? noIngestMetrics;
  }

  /**
   * Validates, applies backpressure, and resolves once every valid reading is durably queued.
   * `asChargePoint`: the readings are an OCPP charge point's, which may write its connectors.
   */
  async ingest(input: IngestInput, { asChargePoint = false } = {}): Promise<IngestOutcome> {
    if (input.kind === 'single') {
      const result = this.deps.validator.validateReading(input.value);
      if (!result.ok) {
        this.metrics.onRejected(result.failure.error, 1);
        throw new AppError(
          400,
          result.failure.error,
          result.failure.message,
          result.failure.details,
        );
      }
      const refused = asChargePoint ? new Map() : await this.connectorReadings([result.value]);
      const failure = refused.get(result.value);
      if (failure) {
        this.metrics.onRejected(failure.error, 1);
        throw new AppError(409, failure.error, failure.message, failure.details);
      }
      await this.store([result.value]);
      return { kind: 'single', reading: result.value };
    }

    const { items } = input;
    if (items.length > this.deps.config.maxBatchReadings) {
      throw this.counted(tooManyReadings(items.length, this.deps.config.maxBatchReadings));
    }
    let readings: Reading[] = [];
    const indexes = new Map<Reading, number>();
    const errors: ItemError[] = [];
    items.forEach((item, index) => {
      if ('parseError' in item) {
        errors.push({
          index,
          error: 'invalid_json',
          message: `Line is not valid JSON: ${item.parseError}`,
          details: [],
        });
        return;
      }
      if ('invalid' in item) {
        errors.push({ index, ...item.invalid });
        return;
      }
      const result = this.deps.validator.validateReading(item.value);
      if (result.ok) {
        readings.push(result.value);
        indexes.set(result.value, index);
      } else errors.push({ index, ...result.failure });
    });
    const refused = asChargePoint ? new Map() : await this.connectorReadings(readings);
    if (refused.size > 0) {
      readings = readings.filter((r) => !refused.has(r));
      for (const [reading, failure] of refused) {
        errors.push({ index: indexes.get(reading) as number, ...failure });
      }
      errors.sort((a, b) => a.index - b.index);
    }
    // All invalid: nothing to store; the route answers 400 with the errors.
    if (readings.length > 0) await this.store(readings);
    // Counted once the answer is final: a store refused for now is tried again (MQTT) with the
    // same invalid readings, which are not rejected again.
    for (const e of errors) this.metrics.onRejected(e.error, 1);
    return { kind: 'batch', accepted: readings.length, errors };
  }

  /** The readings that would write an OCPP connector's meter, each with why it is refused. */
  private async connectorReadings(
    readings: Reading[],
  ): Promise<Map<Reading, Omit<ItemError, 'index'>>> {
    const refused = new Map<Reading, Omit<ItemError, 'index'>>();
    // Only ids with a colon can be a connector's (`CP:1`): others cost nothing.
    const candidates = readings.filter((r) => r.type === 'meter' && r.id.includes(':'));
    if (candidates.length === 0 || !this.deps.connectorMeters) return refused;
    let connectors: Set<string>;
    try {
      connectors = await withTimeout(
        this.deps.connectorMeters(candidates.map((r) => r.id)),
        CONNECTOR_CHECK_MS,
        'connector check',
      );
    } catch (err) {
      this.refusals.log(
        err,
        {},
        'connector check failed: refused as unavailable (HTTP 503; MQTT tries again)',
      );
      throw this.unavailable(redisUnavailable('Redis is not available; retry shortly'));
    }
    for (const reading of candidates) {
      if (!connectors.has(reading.id)) continue;
      refused.set(reading, {
        error: 'ocpp_connector',
        message: `Meter ${reading.id} is a connector of an OCPP charge point: its readings come from the charge point alone`,
        details: [],
      });
    }
    return refused;
  }

  private async store(readings: Reading[]): Promise<void> {
    try {
      this.deps.admission.check(readings.length, this.buffer.pendingReadings);
    } catch (err) {
      throw this.unavailable(err as AppError);
    }
    try {
      await this.buffer.add(readings);
    } catch (err) {
      if (err instanceof NotReplicatedError) {
        throw this.unavailable(
          redisUnavailable(
            `The readings were not confirmed by Redis replicas in time (${err.message}); send them again`,
            'redis_not_replicated',
          ),
        );
      }
      this.refusals.log(
        err,
        {},
        'enqueue failed: refused as unavailable (HTTP 503; MQTT tries again)',
      );
      throw this.unavailable(redisUnavailable(enqueueRefusal(err)));
    }
    this.metrics.onAccepted(readings);
  }

  /** A 503 of ingest, counted by its code. */
  private unavailable(err: AppError): AppError {
    this.metrics.onUnavailable(err.code);
    return err;
  }

  /** Waits until every reading already accepted is stored (used on shutdown). */
  drain(): Promise<void> {
    return this.buffer.drain();
  }
}
