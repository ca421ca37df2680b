import request from 'supertest';
import v8 from 'node:v8';
import vm from 'node:vm';
import { gzipSync } from 'node:zlib';
import { startTestApi, type TestApi } from './helpers/engine';
import { seededRandom } from './helpers/readings';
import { createTestContext, type TestContext } from './helpers/test-env';

let ctx: TestContext;
let engine: TestApi;

beforeAll(async () => {
  ctx = await createTestContext({ BODY_LIMIT: '256kb' });
  engine = await startTestApi(ctx);
});
afterAll(async () => {
  await engine.close();
  await ctx.cleanup();
});

/** A real full collection (jest's workers run without --expose-gc), so heap figures are retained memory. */
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
const retainedHeap = () => {
  collectGarbage();
  return process.memoryUsage().heapUsed;
};

const random = seededRandom(20261128);
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];

/** A value of a random JSON type, sometimes hostile. */
function randomValue(depth = 0): unknown {
  const kinds = ['number', 'string', 'null', 'bool', 'array', 'object', 'huge', 'special'];
  switch (pick(depth > 3 ? kinds.slice(0, 4) : kinds)) {
    case 'number':
      return pick([
        0,
        -1,
        1e308,
        -1e308,
        5e-324,
        101,
        1001,
        -51,
        3.14,
        Number.MAX_SAFE_INTEGER + 2,
      ]);
    case 'string':
      return pick([
        '',
        'M-1',
        '2024-03-20T10:00:00Z',
        'x'.repeat(65),
        '\u0000',
        '💥',
        '<script>',
        "'; DROP TABLE x;--",
      ]);
    case 'null':
      return null;
    case 'bool':
      return random() < 0.5;
    case 'array':
      return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(depth + 1));
    case 'object':
      return randomObject(depth + 1);
    case 'huge':
      return 'y'.repeat(Math.floor(random() * 100_000));
    default:
      // JSON.parse makes __proto__ an own key, as a hostile body would.
      return pick([
        JSON.parse('{"__proto__":{"polluted":true}}') as unknown,
        JSON.parse('{"constructor":{"prototype":{"polluted":true}}}') as unknown,
      ]);
  }
}

function randomObject(depth = 0): Record<string, unknown> {
  const fields = [
    'meterId',
    'vehicleId',
    'kwhConsumedAc',
    'voltage',
    'soc',
    'kwhDeliveredDc',
    'batteryTemp',
    'timestamp',
    '__proto__',
    'constructor',
    'prototype',
    'extra',
  ];
  const obj: Record<string, unknown> = {};
  for (let i = 0; i < Math.floor(random() * 7); i++) obj[pick(fields)] = randomValue(depth);
  return obj;
}

/** A raw body: JSON of random values, or broken text, deep nesting, huge numbers, bad UTF-8. */
function randomBody(): Buffer | string {
  switch (Math.floor(random() * 9)) {
    case 0:
      return JSON.stringify(randomObject());
    case 1:
      return JSON.stringify(
        Array.from({ length: Math.floor(random() * 20) }, () => randomObject()),
      );
    case 2:
      return (
        '['.repeat(5000 + Math.floor(random() * 50_000)) + ']'.repeat(Math.floor(random() * 10))
      );
    case 3:
      return `{"meterId":"M-1","kwhConsumedAc":1e400,"voltage":230,"timestamp":"2024-03-20T10:00:00Z"}`;
    case 4:
      return Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]); // invalid UTF-8
    case 5:
      return JSON.stringify(randomObject()).slice(0, Math.floor(random() * 20));
    case 6:
      return '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"meterId":"M-1"}';
    case 7:
      return 'z'.repeat(300 * 1024); // over BODY_LIMIT
    default:
      return '';
  }
}

describe('fuzzing the ingest endpoint', () => {
  test('when thousands of random and malformed requests arrive, then every answer is a 4xx and nothing leaks', async () => {
    const heapBefore = retainedHeap();
    const statuses = new Map<number, number>();
    for (let i = 0; i < 2000; i++) {
      let body = randomBody();
      let req = request(engine.api.app).post('/v1/telemetry/ingest');
      const type = pick([
        'application/json',
        'application/x-ndjson',
        'text/plain',
        'application/json; charset=latin1',
        '',
        'application/json',
      ]);
      if (type) req = req.set('Content-Type', type);
      const gzip = random() < 0.2;
      if (gzip) {
        const zipped = gzipSync(body);
        body = random() < 0.5 ? zipped : zipped.subarray(0, Math.floor(zipped.length / 2)); // truncated
        req = req.set('Content-Encoding', 'gzip');
      } else if (random() < 0.05) {
        req = req.set('Content-Encoding', pick(['br', 'deflate', 'compress']));
      }
      const res = await req.serialize((b) => b).send(body as never);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status !== 202 && res.status !== 207) {
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(res.body.error).toEqual(expect.any(String));
        expect(JSON.stringify(res.body)).not.toMatch(/\n\s+at |node_modules|pg-protocol/);
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    await request(engine.api.app).get('/health/live').expect(200);
    // Bounded memory: after a full collection, 2,000 hostile bodies (many of them 100 kB) leave
    // about 3 MB more heap (caches, JIT); keeping any part of each request would show far more.
    expect(retainedHeap() - heapBefore).toBeLessThan(32 * 1024 * 1024);
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
  });

  test('when a path segment is not valid percent-encoding, then 400 says which segment and why', async () => {
    const res = await request(engine.api.app).get('/v1/vehicles/%ZZ/status').expect(400);
    expect(res.body).toMatchObject({
      error: 'invalid_parameter',
      message:
        'The path segment "%ZZ" is not valid percent-encoding (a % starts an escape such as %2F; a literal % is %25)',
    });
    const latin1 = await request(engine.api.app).get('/v1/meters/%E9/status').expect(400);
    expect(latin1.body.message).toBe(
      'The path segment "%E9" is not UTF-8 once percent-decoded (é is %C3%A9, not %E9)',
    );
  });

  test('when hostile headers and paths arrive, then every answer is a 4xx', async () => {
    const cases: [string, string, Record<string, string>][] = [
      ['GET', '/v1/vehicles/%E0%A4%A/status', {}],
      ['GET', `/v1/vehicles/${'v'.repeat(5000)}/status`, {}],
      ['GET', '/v1/analytics/performance/V-1?from=%00&to=2024', {}],
      ['GET', '/v1/analytics/performance/V-1?from[$gt]=1', {}],
      [
        'POST',
        '/v1/telemetry/ingest',
        { 'Content-Length': '999999999', 'Content-Type': 'application/json' },
      ],
      [
        'POST',
        '/v1/telemetry/map',
        { 'Content-Type': 'application/json', 'X-Request-Id': '\u0000bad' },
      ],
    ];
    for (const [method, path, headers] of cases) {
      const req =
        method === 'GET' ? request(engine.api.app).get(path) : request(engine.api.app).post(path);
      for (const [name, value] of Object.entries(headers)) {
        try {
          req.set(name, value);
        } catch {
          // a header Node refuses to send is not a case the server can receive
        }
      }
      const res = await req
        .send(method === 'POST' ? '{}' : undefined)
        .catch((err: { status?: number }) => ({ status: err.status ?? 400 }));
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
  });
});
