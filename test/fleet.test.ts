import request from 'supertest';
import { parseArgs, simulate } from '../scripts/simulate';
import type { Fleet } from '../scripts/fleet-model';
import { EnergyReportStore, type WindowRow } from '../src/analytics/energy-report-store';
import type { Reading } from '../src/devices/device-kinds';
import { HistoryStore } from '../src/stores/history-store';
import { RollupStore } from '../src/stores/rollup-store';
import { startTestEngine, waitForDrained, type TestEngine } from './helpers/engine';
import { meterReading, seededRandom, vehicleReading } from './helpers/readings';
import { createTestContext, type TestContext } from './helpers/test-env';

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

  test('when paging, then a cursor keeps its report: its window and filters hold on the next page, and another report refuses it', async () => {
    const app = request(e.api.api.app);
    const first = await app.get(`/v1/analytics/fleet?${query}&below=0.95&limit=7`).expect(200);
    const cursor = first.body.nextCursor as string;
    // Asked without the window, the filter or the page size: the next page of the same report.
    const next = await app.get(`/v1/analytics/fleet?cursor=${cursor}`).expect(200);
    expect(next.body.vehicles).toHaveLength(7);
    expect(next.body.below).toBe(0.95);
    expect(next.body.window).toEqual(first.body.window);
    expect(next.body.vehicles).toEqual((await allPages(e, `${query}&below=0.95`, 7))[1].vehicles);
    for (const other of [
      `${query}&below=0.5`,
      `${query}&rank=session`,
      'hours=3',
      'from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z',
    ]) {
      const res = await app.get(`/v1/analytics/fleet?${other}&cursor=${cursor}`).expect(400);
      expect({ path: res.body.details[0].path, message: res.body.message }).toEqual({
        path: '/cursor',
        message: expect.stringMatching(
          /^cursor is a page of the report from .* \(below=0\.95, rank=efficiency\), not of one with .*; ask the first page again without a cursor$/,
        ),
      });
    }
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
    ['below=2', '/below'],
    ['limit=0', '/limit'],
    ['limit=10001', '/limit'],
    ['cursor=notacursor', '/cursor'],
    ['hours=500', '/hours'],
    ['below=Infinity', '/below'],
    ['below=-Infinity', '/below'],
    ['below=8e-1', '/below'],
    ['limit=Infinity', '/limit'],
    ['rank=foo', '/rank'],
  ])('when the query is %s, then 400 names %s', async (query, path) => {
    const res = await request(e.api.api.app).get(`/v1/analytics/fleet?${query}`).expect(400);
    expect(res.body.details[0].path).toBe(path);
  });

  test.each([
    ['a threshold outside below', { below: -5, rank: 'efficiency' }, 0, 10],
    ['a rank there is not', { below: 0.85, rank: 'evil' }, 0, 10],
    ['an offset past any integer', { below: 0.85, rank: 'efficiency' }, 1e300, 10],
    ['a page size past the largest', { below: 0.85, rank: 'efficiency' }, 0, 1e9],
  ])(
    'when a made-up cursor holds %s, then 400 names the cursor',
    async (_n, filters, offset, limit) => {
      const scope = {
        from: '2024-01-01T00:00:00.000Z',
        to: '2024-01-02T00:00:00.000Z',
        ...filters,
      };
      const cursor = Buffer.from(JSON.stringify({ offset, limit, scope })).toString('base64url');
      const res = await request(e.api.api.app)
        .get(`/v1/analytics/fleet?cursor=${cursor}`)
        .expect(400);
      expect(res.body.details[0].path).toBe('/cursor');
    },
  );

  test('when below is a decimal without its leading zero, then it is taken as written', async () => {
    const res = await request(e.api.api.app).get('/v1/analytics/fleet?below=.8').expect(200);
    expect(res.body).toMatchObject({ below: 0.8 });
  });

  test('when the fleet is empty, then the report is empty, not an error', async () => {
    const res = await request(e.api.api.app).get('/v1/analytics/fleet').expect(200);
    expect(res.body.totals).toEqual({
      vehiclesChecked: 0,
      vehiclesFlagged: 0,
      withoutMapping: 0,
      withoutMeterData: 0,
    });
    expect(res.body.sharedMeters).toEqual([]);
    expect(res.body.nextCursor).toBeNull();
  });
});

describe('a meter mapped to two vehicles at once', () => {
  let e: TestEngine;
  const fleetIn = (window: string) =>
    request(e.api.api.app).get(`/v1/analytics/fleet?${window}`).expect(200);
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    for (const [vehicleId, meterId, since] of [
      ['V-a', 'M-s', '2024-09-01T00:00:00Z'],
      ['V-b', 'M-s', '2024-09-01T11:00:00Z'],
      ['V-c', 'M-c', '2024-09-01T00:00:00Z'],
    ]) {
      await request(e.api.api.app)
        .post('/v1/telemetry/map')
        .send({ vehicleId, meterId, since })
        .expect(200);
    }
    const at = (hhmm: string) => `2024-09-01T${hhmm}:00Z`;
    await request(e.api.api.app)
      .post('/v1/telemetry/ingest')
      .send([
        ...['10:30', '11:30'].map((t) => ({
          meterId: 'M-s',
          kwhConsumedAc: 2,
          voltage: 230,
          timestamp: at(t),
        })),
        { meterId: 'M-c', kwhConsumedAc: 2, voltage: 230, timestamp: at('10:30') },
        ...['V-a', 'V-b', 'V-c'].map((vehicleId) => ({
          vehicleId,
          soc: 50,
          kwhDeliveredDc: 1.5,
          batteryTemp: 30,
          timestamp: at('11:45'),
        })),
      ])
      .expect(202);
    await waitForDrained(e.queue);
  });
  afterAll(() => e.stop());

  test('when their periods overlap in the window, then the report names the meter and both vehicles, each line counting its whole energy; before the overlap, nothing', async () => {
    const shared = await fleetIn('from=2024-09-01T10:00:00Z&to=2024-09-01T12:00:00Z');
    expect(shared.body.sharedMeters).toEqual([{ meterId: 'M-s', vehicles: ['V-a', 'V-b'] }]);
    const ac = Object.fromEntries(
      (shared.body.vehicles as FleetVehicleJson[]).map((v) => [v.vehicleId, v.acConsumedKwh]),
    );
    expect(ac).toEqual({ 'V-a': 4, 'V-b': 2, 'V-c': 2 });
    const before = await fleetIn('from=2024-09-01T09:00:00Z&to=2024-09-01T11:00:00Z');
    expect(before.body.sharedMeters).toEqual([]);
  });

  test('when the shared meter sent nothing in the window, then the report still names it, as each vehicle report warns', async () => {
    const quiet = await fleetIn('from=2024-09-01T11:00:00Z&to=2024-09-01T11:20:00Z');
    expect(quiet.body.withoutMeterData).toEqual(expect.arrayContaining(['V-a', 'V-b']));
    expect(quiet.body.sharedMeters).toEqual([{ meterId: 'M-s', vehicles: ['V-a', 'V-b'] }]);
    const report = await request(e.api.api.app)
      .get('/v1/analytics/performance/V-a?from=2024-09-01T11:00:00Z&to=2024-09-01T11:20:00Z')
      .expect(200);
    expect(report.body.warnings).toEqual(
      expect.arrayContaining([expect.stringContaining('Meter M-s was mapped to vehicle V-b too')]),
    );
  });
});

/**
 * The fleet statement reads by time (hourly rollups, quarter-hour rollups, raw minutes at the
 * edges, marked hours raw); one vehicle's report reads its own hours. Every line must agree, for
 * any window, in both semantics, per device, across a re-mapping, and while late readings wait in
 * hours already rolled up.
 */
describe('fleet lines against each vehicle report, read from the stores', () => {
  let ctx: TestContext;
  let history: HistoryStore;
  let rollups: RollupStore;
  let reports: EnergyReportStore;
  const at = (hhmm: string) => Date.parse(`2024-06-10T${hhmm}Z`);
  const VEHICLES = ['V-1', 'V-2', 'V-3', 'V-4'];
  const WINDOWS: [string, string, string][] = [
    ['aligned to hours', '08:00:00', '14:00:00'],
    ['minute edges inside a quarter', '08:17:00', '13:37:00'],
    ['edges far from their quarter boundary', '08:04:00', '13:56:00'],
    ['edges on quarter boundaries', '08:15:00', '13:45:00'],
    ['second edges', '09:07:30', '12:52:30'],
    ['inside one hour', '10:05:00', '10:50:00'],
    ['inside one quarter', '10:16:00', '10:29:00'],
    ['across an hour boundary, no whole hour', '09:50:00', '10:20:00'],
  ];

  /** Readings every 3 minutes from 08:00 to 14:00: registers climb with a reset, intervals vary. */
  function day(random: () => number): Reading[] {
    const readings: Reading[] = [];
    const registers = new Map<string, number>();
    for (let ms = at('08:00:00'); ms < at('14:00:00'); ms += 180_000) {
      for (const id of ['M-1', 'M-2', 'M-3', 'M-4', 'V-1', 'V-2', 'V-3', 'V-4']) {
        const step = Math.round(random() * 50) / 10;
        const register = ms === at('11:00:00') ? step : (registers.get(id) ?? 100) + step;
        registers.set(id, register);
        const value = id === 'M-2' || id === 'V-2' ? register : step;
        readings.push(
          id.startsWith('M')
            ? meterReading(id, ms, value)
            : vehicleReading(id, ms + 30_000, 50, value),
        );
      }
    }
    return readings;
  }

  const round = (v: number | null) => (v === null ? null : Math.round(v * 1e6) / 1e6);

  /** What one vehicle's own report says, in the shape of a fleet line. */
  async function own(vehicleId: string, from: Date, to: Date, mode: 'interval' | 'cumulative') {
    const whole = await reports.vehicleWindows(vehicleId, from, to, mode, { hours: false });
    const dc = whole.find((r) => r.role === 'dc') as WindowRow;
    const meters = whole.filter((r) => r.role === 'ac');
    const known = meters.filter((m) => m.energy !== null);
    return {
      meters: meters.map((m) => ({
        meterId: m.deviceId,
        from: m.from,
        to: m.to,
        energyReadings: m.mode,
      })),
      vehicleReadings: dc.readings,
      meterReadings: meters.reduce((sum, m) => sum + m.readings, 0),
      metersWithData: meters.filter((m) => m.readings > 0).length,
      dc: round(dc.energy),
      ac: known.length > 0 ? round(known.reduce((sum, m) => sum + (m.energy ?? 0), 0)) : null,
    };
  }

  async function expectFleetEqualsOwn(): Promise<void> {
    for (const mode of ['interval', 'cumulative'] as const) {
      for (const [label, from, to] of WINDOWS) {
        const window = [new Date(at(from)), new Date(at(to))] as const;
        const lines = await reports.fleet(...window, mode);
        expect({ label, mode, vehicles: lines.map((l) => l.vehicleId).sort() }).toEqual({
          label,
          mode,
          vehicles: VEHICLES,
        });
        for (const line of lines) {
          const { vehicleId, ...figures } = line;
          expect({
            label,
            mode,
            vehicleId,
            ...figures,
            dc: round(line.dc),
            ac: round(line.ac),
          }).toEqual({ label, mode, vehicleId, ...(await own(vehicleId, ...window, mode)) });
        }
      }
    }
  }

  const quarterRollup = async (deviceId: string, quarter: string) =>
    (
      await ctx
        .db('telemetry_15min')
        .where({ device_id: deviceId, quarter: new Date(at(quarter)) })
        .select('readings')
    )[0]?.readings as number | undefined;

  beforeAll(async () => {
    ctx = await createTestContext();
    history = new HistoryStore(ctx.db);
    rollups = new RollupStore(ctx.db);
    reports = new EnergyReportStore(ctx.db);
    await ctx.db.raw(`SELECT ensure_history_partition('2024-06-10')`);
    // Per-device semantics: V-2 and M-2 are registers whatever the default says.
    await ctx.db('device_settings').insert([
      { device_type: 'vehicle', device_id: 'V-2', energy_readings: 'cumulative' },
      { device_type: 'meter', device_id: 'M-2', energy_readings: 'cumulative' },
      { device_type: 'meter', device_id: 'M-1', energy_readings: 'interval' },
    ]);
    // V-3 is re-mapped from M-3 to M-4 at 10:40; V-4 has no meter.
    await ctx.db('vehicle_meter_map').insert([
      { vehicle_id: 'V-1', meter_id: 'M-1', valid_from: '2024-06-01T00:00:00Z' },
      { vehicle_id: 'V-2', meter_id: 'M-2', valid_from: '2024-06-01T00:00:00Z' },
      {
        vehicle_id: 'V-3',
        meter_id: 'M-3',
        valid_from: '2024-06-01T00:00:00Z',
        valid_to: '2024-06-10T10:40:00Z',
      },
      { vehicle_id: 'V-3', meter_id: 'M-4', valid_from: '2024-06-10T10:40:00Z' },
    ]);
    await history.insert(day(seededRandom(19)), Date.now());
  });
  afterAll(() => ctx.cleanup());

  test('when no hour is rolled up yet, then every line equals the vehicle report', async () => {
    await expectFleetEqualsOwn();
  });

  test('when the last hour is in progress (its closed quarters rolled up, the rest marked), then every line equals the vehicle report', async () => {
    // Every device has readings in every quarter: 8 devices, 5 hours and 2 quarters of 13:00.
    expect(await rollups.rollUpPending(new Date(at('13:30:00')), 10_000)).toEqual({
      quarters: 8 * (5 * 4 + 2),
      hours: 8 * 6,
    });
    expect(await quarterRollup('M-1', '13:15:00')).toBe(5); // 13:15, :18, :21, :24, :27
    expect(await quarterRollup('M-1', '13:30:00')).toBeUndefined();
    await expectFleetEqualsOwn();
  });

  test('when the hours are rolled up at both grains, then every line still equals the vehicle report', async () => {
    expect(await rollups.rollUpPending(new Date(at('15:00:00')), 10_000)).toEqual({
      quarters: 8 * 2,
      hours: 8,
    });
    expect(await quarterRollup('M-1', '10:15:00')).toBe(5); // 10:15, :18, :21, :24, :27
    await expectFleetEqualsOwn();
  });

  test('when late readings land in rolled-up hours (an edge quarter, a whole hour), then lines equal the vehicle report before and after both grains are rolled up again', async () => {
    await history.insert(
      [
        meterReading('M-1', at('08:20:00'), 7), // in the minutes short of a quarter
        meterReading('M-1', at('13:40:00'), 7),
        meterReading('M-2', at('10:20:00'), 1), // a register reset inside a quarter
        vehicleReading('V-1', at('11:01:00'), 50, 3), // a whole hour
        vehicleReading('V-2', at('12:31:00'), 50, 9999),
        meterReading('M-4', at('10:50:00'), 2),
      ],
      Date.now(),
    );
    await expectFleetEqualsOwn();
    expect(await rollups.rollUpPending(new Date(at('15:00:00')), 10_000)).toEqual({
      quarters: 6,
      hours: 6,
    });
    expect(await quarterRollup('M-1', '08:15:00')).toBe(6);
    expect(await quarterRollup('M-2', '10:15:00')).toBe(6);
    await expectFleetEqualsOwn();
  });

  test("when a vehicle's only readings in an edge quarter are before the window, then it has no line", async () => {
    await history.insert([vehicleReading('V-5', at('08:01:00'), 50, 4)], Date.now());
    expect(await rollups.rollUpPending(new Date(at('15:00:00')), 10_000)).toEqual({
      quarters: 1,
      hours: 1,
    });
    const vehicles = async (from: string, to: string) =>
      (await reports.fleet(new Date(at(from)), new Date(at(to)), 'interval'))
        .map((l) => l.vehicleId)
        .sort();
    // From 08:05 the edge reads the quarter from 08:00 less 08:00 to 08:05: V-5's one reading.
    expect(await vehicles('08:05:00', '10:00:00')).toEqual(VEHICLES);
    expect(await vehicles('08:00:00', '10:00:00')).toEqual([...VEHICLES, 'V-5']);
  });
});
