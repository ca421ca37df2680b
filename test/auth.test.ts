import request from 'supertest';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Redis } from 'ioredis';
import { freePort } from '../bench/bench-helpers';
import { findKey, generateKey, parseApiKeys } from '../src/auth/api-keys';
import { createAuthorize, createLocalBuckets } from '../src/auth/authorize';
import { createLogger } from '../src/logger';
import { serveTestApi, startTestApi, type TestApi } from './helpers/engine';
import { createTestContext, type TestContext } from './helpers/test-env';

const gateway = generateKey('gateway-1', ['ingest']);
const dashboard = generateKey('dashboard', ['read']);
const operator = generateKey('operator', ['ingest', 'read', 'admin']);
const limited = generateKey('limited', ['ingest']);
const uploader = generateKey('uploader', ['ingest']);

const METER = { meterId: 'M-1', kwhConsumedAc: 1, voltage: 230, timestamp: '2024-03-20T10:00:00Z' };

let ctx: TestContext;
let engine: TestApi;

beforeAll(async () => {
  ctx = await createTestContext({
    AUTH: 'on',
    API_KEYS: [gateway, dashboard, operator, limited, uploader].map((k) => k.entry).join(','),
    RATE_LIMIT_PER_S: '1',
    RATE_LIMIT_BURST: '3',
  });
  engine = await startTestApi(ctx);
});
afterAll(async () => {
  await engine.close();
  await ctx.cleanup();
});

const app = () => request(engine.api.app);
const ingest = (key?: string) => {
  const req = app().post('/v1/telemetry/ingest').set('Content-Type', 'application/json');
  return (key ? req.set('Authorization', `Bearer ${key}`) : req).send(JSON.stringify(METER));
};

describe('API keys', () => {
  test('when no key is sent, then 401 with WWW-Authenticate: Bearer', async () => {
    const res = await ingest().expect(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(res.body.error).toBe('missing_api_key');
  });

  test('when a key is sent another way than Bearer, then 401 says how to send it', async () => {
    const basic = await app()
      .get('/v1/meters/M-1/status')
      .set('Authorization', 'Basic dXNlcjprZXk=')
      .expect(401);
    expect(basic.body).toMatchObject({
      error: 'missing_api_key',
      message:
        'Send the API key as Authorization: Bearer <key> (the Authorization header sent uses the Basic scheme)',
    });
    const bare = await app()
      .get('/v1/meters/M-1/status')
      .set('Authorization', 'eie_some-key')
      .expect(401);
    expect(bare.body.message).toBe(
      'Send the API key as Authorization: Bearer <key> (the Authorization header sent has no scheme)',
    );
    const noKey = await app()
      .get('/v1/meters/M-1/status')
      .set('Authorization', 'Bearer ')
      .expect(401);
    expect(noKey.body.message).toBe('Send the API key after Bearer: Authorization: Bearer <key>');
    // A valid key followed by more: what is wrong is the extra token, not the scheme.
    const extra = await app()
      .get('/v1/meters/M-1/status')
      .set('Authorization', `Bearer ${gateway.key} extra`)
      .expect(401);
    expect(extra.body.message).toBe(
      'Send the API key alone after Bearer: the Authorization header sent has more than one token after it',
    );
  });

  test('when two Authorization headers are sent, then 400, whichever is valid', async () => {
    for (const keys of [
      [operator.key, 'eie_not-a-real-key'],
      ['eie_not-a-real-key', operator.key],
    ]) {
      const res = await app()
        .post('/v1/telemetry/ingest')
        .set('Content-Type', 'application/json')
        // Sent as two header lines (superagent's types allow a list for Cookie only).
        .set('Authorization', keys.map((k) => `Bearer ${k}`) as unknown as string)
        .send(JSON.stringify(METER))
        .expect(400);
      expect(res.body).toMatchObject({
        error: 'ambiguous_api_key',
        message: 'Send one Authorization header; this request has 2',
      });
    }
  });

  test('when two keys come joined in one header (a proxy merging two headers), then 400 too', async () => {
    const res = await app()
      .post('/v1/telemetry/ingest')
      .set('Content-Type', 'application/json')
      .set('Authorization', `Bearer ${operator.key}, Bearer eie_not-a-real-key`)
      .send(JSON.stringify(METER))
      .expect(400);
    expect(res.body).toMatchObject({
      error: 'ambiguous_api_key',
      message:
        'Send one Authorization header with one key; this one holds several, separated by commas',
    });
  });

  test('when an unknown key is sent, then 401', async () => {
    const res = await ingest('eie_not-a-real-key').expect(401);
    expect(res.body.error).toBe('invalid_api_key');
  });

  test('when a key has the scope, then the request passes; without it, 403', async () => {
    await ingest(gateway.key).expect(202);
    const res = await ingest(dashboard.key).expect(403);
    expect(res.body.error).toBe('insufficient_scope');
    await app()
      .get('/v1/meters/M-1/status')
      .set('Authorization', `Bearer ${dashboard.key}`)
      .expect(200);
    await app()
      .get('/v1/meters/M-1/status')
      .set('Authorization', `Bearer ${gateway.key}`)
      .expect(403);
    await app()
      .get('/v1/analytics/fleet')
      .set('Authorization', `Bearer ${dashboard.key}`)
      .expect(200);
  });

  test('when a mapping is written, then only an admin key may do it', async () => {
    const body = JSON.stringify({ vehicleId: 'V-1', meterId: 'M-1' });
    await app()
      .post('/v1/telemetry/map')
      .set('Content-Type', 'application/json')
      .set('Authorization', `Bearer ${dashboard.key}`)
      .send(body)
      .expect(403);
    await app()
      .post('/v1/telemetry/map')
      .set('Content-Type', 'application/json')
      .set('Authorization', `Bearer ${operator.key}`)
      .send(body)
      .expect(200);
  });

  test('when health, metrics or the API document are asked for, then no key is needed', async () => {
    await app().get('/health/ready').expect(200);
    await app().get('/metrics').expect(200);
    await app().get('/openapi.json').expect(200);
  });

  test('when a key passes its rate limit, then 429 with Retry-After, and other keys are unaffected', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await ingest(limited.key)).status);
    expect(statuses.slice(0, 3)).toEqual([202, 202, 202]);
    expect(statuses).toContain(429);
    const res = await ingest(limited.key);
    if (res.status === 429) expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    await ingest(operator.key).expect(202);
  });
});

describe('a client that waits for 100 Continue before sending its body', () => {
  /** Sends `head`, then `body` once the server answers 100 Continue (if ever); all it wrote. */
  const exchange = (port: number, head: string, body: string) =>
    new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.write(head));
      let text = '';
      socket.on('data', (d) => {
        text += d.toString();
        if (text === 'HTTP/1.1 100 Continue\r\n\r\n') socket.write(body);
      });
      socket.on('close', () => resolve(text));
    });
  const head = (length: number, key?: string) =>
    'POST /v1/telemetry/ingest HTTP/1.1\r\nHost: x\r\nConnection: close\r\n' +
    `Content-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n` +
    (key ? `Authorization: Bearer ${key}\r\n` : '') +
    '\r\n';

  test('when its key or its size is refused, then it is answered without a 100, so the body is never sent; when both pass, it gets the 100, and its reading is accepted', async () => {
    const { server, url } = await serveTestApi(engine);
    const port = Number(new URL(url).port);
    const body = JSON.stringify({ ...METER, meterId: 'M-continue' });
    try {
      const keyless = await exchange(port, head(body.length), body);
      expect(keyless).toMatch(/^HTTP\/1\.1 401 /);
      const unscoped = await exchange(port, head(body.length, dashboard.key), body);
      expect(unscoped).toMatch(/^HTTP\/1\.1 403 /);
      const huge = await exchange(port, head(ctx.config.bodyLimitBytes + 1, uploader.key), body);
      expect(huge).toMatch(/^HTTP\/1\.1 413 /);
      const accepted = await exchange(port, head(body.length, uploader.key), body);
      expect(accepted).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /);
      expect(JSON.parse(accepted.split('\r\n\r\n').at(-1)!)).toMatchObject({ accepted: 1 });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('a rate of a request every few years', () => {
  // 1e-17: the wait in milliseconds is beyond a 64-bit integer; 1e-320: 1 / rate is Infinity.
  // Settings are plain decimals: the rates are written out.
  const decimal = (exponent: number) => `0.${'0'.repeat(-exponent - 1)}1`;
  test.each([-15, -17, -320])(
    'when RATE_LIMIT_PER_S is 1e%i written out, then the burst is the limit: 429 after it, not every request allowed',
    async (exponent) => {
      const rate = decimal(exponent);
      const slow = await createTestContext({
        AUTH: 'on',
        API_KEYS: limited.entry,
        RATE_LIMIT_PER_S: rate,
        RATE_LIMIT_BURST: '2',
      });
      const api = await startTestApi(slow);
      try {
        const responses = [];
        for (let i = 0; i < 3; i++) {
          responses.push(
            await request(api.api.app)
              .post('/v1/telemetry/ingest')
              .set('Content-Type', 'application/json')
              .set('Authorization', `Bearer ${limited.key}`)
              .send(JSON.stringify(METER)),
          );
        }
        expect(responses.map((res) => res.status)).toEqual([202, 202, 429]);
        // The wait is capped at 30 days rather than overflowing.
        expect(Number(responses[2].headers['retry-after'])).toBe(30 * 24 * 3600);
      } finally {
        await api.close();
        await slow.cleanup();
      }
    },
  );
});

describe('API_KEYS', () => {
  test('when entries are malformed, then each problem names its entry', () => {
    const { problems } = parseApiKeys(
      'good:ingest:' + 'a'.repeat(64) + ',bad:fly:' + 'b'.repeat(64) + ',x:read:nothex,broken',
    );
    expect(problems).toEqual([
      expect.stringMatching(/entry 2 \(bad\): unknown scope fly/),
      expect.stringMatching(/entry 3 \(x\): the hash must be 64 hex characters/),
      expect.stringMatching(/entry 4 \(broken\): expected name:scopes:sha256hex/),
    ]);
  });

  test('when two entries hold the same key hash, then the second is named as a problem', () => {
    const hash = 'c'.repeat(64);
    const { problems } = parseApiKeys(`gw-old:ingest+read:${hash},gw-new:read:${hash}`);
    expect(problems).toEqual([
      'API_KEYS entry 2 (gw-new): the same key as gw-old (one key has one name; join the scopes with +)',
    ]);
  });

  /** What `npm run key -- --name NAME --scopes SCOPES` prints. */
  const runKey = (name: string, scopes: string) =>
    execFileSync(process.execPath, [
      require.resolve('tsx/cli'),
      path.join(__dirname, '..', 'scripts', 'key.ts'),
      '--name',
      name,
      '--scopes',
      scopes,
    ]).toString();

  test('when npm run key makes a key, then its entry admits exactly that key', () => {
    const out = runKey('gw-2', 'ingest+read');
    const key = /key \(give it to gw-2[^)]*\): (\S+)/.exec(out)?.[1];
    const entry = /API_KEYS entry[^:]*: (\S+)/.exec(out)?.[1];
    expect(key).toMatch(/^eie_/);
    const { keys, problems } = parseApiKeys(entry ?? '');
    expect(problems).toEqual([]);
    expect(keys[0]).toMatchObject({ name: 'gw-2', scopes: ['ingest', 'read'] });
  });

  test("when npm run key makes a charge point's key, then it is 40 hex digits, as OCPP 1.6's AuthorizationKey holds, and its entry admits it", () => {
    const out = runKey('CP-17', 'charge-point');
    const key = /key \(give it to CP-17[^)]*\): (\S+)/.exec(out)?.[1] ?? '';
    const entry = /API_KEYS entry[^:]*: (\S+)/.exec(out)?.[1];
    expect(key).toMatch(/^[0-9a-f]{40}$/);
    const { keys } = parseApiKeys(entry ?? '');
    expect(findKey(keys, key)).toMatchObject({ name: 'CP-17', scopes: ['charge-point'] });
  });

  test('when npm run key is asked for a charge point key under a name no charge point id can be, then it refuses, saying why', () => {
    for (const name of ['A'.repeat(49), '...']) {
      let stderr = '';
      try {
        runKey(name, 'charge-point');
      } catch (err) {
        stderr = String((err as { stderr: Buffer }).stderr);
      }
      expect(stderr).toContain(
        '--name: a charge-point key is named after its charge point, whose id is 1-48 characters from A-Z a-z 0-9 . _ -, not dots alone',
      );
    }
  });

  test('when npm run key is given scopes separated by commas, then they are joined with + in the entry', () => {
    const out = runKey('gw-3', 'read, ingest,admin');
    const entry = /API_KEYS entry[^:]*: (\S+)/.exec(out)?.[1] ?? '';
    expect(entry).toMatch(/^gw-3:read\+ingest\+admin:[0-9a-f]{64}$/);
    expect(parseApiKeys(entry).problems).toEqual([]);
  });
});

describe('the rate limit while Redis does not answer', () => {
  test('when Redis is unreachable, then each key is limited by this process at the same rate, not let through', async () => {
    // A real client of a port nothing listens on: every command fails at once.
    const unreachable = new Redis({
      port: await freePort(),
      enableOfflineQueue: false,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    unreachable.on('error', () => undefined);
    const app = express();
    app.get(
      '/probe',
      createAuthorize({
        config: {
          auth: 'on',
          apiKeys: parseApiKeys(`${limited.entry},${dashboard.entry}`).keys,
          rateLimitPerS: 0.001,
          rateLimitBurst: 2,
        },
        redis: unreachable,
        rateLimitKey: (name) => `probe:${name}`,
        logger: createLogger({ level: 'silent', name: 'test' }),
      })('ingest'),
      (_req, res) => void res.status(204).end(),
    );
    app.use((err: { statusCode?: number }, _req: Request, res: Response, _next: NextFunction) => {
      res.status(err.statusCode ?? 500).end();
    });
    const asked = jest.spyOn(unreachable as unknown as { takeToken(): unknown }, 'takeToken');
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push(
        (await request(app).get('/probe').set('Authorization', `Bearer ${limited.key}`)).status,
      );
    expect(statuses).toEqual([204, 204, 429]);
    // Once it failed, Redis is not asked again for a second: a hanging one would cost each
    // request its command timeout.
    expect(asked).toHaveBeenCalledTimes(1);
    unreachable.disconnect();
  });

  test('when the clock moves, then the bucket in this process fills at the rate, up to the burst', () => {
    let now = 0;
    const take = createLocalBuckets(2, 3, () => now);
    expect([take('k'), take('k'), take('k'), take('k')]).toEqual([0, 0, 0, 500]);
    expect(take('other')).toBe(0);
    now = 500; // one token back
    expect([take('k'), take('k')]).toEqual([0, 500]);
    now = 60_000; // full again, no more than the burst
    expect([take('k'), take('k'), take('k'), take('k')]).toEqual([0, 0, 0, 500]);
  });
});
