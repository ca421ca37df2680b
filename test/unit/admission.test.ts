import { AppError } from '../../src/errors';
import { createLogger } from '../../src/logger';
import { backlogReadings } from '../../src/queue/queue-stats';
import type { RedisClient } from '../../src/redis';
import { createRedisKeys } from '../../src/redis-keys';
import { IngestAdmission, QUEUED_READING_BYTES } from '../../src/telemetry/admission';

const [shard] = createRedisKeys('unit').shards(1);

/** Just what IngestAdmission.refresh reads from Redis: the backlog counter and INFO memory. */
function redisStub(sample: { backlog: string | null; usedMemory: number; maxMemory: number }) {
  const stub = {
    get: jest.fn(async (key: string) => (key === shard.backlogReadings ? sample.backlog : null)),
    info: jest.fn(
      async (section: string) =>
        `# ${section}\r\nused_memory:${sample.usedMemory}\r\nused_memory_human:1M\r\n` +
        `used_memory_rss:99999999999\r\nmaxmemory:${sample.maxMemory}\r\nmaxmemory_human:1M\r\n`,
    ),
  };
  return { stub, redis: stub as unknown as RedisClient };
}

async function admissionWith(
  sample: { backlog: string | null; usedMemory?: number; maxMemory?: number },
  config = { maxBacklogReadings: 1000, redisMemoryHighWater: 0.9 },
) {
  const { stub, redis } = redisStub({ usedMemory: 0, maxMemory: 0, ...sample });
  const admission = new IngestAdmission({
    redis,
    backlog: () => backlogReadings(redis, [shard]),
    config,
    logger: createLogger({ level: 'silent', name: 'unit' }),
  });
  await admission.refresh();
  return { admission, stub };
}

/** The 503 that check throws, or null when the readings are admitted. */
function refusal(admission: IngestAdmission, incoming: number, pending: number) {
  try {
    admission.check(incoming, pending);
    return null;
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return {
      status: err.statusCode,
      code: err.code,
      retryAfter: err.headers['Retry-After'],
      message: err.message,
    };
  }
}

describe('IngestAdmission', () => {
  test('when Redis is sampled, then the backlog counter and INFO memory fields are read', async () => {
    const { admission, stub } = await admissionWith({
      backlog: '250',
      usedMemory: 1234,
      maxMemory: 5678,
    });
    expect(stub.get).toHaveBeenCalledWith(shard.backlogReadings);
    expect(stub.info).toHaveBeenCalledWith('memory');
    expect(admission.latest).toMatchObject({
      backlogReadings: 250,
      usedMemoryBytes: 1234,
      maxMemoryBytes: 5678,
    });
  });

  test('when the backlog counter is missing or negative, then the backlog counts as 0', async () => {
    expect((await admissionWith({ backlog: null })).admission.latest.backlogReadings).toBe(0);
    expect((await admissionWith({ backlog: '-7' })).admission.latest.backlogReadings).toBe(0);
  });

  test('when nothing has been sampled yet, then readings are admitted', () => {
    const { redis } = redisStub({ backlog: null, usedMemory: 0, maxMemory: 0 });
    const admission = new IngestAdmission({
      redis,
      backlog: () => backlogReadings(redis, [shard]),
      config: { maxBacklogReadings: 10, redisMemoryHighWater: 0.9 },
      logger: createLogger({ level: 'silent', name: 'unit' }),
    });
    expect(refusal(admission, 10, 0)).toBeNull();
  });

  test('when this process stored readings since the sample, then they count against the limit until the next sample sees them', async () => {
    const sample = { backlog: '900', usedMemory: 0, maxMemory: 0 };
    const { redis } = redisStub(sample);
    const admission = new IngestAdmission({
      redis,
      backlog: () => backlogReadings(redis, [shard]),
      config: { maxBacklogReadings: 1000, redisMemoryHighWater: 0.9 },
      logger: createLogger({ level: 'silent', name: 'unit' }),
    });
    await admission.refresh();
    admission.noteStored(60);
    expect(refusal(admission, 40, 0)).toBeNull();
    expect(refusal(admission, 41, 0)).toMatchObject({ code: 'backlog_full' });
    // The flusher took them meanwhile: the next sample says so, and nothing is counted twice.
    sample.backlog = '500';
    await admission.refresh();
    expect(refusal(admission, 500, 0)).toBeNull();
    // Two samples at once (the timer's and another) see those readings once, not twice.
    admission.noteStored(60);
    sample.backlog = '960';
    await Promise.all([admission.refresh(), admission.refresh()]);
    expect(refusal(admission, 40, 0)).toBeNull();
    expect(refusal(admission, 41, 0)).toMatchObject({ code: 'backlog_full' });
  });

  test('when backlog, pending and incoming readings reach the limit exactly, then they are admitted', async () => {
    const { admission } = await admissionWith({ backlog: '900' });
    expect(refusal(admission, 60, 40)).toBeNull();
  });

  test.each([
    ['incoming readings', 101, 0],
    ['readings still pending in this process', 1, 100],
    ['pending and incoming readings together', 51, 50],
  ])(
    'when %s pass the backlog limit, then ingest answers 503 backlog_full with Retry-After',
    async (_, incoming, pending) => {
      const { admission } = await admissionWith({ backlog: '900' });
      expect(refusal(admission, incoming, pending)).toEqual({
        status: 503,
        code: 'backlog_full',
        retryAfter: '5',
        message: `The ingest backlog is full: ${900 + pending} readings are waiting for PostgreSQL, and this request's ${incoming} would pass the limit of 1000; retry later`,
      });
    },
  );

  test('when Redis memory is above the high-water share of maxmemory, then ingest answers 503 redis_memory_high', async () => {
    const { admission } = await admissionWith({
      backlog: '0',
      usedMemory: 900_001,
      maxMemory: 1_000_000,
    });
    expect(refusal(admission, 1, 0)).toEqual({
      status: 503,
      code: 'redis_memory_high',
      retryAfter: '5',
      message: "Redis memory would pass 90% of maxmemory with this request's readings; retry later",
    });
  });

  test('when Redis memory with the incoming readings stays at the high-water mark, then they are admitted', async () => {
    const { admission } = await admissionWith({
      backlog: '0',
      usedMemory: 900_000 - 10 * QUEUED_READING_BYTES,
      maxMemory: 1_000_000,
    });
    expect(refusal(admission, 10, 0)).toBeNull();
    expect(refusal(admission, 11, 0)?.code).toBe('redis_memory_high');
  });

  test('when readings stored or waiting since the sample would carry memory past the high-water mark, then ingest answers 503 before the next sample', async () => {
    // 80 % at the sample: a busy API stores megabytes before the next one.
    const { admission } = await admissionWith(
      { backlog: '0', usedMemory: 800_000, maxMemory: 1_000_000 },
      { maxBacklogReadings: 1_000_000, redisMemoryHighWater: 0.9 },
    );
    const room = 100_000 / QUEUED_READING_BYTES;
    admission.noteStored(Math.floor(room / 2));
    expect(refusal(admission, 1, 0)).toBeNull();
    expect(refusal(admission, 1, Math.ceil(room / 2))?.code).toBe('redis_memory_high');
    admission.noteStored(Math.ceil(room / 2));
    expect(refusal(admission, 1, 0)?.code).toBe('redis_memory_high');
    // The next sample holds them: counted once, in its memory.
    await admission.refresh();
    expect(refusal(admission, 1, 0)).toBeNull();
  });

  test('when Redis has no maxmemory, then memory never refuses readings', async () => {
    const { admission } = await admissionWith({
      backlog: '0',
      usedMemory: 64 * 2 ** 30,
      maxMemory: 0,
    });
    expect(refusal(admission, 1, 0)).toBeNull();
  });

  test('when both the backlog and memory are over, then the backlog is named', async () => {
    const { admission } = await admissionWith({
      backlog: '1000',
      usedMemory: 999,
      maxMemory: 1000,
    });
    expect(refusal(admission, 1, 0)?.code).toBe('backlog_full');
  });
});
