import request from 'supertest';
import { openShard, type QueueShard } from '../src/queue/ingest-queue';
import { INTAKE_BELOW_READINGS, parseIntakeEntry } from '../src/queue/intake';
import { oldestUnflushedAcceptedAt } from '../src/queue/queue-stats';
import { createRedisKeys } from '../src/redis-keys';
import { startBacklogReconciler } from '../workers/backlog-reconciler';
import { IntakeMover, jobsFromEntries } from '../workers/intake-mover';
import {
  emptyQueue,
  queuedReadings,
  startTestApi,
  startTestFlusher,
  waitFor,
  waitForDrained,
  type TestApi,
} from './helpers/engine';
import { meterReading } from './helpers/readings';
import { createTestContext, type TestContext } from './helpers/test-env';

let ctx: TestContext;
let api: TestApi;
let shard: QueueShard;
const movers: IntakeMover[] = [];

beforeAll(async () => {
  ctx = await createTestContext();
  api = await startTestApi(ctx);
  shard = openShard(ctx.redis, createRedisKeys(ctx.config.redisPrefix).shards(1)[0]);
});
afterAll(async () => {
  await shard.queue.close();
  await api.close();
  await ctx.cleanup();
});
beforeEach(async () => {
  await emptyQueue(api.queue);
  await ctx.redis.del(shard.keys.backlogReadings, shard.keys.intakeMover);
});
afterEach(async () => {
  await Promise.all(movers.splice(0).map((m) => m.stop()));
});

const meter = (id: string, minute = 0) => ({
  meterId: id,
  kwhConsumedAc: 1,
  voltage: 230,
  timestamp: `2024-03-20T10:${String(minute).padStart(2, '0')}:00Z`,
});
const post = (body: object) =>
  request(api.api.app).post('/v1/telemetry/ingest').send(body).expect(202);
const intake = async () => (await ctx.redis.lrange(shard.keys.intake, 0, -1)).map(parseIntakeEntry);
const backlog = async () => Number(await ctx.redis.get(shard.keys.backlogReadings));
const mover = () => {
  const m = new IntakeMover({ redis: ctx.redis, shard, config: ctx.config, logger: ctx.logger });
  movers.push(m);
  return m;
};

describe('the intake', () => {
  test('when small stores are accepted, then they wait in the intake, counted in the backlog, and no job is made', async () => {
    await post(meter('M-1'));
    await post([meter('M-2'), meter('M-3')]);
    expect((await intake()).map((e) => e.readings.map((r) => r.id))).toEqual([
      ['M-1'],
      ['M-2', 'M-3'],
    ]);
    expect(await backlog()).toBe(3);
    expect(await shard.queue.getWaitingCount()).toBe(0);
  });

  test('when a store holds INTAKE_BELOW_READINGS readings, then it becomes a job at once', async () => {
    await post(Array.from({ length: INTAKE_BELOW_READINGS }, (_, i) => meter(`M-${i}`)));
    expect(await intake()).toEqual([]);
    const jobs = await shard.queue.getJobs(['waiting']);
    expect(jobs.flatMap((j) => j.data.readings)).toHaveLength(INTAKE_BELOW_READINGS);
    expect(await backlog()).toBe(INTAKE_BELOW_READINGS);
  });

  test('when QUEUE_BATCH_READINGS is below INTAKE_BELOW_READINGS, then a store of that many becomes jobs of at most that many', async () => {
    const small = await startTestApi(ctx, { queueBatchReadings: 5 });
    try {
      await request(small.api.app)
        .post('/v1/telemetry/ingest')
        .send(Array.from({ length: 7 }, (_, i) => meter(`M-s${i}`)))
        .expect(202);
      await request(small.api.app).post('/v1/telemetry/ingest').send(meter('M-one')).expect(202);
    } finally {
      await small.close();
    }
    const jobs = await shard.queue.getJobs(['waiting']);
    expect(jobs.map((j) => j.data.readings.length).sort()).toEqual([2, 5]);
    expect((await intake()).map((e) => e.readings.length)).toEqual([1]);
  });

  test('when a mover moves the intake, then its stores become jobs with the ingest job options, and the intake is empty', async () => {
    for (let i = 0; i < 5; i++) await post(meter(`M-${i}`));
    expect(await mover().moveOnce()).toBe(5);
    expect(await intake()).toEqual([]);
    const jobs = await shard.queue.getJobs(['waiting']);
    expect(jobs).toHaveLength(1);
    expect(jobs[0].id).toMatch(/^intake-\d+-\d+$/);
    expect(jobs[0].data.readings.map((r) => r.id)).toEqual(['M-0', 'M-1', 'M-2', 'M-3', 'M-4']);
    expect(jobs[0].opts).toMatchObject({
      attempts: ctx.config.flushAttempts,
      backoff: { type: 'capped-exponential', delay: ctx.config.flushBackoffMs },
      removeOnFail: false,
    });
    expect(await backlog()).toBe(5); // still waiting for PostgreSQL
  });

  test('when two flushers offer to move a shard, then one moves it until it stops', async () => {
    await post(meter('M-1'));
    const [first, second] = [mover(), mover()];
    expect(await first.moveOnce()).toBe(1);
    await post(meter('M-2'));
    expect(await second.moveOnce()).toBeNull();
    await first.stop();
    expect(await second.moveOnce()).toBe(1);
    expect((await queuedReadings(api.queue)).map((r) => r.id).sort()).toEqual(['M-1', 'M-2']);
  });

  test('when a mover lost its lock mid-move and another moved its entries, then it removes nothing, and no entry is lost', async () => {
    await post(meter('M-1'));
    await post(meter('M-2'));
    const stalled = mover();
    const read = await stalled.claim();
    expect(read).toHaveLength(2);
    await ctx.redis.del(shard.keys.intakeMover); // its lock lapsed
    const other = mover();
    expect(await other.moveOnce()).toBe(2);
    await post(meter('M-3'));
    expect(await stalled.move(read ?? [])).toBe(0);
    expect((await intake()).map((e) => e.readings[0].id)).toEqual(['M-3']);
    // The same entries moved twice the same way are one job.
    expect(await shard.queue.getWaitingCount()).toBe(1);
  });

  test('when adding the jobs fails, then the entries stay in the intake, and the next move takes the same ones', async () => {
    await post(meter('M-1'));
    await post(meter('M-2'));
    const m = mover();
    // Every job add now fails (BullMQ's add script reads the queue's meta hash before it writes
    // the job).
    await ctx.redis.set(shard.keys.queueKey('meta'), 'not a hash');
    await expect(m.moveOnce()).rejects.toThrow(/WRONGTYPE/);
    expect((await intake()).map((e) => e.readings[0].id)).toEqual(['M-1', 'M-2']);
    expect(await backlog()).toBe(2);
    await post(meter('M-3'));
    await ctx.redis.del(shard.keys.queueKey('meta'));
    expect(await m.moveOnce()).toBe(2); // the failed move's entries, as one job
    expect(await m.moveOnce()).toBe(1);
    const jobs = await shard.queue.getJobs(['waiting']);
    expect(jobs.map((j) => j.data.readings.map((r) => r.id)).sort()).toEqual([
      ['M-1', 'M-2'],
      ['M-3'],
    ]);
    expect(await intake()).toEqual([]);
  });

  test('when an entry does not parse, then it is dropped and the others are moved', async () => {
    await ctx.redis.rpush(shard.keys.intake, 'garbage');
    await post(meter('M-1'));
    expect(await oldestUnflushedAcceptedAt(ctx.redis, [shard])).toBeNull();
    expect(await mover().moveOnce()).toBe(2);
    expect(await intake()).toEqual([]);
    expect((await queuedReadings(api.queue)).map((r) => r.id)).toEqual(['M-1']);
  });

  test('when entries were accepted at different times, then their job keeps each reading’s own time', () => {
    const entries = [
      { seq: 1, acceptedAt: 1000, readings: [meterReading('M-1', 1), meterReading('M-2', 1)] },
      { seq: 2, acceptedAt: 1010, readings: [meterReading('M-3', 1)] },
      { seq: 3, acceptedAt: 1020, readings: [meterReading('M-4', 1), meterReading('M-5', 1)] },
    ];
    const jobs = jobsFromEntries(entries, 3);
    expect(jobs.map((j) => j.jobId)).toEqual(['intake-1-2', 'intake-3-3']);
    expect(jobs[0].data).toEqual({
      acceptedAt: 1000,
      readings: entries[0].readings.concat(entries[1].readings),
      receivedAt: [1000, 1000, 1010],
    });
    expect(jobs[1].data).toEqual({ acceptedAt: 1020, readings: entries[2].readings });
  });

  test('when the flusher writes moved stores, then each history row keeps the time its own store was accepted', async () => {
    await post(meter('M-t1', 1));
    await new Promise((r) => setTimeout(r, 30));
    await post(meter('M-t2', 2));
    const accepted = Object.fromEntries(
      (await intake()).map((e) => [e.readings[0].id, e.acceptedAt]),
    );
    expect(accepted['M-t2'] - accepted['M-t1']).toBeGreaterThanOrEqual(30);
    const flusher = await startTestFlusher(ctx);
    try {
      await waitForDrained(api.queue);
    } finally {
      await flusher.close();
    }
    const rows = await ctx
      .db('telemetry_history')
      .whereIn('device_id', ['M-t1', 'M-t2'])
      .select('device_id', 'received_at');
    expect(
      Object.fromEntries(rows.map((r) => [r.device_id, (r.received_at as Date).getTime()])),
    ).toEqual(accepted);
    expect(await backlog()).toBe(0);
  });

  test('when the oldest waiting reading is in the intake, then the flush lag counts from it', async () => {
    await post(meter('M-1'));
    const [entry] = await intake();
    expect(await oldestUnflushedAcceptedAt(ctx.redis, [shard])).toBe(entry.acceptedAt);
  });

  test('when stores wait in the intake, then the metrics count them as entries and as readings waiting', async () => {
    await post(meter('M-1'));
    await post([meter('M-2'), meter('M-3')]);
    const text = (await request(api.api.app).get('/metrics').expect(200)).text;
    expect(text).toMatch(/^energy_queue_intake_entries(\{[^}]*\})? 2$/m);
    expect(text).toMatch(/^energy_queue_readings_waiting(\{[^}]*\})? 3$/m);
  });

  /** Runs `check` with the shard's reconciler running every 20 ms, after ten of its rounds. */
  async function whileReconciling(check: () => Promise<void>): Promise<void> {
    const stop = startBacklogReconciler({
      redis: ctx.redis,
      shard: shard.keys,
      logger: ctx.logger,
      intervalMs: 20,
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      await check();
    } finally {
      stop();
    }
  }

  test('when the queue holds only failed jobs, then the backlog counter keeps their readings; one below zero is reset', async () => {
    // A failed job's readings wait for PostgreSQL until it is re-driven and written: the probe saw
    // the counter reset to 0 under them, then go below zero once the re-driven job was written.
    const failed = shard.keys.queueKey('failed');
    await ctx.redis.zadd(failed, Date.now(), 'failed-job');
    await ctx.redis.set(shard.keys.backlogReadings, 1000);
    await whileReconciling(async () => {
      expect(await backlog()).toBe(1000);
      await ctx.redis.del(failed);
      await ctx.redis.set(shard.keys.backlogReadings, -1000);
      await waitFor(async () => (await backlog()) === 0, 5000, 'the counter to be reset');
    });
  });

  test('when the counter changes between two checks with the queue empty (a job being added or completed), then it is not reset; the same value twice is', async () => {
    await whileReconciling(async () => {
      // A value that moves at every check, as an API's raise before its job lands: never reset.
      for (let i = 1; i <= 10; i++) {
        await ctx.redis.set(shard.keys.backlogReadings, 400 * i);
        await new Promise((r) => setTimeout(r, 10));
        expect(await backlog()).toBe(400 * i);
      }
      await waitFor(async () => (await backlog()) === 0, 5000, 'a value that stays to be reset');
    });
  });

  test('when the queue is empty but the intake is not, then the backlog counter is not reset', async () => {
    await post(meter('M-1'));
    await whileReconciling(async () => {
      expect(await backlog()).toBe(1);
      await ctx.redis.del(shard.keys.intake);
      await ctx.redis.incrby(shard.keys.backlogReadings, 4); // drifted
      await waitFor(async () => (await backlog()) === 0, 5000, 'the counter to be reset');
    });
  });
});
