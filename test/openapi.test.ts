import { readFileSync } from 'node:fs';
import { codeFingerprint } from '../src/code-fingerprint';
import request from 'supertest';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import type { Queue } from 'bullmq';
import type { IngestJobData } from '../src/queue/ingest-queue';
import { startTestEngine, waitForDrained, type TestApi, type TestEngine } from './helpers/engine';
import { SEED_METER, SEED_VEHICLE } from './helpers/readings';
import type { TestContext } from './helpers/test-env';

let testEngine: TestEngine;
let ctx: TestContext;
let engine: TestApi;
let queue: Queue<IngestJobData>;
let ajv: Ajv;

beforeAll(async () => {
  testEngine = await startTestEngine();
  ({ ctx, queue } = testEngine);
  engine = testEngine.api;
  const document = (await request(engine.api.app).get('/openapi.json').expect(200)).body;
  ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ ...document, $id: 'openapi.json' });
});
afterAll(() => testEngine.stop());

const pointer = (...parts: string[]) =>
  parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

/** Checks a real response against the document's schema for its path, method and status. */
function expectDocumented(res: request.Response, path: string, method: string): void {
  const status = String(res.status);
  const type = status === '200' && path === '/metrics' ? 'text/plain' : 'application/json';
  const ref = `openapi.json#/${pointer('paths', path, method, 'responses', status, 'content', type, 'schema')}`;
  const validate = ajv.getSchema(ref);
  if (!validate)
    throw new Error(`the document has no ${status} response for ${method.toUpperCase()} ${path}`);
  const body = type === 'text/plain' ? res.text : res.body;
  if (!validate(body)) {
    throw new Error(
      `${method.toUpperCase()} ${path} ${status} does not match the document: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`,
    );
  }
}

const app = () => request(engine.api.app);
const post = (path: string, body: unknown, type = 'application/json') =>
  app()
    .post(path)
    .set('Content-Type', type)
    .send(typeof body === 'string' ? body : JSON.stringify(body));

const METER = SEED_METER;
const VEHICLE = SEED_VEHICLE;

describe('the API document', () => {
  test('when every endpoint answers, success or error, then each body matches the published document', async () => {
    const ingest = '/v1/telemetry/ingest';
    expectDocumented(await post(ingest, METER).expect(202), ingest, 'post');
    expectDocumented(await post(ingest, [METER, VEHICLE]).expect(202), ingest, 'post');
    expectDocumented(
      await post(ingest, [METER, { ...VEHICLE, soc: 101 }]).expect(207),
      ingest,
      'post',
    );
    expectDocumented(await post(ingest, { ...VEHICLE, soc: 101 }).expect(400), ingest, 'post');
    expectDocumented(await post(ingest, [{ foo: 1 }]).expect(400), ingest, 'post');
    expectDocumented(await post(ingest, '{oops').expect(400), ingest, 'post');
    expectDocumented(await post(ingest, 'x', 'text/plain').expect(415), ingest, 'post');
    expectDocumented(
      await post(ingest, Array(ctx.config.maxBatchReadings + 1).fill(METER)).expect(413),
      ingest,
      'post',
    );

    const map = '/v1/telemetry/map';
    expectDocumented(
      await post(map, {
        vehicleId: 'V-456',
        meterId: 'M-123',
        since: '2024-03-19T00:00:00Z',
      }).expect(200),
      map,
      'post',
    );
    expectDocumented(await post(map, { vehicleId: 'V-456' }).expect(400), map, 'post');
    // Every route reading a JSON body documents what its body reader refuses.
    expectDocumented(await post(map, 'x', 'text/plain').expect(415), map, 'post');
    expectDocumented(
      await post(map, { vehicleId: 'V-456', pad: 'x'.repeat(70_000) }).expect(413),
      map,
      'post',
    );
    expectDocumented(
      await post(map, { vehicleId: 'V-456', meterId: 'M-9', since: '2024-03-01T00:00:00Z' }).expect(
        409,
      ),
      map,
      'post',
    );

    const mapGet = '/v1/telemetry/map/{vehicleId}';
    expectDocumented(await app().get('/v1/telemetry/map/V-456').expect(200), mapGet, 'get');
    expectDocumented(await app().get('/v1/telemetry/map/V-none').expect(404), mapGet, 'get');
    expectDocumented(await app().get('/v1/telemetry/map/bad%20id').expect(400), mapGet, 'get');

    expectDocumented(
      await app().get('/v1/meters/M-123/status').expect(200),
      '/v1/meters/{meterId}/status',
      'get',
    );
    expectDocumented(
      await app().get('/v1/meters/M-none/status').expect(404),
      '/v1/meters/{meterId}/status',
      'get',
    );
    expectDocumented(
      await app().get('/v1/vehicles/V-456/status').expect(200),
      '/v1/vehicles/{vehicleId}/status',
      'get',
    );
    expectDocumented(
      await app().get('/v1/vehicles/bad%20id/status').expect(400),
      '/v1/vehicles/{vehicleId}/status',
      'get',
    );

    await waitForDrained(queue);
    const perf = '/v1/analytics/performance/{vehicleId}';
    expectDocumented(
      await app()
        .get('/v1/analytics/performance/V-456?from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z')
        .expect(200),
      perf,
      'get',
    );
    expectDocumented(
      await app().get('/v1/analytics/performance/V-456?hours=0').expect(400),
      perf,
      'get',
    );
    expectDocumented(await app().get('/v1/analytics/performance/V-none').expect(404), perf, 'get');

    expectDocumented(
      await app()
        .get('/v1/analytics/fleet?from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z&limit=1')
        .expect(200),
      '/v1/analytics/fleet',
      'get',
    );
    expectDocumented(
      await app().get('/v1/analytics/fleet?limit=0').expect(400),
      '/v1/analytics/fleet',
      'get',
    );

    expectDocumented(await app().get('/health/live').expect(200), '/health/live', 'get');
    expectDocumented(await app().get('/health/ready').expect(200), '/health/ready', 'get');
    expectDocumented(
      await app().get('/health/ready/ingest').expect(200),
      '/health/ready/ingest',
      'get',
    );
    expectDocumented(await app().get('/metrics').expect(200), '/metrics', 'get');
  });

  test('when an error answer carries Retry-After or WWW-Authenticate, then the document declares the header', async () => {
    const document = (await request(engine.api.app).get('/openapi.json').expect(200)).body;
    const headers = (path: string, method: string, status: number) =>
      Object.keys(document.paths[path][method].responses[status].headers ?? {});
    expect(headers('/v1/telemetry/ingest', 'post', 503)).toEqual(['Retry-After']);
    expect(headers('/v1/telemetry/ingest', 'post', 429)).toEqual(['Retry-After']);
    expect(headers('/v1/telemetry/ingest', 'post', 401)).toEqual(['WWW-Authenticate']);
    expect(headers('/v1/analytics/fleet', 'get', 503)).toEqual(['Retry-After']);
    // A charge point's upgrade is refused with its own scheme, HTTP Basic.
    const ocpp = document.paths['/ocpp/{chargePointId}'].get.responses;
    expect(ocpp[401].headers['WWW-Authenticate'].description).toMatch(/^Basic/);
    expect(ocpp[400].description).toMatch(/subprotocol_required/);
    // Readiness's 503 is a health answer, not a refusal to retry.
    expect(headers('/health/ready', 'get', 503)).toEqual([]);
  });

  test('when node:http refuses a request before any route (headers too large, too slow, an unknown Expect), then every operation documents it', async () => {
    const document = (await request(engine.api.app).get('/openapi.json').expect(200)).body;
    for (const [path, methods] of Object.entries(document.paths as Record<string, object>)) {
      for (const [method, op] of Object.entries(methods as Record<string, { responses: object }>)) {
        expect([path, method, Object.keys(op.responses)]).toEqual([
          path,
          method,
          expect.arrayContaining(['408', '417', '431']),
        ]);
      }
    }
  });

  test("when a keyed route declares its own 400, then the document's 400 still lists every cause of it", async () => {
    const document = (await request(engine.api.app).get('/openapi.json').expect(200)).body;
    const keyed = Object.entries(
      document.paths as Record<
        string,
        Record<string, { security?: unknown[]; responses: Record<string, { description: string }> }>
      >,
    ).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(([, op]) => op.security)
        .map(
          ([method, op]) => [`${method} ${path}`, op.responses['400']?.description ?? ''] as const,
        ),
    );
    expect(keyed.length).toBeGreaterThan(10);
    for (const [route, description] of keyed) {
      expect([route, description]).toEqual([route, expect.stringContaining('ambiguous_api_key')]);
    }
    const end = document.paths['/v1/telemetry/map/{vehicleId}/end'].post.responses['400'];
    expect(end.description).toBe(
      'invalid until; or invalid body, malformed JSON, or invalid path or query parameter, or two Authorization headers (ambiguous_api_key)',
    );
    // Its body may be left out (now).
    expect(document.paths['/v1/telemetry/map/{vehicleId}/end'].post.requestBody.required).toBe(
      false,
    );
    expect(document.paths['/v1/telemetry/map'].post.requestBody.required).toBe(true);
  });

  test('when a body does not match the document, then the check fails (the check can fail)', () => {
    const fake = {
      status: 202,
      body: { accepted: 'all', type: 'meter' },
    } as unknown as request.Response;
    expect(() => expectDocumented(fake, '/v1/telemetry/ingest', 'post')).toThrow(/does not match/);
  });

  test('when the docs page is opened, then it loads Swagger UI from this server with the document', async () => {
    const page = await app().get('/docs').expect(200);
    expect(page.text).toMatch(/swagger-ui-bundle\.js/);
    await app().get('/docs/assets/swagger-ui-bundle.js').expect(200);
    // Its icons are named, so a browser does not ask for /favicon.ico (a 404 in its console).
    const icons = [...page.text.matchAll(/<link rel="icon"[^>]* href="([^"]+)"/g)].map((m) => m[1]);
    expect(icons).toHaveLength(2);
    for (const icon of icons) await app().get(icon).expect(200);
    expect((await app().get('/docs/init.js').expect(200)).text).toMatch(/\/openapi\.json/);
  });

  test('when the docs assets are fetched, then they are gzipped to those that take it, revalidated and counted under one route', async () => {
    const path = '/docs/assets/swagger-ui-bundle.js';
    const file = readFileSync(require.resolve('swagger-ui-dist/swagger-ui-bundle.js'), 'utf8');
    const gzipped = await app().get(path).set('Accept-Encoding', 'gzip').expect(200);
    expect(gzipped.headers['content-encoding']).toBe('gzip');
    expect(gzipped.headers['content-type']).toMatch(/javascript/);
    expect(gzipped.headers.vary).toMatch(/Accept-Encoding/);
    expect(Number(gzipped.headers['content-length'])).toBeLessThan(file.length / 2);
    expect(gzipped.text).toBe(file); // supertest inflates it
    await app()
      .get(path)
      .set('Accept-Encoding', 'gzip')
      .set('If-None-Match', gzipped.headers.etag)
      .expect(304);

    const plain = await app().get(path).set('Accept-Encoding', 'identity').expect(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.text).toBe(file);
    // Images are sent as they are.
    const icon = await app().get('/docs/assets/favicon-32x32.png').expect(200);
    expect(icon.headers['content-encoding']).toBeUndefined();

    // Only the files the docs page uses: not the package's stock page, initializer or manifest.
    for (const missing of [
      '/docs/assets/nothing.js',
      '/docs/assets/..%2Fpackage.json',
      '/docs/assets/swagger-initializer.js',
      '/docs/assets/index.html',
      '/docs/assets/package.json',
    ]) {
      const res = await app().get(missing).set('Accept-Encoding', 'gzip').expect(404);
      expect(res.body.error).toBe('not_found');
    }
    await app().post(path).expect(405);
    // A Range outside the file: a 416 in JSON saying the size, not a 404 (nor a script's type).
    const outside = await app()
      .get(path)
      .set('Accept-Encoding', 'identity')
      .set('Range', 'bytes=99999999-')
      .expect(416);
    expect(outside.headers['content-type']).toMatch(/^application\/json/);
    expect(outside.headers['content-range']).toBe(`bytes */${Buffer.byteLength(file)}`);
    expect(outside.body).toMatchObject({
      error: 'range_not_satisfiable',
      message: `The requested Range lies outside the file, which is ${Buffer.byteLength(file)} bytes`,
    });
    const metrics = (await app().get('/metrics').expect(200)).text;
    expect(metrics).toMatch(/route="\/docs\/assets\/:file",method="GET",status_code="200"/);
  });

  test("when the document's version and the metrics' build info are read, then both are the package's version with the code's fingerprint: two releases of one version tell apart", async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const release = `${version}+${codeFingerprint()}`;
    expect(release).toMatch(/^\d+\.\d+\.\d+\+[0-9a-f]{12}$/);
    const document = (await request(engine.api.app).get('/openapi.json').expect(200)).body;
    expect(document.info.version).toBe(release);
    const metrics = (await request(engine.api.app).get('/metrics').expect(200)).text;
    expect(metrics).toContain(`energy_build_info{release="${release}",process="api"} 1`);
  });

  test('when a client is generated from the document, then every operation has its own operationId', async () => {
    const document = (await app().get('/openapi.json').expect(200)).body;
    const operations = Object.entries(
      document.paths as Record<string, Record<string, { operationId?: string }>>,
    ).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({
        at: `${method} ${path}`,
        id: op.operationId,
      })),
    );
    expect(operations.filter((o) => typeof o.id !== 'string' || o.id === '')).toEqual([]);
    const ids = operations.map((o) => o.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(operations).toEqual(
      expect.arrayContaining([
        { at: 'get /v1/meters/{meterId}/status', id: 'getMeterStatus' },
        { at: 'put /v1/vehicles/{vehicleId}/settings', id: 'setVehicleSettings' },
        { at: 'get /health/ready/ingest', id: 'getIngestReadiness' },
      ]),
    );
  });

  test('when the ingest request schema is read from the document, then it is the one the server validates with', async () => {
    const document = (await app().get('/openapi.json').expect(200)).body;
    expect(document.openapi).toBe('3.1.0');
    // voltage is optional: a charger's register often comes without it (issue 14).
    expect(document.components.schemas.MeterReading.required).toEqual([
      'meterId',
      'kwhConsumedAc',
      'timestamp',
    ]);
    expect(document.components.schemas.VehicleReading.properties.soc).toMatchObject({
      minimum: 0,
      maximum: 100,
    });
  });

  test('when a client sends readings as each media type the document lists for ingest, then each is accepted, and those are all the server takes', async () => {
    const document = (await app().get('/openapi.json').expect(200)).body;
    const types = Object.keys(
      document.paths['/v1/telemetry/ingest'].post.requestBody.content,
    ).sort();
    expect(types).toEqual([
      'application/json',
      'application/jsonl',
      'application/ndjson',
      'application/x-ndjson',
    ]);
    for (const [i, type] of types.entries()) {
      const reading = { ...SEED_METER, timestamp: `2024-03-2${i}T10:00:00Z` };
      await app()
        .post('/v1/telemetry/ingest')
        .set('content-type', type)
        .send(JSON.stringify(reading))
        .expect(202);
    }
    // A type the document does not list is refused, naming the ones it does.
    const refused = await app()
      .post('/v1/telemetry/ingest')
      .set('content-type', 'text/plain')
      .send(JSON.stringify(SEED_METER))
      .expect(415);
    for (const type of types) expect(refused.body.message).toContain(type);
  });
});
