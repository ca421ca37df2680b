import request from 'supertest';
import { gzipSync } from 'node:zlib';
import type { Queue } from 'bullmq';
import { createApp } from '../src/app';
import { IngestQueues } from '../src/queue/ingest-queue';
import { INTAKE_BELOW_READINGS } from '../src/queue/intake';
import { createRedis } from '../src/redis';
import { createRedisKeys } from '../src/redis-keys';
import { MAX_KWH, type Reading } from '../src/devices/device-kinds';
import type { IngestJobData } from '../src/queue/ingest-queue';
import {
  emptyQueue,
  openQueue,
  queuedReadings as queuedReadingsOf,
  startTestApi,
  storesWaiting,
  type TestApi,
} from './helpers/engine';
import { SEED_METER, SEED_VEHICLE } from './helpers/readings';
import { createTestContext, type TestContext } from './helpers/test-env';

const METER = SEED_METER;
const VEHICLE = SEED_VEHICLE;

let ctx: TestContext;
let engine: TestApi;
let queue: Queue<IngestJobData>;

beforeAll(async () => {
  ctx = await createTestContext();
  engine = await startTestApi(ctx);
  queue = openQueue(ctx.redis, ctx.config.redisPrefix);
});
afterAll(async () => {
  await queue.close();
  await engine.close();
  await ctx.cleanup();
});
beforeEach(async () => {
  await emptyQueue(queue);
});

const ingest = () => request(engine.api.app).post('/v1/telemetry/ingest');
const sendJson = (body: unknown) =>
  ingest().set('Content-Type', 'application/json').send(JSON.stringify(body));

const queuedReadings = (): Promise<Reading[]> => queuedReadingsOf(queue);

describe('POST /v1/telemetry/ingest: one reading', () => {
  test('when the meter seed payload is sent as written, then it is accepted as a meter and queued', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send(
        '{"meterId":"M-123","kwhConsumedAc":150.5,"voltage":230,"timestamp":"2024-03-20T10:00:00Z"}',
      )
      .expect(202);
    expect(res.body).toEqual({ accepted: 1, type: 'meter', id: 'M-123' });
    expect(await queuedReadings()).toEqual([
      {
        type: 'meter',
        id: 'M-123',
        ts: Date.parse('2024-03-20T10:00:00Z'),
        kwhConsumedAc: 150.5,
        voltage: 230,
      },
    ]);
  });

  test('when the vehicle seed payload is sent as written, then it is accepted as a vehicle and queued', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send(
        '{"vehicleId":"V-456","soc":85,"kwhDeliveredDc":120.2,"batteryTemp":35.5,"timestamp":"2024-03-20T10:00:00Z"}',
      )
      .expect(202);
    expect(res.body).toEqual({ accepted: 1, type: 'vehicle', id: 'V-456' });
    const [reading] = await queuedReadings();
    expect(reading).toEqual({
      type: 'vehicle',
      id: 'V-456',
      ts: Date.parse('2024-03-20T10:00:00Z'),
      soc: 85,
      kwhDeliveredDc: 120.2,
      batteryTemp: 35.5,
    });
  });

  const future = new Date(Date.now() + 3600_000).toISOString();
  const invalid: [string, unknown, string, RegExp, string][] = [
    [
      'soc above 100',
      { ...VEHICLE, soc: 101 },
      '/soc',
      /must be a number from 0 to 100$/,
      'invalid_reading',
    ],
    [
      'negative AC energy',
      { ...METER, kwhConsumedAc: -1 },
      '/kwhConsumedAc',
      /must be a number from 0 to 1000000000$/,
      'invalid_reading',
    ],
    [
      'voltage above 1000',
      { ...METER, voltage: 1001 },
      '/voltage',
      /must be a number from 0 to 1000$/,
      'invalid_reading',
    ],
    [
      'battery colder than -50',
      { ...VEHICLE, batteryTemp: -51 },
      '/batteryTemp',
      /must be a number from -50 to 100$/,
      'invalid_reading',
    ],
    [
      'a number sent as a string',
      { ...VEHICLE, soc: '85' },
      '/soc',
      /must be a number/,
      'invalid_reading',
    ],
    [
      'a null number',
      { ...METER, voltage: null },
      '/voltage',
      /must be a number/,
      'invalid_reading',
    ],
    [
      'a missing field',
      { meterId: 'M-1', voltage: 230, timestamp: METER.timestamp },
      '/kwhConsumedAc',
      /is required/,
      'invalid_reading',
    ],
    [
      'an unknown field',
      { ...METER, extra: 1 },
      '/extra',
      /not an accepted field/,
      'invalid_reading',
    ],
    [
      // Counted, not listed: the schema would report each, for 150,000 keys 450 ms of the API.
      'fifty thousand unknown fields',
      { ...METER, ...Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i])) },
      '/',
      /must have at most 4 properties/,
      'invalid_reading',
    ],
    [
      'an id with a space',
      { ...METER, meterId: 'M 1' },
      '/meterId',
      /1-64 characters/,
      'invalid_reading',
    ],
    [
      'an id of dots alone (no URL path segment can carry it)',
      { ...METER, meterId: '..' },
      '/meterId',
      /not dots alone/,
      'invalid_reading',
    ],
    [
      'an id of 65 characters',
      { ...METER, meterId: 'M'.repeat(65) },
      '/meterId',
      /^must be 1-64 characters from A-Z/,
      'invalid_reading',
    ],
    [
      'an empty id',
      { ...METER, meterId: '' },
      '/meterId',
      /^must be 1-64 characters from A-Z/,
      'invalid_reading',
    ],
    [
      'a timestamp of more than 64 characters (RFC 3339 as such: its fraction is long)',
      { ...METER, timestamp: `2024-03-20T10:00:00.${'0'.repeat(60)}Z` },
      '/timestamp',
      /^must be at most 64 characters$/,
      'invalid_reading',
    ],
    [
      'a timestamp without zone',
      { ...METER, timestamp: '2024-03-20T10:00:00' },
      '/timestamp',
      /RFC 3339/,
      'invalid_reading',
    ],
    [
      'a date that does not exist',
      { ...METER, timestamp: '2024-02-30T10:00:00Z' },
      '/timestamp',
      /RFC 3339|real date/,
      'invalid_reading',
    ],
    [
      'a timestamp in the future',
      { ...METER, timestamp: future },
      '/timestamp',
      /ahead of the server clock/,
      'timestamp_in_future',
    ],
    [
      'both ids',
      { ...METER, vehicleId: 'V-1' },
      '/',
      /both meterId and vehicleId/,
      'unrecognised_reading',
    ],
    [
      'neither id',
      { voltage: 230, timestamp: METER.timestamp },
      '/',
      /neither meterId nor vehicleId/,
      'unrecognised_reading',
    ],
    [
      'an array as a reading field',
      { ...METER, voltage: [230] },
      '/voltage',
      /must be a number/,
      'invalid_reading',
    ],
    ['a string body', 'hello', '/', /must be an object/, 'invalid_reading'],
    [
      'energy past MAX_KWH (sums of it would overflow float8 in reports)',
      { ...METER, kwhConsumedAc: 1.7e308 },
      '/kwhConsumedAc',
      /must be a number from 0 to 1000000000$/,
      'invalid_reading',
    ],
    [
      'a vehicle energy past MAX_KWH',
      { ...VEHICLE, kwhDeliveredDc: MAX_KWH * 1.01 },
      '/kwhDeliveredDc',
      /must be a number from 0 to 1000000000$/,
      'invalid_reading',
    ],
  ];

  test.each(invalid)(
    'when a reading has %s, then 400 names the field',
    async (_name, body, path, message, code) => {
      const res = await sendJson(body).expect(400);
      expect(res.body.error).toBe(code);
      expect(typeof res.body.message).toBe('string');
      expect(res.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
      const detail = res.body.details.find((d: { path: string }) => d.path === path);
      expect(detail.message).toMatch(message);
      expect(await queuedReadings()).toEqual([]);
    },
  );

  test('when an optional field is sent as null, then 400 says it may be left out; a required one is only its rule', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send({ ...METER, voltage: null, kwhConsumedAc: null })
      .expect(400);
    expect(res.body.details).toEqual([
      { path: '/kwhConsumedAc', message: 'must be a number from 0 to 1000000000' },
      {
        path: '/voltage',
        message: 'must be a number from 0 to 1000, or be left out (null is not a value)',
      },
    ]);
  });

  test('when a number overflows to Infinity (1e400), then 400 names the field', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send(
        '{"meterId":"M-1","kwhConsumedAc":1e400,"voltage":230,"timestamp":"2024-03-20T10:00:00Z"}',
      )
      .expect(400);
    expect(res.body.details).toEqual([
      { path: '/kwhConsumedAc', message: 'must be a number from 0 to 1000000000' },
    ]);
  });

  test('when timestamps carry an hour-only offset, a space for the T, or an offset without a colon, then each is the instant it names', async () => {
    const at = (id: string, timestamp: string) => ({ ...METER, meterId: id, timestamp });
    await ingest()
      .set('Content-Type', 'application/json')
      .send([
        at('T-1', '2024-03-20T15:00:00+05'),
        at('T-2', '2024-03-20 15:00:00+05'),
        at('T-3', '2024-03-20T15:30:00+0530'),
        at('T-4', '2024-03-20T08:00:00-02'),
      ])
      .expect(202);
    // Before, the first was refused as "not a real instant" where the others were taken.
    const stored = await queuedReadings();
    expect(stored.map((r) => [r.id, new Date(r.ts).toISOString()])).toEqual(
      ['T-1', 'T-2', 'T-3', 'T-4'].map((id) => [id, '2024-03-20T10:00:00.000Z']),
    );
  });

  test('when a timestamp is a leap second (23:59:60 UTC, in any offset), then it is the last millisecond of its day; second 60 elsewhere is refused', async () => {
    const at = (id: string, timestamp: string) => ({ ...METER, meterId: id, timestamp });
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send([
        at('L-1', '2016-12-31T23:59:60Z'),
        at('L-2', '2017-01-01T00:59:60.5+01:00'),
        at('L-3', '2016-12-31T22:59:60Z'),
      ])
      .expect(207);
    // RFC 3339 allows second 60, and so does the API document's date-time: it was refused.
    expect(res.body.errors).toEqual([
      expect.objectContaining({
        index: 2,
        details: [expect.objectContaining({ path: '/timestamp' })],
      }),
    ]);
    const stored = await queuedReadings();
    expect(stored.map((r) => [r.id, new Date(r.ts).toISOString()])).toEqual(
      ['L-1', 'L-2'].map((id) => [id, '2016-12-31T23:59:59.999Z']),
    );
  });

  test('when a number is nearer 0 than SMALLEST_MEASURE (5e-324), then 400 names the field; 1e-9 and 0 are accepted', async () => {
    // 5e-324 kWh made PostgreSQL's float8 arithmetic underflow: a 500 on every report of its hour.
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send(
        '[{"meterId":"M-1","kwhConsumedAc":5e-324,"timestamp":"2024-03-20T10:00:00Z"},' +
          '{"vehicleId":"V-1","soc":50,"kwhDeliveredDc":1e-9,"batteryTemp":-1e-12,"timestamp":"2024-03-20T10:00:00Z"},' +
          '{"meterId":"M-2","kwhConsumedAc":0,"voltage":1e-9,"timestamp":"2024-03-20T10:00:00Z"}]',
      )
      .expect(207);
    const rule =
      "must be 0 or at least 1e-9 in size (a smaller value is below any instrument's resolution)";
    expect(res.body.accepted).toBe(1);
    expect(res.body.errors.map((e: { details: unknown }) => e.details)).toEqual([
      [{ path: '/kwhConsumedAc', message: rule }],
      [{ path: '/batteryTemp', message: rule }],
    ]);
    expect(await queuedReadings()).toEqual([
      expect.objectContaining({ id: 'M-2', kwhConsumedAc: 0, voltage: 1e-9 }),
    ]);
  });

  test('when the JSON is malformed, then 400 invalid_json', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send('{"meterId": ')
      .expect(400);
    expect(res.body.error).toBe('invalid_json');
    expect(res.body.message).toMatch(/not valid JSON/);
  });

  test('when NDJSON is sent as application/json, then 400 says so and names the content type to send', async () => {
    const lines = [METER, { ...METER, timestamp: '2024-03-20T10:01:00Z' }];
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send(lines.map((l) => JSON.stringify(l)).join('\n'))
      .expect(400);
    expect(res.body).toMatchObject({
      error: 'invalid_json',
      message: expect.stringContaining('Content-Type: application/x-ndjson'),
    });
    // Blank lines (CRLF too), or a bad second line, say the same.
    for (const body of [
      `${JSON.stringify(METER)}\r\n\r\n${JSON.stringify(METER)}\r\n`,
      `${JSON.stringify(METER)}\n{"meterId":`,
    ]) {
      const other = await ingest().set('Content-Type', 'application/json').send(body).expect(400);
      expect(other.body.message).toContain('Content-Type: application/x-ndjson');
    }
    // A broken document that is not NDJSON gets the parser's words.
    const pretty = await ingest()
      .set('Content-Type', 'application/json')
      .send('{\n  "meterId": "M-1",\n}')
      .expect(400);
    expect(pretty.body.message).toMatch(/^The body is not valid JSON: /);
  });

  test('when the content type is not JSON or NDJSON, then 415', async () => {
    const res = await ingest()
      .set('Content-Type', 'text/plain')
      .send(JSON.stringify(METER))
      .expect(415);
    expect(res.body.error).toBe('unsupported_media_type');
    expect(res.body.message).toMatch(/application\/json/);
  });

  test('when __proto__ is smuggled in, then it is rejected and Object.prototype is untouched', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send(
        '{"meterId":"M-1","kwhConsumedAc":1,"voltage":230,"timestamp":"2024-03-20T10:00:00Z","__proto__":{"polluted":1}}',
      )
      .expect(400);
    expect(res.body.details).toEqual([{ path: '/__proto__', message: 'is not an accepted field' }]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('when unknown keys are as long as a body allows, then the answer names them cut short, as JSON pointers', async () => {
    const huge = 'k'.repeat(200_000);
    const reading = { ...METER, [`${huge}1`]: 1, [`${huge}2`]: 2, 'a/b~c': 3 };
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .send(JSON.stringify([reading, reading]))
      .expect(400);
    // Before, every key was named whole in each reading's message and details, and again at the top.
    expect(res.text.length).toBeLessThan(5_000);
    const cut = `/${'k'.repeat(64)}…`;
    // The two keys cut alike are one line.
    expect(res.body.errors[0].details).toEqual([
      { path: cut, message: 'is not an accepted field' },
      { path: '/a~1b~0c', message: 'is not an accepted field' },
    ]);
  });
});

describe('POST /v1/telemetry/ingest: batches', () => {
  const meter = (i: number) => ({ ...METER, meterId: `M-${i}` });
  const vehicle = (i: number) => ({ ...VEHICLE, vehicleId: `V-${i}` });

  test('when an array of valid mixed readings is sent, then 202 counts them and all are queued', async () => {
    const res = await sendJson([meter(1), vehicle(1), meter(2)]).expect(202);
    expect(res.body).toEqual({ accepted: 3, rejected: 0 });
    expect((await queuedReadings()).map((r) => `${r.type}:${r.id}`).sort()).toEqual([
      'meter:M-1',
      'meter:M-2',
      'vehicle:V-1',
    ]);
  });

  test('when some readings are invalid, then 207 lists each by index and the valid ones are queued', async () => {
    const res = await sendJson([meter(1), { ...vehicle(1), soc: 300 }, 42, vehicle(2)]).expect(207);
    expect(res.body.accepted).toBe(2);
    expect(res.body.rejected).toBe(2);
    expect(res.body.errors).toEqual([
      expect.objectContaining({
        index: 1,
        error: 'invalid_reading',
        details: [{ path: '/soc', message: 'must be a number from 0 to 100' }],
      }),
      expect.objectContaining({ index: 2, error: 'invalid_reading' }),
    ]);
    expect((await queuedReadings()).map((r) => r.id).sort()).toEqual(['M-1', 'V-2']);
  });

  test('when no reading of a batch is valid, then 400 with every error', async () => {
    const res = await sendJson([{ ...meter(1), voltage: -5 }, { foo: 1 }]).expect(400);
    expect(res.body.error).toBe('no_valid_readings');
    expect(res.body.details[0].path).toBe('/0/voltage');
    expect(res.body.errors).toHaveLength(2);
    expect(await queuedReadings()).toEqual([]);
  });

  test('when a request holds thousands of problems, then the answer lists the first of them and counts the rest: its size stays bounded', async () => {
    const unknownFields = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`f${i}`, 0]));
    const one = await sendJson({ ...meter(1), ...unknownFields }).expect(400);
    expect(one.body.details).toHaveLength(11);
    expect(one.body.details[10]).toEqual({ path: '/', message: 'has 50 more problems not listed' });
    expect(one.body.message).toMatch(/; \/ has 50 more problems not listed$/);
    // The fields it needs are listed before the unknown ones: a cut never hides them.
    const untimed: Record<string, unknown> = { ...unknownFields, ...meter(1), voltage: -5 };
    delete untimed.timestamp;
    const missing = await sendJson(untimed).expect(400);
    expect(missing.body.details.slice(0, 2)).toEqual([
      { path: '/timestamp', message: 'is required' },
      { path: '/voltage', message: expect.stringMatching(/^must be a number/) },
    ]);

    const bad = Array.from({ length: 300 }, () => ({ ...meter(1), ...unknownFields }));
    const none = await sendJson(bad).expect(400);
    expect({ rejected: none.body.rejected, listed: none.body.errors.length }).toEqual({
      rejected: 300,
      listed: 100,
    });
    expect(none.body.message).toMatch(/^None of the 300 readings is valid/);
    const some = await sendJson([meter(2), ...bad]).expect(207);
    expect({ accepted: some.body.accepted, rejected: some.body.rejected }).toEqual({
      accepted: 1,
      rejected: 300,
    });
    expect(some.body.errors.map((e: { index: number }) => e.index)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    expect(JSON.stringify(some.body).length).toBeLessThan(150_000);
  });

  test('when the array is empty, then 400', async () => {
    const res = await sendJson([]).expect(400);
    expect(res.body.error).toBe('empty_batch');
  });

  test('when more readings than MAX_BATCH_READINGS are sent, then 413 and nothing is queued', async () => {
    const body = Array.from({ length: ctx.config.maxBatchReadings + 1 }, (_, i) => meter(i));
    const res = await sendJson(body).expect(413);
    expect(res.body.message).toMatch(/at most 5000/);
    expect(await queuedReadings()).toEqual([]);
  });

  test('when NDJSON holds more lines than MAX_BATCH_READINGS, then 413 names their number, and their JSON is never parsed', async () => {
    const lines = 'not json\n'.repeat(ctx.config.maxBatchReadings + 1);
    const parse = jest.spyOn(JSON, 'parse');
    try {
      const res = await ingest().set('Content-Type', 'application/x-ndjson').send(lines);
      expect(res.status).toBe(413);
      expect(res.body.error).toBe('too_many_readings');
      expect(res.body.message).toBe(
        `It holds ${ctx.config.maxBatchReadings + 1} readings; at most ${ctx.config.maxBatchReadings} (MAX_BATCH_READINGS) are accepted in one request or MQTT message`,
      );
      expect(parse.mock.calls.filter(([text]) => text === 'not json')).toEqual([]);
    } finally {
      parse.mockRestore();
    }
  });

  test('when the body is larger than BODY_LIMIT, then 413', async () => {
    const big = JSON.stringify([{ ...METER, meterId: 'x'.repeat(64) }]).padEnd(
      ctx.config.bodyLimitBytes + 10,
      ' ',
    );
    const res = await ingest().set('Content-Type', 'application/json').send(big);
    expect(res.status).toBe(413);
  });

  test('when NDJSON is sent, then each line is a reading and a bad line is reported by index', async () => {
    const lines = [
      JSON.stringify(meter(1)),
      '',
      JSON.stringify(vehicle(1)),
      '{broken',
      JSON.stringify(meter(2)),
    ];
    const res = await ingest()
      .set('Content-Type', 'application/x-ndjson')
      .send(lines.join('\n'))
      .expect(207);
    expect(res.body).toMatchObject({ accepted: 3, rejected: 1 });
    expect(res.body.errors).toEqual([expect.objectContaining({ index: 2, error: 'invalid_json' })]);
  });

  test('when the body is gzip-compressed, then it is accepted like plain JSON', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((body) => body)
      .send(gzipSync(JSON.stringify([meter(1), vehicle(1)])))
      .expect(202);
    expect(res.body).toEqual({ accepted: 2, rejected: 0 });
  });

  test('when gzip NDJSON is sent, then it is accepted', async () => {
    const body = gzipSync([meter(7), vehicle(7)].map((r) => JSON.stringify(r)).join('\n'));
    await ingest()
      .set('Content-Type', 'application/x-ndjson')
      .set('Content-Encoding', 'gzip')
      .send(body)
      .expect(202);
  });

  test('when the gzip stream is truncated, then 400 invalid_gzip', async () => {
    const body = gzipSync(JSON.stringify([meter(1)]));
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((b) => b)
      .send(body.subarray(0, body.length - 8))
      .expect(400);
    expect(res.body.error).toBe('invalid_gzip');
  });

  test('when gzip expands past BODY_LIMIT (a zip bomb), then 413 without inflating it all', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((body) => body)
      .send(bomb);
    expect(res.status).toBe(413);
    // The body sent is 64 KB: the limit it passed is the gunzipped one, and the answer says so.
    expect(res.body.message).toBe(
      `The body is larger than ${4 * 1024 * 1024} bytes once gunzipped`,
    );
  });

  test('when a gzip body comes without Content-Encoding, then 400 says to send the header; an empty gzip body is empty_body', async () => {
    const unlabelled = await ingest()
      .set('Content-Type', 'application/json')
      .serialize((body) => body)
      .send(gzipSync(JSON.stringify(METER)));
    expect(unlabelled.status).toBe(400);
    // Before: "The body is not valid UTF-8", which did not say what to do.
    expect(unlabelled.body.message).toMatch(/gzip .*without Content-Encoding: gzip/);
    const empty = await ingest()
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .send('');
    expect([empty.status, empty.body.error]).toEqual([400, 'empty_body']);
    const twice = await ingest()
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((body) => body)
      .send(gzipSync(gzipSync(JSON.stringify(METER))));
    expect([twice.status, twice.body.message]).toEqual([
      400,
      'The body is gzip inside gzip: gzip it once',
    ]);
  });

  test('when an unknown content encoding is used, then 415', async () => {
    const res = await ingest()
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'br')
      .send('{}');
    expect(res.status).toBe(415);
    expect(res.body.error).toBe('unsupported_encoding');
  });

  test('when many single readings arrive concurrently, then they are coalesced into fewer jobs', async () => {
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) => sendJson({ ...METER, meterId: `M-c${i}` })),
    );
    expect(responses.every((r) => r.status === 202)).toBe(true);
    expect(await queuedReadings()).toHaveLength(200);
    expect(await storesWaiting(queue)).toBeLessThan(200);
  });

  test('when a job is queued, then it carries attempts with backoff and is kept on failure', async () => {
    const batch = Array.from({ length: INTAKE_BELOW_READINGS }, (_, i) => ({
      ...METER,
      meterId: `M-j${i}`,
    }));
    await sendJson(batch).expect(202);
    const [job] = await queue.getJobs(['waiting']);
    expect(job.opts.attempts).toBe(ctx.config.flushAttempts);
    expect(job.opts.backoff).toEqual({
      type: 'capped-exponential',
      delay: ctx.config.flushBackoffMs,
    });
    expect(job.opts.removeOnFail).toBe(false);
    expect(typeof job.data.acceptedAt).toBe('number');
  });
});

describe('live state', () => {
  const at = (minute: number) => `2024-03-20T10:${String(minute).padStart(2, '0')}:00Z`;

  test('when readings arrive out of order, then live state stays on the newest', async () => {
    await sendJson({ ...VEHICLE, vehicleId: 'V-ooo', soc: 50, timestamp: at(5) }).expect(202);
    await sendJson([
      { ...VEHICLE, vehicleId: 'V-ooo', soc: 10, timestamp: at(1) },
      { ...VEHICLE, vehicleId: 'V-ooo', soc: 60, timestamp: at(6) },
      { ...VEHICLE, vehicleId: 'V-ooo', soc: 20, timestamp: at(2) },
    ]).expect(202);
    await sendJson({ ...VEHICLE, vehicleId: 'V-ooo', soc: 30, timestamp: at(3) }).expect(202);
    const res = await request(engine.api.app).get('/v1/vehicles/V-ooo/status').expect(200);
    expect(res.body).toEqual({
      vehicleId: 'V-ooo',
      timestamp: '2024-03-20T10:06:00.000Z',
      soc: 60,
      kwhDeliveredDc: 120.2,
      batteryTemp: 35.5,
      energyReadings: 'interval',
      source: 'live',
    });
    // The older readings are still queued for history.
    expect((await queuedReadings()).filter((r) => r.id === 'V-ooo')).toHaveLength(5);
  });

  test('when one request holds a device twice, then live state keeps the newest; of the same timestamp, the first, as history does', async () => {
    await sendJson([
      { ...VEHICLE, vehicleId: 'V-new', soc: 61, timestamp: at(6) },
      { ...VEHICLE, vehicleId: 'V-new', soc: 21, timestamp: at(2) },
    ]).expect(202);
    const first = await request(engine.api.app).get('/v1/vehicles/V-new/status').expect(200);
    expect(first.body).toMatchObject({ soc: 61, source: 'live' });
    await sendJson([
      { ...VEHICLE, vehicleId: 'V-same', soc: 41, timestamp: at(7) },
      { ...VEHICLE, vehicleId: 'V-same', soc: 42, timestamp: at(7) },
    ]).expect(202);
    await sendJson({ ...VEHICLE, vehicleId: 'V-same', soc: 43, timestamp: at(7) }).expect(202);
    const res = await request(engine.api.app).get('/v1/vehicles/V-same/status').expect(200);
    expect(res.body).toMatchObject({ soc: 41, source: 'live' });
  });

  test("when a request holds an hour of one device's readings, then live state is sent its newest alone, and history all of them", async () => {
    // Spied, not replaced: the script still runs in Redis.
    const script = jest.spyOn(
      ctx.redis as unknown as { setLiveIfNewer: (...args: unknown[]) => Promise<number> },
      'setLiveIfNewer',
    );
    try {
      const hour = Array.from({ length: 60 }, (_, minute) => ({
        ...VEHICLE,
        vehicleId: 'V-hour',
        soc: minute,
        timestamp: at(minute),
      }));
      // Out of order: the newest is in the middle.
      await sendJson([...hour.slice(30), ...hour.slice(0, 30)]).expect(202);
      expect(script).toHaveBeenCalledTimes(1);
      expect(script.mock.calls[0][0]).toBe(1); // one key
    } finally {
      script.mockRestore();
    }
    const res = await request(engine.api.app).get('/v1/vehicles/V-hour/status').expect(200);
    expect(res.body).toMatchObject({ soc: 59, timestamp: '2024-03-20T10:59:00.000Z' });
    expect((await queuedReadings()).filter((r) => r.id === 'V-hour')).toHaveLength(60);
  });

  test('when a newer reading leaves out an optional field, then the status has none, not the older value', async () => {
    await sendJson({ ...METER, meterId: 'M-opt', voltage: 229, timestamp: at(8) }).expect(202);
    await sendJson({ meterId: 'M-opt', kwhConsumedAc: 151, timestamp: at(9) }).expect(202);
    const res = await request(engine.api.app).get('/v1/meters/M-opt/status').expect(200);
    expect(res.body).toMatchObject({
      timestamp: '2024-03-20T10:09:00.000Z',
      voltage: null,
      source: 'live',
    });
  });

  test('when many devices report in one request, then each status is its own newest reading', async () => {
    const devices = 1200; // more than one script call's worth
    await sendJson(
      Array.from({ length: devices * 2 }, (_, i) => ({
        ...METER,
        meterId: `M-many${i % devices}`,
        kwhConsumedAc: i,
        timestamp: at(i < devices ? 11 : 10),
      })),
    ).expect(202);
    for (const n of [0, 499, 500, 1199]) {
      const res = await request(engine.api.app).get(`/v1/meters/M-many${n}/status`).expect(200);
      expect(res.body).toMatchObject({ kwhConsumedAc: n, timestamp: '2024-03-20T10:11:00.000Z' });
    }
  });

  test('when a meter reported, then its status is answered from Redis', async () => {
    await sendJson({ ...METER, meterId: 'M-live', voltage: 231 }).expect(202);
    const res = await request(engine.api.app).get('/v1/meters/M-live/status').expect(200);
    expect(res.body).toEqual({
      meterId: 'M-live',
      timestamp: '2024-03-20T10:00:00.000Z',
      kwhConsumedAc: 150.5,
      voltage: 231,
      energyReadings: 'interval',
      source: 'live',
    });
  });

  test('when Redis has no entry but PostgreSQL has, then status falls back to the status table', async () => {
    await ctx
      .db('meter_status')
      .insert({ meter_id: 'M-db', ts: '2024-03-20T09:00:00Z', kwh_consumed_ac: 3, voltage: 229 });
    const res = await request(engine.api.app).get('/v1/meters/M-db/status').expect(200);
    expect(res.body).toMatchObject({ meterId: 'M-db', voltage: 229, source: 'database' });
  });

  test('when live state is older than the status table (Redis lost its data, then a late reading came), then status answers the newer, from PostgreSQL', async () => {
    await ctx
      .db('meter_status')
      .insert({ meter_id: 'M-lost', ts: at(2), kwh_consumed_ac: 7, voltage: 230 });
    await sendJson({ ...METER, meterId: 'M-lost', kwhConsumedAc: 1, timestamp: at(0) }).expect(202);
    const res = await request(engine.api.app).get('/v1/meters/M-lost/status').expect(200);
    expect(res.body).toMatchObject({
      timestamp: '2024-03-20T10:02:00.000Z',
      kwhConsumedAc: 7,
      source: 'database',
    });
    // A newer reading is newer than both: live again.
    await sendJson({ ...METER, meterId: 'M-lost', kwhConsumedAc: 9, timestamp: at(3) }).expect(202);
    const newer = await request(engine.api.app).get('/v1/meters/M-lost/status').expect(200);
    expect(newer.body).toMatchObject({ kwhConsumedAc: 9, source: 'live' });
  });

  test('when a device was never seen, then 404; when its id is malformed, then 400', async () => {
    await request(engine.api.app).get('/v1/vehicles/V-never/status').expect(404);
    const res = await request(engine.api.app).get('/v1/vehicles/bad%20id/status').expect(400);
    expect(res.body.details[0].path).toBe('/vehicleId');
  });
});

describe('backpressure and Redis outages', () => {
  test('when the backlog would pass MAX_BACKLOG_READINGS, then 503 with Retry-After and nothing is queued', async () => {
    const small = await createTestContext({ MAX_BACKLOG_READINGS: '5', MAX_BATCH_READINGS: '5' });
    const smallEngine = await (await import('./helpers/engine')).startTestApi(small);
    const smallQueue = openQueue(small.redis, small.config.redisPrefix);
    try {
      const batch = Array.from({ length: 4 }, (_, i) => ({ ...METER, meterId: `M-b${i}` }));
      await request(smallEngine.api.app)
        .post('/v1/telemetry/ingest')
        .set('Content-Type', 'application/json')
        .send(batch)
        .expect(202);
      await smallEngine.api.admission.refresh();
      const res = await request(smallEngine.api.app)
        .post('/v1/telemetry/ingest')
        .set('Content-Type', 'application/json')
        .send(batch)
        .expect(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect(res.body.error).toBe('backlog_full');
      expect(await queuedReadingsOf(smallQueue)).toHaveLength(4);
    } finally {
      await smallQueue.close();
      await smallEngine.close();
      await small.cleanup();
    }
  });

  test('when Redis is unreachable, then ingest answers 503 with Retry-After within a second, and status answers what PostgreSQL knows', async () => {
    const at0 = '2024-03-20T09:00:00Z';
    const deadRedis = createRedis(
      { redisUrl: 'redis://127.0.0.1:1', redisClusterNodes: '' },
      'command',
    );
    const deadQueues = new IngestQueues({
      connection: deadRedis,
      keys: createRedisKeys('dead'),
      config: ctx.config,
    });
    const api = createApp({
      config: ctx.config,
      db: ctx.db,
      redis: deadRedis,
      queues: deadQueues,
      logger: ctx.logger,
    });
    try {
      const started = Date.now();
      const res = await request(api.app)
        .post('/v1/telemetry/ingest')
        .set('Content-Type', 'application/json')
        .send(METER);
      expect(res.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(5000); // refused, not held: a hang lasts until Redis is back
      expect(res.headers['retry-after']).toBe('1');
      expect(res.body.error).toBe('redis_unavailable');
      const ready = await request(api.app).get('/health/ready').expect(503);
      expect(ready.body.checks.redis).toMatch(
        /^failing: no connection \(\w+\): check that Redis runs at REDIS_URL/,
      );
      expect(ready.body.checks.postgres).toBe('ok');
      // A device PostgreSQL has not heard of may have readings waiting in Redis: not "never seen".
      const unknown = await request(api.app).get('/v1/meters/M-waiting/status').expect(503);
      expect(unknown.body.error).toBe('redis_unavailable');
      await ctx.db('meter_status').insert({ meter_id: 'M-stored', ts: at0, kwh_consumed_ac: 3 });
      const stored = await request(api.app).get('/v1/meters/M-stored/status').expect(200);
      expect(stored.body).toMatchObject({ kwhConsumedAc: 3, source: 'database' });
    } finally {
      api.admission.stop();
      await deadQueues.close().catch(() => undefined);
      deadRedis.disconnect();
    }
  });
});
