import request from 'supertest';
import { parseArgs, simulate } from '../scripts/simulate';
import type { Fleet } from '../scripts/fleet-model';
import { startTestEngine, waitForDrained, type TestEngine } from './helpers/engine';

interface FleetVehicleJson {
  vehicleId: string;
  meters: unknown[];
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
  efficiency: number | null;
  alert: boolean | null;
}

/** Every page of the fleet report, following nextCursor. */
async function allPages(e: TestEngine, query: string, limit: number) {
  const pages = [];
  let cursor: string | null = null;
  do {
    const res: request.Response = await request(e.api.api.app)
      .get(`/v1/analytics/fleet?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`)
      .expect(200);
    pages.push(res.body);
    cursor = res.body.nextCursor;
  } while (cursor);
  return pages;
}

describe.each(['interval', 'cumulative'] as const)('fleet report, %s readings', (mode) => {
  let e: TestEngine;
  let fleet: Fleet;
  // An unaligned window holding the whole simulated span (every vehicle charged in it), with
  // partial hours at both ends.
  const windowQuery = () => {
    const from = new Date(Date.now() - 4 * 3600_000 - 17 * 60_000).toISOString();
    const to = new Date(Date.now() - 11 * 60_000).toISOString();
    return `from=${from}&to=${to}`;
  };
  let query: string;

  beforeAll(async () => {
    e = await startTestEngine({ ENERGY_READINGS: mode });
    fleet = await simulate(
      {
        ...parseArgs([
          '--meters',
          '30',
          '--vehicles',
          '30',
          '--faulty',
          '0.2',
          '--backfill',
          '4h',
          '--mode',
          mode,
          '--quiet',
        ]),
        url: e.url,
      },
      () => undefined,
    );
    // A vehicle with readings but no mapping, and one mapped to a meter that never reported.
    const now = new Date(Date.now() - 60 * 60_000).toISOString();
    await request(e.api.api.app)
      .post('/v1/telemetry/ingest')
      .set('Content-Type', 'application/json')
      .send([{ vehicleId: 'LONE-1', soc: 50, kwhDeliveredDc: 1, batteryTemp: 30, timestamp: now }])
      .expect(202);
    await request(e.api.api.app)
      .post('/v1/telemetry/map')
      .set('Content-Type', 'application/json')
      .send({ vehicleId: 'QUIET-1', meterId: 'QUIET-M', since: '2024-01-01T00:00:00Z' })
      .expect(200);
    await waitForDrained(e.queue, 60_000);
    query = windowQuery();
  });
  afterAll(() => e.stop());

  test('when the fleet is checked, then exactly the faulty chargers are flagged, worst first', async () => {
    const res = await request(e.api.api.app)
      .get(`/v1/analytics/fleet?${query}&limit=1000`)
      .expect(200);
    const faulty = fleet.faulty().map((f) => f.vehicleId);
    const flagged = (res.body.vehicles as FleetVehicleJson[])
      .filter((v) => v.alert)
      .map((v) => v.vehicleId);
    expect(new Set(flagged)).toEqual(new Set(faulty));
    expect(
      res.body.vehicles.slice(0, faulty.length).map((v: FleetVehicleJson) => v.vehicleId),
    ).toEqual(flagged);
    const efficiencies = (res.body.vehicles as FleetVehicleJson[]).map(
      (v) => v.efficiency ?? Infinity,
    );
    expect(efficiencies).toEqual([...efficiencies].sort((a, b) => a - b));
    expect(res.body.totals).toEqual({
      vehiclesChecked: 32,
      vehiclesFlagged: faulty.length,
      withoutMapping: 1,
      withoutMeterData: 1,
    });
    expect(res.body.withoutMapping).toEqual(['LONE-1']);
    expect(res.body.withoutMeterData).toEqual(['QUIET-1']);
  });

  test('when a vehicle is looked at alone, then its figures equal its line in the fleet report', async () => {
    const res = await request(e.api.api.app)
      .get(`/v1/analytics/fleet?${query}&limit=1000`)
      .expect(200);
    for (const line of res.body.vehicles as FleetVehicleJson[]) {
      const own = await request(e.api.api.app)
        .get(`/v1/analytics/performance/${line.vehicleId}?${query}`)
        .expect(200);
      expect({
        acConsumedKwh: line.acConsumedKwh,
        dcDeliveredKwh: line.dcDeliveredKwh,
        efficiency: line.efficiency,
        alert: line.alert,
        meters: line.meters,
      }).toEqual({
        acConsumedKwh: own.body.energy.acConsumedKwh,
        dcDeliveredKwh: own.body.energy.dcDeliveredKwh,
        efficiency: own.body.energy.efficiency,
        alert: own.body.energy.alert,
        meters: own.body.meters,
      });
    }
  });

  test('when paging through the report, then every vehicle appears exactly once, in order', async () => {
    const pages = await allPages(e, query, 7);
    const ids = pages.flatMap((p) => (p.vehicles as FleetVehicleJson[]).map((v) => v.vehicleId));
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
    expect(pages.length).toBe(5);
  });
});

describe('fleet report parameters', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({});
  });
  afterAll(() => e.stop());

  test.each([
    ['below=abc', '/below'],
    ['limit=0', '/limit'],
    ['limit=10001', '/limit'],
    ['cursor=notacursor', '/cursor'],
    ['hours=500', '/hours'],
  ])('when the query is %s, then 400 names %s', async (query, path) => {
    const res = await request(e.api.api.app).get(`/v1/analytics/fleet?${query}`).expect(400);
    expect(res.body.details[0].path).toBe(path);
  });

  test('when the fleet is empty, then the report is empty, not an error', async () => {
    const res = await request(e.api.api.app).get('/v1/analytics/fleet').expect(200);
    expect(res.body.totals).toEqual({
      vehiclesChecked: 0,
      vehiclesFlagged: 0,
      withoutMapping: 0,
      withoutMeterData: 0,
    });
    expect(res.body.nextCursor).toBeNull();
  });
});
