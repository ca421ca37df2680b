import request from 'supertest';
import { startTestApi, type TestApi } from './helpers/engine';
import { createTestContext, type TestContext } from './helpers/test-env';

/** A refused parameter or field says what is accepted, in the words of its own rule. */
let ctx: TestContext;
let engine: TestApi;

beforeAll(async () => {
  ctx = await createTestContext();
  engine = await startTestApi(ctx);
});
afterAll(async () => {
  await engine.close();
  await ctx.cleanup();
});

const get = (path: string) => request(engine.api.app).get(path);

test.each([
  [
    '/v1/vehicles/V-1/sessions/x-1',
    'sessionId must be a session id as the sessions list gives it: tx-<transaction id> or d-<start, epoch ms>',
  ],
  ['/v1/charge-points/cp:1', 'chargePointId must be 1-48 characters from A-Z a-z 0-9 . _ -'],
  [`/v1/vehicles/${'V'.repeat(65)}/status`, 'vehicleId must be 1-64 characters from A-Z'],
  ['/v1/meters/M-1/status?x=1', 'x is not a known parameter (this endpoint takes none)'],
  [
    '/v1/analytics/fleet?from=2024-01-01T00:00:00+01:00&hours=2',
    'from must be an RFC 3339 date-time with a zone offset, e.g. 2024-03-20T10:00:00Z (a "+" in a URL query reads as a space: send it as %2B)',
  ],
  [
    '/v1/telemetry/map/V-1?from=2024-01-01',
    'from is not a known parameter (this endpoint takes none)',
  ],
  ['/v1/charge-points?cursor=a:b', 'cursor must be the nextCursor of the previous page'],
  // A valid instant, only longer than any timestamp is allowed to be: its limit, not its meaning.
  [
    `/v1/analytics/fleet?from=2024-01-01T00:00:00.${'0'.repeat(60)}Z&hours=2`,
    'from must be at most 64 characters',
  ],
  ['/v1/id-tags/caf%C3%A9', 'idTag must be an RFID card or app token: 1-20 printable'],
  [
    '/v1/id-tags/%20%20',
    'idTag must be an RFID card or app token: 1-20 printable ASCII characters, not spaces alone',
  ],
  ['/v1/analytics/fleet?rank=foo', 'rank must be one of "efficiency", "session"'],
  ['/v1/analytics/sessions?flagged=yes', 'flagged must be true or false'],
  ['/v1/analytics/fleet?limit=Infinity', 'limit must be a whole number from 1 to'],
  ['/v1/analytics/fleet?limit=0', 'limit must be a whole number from 1 to 10000'],
  ['/v1/analytics/fleet?below=1.5', 'below must be a number from 0 to 1'],
  ['/v1/vehicles/V-1/sessions?from=2020-01-01T00:00:00Z', 'from must be at most 2209 hours ago'],
  [
    '/v1/vehicles/V-1/sessions?from=2999-01-01T00:00:00Z',
    "from must be earlier than the window's end",
  ],
  [
    '/v1/analytics/sessions?from=0000-06-01T00:00:00Z&to=0000-06-02T00:00:00Z',
    'from must not be before 1970-01-01T00:00:00.000Z',
  ],
  [
    '/v1/analytics/fleet?rank=session&from=1969-12-31T00:00:00Z&to=1970-01-02T00:00:00Z',
    'from must not be before 1970-01-01T00:00:00.000Z',
  ],
  // A start derived from `to` (and `hours`) before 1970: `to` is what is too early.
  [
    '/v1/analytics/fleet?to=1970-01-01T00:00:00Z',
    'to must be at least 1970-01-02T00:00:00.000Z: the window starts 24 hours before it, not before 1970-01-01T00:00:00.000Z',
  ],
  [
    '/v1/analytics/performance/V-1?to=1970-01-01T01:00:00Z&hours=2',
    'to must be at least 1970-01-01T02:00:00.000Z: the window starts 2 hours before it',
  ],
  [
    '/v1/analytics/performance/V-1?from=9999-12-31T23:00:00Z&hours=2',
    "from must keep the window's end at most 9999-01-01T00:00:00.000Z",
  ],
  [
    '/v1/analytics/fleet?from=9998-12-31T00:00:00Z&to=9999-12-31T00:00:00Z',
    "to must keep the window's end at most 9999-01-01T00:00:00.000Z",
  ],
])('when GET %s, then 400 says %s', async (path, message) => {
  const res = await get(path).expect(400);
  expect(res.body.error).toBe('invalid_parameter');
  expect(res.body.message).toContain(message);
});

test('when a setting is not one of its values, then 400 lists the values once', async () => {
  const res = await request(engine.api.app)
    .put('/v1/meters/M-1/settings')
    .send({ energyReadings: 'CUMULATIVE' })
    .expect(400);
  expect(res.body.details).toEqual([
    { path: '/energyReadings', message: 'must be one of "interval", "cumulative", null' },
  ]);
});

test('when a session id names a transaction above PostgreSQL integers, or a detected session started before 1970, then it is looked up like any other (404 when absent)', async () => {
  for (const id of ['tx-2147483648', 'tx-9999999999', 'd--600000', 'd--999999999999999']) {
    const res = await get(`/v1/vehicles/V-1/sessions/${id}`).expect(404);
    expect(res.body.error).toBe('not_found');
  }
});

test('when a cursor is made up with a window no report can have, then it is refused as not a cursor', async () => {
  const forged = Buffer.from(
    JSON.stringify({
      offset: 0,
      scope: {
        from: '0000-01-01T00:00:00Z',
        to: '9998-01-01T00:00:00Z',
        below: 0.85,
        rank: 'efficiency',
      },
    }),
  ).toString('base64url');
  for (const path of [
    `/v1/analytics/fleet?cursor=${forged}`,
    `/v1/analytics/sessions?cursor=${forged}`,
  ]) {
    const res = await get(path).expect(400);
    expect(res.body.message).toBe('cursor must be a nextCursor from a previous page');
  }
});

test('when a probe or a scraper adds a query of its own to health or metrics, then it is ignored, not refused', async () => {
  for (const path of ['/health/live?nocache=1', '/health/ready?x=1&x=2', '/metrics?module=http'])
    expect({ path, status: (await get(path)).status }).toEqual({ path, status: 200 });
});

test('when a write is sent a query parameter, then it is refused by name, not ignored (a mapping given ?since= began now), but by ingest, which gateways append theirs to', async () => {
  const app = request(engine.api.app);
  const writes = [
    app
      .post('/v1/telemetry/map?since=2024-01-01T00:00:00Z')
      .send({ vehicleId: 'V-Q', meterId: 'M-Q' }),
    app.post('/v1/telemetry/map/V-Q/end?until=2024-01-01T00:00:00Z'),
    app.put('/v1/meters/M-Q/settings?x=1').send({ energyReadings: 'interval' }),
    app.put('/v1/id-tags/TAG9?vehicleId=V-2').send({ vehicleId: 'V-2' }),
    app.delete('/v1/id-tags/TAG9?force=1'),
  ];
  for (const write of writes) {
    const res = await write;
    expect({ status: res.status, message: res.body.message }).toEqual({
      status: 400,
      message: expect.stringMatching(
        /^(since|until|x|vehicleId|force) is not a known parameter \(this endpoint takes none\)$/,
      ),
    });
  }
  expect(await ctx.db('vehicle_meter_map').where({ vehicle_id: 'V-Q' })).toEqual([]);
  await app
    .post('/v1/telemetry/ingest?gateway=gw-1')
    .send({ meterId: 'M-Q', kwhConsumedAc: 1, voltage: 230, timestamp: new Date().toISOString() })
    .expect(202);
});

test('when a query parameter has no name, then 400 says so', async () => {
  const res = await get('/v1/meters/M-1/status?=1').expect(400);
  const message =
    'a parameter without a name ("?=1") is not a known parameter (this endpoint takes none)';
  expect(res.body).toMatchObject({ message, details: [{ path: '/', message }] });
});
