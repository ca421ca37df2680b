/**
 * The MQTT intake on a real broker (this machine's, or TEST_MQTT_URL; a Mosquitto of the test's own
 * where a test must stop the broker or read its log), real Redis, BullMQ and PostgreSQL.
 */
import request from 'supertest';
import { assertMqttBrokerReachable } from '../src/startup-checks';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { freePort, waitForHttp } from '../bench/bench-helpers';
import { Mosquitto } from '../bench/mosquitto';
import {
  REASON_PAYLOAD_FORMAT_INVALID,
  REASON_SUCCESS,
  startAckAfterStoreSubscriber,
  type DeliveredMessage,
  type PubackReason,
} from '../src/mqtt/ack-after-store';
import type { Config } from '../src/config';
import { createLogger } from '../src/logger';
import { RejectLog, type RejectEntry } from '../src/mqtt/reject-log';
import { createRedisKeys } from '../src/redis-keys';
import { OwnRedis } from './faults/harness';
import { startTestFlusher, waitFor, type TestFlusher } from './helpers/engine';
import {
  connectPublisher,
  mosquittoPub,
  purgeSession,
  sampleValue,
  startTestMqtt,
  testBrokerUrl,
  type TestMqtt,
} from './helpers/mqtt';
import { envFor, startProcess } from './helpers/processes';
import { createTestContext, deleteKeys, type TestContext } from './helpers/test-env';

jest.setTimeout(60_000);

const brokerUrl = testBrokerUrl();
const BASE_MS = Date.parse('2024-04-01T00:00:00Z');
const at = (i: number) => new Date(BASE_MS + i * 1000).toISOString();
const meter = (id: string | undefined, i: number, extra: Record<string, unknown> = {}) => ({
  ...(id ? { meterId: id } : {}),
  kwhConsumedAc: 0.5,
  voltage: 230,
  timestamp: at(i),
  ...extra,
});
const vehicle = (id: string | undefined, i: number) => ({
  ...(id ? { vehicleId: id } : {}),
  soc: 60,
  kwhDeliveredDc: 0.4,
  batteryTemp: 30,
  timestamp: at(i),
});

let ctx: TestContext;
let flusher: TestFlusher;
let consumer: TestMqtt;
let publisher: MqttClient;
let prefix: string;
const sessions: { url: string; clientId: string }[] = [];

/** A consumer in the test's shared subscription group, with a client id of its own. */
async function startConsumer(name: string, overrides: Partial<Config> = {}): Promise<TestMqtt> {
  const clientId = `${ctx.config.redisPrefix}-${name}`;
  const started = await startTestMqtt(ctx, {
    mqttTopicPrefix: prefix,
    ...overrides,
    mqttClientId: clientId,
  });
  sessions.push({ url: started.config.mqttUrl, clientId });
  await waitFor(
    () =>
      started.service.intake.ready().then(
        () => true,
        () => false,
      ),
    15_000,
    `consumer ${name} subscribed`,
  );
  return started;
}

const metrics = (t: TestMqtt) => t.service.registry.metrics();

async function historyOf(type: 'meter' | 'vehicle', id: string): Promise<number[]> {
  const rows = await ctx
    .db('telemetry_history')
    .where({ device_type: type, device_id: id })
    .select('ts')
    .orderBy('ts');
  return rows.map((r: { ts: Date }) => r.ts.getTime());
}

async function waitForHistory(type: 'meter' | 'vehicle', id: string, count: number) {
  await waitFor(
    async () => (await historyOf(type, id)).length >= count,
    20_000,
    `${count} ${type} readings of ${id}`,
  );
  return historyOf(type, id);
}

const rejects = (): Promise<RejectEntry[]> =>
  new RejectLog(ctx.redis, createRedisKeys(ctx.config.redisPrefix).mqttRejects).latest(1000);

async function rejectFor(topic: string): Promise<RejectEntry> {
  let found: RejectEntry | undefined;
  await waitFor(
    async () => Boolean((found = (await rejects()).find((r) => r.topic === topic))),
    10_000,
    `a reject entry for ${topic}`,
  );
  return found as RejectEntry;
}

beforeAll(async () => {
  ctx = await createTestContext();
  flusher = await startTestFlusher(ctx);
  prefix = `test/${ctx.config.redisPrefix}`;
  consumer = await startConsumer('main');
  publisher = await connectPublisher(brokerUrl);
});

afterAll(async () => {
  await publisher?.endAsync();
  await consumer?.close();
  await flusher?.close();
  for (const { url, clientId } of sessions)
    await purgeSession(url, clientId).catch(() => undefined);
  await ctx?.cleanup();
});

describe('MQTT topics and payloads', () => {
  test('when mosquitto_pub sends one reading to {prefix}/readings, then it is stored and acknowledged', async () => {
    const before = sampleValue(await metrics(consumer), 'energy_mqtt_ack_duration_seconds_count', {
      result: 'stored',
    });
    const out = await mosquittoPub(brokerUrl, `${prefix}/readings`, {
      message: JSON.stringify(meter('M-pub', 1)),
    });
    expect(out).toMatch(/received PUBACK \(Mid: \d+, RC:0\)/);
    expect(await waitForHistory('meter', 'M-pub', 1)).toEqual([BASE_MS + 1000]);
    const text = await metrics(consumer);
    expect(
      sampleValue(text, 'energy_mqtt_ack_duration_seconds_count', { result: 'stored' }),
    ).toBeGreaterThan(before || 0);
    expect(
      sampleValue(text, 'energy_mqtt_messages_received_total', { topic_kind: 'readings' }),
    ).toBeGreaterThanOrEqual(1);
    expect(sampleValue(text, 'energy_mqtt_connected')).toBe(1);
  });

  test('when readings go to a device topic without their id, then the topic gives it; one with the same id is accepted', async () => {
    await publisher.publishAsync(`${prefix}/meters/M-topic`, JSON.stringify(meter(undefined, 2)), {
      qos: 1,
    });
    await publisher.publishAsync(
      `${prefix}/vehicles/V-topic`,
      JSON.stringify([vehicle(undefined, 3), vehicle('V-topic', 4)]),
      { qos: 1 },
    );
    expect(await waitForHistory('meter', 'M-topic', 1)).toEqual([BASE_MS + 2000]);
    expect(await waitForHistory('vehicle', 'V-topic', 2)).toEqual([BASE_MS + 3000, BASE_MS + 4000]);
    expect(
      sampleValue(await metrics(consumer), 'energy_mqtt_readings_received_total', {
        topic_kind: 'vehicle',
      }),
    ).toBeGreaterThanOrEqual(2);
  });

  test('when the payload is gzip (recognised by its magic bytes) or NDJSON, then its readings are stored', async () => {
    await publisher.publishAsync(
      `${prefix}/readings`,
      gzipSync(JSON.stringify([meter('M-gzip', 5), meter('M-gzip', 6)])),
      { qos: 1 },
    );
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'mqtt-')), 'reading.json.gz');
    writeFileSync(file, gzipSync(JSON.stringify(vehicle(undefined, 7))));
    await mosquittoPub(brokerUrl, `${prefix}/vehicles/V-gzip`, { file });
    await publisher.publishAsync(
      `${prefix}/meters/M-ndjson`,
      `${JSON.stringify(meter(undefined, 8))}\n${JSON.stringify(meter('M-ndjson', 9))}\n`,
      { qos: 1 },
    );
    expect(await waitForHistory('meter', 'M-gzip', 2)).toHaveLength(2);
    expect(await waitForHistory('vehicle', 'V-gzip', 1)).toEqual([BASE_MS + 7000]);
    expect(await waitForHistory('meter', 'M-ndjson', 2)).toHaveLength(2);
  });

  test('when an array mixes valid and invalid readings, then the valid ones are stored, the invalid listed, and the message acknowledged as success', async () => {
    const topic = `${prefix}/readings`;
    const before = await metrics(consumer);
    await publisher.publishAsync(
      topic,
      JSON.stringify([
        meter('M-mixed', 10),
        meter('M-mixed', 11, { voltage: -5 }),
        meter('M-mixed', 12),
      ]),
      { qos: 1 },
    );
    expect(await waitForHistory('meter', 'M-mixed', 2)).toEqual([
      BASE_MS + 10_000,
      BASE_MS + 12_000,
    ]);
    const entry = (await rejects()).find((r) => r.reason === 'some_readings_invalid');
    expect(entry).toMatchObject({ topic, accepted: 2, rejected: 1, payloadEncoding: 'utf8' });
    expect(entry?.errors).toEqual([
      expect.objectContaining({
        index: 1,
        error: 'invalid_reading',
        details: [expect.objectContaining({ path: '/voltage' })],
      }),
    ]);
    const after = await metrics(consumer);
    // Acknowledged with success (a 207): not counted as a rejected message.
    expect(sampleValue(after, 'energy_mqtt_messages_rejected_total')).toEqual(
      sampleValue(before, 'energy_mqtt_messages_rejected_total'),
    );
  });

  test('when a message holds more readings than MAX_BATCH_READINGS, then its reject entry and the rejected readings counter count them all', async () => {
    const rejectedReadings = async () =>
      sampleValue(await metrics(consumer), 'energy_ingest_readings_rejected_total', {
        reason: 'too_many_readings',
      }) || 0;
    const before = await rejectedReadings();
    const count = ctx.config.maxBatchReadings + 1;
    const readings = Array.from({ length: count }, (_, i) => meter(undefined, 20 + i));
    const asArray = `${prefix}/meters/M-too-many`;
    const asNdjson = `${prefix}/meters/M-too-many-nd`;
    await publisher.publishAsync(asArray, JSON.stringify(readings), { qos: 1 });
    await publisher.publishAsync(asNdjson, readings.map((r) => JSON.stringify(r)).join('\n'), {
      qos: 1,
    });
    for (const topic of [asArray, asNdjson]) {
      expect(await rejectFor(topic)).toMatchObject({
        reason: 'too_many_readings',
        accepted: 0,
        rejected: count,
      });
    }
    expect(await rejectedReadings()).toBe(before + 2 * count);
  });
});

describe('the rejects list', () => {
  test('when a topic, message or error is as long as a client makes it, then the entry stays a few KB: texts clipped, errors cut to fit', async () => {
    const key = `${ctx.config.redisPrefix}:test:rejects`;
    const log = new RejectLog(ctx.redis, key);
    const huge = 'a'.repeat(60_000);
    await log.add({
      topic: `${prefix}/${huge}`,
      reason: 'no_valid_readings',
      message: `None is valid: ${huge}`,
      accepted: 0,
      rejected: 3,
      errors: [0, 1, 2].map((index) => ({
        index,
        error: 'invalid_reading',
        message: `/${huge} is not an accepted field`,
        details: [{ path: `/${huge}`, message: 'is not an accepted field' }],
      })),
      payload: Buffer.from(huge),
      gzip: false,
    });
    const [raw] = await ctx.redis.lrange(key, 0, 0);
    expect(raw.length).toBeLessThanOrEqual(6 * 1024);
    const [entry] = await log.latest(1);
    expect(entry.topic).toBe(`${prefix}/${'a'.repeat(512 - prefix.length - 1)}...`);
    expect(entry.message.length).toBe(515);
    expect(entry).toMatchObject({ rejected: 3, errors: [], payloadBytes: 60_000, truncated: true });
    await ctx.redis.del(key);
  });
});

describe('invalid messages', () => {
  test('when a publisher clears its retained message (a zero-byte retained publish), then it is acknowledged and not listed as a reject; an empty payload not retained still is', async () => {
    const before = await metrics(consumer);
    await publisher.publishAsync(`${prefix}/meters/M-cleared`, '', { qos: 1, retain: true });
    await publisher.publishAsync(`${prefix}/meters/M-blank`, '', { qos: 1 });
    expect((await rejectFor(`${prefix}/meters/M-blank`)).reason).toBe('empty_body');
    // Both were received; only the one not retained is a reject (it was listed as empty_body).
    await waitFor(
      async () =>
        sampleValue(await metrics(consumer), 'energy_mqtt_messages_received_total') -
          (sampleValue(before, 'energy_mqtt_messages_received_total') || 0) ===
        2,
      10_000,
      'both messages received',
    );
    expect((await rejects()).filter((r) => r.topic === `${prefix}/meters/M-cleared`)).toEqual([]);
    const after = await metrics(consumer);
    expect(
      sampleValue(after, 'energy_mqtt_messages_rejected_total', { reason: 'empty_body' }) -
        (sampleValue(before, 'energy_mqtt_messages_rejected_total', { reason: 'empty_body' }) || 0),
    ).toBe(1);
  });

  test('when payloads cannot be stored, then each is acknowledged with 0x99, listed with its reason, counted, and never delivered again', async () => {
    const cases: [string, Buffer | string, string][] = [
      [`${prefix}/meters/M-bad-json`, '{"kwhConsumedAc": 1,', 'invalid_json'],
      [`${prefix}/meters/M-bad-utf8`, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'invalid_encoding'],
      [
        `${prefix}/meters/M-bad-gzip`,
        Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02]),
        'invalid_gzip',
      ],
      [`${prefix}/meters/M-empty`, '', 'empty_body'],
      [`${prefix}/meters/M-mine`, JSON.stringify(meter('M-theirs', 13)), 'topic_mismatch'],
      [`${prefix}/meters/M-kind`, JSON.stringify(vehicle('V-kind', 14)), 'topic_mismatch'],
      [`${prefix}/meters/M bad`, JSON.stringify({ kwhConsumedAc: 1 }), 'invalid_topic_id'],
      [
        `${prefix}/vehicles/V-soc`,
        JSON.stringify({ ...vehicle(undefined, 15), soc: 150 }),
        'invalid_reading',
      ],
      [`${prefix}/readings-not`, JSON.stringify(meter('M-x', 16)), 'unknown_topic'],
      [`${prefix}/gadgets/G-1`, JSON.stringify(meter('M-x', 17)), 'unknown_topic'],
      [`${prefix}/readings`, JSON.stringify([{ meterId: 'M-none' }, 'text']), 'no_valid_readings'],
    ];
    const before = await metrics(consumer);
    const receivedBefore = sampleValue(before, 'energy_mqtt_messages_received_total');
    for (const [topic, payload] of cases) await publisher.publishAsync(topic, payload, { qos: 1 });

    for (const [topic, , reason] of cases) {
      const entry = await rejectFor(topic);
      expect({ topic, reason: entry.reason }).toEqual({ topic, reason });
      expect(entry.accepted).toBe(0);
    }
    const mismatch = await rejectFor(`${prefix}/meters/M-mine`);
    expect(mismatch.errors[0].details).toEqual([
      { path: '/meterId', message: 'must equal the topic\'s device id "M-mine"' },
    ]);
    expect((await rejectFor(`${prefix}/meters/M-bad-utf8`)).payloadEncoding).toBe('base64');
    // The words name an MQTT payload, not an HTTP body.
    for (const [topic, message] of [
      ['M-bad-json', /^The payload is not valid JSON: /],
      ['M-bad-utf8', /^The payload is not valid UTF-8$/],
      ['M-empty', /^The payload is empty$/],
    ] as const)
      expect((await rejectFor(`${prefix}/meters/${topic}`)).message).toMatch(message);
    // gzip that does not inflate is still listed as gzip (its bytes as sent, in base64).
    expect(await rejectFor(`${prefix}/meters/M-bad-gzip`)).toMatchObject({
      gzip: true,
      payloadEncoding: 'base64',
    });

    await waitFor(
      async () =>
        sampleValue(await metrics(consumer), 'energy_mqtt_ack_duration_seconds_count', {
          result: 'rejected',
        }) -
          (sampleValue(before, 'energy_mqtt_ack_duration_seconds_count', { result: 'rejected' }) ||
            0) ===
        cases.length,
      10_000,
      'a 0x99 PUBACK for each',
    );
    const after = await metrics(consumer);
    for (const reason of new Set(cases.map(([, , r]) => r))) {
      const expected = cases.filter(([, , r]) => r === reason).length;
      expect({
        reason,
        count:
          sampleValue(after, 'energy_mqtt_messages_rejected_total', { reason }) -
          (sampleValue(before, 'energy_mqtt_messages_rejected_total', { reason }) || 0),
      }).toEqual({ reason, count: expected });
    }
    expect(await historyOf('meter', 'M-theirs')).toEqual([]);
    expect(await historyOf('meter', 'M-mine')).toEqual([]);

    // The broker dropped them for good: a reconnect of the same session brings none back.
    expect(sampleValue(after, 'energy_mqtt_messages_received_total') - receivedBefore).toBe(
      cases.length,
    );
    await consumer.close();
    consumer = await startConsumer('main');
    await publisher.publishAsync(`${prefix}/meters/M-after`, JSON.stringify(meter(undefined, 18)), {
      qos: 1,
    });
    await waitForHistory('meter', 'M-after', 1);
    expect(sampleValue(await metrics(consumer), 'energy_mqtt_messages_received_total')).toBe(1);
  });
});

describe('backpressure and redelivery', () => {
  test('when Redis is down, then nothing is acknowledged and the broker holds the rest; once it is back, every message is stored exactly once', async () => {
    const redis = await OwnRedis.create();
    const ownFlusher = await startTestFlusher(ctx, { redisUrl: redis.url });
    const topicPrefix = `${prefix}-outage`;
    const settings = {
      redisUrl: redis.url,
      mqttTopicPrefix: topicPrefix,
      mqttReceiveMaximum: 20,
    };
    let held = await startConsumer('outage', settings);
    try {
      const topic = `${topicPrefix}/meters/M-outage`;
      const send = (from: number, count: number) =>
        Promise.all(
          Array.from({ length: count }, (_, i) =>
            publisher.publishAsync(topic, JSON.stringify(meter(undefined, 100 + from + i)), {
              qos: 1,
            }),
          ),
        );
      await send(0, 10);
      await waitForHistory('meter', 'M-outage', 10);

      await redis.kill('SIGKILL');
      const acked = async () =>
        sampleValue(await metrics(held), 'energy_mqtt_ack_duration_seconds_count') || 0;
      const ackedBefore = await acked();
      await send(10, 100); // the broker accepted each (the publisher has its PUBACK)

      // Receive Maximum 20: the broker sends 20, gets no PUBACK, and keeps the other 80.
      await waitFor(
        async () => sampleValue(await metrics(held), 'energy_mqtt_messages_unacknowledged') === 20,
        10_000,
        '20 messages held unacknowledged',
      );
      await new Promise((r) => setTimeout(r, 1000));
      const text = await metrics(held);
      expect(sampleValue(text, 'energy_mqtt_messages_unacknowledged')).toBe(20);
      expect(sampleValue(text, 'energy_mqtt_messages_received_total')).toBe(10 + 20);
      expect(await acked()).toBe(ackedBefore);
      expect(sampleValue(text, 'energy_mqtt_store_retries_total')).toBeGreaterThan(0);
      const ready = await request(held.service.healthApp).get('/health/ready');
      expect(ready.status).toBe(503);
      expect(ready.body.checks).toMatchObject({
        mqtt: 'ok',
        redis: expect.stringMatching(/^failing/),
      });
      expect(await historyOf('meter', 'M-outage')).toHaveLength(10);

      // One consumer stops while holding its 20 (as on a restart): they stay in its session.
      await held.close();
      await redis.start();
      held = await startConsumer('outage', settings);
      const stored = await waitForHistory('meter', 'M-outage', 110);
      expect(stored).toHaveLength(110);
      expect(new Set(stored).size).toBe(110);
      expect(stored).toEqual(Array.from({ length: 110 }, (_, i) => BASE_MS + (100 + i) * 1000));
      await waitFor(
        async () => sampleValue(await metrics(held), 'energy_mqtt_messages_unacknowledged') === 0,
        10_000,
        'everything acknowledged',
      );
      // The 20 held before came again (redelivered), then the 80 the broker kept.
      expect(sampleValue(await metrics(held), 'energy_mqtt_messages_received_total')).toBe(100);
    } finally {
      await held.close();
      await ownFlusher.close();
      await redis.kill('SIGTERM');
    }
  });

  test('when Redis was down while only QoS 0 messages arrive, then once it is back they are stored again (one takes the probe turn)', async () => {
    const redis = await OwnRedis.create();
    const ownFlusher = await startTestFlusher(ctx, { redisUrl: redis.url });
    const topicPrefix = `${prefix}-qos0`;
    const held = await startConsumer('qos0', { redisUrl: redis.url, mqttTopicPrefix: topicPrefix });
    try {
      const topic = `${topicPrefix}/meters/M-qos0`;
      let i = 0;
      const send = () =>
        publisher.publishAsync(topic, JSON.stringify(meter(undefined, 1000 + i++)), { qos: 0 });
      await send();
      await waitForHistory('meter', 'M-qos0', 1);

      await redis.kill('SIGKILL');
      for (let n = 0; n < 5; n++) await send(); // dropped: QoS 0 cannot wait
      await waitFor(
        async () =>
          (await request(held.service.healthApp).get('/health/ready')).status === 503 &&
          (sampleValue(await metrics(held), 'energy_mqtt_store_retries_total') || 0) > 0,
        10_000,
        'the store to fail',
      );
      await redis.start();
      await waitFor(
        async () => (await request(held.service.healthApp).get('/health/ready')).status === 200,
        10_000,
        'Redis back',
      );
      // Before, the gate only a probe reopens stayed closed: QoS 0 never took the probe's turn.
      await waitFor(
        async () => {
          await send();
          return (await historyOf('meter', 'M-qos0')).length > 1;
        },
        15_000,
        'a QoS 0 message stored after the outage',
      );
      const first = i;
      for (let n = 0; n < 50; n++) await send();
      const sent = Array.from({ length: 50 }, (_, n) => BASE_MS + (1000 + first + n) * 1000);
      await waitFor(
        async () => {
          const stored = new Set(await historyOf('meter', 'M-qos0'));
          return sent.every((ts) => stored.has(ts));
        },
        10_000,
        'all 50 QoS 0 messages sent after it stored',
      );
    } finally {
      await held.close();
      await ownFlusher.close();
      await redis.kill('SIGTERM');
    }
  });

  test('when QoS 1 messages are held while Redis is down and take every slot, then QoS 0 messages arriving meanwhile are dropped at once and counted, not lost unseen', async () => {
    const redis = await OwnRedis.create();
    const ownFlusher = await startTestFlusher(ctx, { redisUrl: redis.url });
    const topicPrefix = `${prefix}-qos0-held`;
    const held = await startConsumer('qos0-held', {
      redisUrl: redis.url,
      mqttTopicPrefix: topicPrefix,
      mqttReceiveMaximum: 3,
    });
    const dropped = async () =>
      sampleValue(await metrics(held), 'energy_mqtt_messages_rejected_total', {
        reason: 'qos0_not_stored',
      }) || 0;
    try {
      const topic = `${topicPrefix}/meters/M-qos0-held`;
      let i = 0;
      const send = (qos: 0 | 1) =>
        publisher.publishAsync(topic, JSON.stringify(meter(undefined, 2000 + i++)), { qos });
      await redis.kill('SIGKILL');
      // Three QoS 1 messages wait, unacknowledged, for storage: every slot of the three.
      void send(1);
      void send(1);
      void send(1);
      await waitFor(
        async () => sampleValue(await metrics(held), 'energy_mqtt_messages_unacknowledged') === 3,
        10_000,
        'three QoS 1 messages held',
      );
      for (let n = 0; n < 4; n++) await send(0);
      await waitFor(async () => (await dropped()) === 4, 10_000, 'four QoS 0 messages counted');
      // The QoS 1 messages are stored once Redis is back.
      await redis.start();
      await waitFor(
        async () => (await historyOf('meter', 'M-qos0-held')).length === 3,
        20_000,
        'the held QoS 1 messages stored',
      );
      expect(await dropped()).toBe(4);
    } finally {
      await held.close();
      await ownFlusher.close();
      await redis.kill('SIGTERM');
    }
  });

  test('when two engine consumers share the subscription, then both receive part of the stream and every reading is stored once', async () => {
    const second = await startConsumer('second');
    try {
      const receivedBefore = [
        sampleValue(await metrics(consumer), 'energy_mqtt_messages_received_total') || 0,
        sampleValue(await metrics(second), 'energy_mqtt_messages_received_total') || 0,
      ];
      const topic = `${prefix}/vehicles/V-shared`;
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          publisher.publishAsync(topic, JSON.stringify(vehicle(undefined, 1000 + i)), { qos: 1 }),
        ),
      );
      const stored = await waitForHistory('vehicle', 'V-shared', 200);
      expect(new Set(stored).size).toBe(200);
      const received = [
        (sampleValue(await metrics(consumer), 'energy_mqtt_messages_received_total') || 0) -
          receivedBefore[0],
        (sampleValue(await metrics(second), 'energy_mqtt_messages_received_total') || 0) -
          receivedBefore[1],
      ];
      expect(received[0]).toBeGreaterThan(0);
      expect(received[1]).toBeGreaterThan(0);
      expect(received[0] + received[1]).toBe(200);
    } finally {
      await second.close();
    }
  });
});

describe('a kept session', () => {
  test('when the engine comes back with another MQTT_TOPIC_PREFIX under the same client id, then it subscribes to the new one (the session kept the old)', async () => {
    const first = await startConsumer('moved', { mqttTopicPrefix: `${prefix}-old` });
    await first.close();
    const again = await startConsumer('moved', { mqttTopicPrefix: `${prefix}-new` });
    try {
      await publisher.publishAsync(
        `${prefix}-new/meters/M-moved`,
        JSON.stringify(meter(undefined, 7)),
        {
          qos: 1,
        },
      );
      expect(await waitForHistory('meter', 'M-moved', 1)).toEqual([BASE_MS + 7000]);
    } finally {
      await again.close();
    }
  });
});

describe('MQTT_SHARED_SUBSCRIPTION switched', () => {
  test.each([
    ['off', 'on'],
    ['on', 'off'],
  ] as const)(
    'when the engine comes back with it switched from %s to %s under the same client id, then each message comes once (the session kept the other form)',
    async (from, to) => {
      // A share group of its own (REDIS_PREFIX names it): no other test's session takes a share.
      const redisPrefix = `${ctx.config.redisPrefix}-sw${from}`;
      const first = await startConsumer(`switched-${from}`, {
        redisPrefix,
        mqttSharedSubscription: from,
      });
      await first.close();
      const again = await startConsumer(`switched-${from}`, {
        redisPrefix,
        mqttSharedSubscription: to,
      });
      try {
        for (let i = 0; i < 3; i += 1) {
          await publisher.publishAsync(
            `${prefix}/meters/M-switched-${from}`,
            JSON.stringify(meter(undefined, 100 + i)),
            { qos: 1 },
          );
        }
        await waitFor(async () => again.service.intake.delivered >= 3, 10_000, 'the 3 messages');
        // A second copy of each would follow the first at once; give it the time to.
        await new Promise((r) => setTimeout(r, 500));
        expect(again.service.intake.delivered).toBe(3);
      } finally {
        await again.close();
        await deleteKeys(ctx.redis, redisPrefix);
      }
    },
  );
});

describe('PUBACK after store (the mqtt.js mechanism, checked on the wire)', () => {
  test('when messages are being stored, then many are in flight at once, no PUBACK leaves before its store, PUBACKs go in arrival order with their reason codes, and a dropped connection redelivers instead of acknowledging', async () => {
    const broker = await Mosquitto.start({ logAll: true });
    const clientId = `mechanism-${ctx.config.redisPrefix}`;
    const held: { message: DeliveredMessage; resolve: (reason: PubackReason) => void }[] = [];
    const subscriber = startAckAfterStoreSubscriber({
      url: broker.url,
      clientId,
      subscription: 'mech/#',
      receiveMaximum: 100,
      sessionExpiryS: 600,
      handle: (message) => new Promise((resolve) => held.push({ message, resolve })),
      logger: createLogger({ level: 'silent', name: 'test' }),
    });
    const pub = await connectPublisher(broker.url);
    try {
      await waitFor(async () => subscriber.ready, 10_000, 'subscribed');
      for (let i = 0; i < 30; i++) await pub.publishAsync('mech/a', `m${i}`, { qos: 1 });
      await waitFor(async () => held.length === 30, 10_000, '30 messages in flight at once');
      const pubacks = () =>
        [
          ...broker
            .log()
            .matchAll(
              new RegExp(`Received PUBACK from ${clientId} \\(Mid: (\\d+), RC:(\\d+)\\)`, 'g'),
            ),
        ].map((m) => ({ mid: Number(m[1]), rc: Number(m[2]) }));
      await new Promise((r) => setTimeout(r, 300));
      expect(pubacks()).toEqual([]);

      // Stores finish in reverse order; PUBACKs still leave in arrival order.
      for (let i = 29; i >= 0; i--) {
        held[i].resolve(i === 7 ? REASON_PAYLOAD_FORMAT_INVALID : REASON_SUCCESS);
      }
      await waitFor(async () => pubacks().length === 30, 10_000, '30 PUBACKs at the broker');
      const sent = [
        ...broker
          .log()
          .matchAll(new RegExp(`Sending PUBLISH to ${clientId} \\(d0, q1, r0, m(\\d+),`, 'g')),
      ].map((m) => Number(m[1]));
      expect(pubacks().map((p) => p.mid)).toEqual(sent.slice(0, 30));
      expect(pubacks().map((p) => p.rc)).toEqual(
        Array.from({ length: 30 }, (_, i) => (i === 7 ? 0x99 : 0)),
      );

      // A message in flight when the connection drops: its late PUBACK is dropped, the broker
      // delivers it again (dup) and that delivery is acknowledged.
      await pub.publishAsync('mech/b', 'late', { qos: 1 });
      await waitFor(async () => held.length === 31, 10_000, 'the 31st message');
      const closed = new Promise<void>((r) => subscriber.client.once('close', () => r()));
      subscriber.client.stream.destroy();
      await closed;
      held[30].resolve(REASON_SUCCESS); // stored, but its connection is gone: no PUBACK
      await waitFor(async () => held.length === 32, 10_000, 'the redelivery');
      expect(held[31].message).toMatchObject({ topic: 'mech/b', redelivered: true });
      await new Promise((r) => setTimeout(r, 300));
      expect(pubacks()).toHaveLength(30);
      held[31].resolve(REASON_SUCCESS);
      await waitFor(async () => pubacks().length === 31, 10_000, 'the PUBACK of the redelivery');
      expect(subscriber.unacked).toBe(0);
    } finally {
      await pub.endAsync();
      for (const h of held) h.resolve(REASON_SUCCESS);
      await subscriber.close(1000);
      await broker.destroy();
    }
  });
});

describe('memory bound', () => {
  test('when the broker sends a queued backlog beyond Receive Maximum, then at most twice Receive Maximum messages are held at once and none is lost', async () => {
    const broker = await Mosquitto.start();
    const clientId = `bound-${ctx.config.redisPrefix}`;
    let held = 0;
    let most = 0;
    const seen = new Set<string>();
    const start = () =>
      startAckAfterStoreSubscriber({
        url: broker.url,
        clientId,
        subscription: 'bound/#',
        receiveMaximum: 10,
        sessionExpiryS: 600,
        handle: async (message) => {
          held += 1;
          most = Math.max(most, held);
          await new Promise((r) => setTimeout(r, 1));
          seen.add(message.payload.toString());
          held -= 1;
          return REASON_SUCCESS;
        },
        logger: createLogger({ level: 'silent', name: 'test' }),
      });
    let subscriber = start();
    const pub = await connectPublisher(broker.url);
    try {
      await waitFor(async () => subscriber.ready, 10_000, 'subscribed');
      await subscriber.close(1000); // the session stays, and queues what follows
      await Promise.all(
        Array.from({ length: 3000 }, (_, i) => pub.publishAsync('bound/a', `m${i}`, { qos: 1 })),
      );
      subscriber = start();
      await waitFor(async () => seen.size === 3000, 30_000, 'the backlog');
      expect(most).toBeGreaterThan(1);
      expect(most).toBeLessThanOrEqual(20);
    } finally {
      await pub.endAsync();
      await subscriber.close(1000);
      await broker.destroy();
    }
  });
});

describe('broker credentials', () => {
  test('when the broker refuses anonymous clients, then MQTT_USERNAME and MQTT_PASSWORD let the intake in', async () => {
    const broker = await Mosquitto.start({ users: { engine: 's3cret', device: 'd3vice' } });
    const topicPrefix = `${prefix}-auth`;
    const secured = await startConsumer('auth', {
      mqttUrl: broker.url,
      mqttTopicPrefix: topicPrefix,
      mqttUsername: 'engine',
      mqttPassword: 's3cret',
    });
    const pub = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      username: 'device',
      password: 'd3vice',
      reconnectPeriod: 0,
    });
    try {
      await pub.publishAsync(
        `${topicPrefix}/meters/M-auth`,
        JSON.stringify(meter(undefined, 3000)),
        {
          qos: 1,
        },
      );
      expect(await waitForHistory('meter', 'M-auth', 1)).toEqual([BASE_MS + 3_000_000]);
      await expect(
        mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 }),
      ).rejects.toThrow(/Not authorized|Bad User Name or Password/i);
      // At start, wrong credentials are named as such, not as a broker to install.
      const refused = assertMqttBrokerReachable({
        mqttUrl: broker.url,
        mqttUsername: 'engine',
        mqttPassword: 'wrong',
      });
      await expect(refused).rejects.toThrow(
        /refused the login .*\n.*MQTT_USERNAME and MQTT_PASSWORD/,
      );
      await expect(refused).rejects.not.toThrow(/apt-get/);
    } finally {
      await pub.endAsync();
      await secured.close();
      await broker.destroy();
    }
  });
});

describe('broker drops', () => {
  test('when the broker drops messages for a client over its queue limit, then the intake exports its count', async () => {
    const broker = await Mosquitto.start({ maxQueuedMessages: 5, sysIntervalS: 1 });
    const consumer = await startConsumer('drops', { mqttUrl: broker.url });
    // A device's session that is away: the broker queues 5 of its 20 messages and drops 15.
    const away = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: `away-${prefix}`,
      clean: false,
      reconnectPeriod: 0,
      properties: { sessionExpiryInterval: 300 },
    });
    const pub = await connectPublisher(broker.url);
    const dropped = async () =>
      sampleValue(await consumer.service.registry.metrics(), 'energy_mqtt_broker_dropped_messages');
    try {
      await away.subscribeAsync('drops/away', { qos: 1 });
      await away.endAsync();
      for (let i = 0; i < 20; i++) await pub.publishAsync('drops/away', `m${i}`, { qos: 1 });
      await waitFor(async () => (await dropped()) === 15, 10_000, 'the 15 dropped');
    } finally {
      await pub.endAsync();
      await consumer.close();
      await broker.destroy();
    }
  });

  test('when the broker restarts, then its drops are still watched', async () => {
    const broker = await Mosquitto.start({ maxQueuedMessages: 5, sysIntervalS: 1 });
    const consumer = await startConsumer('drops-restart', { mqttUrl: broker.url });
    const dropped = async () =>
      sampleValue(await consumer.service.registry.metrics(), 'energy_mqtt_broker_dropped_messages');
    try {
      await broker.kill('SIGTERM');
      await broker.start();
      const away = await mqtt.connectAsync(broker.url, {
        protocolVersion: 5,
        clientId: `away-restart-${prefix}`,
        clean: false,
        reconnectPeriod: 0,
        properties: { sessionExpiryInterval: 300 },
      });
      await away.subscribeAsync('drops/away-restart', { qos: 1 });
      await away.endAsync();
      const pub = await connectPublisher(broker.url);
      for (let i = 0; i < 8; i++) await pub.publishAsync('drops/away-restart', `m${i}`, { qos: 1 });
      await pub.endAsync();
      // The restarted broker counts from 0: 3 of the 8 dropped, seen after the reconnect.
      await waitFor(async () => (await dropped()) === 3, 15_000, 'the 3 dropped after the restart');
    } finally {
      await consumer.close();
      await broker.destroy();
    }
  });
});

describe('broker restarts', () => {
  test('when MQTT_SHARED_SUBSCRIPTION is off and the broker restarts while the engine is away, then what is published meanwhile is queued and stored', async () => {
    const broker = await Mosquitto.start();
    const topicPrefix = `${prefix}-plain`;
    const settings = { mqttUrl: broker.url, mqttTopicPrefix: topicPrefix };
    let consumer = await startConsumer('plain', {
      ...settings,
      mqttSharedSubscription: 'off',
    });
    try {
      await consumer.close(); // its session, and its subscription, stay
      await broker.kill('SIGTERM'); // saves the session
      await broker.start();
      const pub = await connectPublisher(broker.url);
      const ack = await pub.publishAsync(
        `${topicPrefix}/meters/M-restart`,
        JSON.stringify(meter(undefined, 4000)),
        { qos: 1 },
      );
      await pub.endAsync();
      // 0x10 (no matching subscribers) is what a shared subscription gets from Mosquitto 2.0.11.
      expect((ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0).toBe(0);
      consumer = await startConsumer('plain', { ...settings, mqttSharedSubscription: 'off' });
      expect(await waitForHistory('meter', 'M-restart', 1)).toEqual([BASE_MS + 4_000_000]);
    } finally {
      await consumer.close();
      await broker.destroy();
    }
  });

  test('when the broker comes back without the session it held for the intake (restarted without saving it), then the intake warns that what it held meanwhile is lost', async () => {
    const broker = await Mosquitto.start({ autosaveS: 3600 });
    const warnings: string[] = [];
    const subscriber = startAckAfterStoreSubscriber({
      url: broker.url,
      clientId: `lost-session-${ctx.config.redisPrefix}`,
      subscription: 'lost/#',
      receiveMaximum: 10,
      sessionExpiryS: 600,
      handle: async () => REASON_SUCCESS,
      logger: pino({ level: 'warn' }, { write: (line: string) => warnings.push(line) }),
    });
    try {
      await waitFor(async () => subscriber.ready, 10_000, 'subscribed');
      expect(warnings).toEqual([]);
      await broker.kill('SIGKILL'); // never saved: the session is gone
      await broker.start();
      await waitFor(async () => subscriber.ready, 15_000, 'subscribed again');
      expect(warnings.join('')).toMatch(/the broker kept no session for this client/);
    } finally {
      await subscriber.close(2000, { endSession: true });
      await broker.destroy();
    }
  });
});

describe('the API process with MQTT_URL', () => {
  test('when MQTT_URL is set, then the API consumes MQTT and its readiness reports the broker', async () => {
    const broker = await Mosquitto.start();
    const port = await freePort();
    const topicPrefix = `${prefix}-api`;
    const api = startProcess(
      'src/server.ts',
      envFor(ctx.config, {
        PORT: String(port),
        MQTT_URL: broker.url,
        MQTT_TOPIC_PREFIX: topicPrefix,
      }),
    );
    const base = `http://127.0.0.1:${port}`;
    const readiness = async () => {
      const res = await fetch(`${base}/health/ready`);
      return { status: res.status, body: (await res.json()) as { checks: Record<string, string> } };
    };
    try {
      await waitForHttp(`${base}/health/ready`, 30_000);
      expect((await readiness()).body.checks.mqtt).toBe('ok');
      const pub = await connectPublisher(broker.url);
      await pub.publishAsync(
        `${topicPrefix}/vehicles/V-api`,
        JSON.stringify(vehicle(undefined, 2000)),
        {
          qos: 1,
        },
      );
      await pub.endAsync();
      await waitFor(
        async () => (await fetch(`${base}/v1/vehicles/V-api/status`)).status === 200,
        10_000,
        'the vehicle status',
      );

      await broker.kill('SIGTERM');
      await waitFor(async () => (await readiness()).status === 503, 10_000, 'readiness 503');
      expect((await readiness()).body.checks.mqtt).toMatch(
        /^failing: not connected to the MQTT broker/,
      );
      await broker.start();
      await waitFor(async () => (await readiness()).status === 200, 15_000, 'readiness back');
    } finally {
      api.child.kill('SIGTERM');
      expect(await api.exited).toBe(0);
      await broker.destroy();
    }
  });
});
