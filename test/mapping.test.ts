import request from 'supertest';
import { startTestApi, type TestApi } from './helpers/engine';
import { createTestContext, type TestContext } from './helpers/test-env';

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

const map = (body: unknown) =>
  request(engine.api.app)
    .post('/v1/telemetry/map')
    .set('Content-Type', 'application/json')
    .send(JSON.stringify(body));

/** Ends the vehicle's mapping: with a body, or (none given) with none at all. */
const end = (vehicleId: string, body?: object) => {
  const req = request(engine.api.app).post(`/v1/telemetry/map/${vehicleId}/end`);
  return body === undefined
    ? req
    : req.set('Content-Type', 'application/json').send(JSON.stringify(body));
};

describe('vehicle to meter mapping', () => {
  test('when a vehicle is mapped, then 200 returns the mapping and GET shows it as current', async () => {
    const res = await map({
      vehicleId: 'V-1',
      meterId: 'M-1',
      since: '2024-03-20T00:00:00Z',
    }).expect(200);
    expect(res.body).toEqual({
      vehicleId: 'V-1',
      meterId: 'M-1',
      since: '2024-03-20T00:00:00.000Z',
      changed: true,
      previous: null,
    });
    const got = await request(engine.api.app).get('/v1/telemetry/map/V-1').expect(200);
    expect(got.body).toEqual({
      vehicleId: 'V-1',
      current: { meterId: 'M-1', from: '2024-03-20T00:00:00.000Z', to: null },
      history: [{ meterId: 'M-1', from: '2024-03-20T00:00:00.000Z', to: null }],
    });
  });

  test('when a vehicle is re-mapped, then the previous period is closed at the new start and kept', async () => {
    await map({ vehicleId: 'V-2', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    const res = await map({
      vehicleId: 'V-2',
      meterId: 'M-2',
      since: '2024-03-20T12:00:00Z',
    }).expect(200);
    expect(res.body.previous).toEqual({
      meterId: 'M-1',
      from: '2024-03-20T00:00:00.000Z',
      to: '2024-03-20T12:00:00.000Z',
    });
    const got = await request(engine.api.app).get('/v1/telemetry/map/V-2').expect(200);
    expect(got.body.history).toEqual([
      { meterId: 'M-1', from: '2024-03-20T00:00:00.000Z', to: '2024-03-20T12:00:00.000Z' },
      { meterId: 'M-2', from: '2024-03-20T12:00:00.000Z', to: null },
    ]);
  });

  test('when a re-mapping starts ahead of the clock, then current stays the period covering now until it begins', async () => {
    const soon = new Date(Date.now() + 200_000);
    await map({ vehicleId: 'V-SOON', meterId: 'M-NOW', since: '2024-03-20T00:00:00Z' }).expect(200);
    await map({ vehicleId: 'V-SOON', meterId: 'M-LATER', since: soon.toISOString() }).expect(200);
    const got = await request(engine.api.app).get('/v1/telemetry/map/V-SOON').expect(200);
    // It named M-LATER while the vehicle was still on M-NOW.
    expect(got.body.current).toEqual({
      meterId: 'M-NOW',
      from: '2024-03-20T00:00:00.000Z',
      to: soon.toISOString(),
    });
    expect(got.body.history.map((p: { meterId: string }) => p.meterId)).toEqual([
      'M-NOW',
      'M-LATER',
    ]);
  });

  test('when mapped to its current meter again, then nothing changes', async () => {
    await map({ vehicleId: 'V-3', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    const res = await map({ vehicleId: 'V-3', meterId: 'M-1' }).expect(200);
    expect(res.body).toMatchObject({ changed: false, since: '2024-03-20T00:00:00.000Z' });
    const got = await request(engine.api.app).get('/v1/telemetry/map/V-3').expect(200);
    expect(got.body.history).toHaveLength(1);
  });

  test('when mapped to its current meter again from before the period started, then 409 naming the period, which stays as it was', async () => {
    await map({ vehicleId: 'V-3b', meterId: 'M-1', since: '2024-04-01T09:00:00Z' }).expect(200);
    const res = await map({
      vehicleId: 'V-3b',
      meterId: 'M-1',
      since: '2024-03-01T00:00:00Z',
    }).expect(409);
    expect(res.body).toMatchObject({
      error: 'mapping_conflict',
      message: expect.stringContaining('mapped to meter M-1 since 2024-04-01T09:00:00.000Z'),
      details: [{ path: '/since', message: 'must not be before 2024-04-01T09:00:00.000Z' }],
    });
    // Later than its start: the same mapping again.
    await map({ vehicleId: 'V-3b', meterId: 'M-1', since: '2024-05-01T00:00:00Z' }).expect(200);
    const got = await request(engine.api.app).get('/v1/telemetry/map/V-3b').expect(200);
    expect(got.body.history).toEqual([
      { meterId: 'M-1', from: '2024-04-01T09:00:00.000Z', to: null },
    ]);
  });

  test('when no since is given and the latest period is dated ahead of the clock, then 409 says now is too early, naming no field', async () => {
    // Within MAX_CLOCK_SKEW_S of the clock, as a gateway's fast clock may date it.
    const ahead = new Date(Date.now() + 120_000).toISOString();
    await map({ vehicleId: 'V-3c', meterId: 'M-1', since: ahead }).expect(200);
    const res = await map({ vehicleId: 'V-3c', meterId: 'M-2' }).expect(409);
    expect(res.body.message).toMatch(/^now \(.*\) must be later than /);
    expect(res.body.message).toContain(ahead);
    expect(res.body.details).toEqual([]);
  });

  test('when a re-mapping would start before the current period, then 409 and the past is untouched', async () => {
    await map({ vehicleId: 'V-4', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    const res = await map({
      vehicleId: 'V-4',
      meterId: 'M-2',
      since: '2024-03-19T00:00:00Z',
    }).expect(409);
    expect(res.body.error).toBe('mapping_conflict');
    expect(res.body.details).toEqual([expect.objectContaining({ path: '/since' })]);
    expect(res.body.message).toMatch(
      /^since \(2024-03-19T00:00:00.000Z\) must be later than 2024-03-20T00:00:00.000Z, /,
    );
    // Digits beyond the millisecond are cut, as of every instant: the message names what was taken.
    const cut = await map({
      vehicleId: 'V-4',
      meterId: 'M-2',
      since: '2024-03-20T00:00:00.0000001Z',
    }).expect(409);
    expect(cut.body.message).toMatch(
      /^since \(2024-03-20T00:00:00.000Z\) must be later than 2024-03-20T00:00:00.000Z, /,
    );
  });

  test('when no since is given, then the mapping starts now', async () => {
    const before = Date.now();
    const res = await map({ vehicleId: 'V-5', meterId: 'M-9' }).expect(200);
    expect(Date.parse(res.body.since)).toBeGreaterThanOrEqual(before - 1000);
  });

  test('when concurrent re-mappings race, then periods never overlap', async () => {
    await map({ vehicleId: 'V-6', meterId: 'M-0', since: '2024-01-01T00:00:00Z' }).expect(200);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        map({
          vehicleId: 'V-6',
          meterId: `M-${i + 1}`,
          since: `2024-02-${String(i + 1).padStart(2, '0')}T00:00:00Z`,
        }),
      ),
    );
    expect(results.every((r) => r.status === 200 || r.status === 409)).toBe(true);
    const { body } = await request(engine.api.app).get('/v1/telemetry/map/V-6').expect(200);
    const periods = body.history as { from: string; to: string | null }[];
    expect(periods.filter((p) => p.to === null)).toHaveLength(1);
    for (let i = 1; i < periods.length; i++) expect(periods[i - 1].to).toBe(periods[i].from);
  });

  test('when concurrent re-mappings without since race, then each takes effect now, one after the other, none refused', async () => {
    await map({ vehicleId: 'V-7', meterId: 'M-0' }).expect(200);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => map({ vehicleId: 'V-7', meterId: `M-${i + 1}` })),
    );
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 10 }, () => 200));
    const { body } = await request(engine.api.app).get('/v1/telemetry/map/V-7').expect(200);
    const periods = body.history as { from: string; to: string | null }[];
    expect(periods).toHaveLength(11);
    for (let i = 1; i < periods.length; i++) expect(periods[i - 1].to).toBe(periods[i].from);
    // A period dated ahead on purpose stays a conflict for "now": not silently moved past it.
    const ahead = new Date(Date.now() + 120_000).toISOString(); // within MAX_CLOCK_SKEW_S
    await map({ vehicleId: 'V-7', meterId: 'M-ahead', since: ahead }).expect(200);
    await map({ vehicleId: 'V-7', meterId: 'M-now' }).expect(409);
  });

  test.each([
    [{ vehicleId: 'V-1' }, '/meterId', /is required/],
    [{ vehicleId: 'V 1', meterId: 'M-1' }, '/vehicleId', /1-64 characters/],
    [{ vehicleId: 'V-1', meterId: 'M-1', since: 'yesterday' }, '/since', /RFC 3339/],
    [{ vehicleId: 'V-1', meterId: 'M-1', extra: true }, '/extra', /not an accepted field/],
  ])('when the mapping body is %j, then 400 names %s', async (body, path, message) => {
    const res = await map(body).expect(400);
    expect(res.body.error).toBe('invalid_mapping');
    expect(res.body.details).toEqual(
      expect.arrayContaining([{ path, message: expect.stringMatching(message) }]),
    );
  });

  test('when a mapping is ended, then GET shows no current period, a retry changes nothing, and a new mapping may start at the end', async () => {
    await map({ vehicleId: 'V-E1', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    const res = await end('V-E1', { until: '2024-03-21T00:00:00Z' }).expect(200);
    const ended = {
      meterId: 'M-1',
      from: '2024-03-20T00:00:00.000Z',
      to: '2024-03-21T00:00:00.000Z',
    };
    expect(res.body).toEqual({ vehicleId: 'V-E1', ended, changed: true });
    const got = await request(engine.api.app).get('/v1/telemetry/map/V-E1').expect(200);
    expect(got.body).toEqual({ vehicleId: 'V-E1', current: null, history: [ended] });
    // A retry, with the same until or none (now), finds the end made.
    for (const body of [{ until: '2024-03-21T00:00:00Z' }, {}, undefined]) {
      const again = await end('V-E1', body).expect(200);
      expect(again.body).toEqual({ vehicleId: 'V-E1', ended, changed: false });
    }
    // Another end would rewrite the past.
    const moved = await end('V-E1', { until: '2024-03-22T00:00:00Z' }).expect(409);
    expect(moved.body.error).toBe('mapping_conflict');
    expect(moved.body.message).toMatch(/ended at 2024-03-21T00:00:00.000Z/);
    await map({ vehicleId: 'V-E1', meterId: 'M-2', since: '2024-03-21T00:00:00Z' }).expect(200);
  });

  test('when a mapping is ended without until, then it ends now', async () => {
    await map({ vehicleId: 'V-E2', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    const before = Date.now();
    const res = await end('V-E2').expect(200);
    const to = Date.parse(res.body.ended.to);
    expect(to).toBeGreaterThanOrEqual(before);
    expect(to).toBeLessThanOrEqual(Date.now());
  });

  test("when until is not after the current period's start, then 409 and the period stays open", async () => {
    await map({ vehicleId: 'V-E3', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    for (const until of ['2024-03-20T00:00:00Z', '2024-03-19T00:00:00Z']) {
      const res = await end('V-E3', { until }).expect(409);
      expect(res.body.error).toBe('mapping_conflict');
      expect(res.body.details).toEqual([
        { path: '/until', message: 'must be after 2024-03-20T00:00:00.000Z' },
      ]);
    }
    // Dated ahead of the clock, the period cannot end now.
    await map({
      vehicleId: 'V-E3',
      meterId: 'M-2',
      since: new Date(Date.now() + 200_000).toISOString(),
    }).expect(200);
    const now = await end('V-E3').expect(409);
    expect(now.body.message).toMatch(/^now \(.*\) must be later than/);
    const got = await request(engine.api.app).get('/v1/telemetry/map/V-E3').expect(200);
    expect(got.body.history.at(-1).to).toBeNull();
  });

  test.each([
    [{ until: 'yesterday' }, '/until', /RFC 3339/],
    [{ until: '2024-02-30T00:00:00Z' }, '/until', /RFC 3339|real date/],
    [{ since: '2024-03-20T00:00:00Z' }, '/since', /not an accepted field/],
    [[], '/', /object/],
    [{ until: new Date(Date.now() + 60_000).toISOString() }, '/until', /not be in the future/],
    // Past the clock skew other instants may have too: the same rule, not that one's.
    [{ until: '2099-01-01T00:00:00Z' }, '/until', /^must not be in the future$/],
  ])('when the end is asked with %j, then 400 names %s', async (body, path, message) => {
    await map({ vehicleId: 'V-E4', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    const res = await end('V-E4', body).expect(400);
    expect(res.body.error).toBe('invalid_mapping');
    expect(res.body.details).toEqual(
      expect.arrayContaining([{ path, message: expect.stringMatching(message) }]),
    );
  });

  test('when the end carries a query string, then it is refused, and the mapping stays open (ignored, the end was now, not the until meant)', async () => {
    await map({ vehicleId: 'V-E5', meterId: 'M-1', since: '2024-03-20T00:00:00Z' }).expect(200);
    const res = await request(engine.api.app)
      .post('/v1/telemetry/map/V-E5/end?until=2024-03-20T05:00:00Z')
      .expect(400);
    expect(res.body.message).toBe('until is not a known parameter (this endpoint takes none)');
    const open = await request(engine.api.app).get('/v1/telemetry/map/V-E5').expect(200);
    expect(open.body.current).toMatchObject({ meterId: 'M-1' });
  });

  test('when a vehicle never mapped is ended, then 404', async () => {
    const res = await end('V-none').expect(404);
    expect(res.body.message).toBe('Vehicle V-none has never been mapped to a meter');
  });

  test('when a vehicle was never mapped, then GET answers 404', async () => {
    const res = await request(engine.api.app).get('/v1/telemetry/map/V-none').expect(404);
    expect(res.body.error).toBe('not_found');
  });
});
