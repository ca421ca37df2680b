import request from 'supertest';
import { createApp } from '../src/app';
import { IngestQueues } from '../src/queue/ingest-queue';
import { createRedis } from '../src/redis';
import { createRedisKeys } from '../src/redis-keys';
import { EnergyReportStore } from '../src/analytics/energy-report-store';
import { RollupStore } from '../src/stores/rollup-store';
import { createDb } from '../db/create-db';
import { migrateToLatest, withMaintenanceClient } from '../db/migrate';
import { loadConfig } from '../src/config';
import { retainedFrom } from '../src/stores/retention';
import { DAY_MS, HOUR_MS } from '../src/time-units';
import { startTestApi, startTestEngine, waitForDrained, type TestEngine } from './helpers/engine';
import { explainGeneric } from './helpers/plans';
import { startProcess } from './helpers/processes';
import { seededRandom, shuffle } from './helpers/readings';
import { TcpProxy } from './helpers/tcp-proxy';
import { undoMigrationsThrough } from './helpers/migrations';
import { liveStateOf } from './helpers/engine';
import { PartitionMaintainer } from '../workers/partition-maintainer';
import { baseDatabaseUrl, createTestContext, withDatabaseName } from './helpers/test-env';

const meter = (meterId: string, timestamp: string, kwhConsumedAc: number) => ({
  meterId,
  kwhConsumedAc,
  voltage: 230,
  timestamp,
});
const vehicle = (
  vehicleId: string,
  timestamp: string,
  kwhDeliveredDc: number,
  soc = 50,
  batteryTemp = 30,
) => ({
  vehicleId,
  soc,
  kwhDeliveredDc,
  batteryTemp,
  timestamp,
});

async function ingest(e: TestEngine, readings: object[]): Promise<void> {
  await request(e.api.api.app)
    .post('/v1/telemetry/ingest')
    .set('Content-Type', 'application/json')
    .send(readings)
    .expect(202);
  await waitForDrained(e.queue);
}

async function map(
  e: TestEngine,
  vehicleId: string,
  meterId: string,
  since: string,
): Promise<void> {
  await request(e.api.api.app)
    .post('/v1/telemetry/map')
    .set('Content-Type', 'application/json')
    .send({ vehicleId, meterId, since })
    .expect(200);
}

/**
 * Forgets cached reports, so the next request computes from PostgreSQL again (for engines started
 * with WITHOUT_LOCAL_COPIES: a process's own copies would answer until their Redis entry expires).
 */
async function clearAnalyticsCache(e: TestEngine): Promise<void> {
  const keys = await e.ctx.redis.keys(`${e.ctx.config.redisPrefix}:analytics:*`);
  if (keys.length > 0) await e.ctx.redis.del(...keys);
}

const WITHOUT_LOCAL_COPIES = { ANALYTICS_CACHE_LOCAL_KB: '0' };

const report = (e: TestEngine, vehicleId: string, query: string) =>
  request(e.api.api.app).get(`/v1/analytics/performance/${vehicleId}?${query}`);

describe('performance report, interval readings', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine(WITHOUT_LOCAL_COPIES);
  });
  afterAll(() => e.stop());

  test('when the two seed payloads and a mapping are stored, then efficiency is 120.2 / 150.5 with an alert', async () => {
    await ingest(e, [
      { meterId: 'M-123', kwhConsumedAc: 150.5, voltage: 230, timestamp: '2024-03-20T10:00:00Z' },
      {
        vehicleId: 'V-456',
        soc: 85,
        kwhDeliveredDc: 120.2,
        batteryTemp: 35.5,
        timestamp: '2024-03-20T10:00:00Z',
      },
    ]);
    await map(e, 'V-456', 'M-123', '2024-03-19T00:00:00Z');
    const res = await report(
      e,
      'V-456',
      'from=2024-03-19T10:00:01Z&to=2024-03-20T10:00:01Z',
    ).expect(200);
    expect(res.body).toEqual({
      vehicleId: 'V-456',
      window: { from: '2024-03-19T10:00:01.000Z', to: '2024-03-20T10:00:01.000Z' },
      meters: [
        {
          meterId: 'M-123',
          from: '2024-03-19T10:00:01.000Z',
          to: '2024-03-20T10:00:01.000Z',
          energyReadings: 'interval',
        },
      ],
      energy: {
        acConsumedKwh: 150.5,
        dcDeliveredKwh: 120.2,
        efficiency: 0.7987,
        threshold: 0.85,
        alert: true,
        mode: 'interval',
      },
      battery: {
        avgTempC: 35.5,
        minTempC: 35.5,
        maxTempC: 35.5,
        socStart: 85,
        socEnd: 85,
        socMin: 85,
        socMax: 85,
      },
      counts: { vehicleReadings: 1, meterReadings: 1 },
      warnings: [],
      // One charging reading: a session from the gap before it (10 min, no earlier reading).
      sessions: {
        count: 1,
        flagged: 1,
        worst: expect.objectContaining({
          id: 'd-1710928200000',
          start: '2024-03-20T09:50:00.000Z',
          end: '2024-03-20T10:00:00.000Z',
          acConsumedKwh: 150.5,
          dcDeliveredKwh: 120.2,
          efficiency: 0.7987,
          alert: true,
        }),
      },
      cache: 'miss',
    });
  });

  test('when efficiency is just below the threshold (shown rounded up to it), then the vehicle report and its fleet line both alert', async () => {
    await ingest(e, [
      meter('M-edge', '2024-04-20T10:00:00Z', 1),
      vehicle('V-edge', '2024-04-20T10:00:00Z', 0.84996),
    ]);
    await map(e, 'V-edge', 'M-edge', '2024-04-19T00:00:00Z');
    const window = 'from=2024-04-20T00:00:00Z&to=2024-04-21T00:00:00Z';
    const own = await report(e, 'V-edge', window).expect(200);
    expect(own.body.energy).toMatchObject({ efficiency: 0.85, threshold: 0.85, alert: true });
    const fleet = await request(e.api.api.app).get(`/v1/analytics/fleet?${window}`).expect(200);
    expect(fleet.body.vehicles).toEqual([
      expect.objectContaining({ vehicleId: 'V-edge', efficiency: 0.85, alert: true }),
    ]);
    expect(fleet.body.totals.vehiclesFlagged).toBe(1);
  });

  test("when a meter sends its running total while read as intervals, then the report says which setting to check; set to cumulative, the figures are a charger's", async () => {
    const at = (minute: number) => new Date(Date.UTC(2024, 3, 22, 10, minute)).toISOString();
    // A register at 5,000 kWh, 0.5 kWh more every 5 minutes; the vehicle 0.4 kWh of DC each time.
    await ingest(e, [
      ...Array.from({ length: 13 }, (_, i) => meter('M-total', at(i * 5), 5000 + i * 0.5)),
      ...Array.from({ length: 13 }, (_, i) => vehicle('V-total', at(i * 5), i === 0 ? 0 : 0.4)),
    ]);
    await map(e, 'V-total', 'M-total', '2024-04-21T00:00:00Z');
    const window = 'from=2024-04-22T10:00:00Z&to=2024-04-22T11:00:00Z';
    const misread = await report(e, 'V-total', window).expect(200);
    expect(misread.body.energy.efficiency).toBeLessThan(0.001);
    expect(misread.body.warnings).toContainEqual(
      expect.stringMatching(
        /^AC consumed is over 20 times DC delivered at over 50 kW on average, which no charger loses: check the energy mode \(a meter that sends its running total must be set to cumulative/,
      ),
    );
    await request(e.api.api.app)
      .put('/v1/meters/M-total/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    // Another window's report (this one's may be cached): the same readings.
    const read = await report(
      e,
      'V-total',
      'from=2024-04-22T10:00:00Z&to=2024-04-22T10:59:00Z',
    ).expect(200);
    expect(read.body.energy).toMatchObject({
      acConsumedKwh: 5.5,
      dcDeliveredKwh: 4.4,
      efficiency: 0.8,
    });
    expect(read.body.warnings).toEqual([]);
    // A meter's standby against a vehicle's top-up is a twentieth too, at a few watts: not a mistake.
    await ingest(e, [
      ...Array.from({ length: 12 }, (_, i) => meter('M-standby', at(i * 5), 0.01)),
      vehicle('V-standby', at(30), 0.002),
    ]);
    await map(e, 'V-standby', 'M-standby', '2024-04-21T00:00:00Z');
    const standby = await report(e, 'V-standby', window).expect(200);
    expect(standby.body.energy.efficiency).toBeLessThan(0.05);
    expect(standby.body.warnings).toEqual([]);
  });

  test("when a register meter drops to 0 and back during a charge, then the report warns of it whatever the window's length, and says what to check", async () => {
    await request(e.api.api.app)
      .put('/v1/meters/M-dip/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    await map(e, 'V-dip', 'M-dip', '2024-10-10T00:00:00Z');
    const at = (minute: number) => new Date(Date.UTC(2024, 9, 10, 10, minute)).toISOString();
    await ingest(e, [
      ...[1000, 1001, 0, 1002].map((kwh, i) => meter('M-dip', at(i * 5), kwh)),
      ...[1, 2, 3].map((i) => vehicle('V-dip', at(i * 5), 0.9)),
    ]);
    // 1 + 0 + 1002 kWh (the drop to 0 is a reset) against 2.7: 1,003 kWh in 15 minutes, which
    // over a day would average 42 kW, over an hour 1,003.
    for (const window of [
      'from=2024-10-10T10:00:00Z&to=2024-10-10T11:00:00Z',
      'from=2024-10-10T00:00:00Z&to=2024-10-11T00:00:00Z',
    ]) {
      const res = await report(e, 'V-dip', window).expect(200);
      expect(res.body.energy).toMatchObject({ acConsumedKwh: 1003, dcDeliveredKwh: 2.7 });
      expect(res.body.warnings).toEqual([
        expect.stringMatching(
          /over 50 kW on average.*a cumulative meter's readings \(one that drops below half its register and rises again counts as a reset/,
        ),
      ]);
    }
  });

  test('when a healthy fast charge begins just before the end of the window, then the window is low but nothing warns of a misread meter', async () => {
    await map(e, 'V-late-start', 'M-late-start', '2024-10-11T00:00:00Z');
    const at = (minute: number) => new Date(Date.UTC(2024, 9, 11, 9, 50 + minute)).toISOString();
    // 150 kW from 09:50 (2.5 kWh a minute) to 10:30; the vehicle's first reading at 09:59.
    await ingest(e, [
      ...Array.from({ length: 41 }, (_, i) => meter('M-late-start', at(i), 2.5)),
      vehicle('V-late-start', at(9), 0.3),
      ...Array.from({ length: 6 }, (_, i) => vehicle('V-late-start', at(14 + i * 5), 11.25)),
    ]);
    // 09:00-10:00: AC 25 kWh (25 kW over the hour) against 0.3 of DC; its session is healthy.
    const res = await report(
      e,
      'V-late-start',
      'from=2024-10-11T09:00:00Z&to=2024-10-11T10:00:00Z',
    ).expect(200);
    expect(res.body.energy.efficiency).toBeLessThan(0.05);
    expect(res.body.sessions.worst.efficiency).toBeGreaterThan(0.5);
    expect(res.body.warnings).toEqual([]);
  });

  test('when a parked vehicle took no DC energy while its meter drew standby AC, then its efficiency is undefined and it is not flagged, in its report, its hours and the fleet', async () => {
    const at = (minute: number) => `2024-05-20T10:${String(minute).padStart(2, '0')}:00Z`;
    await ingest(e, [
      ...[10, 20, 30].flatMap((m) => [meter('M-idle', at(m), 0.002), vehicle('V-idle', at(m), 0)]),
      meter('M-busy', at(10), 10),
      vehicle('V-busy', at(10), 9),
    ]);
    await map(e, 'V-idle', 'M-idle', '2024-05-19T00:00:00Z');
    await map(e, 'V-busy', 'M-busy', '2024-05-19T00:00:00Z');
    const window = 'from=2024-05-20T00:00:00Z&to=2024-05-21T00:00:00Z';
    const own = await report(e, 'V-idle', `${window}&bucket=hour`).expect(200);
    expect(own.body.energy).toMatchObject({
      acConsumedKwh: 0.006,
      dcDeliveredKwh: 0,
      efficiency: null,
      alert: null,
    });
    expect(own.body.warnings).toContain(
      "Vehicle V-idle took no DC energy in this window, so efficiency is undefined: it did not charge, and the 0.006 kWh of AC is its meters' standby (or its DC readings are wrong)",
    );
    const tenOClock = own.body.series.find((p: { hour: string }) =>
      p.hour.startsWith('2024-05-20T10'),
    );
    expect(tenOClock).toMatchObject({ acConsumedKwh: 0.006, dcDeliveredKwh: 0, efficiency: null });

    const fleet = await request(e.api.api.app).get(`/v1/analytics/fleet?${window}`).expect(200);
    expect(fleet.body.vehicles).toEqual([
      expect.objectContaining({ vehicleId: 'V-busy', efficiency: 0.9, alert: false }),
      expect.objectContaining({
        vehicleId: 'V-idle',
        acConsumedKwh: 0.006,
        efficiency: null,
        alert: null,
      }),
    ]);
    expect(fleet.body.totals.vehiclesFlagged).toBe(0);
  });

  test('when efficiency is exactly the threshold (17 of 20 kWh, summed from 1.7s as 16.999999999999996), then nothing alerts', async () => {
    const at = (i: number) =>
      new Date(Date.parse('2024-04-21T10:00:00Z') + i * 300_000).toISOString();
    await ingest(
      e,
      Array.from({ length: 10 }, (_, i) => [
        meter('M-eq', at(i), 2),
        vehicle('V-eq', at(i), 1.7),
      ]).flat(),
    );
    await map(e, 'V-eq', 'M-eq', '2024-04-20T00:00:00Z');
    const window = 'from=2024-04-21T00:00:00Z&to=2024-04-22T00:00:00Z';
    const own = await report(e, 'V-eq', window).expect(200);
    expect(own.body.energy).toMatchObject({ acConsumedKwh: 20, efficiency: 0.85, alert: false });
    expect(own.body.sessions.flagged).toBe(0);
    const fleet = await request(e.api.api.app).get(`/v1/analytics/fleet?${window}`).expect(200);
    expect(fleet.body.vehicles).toEqual([
      expect.objectContaining({ vehicleId: 'V-eq', alert: false }),
    ]);
  });

  test('when asked again for the same window, then the answer comes from the cache', async () => {
    const res = await report(
      e,
      'V-456',
      'from=2024-03-19T10:00:01Z&to=2024-03-20T10:00:01Z',
    ).expect(200);
    expect(res.body.cache).toBe('hit');
    expect(res.body.energy.efficiency).toBe(0.7987);
  });

  test('when a report is asked with fresh=true, then it is computed again from what is stored now, and replaces the cached one', async () => {
    await map(e, 'V-fresh', 'M-fresh', '2024-03-21T00:00:00Z');
    await ingest(e, [
      meter('M-fresh', '2024-03-21T10:00:00Z', 10),
      vehicle('V-fresh', '2024-03-21T10:00:00Z', 9),
    ]);
    const window = 'from=2024-03-21T09:00:00Z&to=2024-03-21T12:00:00Z';
    expect((await report(e, 'V-fresh', window).expect(200)).body.cache).toBe('miss');
    await ingest(e, [meter('M-fresh', '2024-03-21T10:30:00Z', 2)]);
    const cached = await report(e, 'V-fresh', window).expect(200);
    expect(cached.body).toMatchObject({ cache: 'hit', energy: { acConsumedKwh: 10 } });
    const fresh = await report(e, 'V-fresh', `${window}&fresh=true`).expect(200);
    expect(fresh.body).toMatchObject({ cache: 'miss', energy: { acConsumedKwh: 12 } });
    const after = await report(e, 'V-fresh', window).expect(200);
    expect(after.body).toMatchObject({ cache: 'hit', energy: { acConsumedKwh: 12 } });
    // Browsers send Cache-Control: no-cache by themselves (the dashboard's fetches): not an ask.
    await ingest(e, [meter('M-fresh', '2024-03-21T11:00:00Z', 3)]);
    for (const ask of [
      report(e, 'V-fresh', `${window}&fresh=false`),
      report(e, 'V-fresh', window).set('Cache-Control', 'no-cache'),
    ]) {
      expect((await ask.expect(200)).body).toMatchObject({
        cache: 'hit',
        energy: { acConsumedKwh: 12 },
      });
    }
  });

  // Readings every 20 minutes from 09:00 to 13:40; window 09:30 to 13:10 cuts hours at both ends.
  const times = Array.from({ length: 15 }, (_, i) =>
    new Date(Date.parse('2024-05-01T09:00:00Z') + i * 20 * 60_000).toISOString(),
  );
  const meterReadings = times.map((t, i) => meter('M-int', t, 1 + i)); // 1..15 kWh
  const vehicleReadings = times.map((t, i) =>
    vehicle('V-int', t, 0.9 * (1 + i), 20 + i * 5, 25 + i),
  );
  // In the window: readings 09:40 (i=2) .. 13:00 (i=12): AC = 3+...+13 = 88; DC = 0.9 * 88 = 79.2
  const window = 'from=2024-05-01T09:30:00Z&to=2024-05-01T13:10:00Z';
  const expected = {
    energy: {
      acConsumedKwh: 88,
      dcDeliveredKwh: 79.2,
      efficiency: 0.9,
      threshold: 0.85,
      alert: false,
      mode: 'interval',
    },
    battery: {
      avgTempC: 32,
      minTempC: 27,
      maxTempC: 37,
      socStart: 30,
      socEnd: 80,
      socMin: 30,
      socMax: 80,
    },
    counts: { vehicleReadings: 11, meterReadings: 11 },
  };

  test('when a window cuts hours at both ends, then whole hours and edge readings add up exactly', async () => {
    await map(e, 'V-int', 'M-int', '2024-04-01T00:00:00Z');
    await ingest(e, [...meterReadings, ...vehicleReadings]);
    const res = await report(e, 'V-int', window).expect(200);
    expect(res.body).toMatchObject(expected);
  });

  test('when bucket=hour is asked, then the series has one entry per hour adding up to the window', async () => {
    const res = await report(e, 'V-int', `${window}&bucket=hour`).expect(200);
    expect(res.body).toMatchObject(expected);
    expect(res.body.series).toEqual([
      {
        hour: '2024-05-01T09:00:00.000Z',
        acConsumedKwh: 3,
        dcDeliveredKwh: 2.7,
        efficiency: 0.9,
        avgTempC: 27,
        socEnd: 30,
      },
      {
        hour: '2024-05-01T10:00:00.000Z',
        acConsumedKwh: 15,
        dcDeliveredKwh: 13.5,
        efficiency: 0.9,
        avgTempC: 29,
        socEnd: 45,
      },
      {
        hour: '2024-05-01T11:00:00.000Z',
        acConsumedKwh: 24,
        dcDeliveredKwh: 21.6,
        efficiency: 0.9,
        avgTempC: 32,
        socEnd: 60,
      },
      {
        hour: '2024-05-01T12:00:00.000Z',
        acConsumedKwh: 33,
        dcDeliveredKwh: 29.7,
        efficiency: 0.9,
        avgTempC: 35,
        socEnd: 75,
      },
      {
        hour: '2024-05-01T13:00:00.000Z',
        acConsumedKwh: 13,
        dcDeliveredKwh: 11.7,
        efficiency: 0.9,
        avgTempC: 37,
        socEnd: 80,
      },
    ]);
    await report(e, 'V-int', `${window}&bucket=day`).expect(400);
  });

  test('when the same readings arrive again, duplicated and out of order, then the answer does not change', async () => {
    const all = [...meterReadings, ...vehicleReadings];
    await ingest(e, shuffle([...all, ...all], seededRandom(3)));
    await clearAnalyticsCache(e);
    const res = await report(e, 'V-int', window).expect(200);
    expect(res.body.cache).toBe('miss');
    expect(res.body).toMatchObject(expected);
  });

  test('when the vehicle is re-mapped mid-window, then each meter counts only for its own period', async () => {
    await map(e, 'V-re', 'M-A', '2024-06-01T00:00:00Z');
    await map(e, 'V-re', 'M-B', '2024-06-01T11:00:00Z');
    await ingest(e, [
      meter('M-A', '2024-06-01T10:30:00Z', 2),
      meter('M-A', '2024-06-01T11:30:00Z', 50), // after the re-mapping: not this vehicle's
      meter('M-B', '2024-06-01T10:30:00Z', 70), // before the re-mapping: not this vehicle's
      meter('M-B', '2024-06-01T11:30:00Z', 3),
      vehicle('V-re', '2024-06-01T10:45:00Z', 4.5),
    ]);
    const res = await report(e, 'V-re', 'from=2024-06-01T10:00:00Z&to=2024-06-01T12:00:00Z').expect(
      200,
    );
    expect(res.body.meters).toEqual([
      {
        meterId: 'M-A',
        from: '2024-06-01T10:00:00.000Z',
        to: '2024-06-01T11:00:00.000Z',
        energyReadings: 'interval',
      },
      {
        meterId: 'M-B',
        from: '2024-06-01T11:00:00.000Z',
        to: '2024-06-01T12:00:00.000Z',
        energyReadings: 'interval',
      },
    ]);
    expect(res.body.energy).toMatchObject({
      acConsumedKwh: 5,
      dcDeliveredKwh: 4.5,
      efficiency: 0.9,
      alert: false,
    });

    // A later re-mapping never rewrites that past window.
    await map(e, 'V-re', 'M-C', '2024-07-01T00:00:00Z');
    const again = await report(
      e,
      'V-re',
      'from=2024-06-01T10:00:00Z&to=2024-06-01T12:00:01Z',
    ).expect(200);
    expect(again.body.energy.acConsumedKwh).toBe(5);
  });

  test("when the vehicle's mapping is ended mid-window, then its meter counts until the end only, and a meter shared by mistake is shared no longer", async () => {
    await map(e, 'V-end', 'M-end', '2024-06-02T00:00:00Z');
    await map(e, 'V-next', 'M-end', '2024-06-02T11:00:00Z'); // a new vehicle on the same charger
    await ingest(e, [
      meter('M-end', '2024-06-02T10:30:00Z', 2),
      meter('M-end', '2024-06-02T11:30:00Z', 50), // the next vehicle's
      vehicle('V-end', '2024-06-02T10:45:00Z', 1.8),
    ]);
    const window = 'from=2024-06-02T10:00:00Z&to=2024-06-02T12:00:00Z';
    const shared = await report(e, 'V-end', window).expect(200);
    expect(shared.body.energy.acConsumedKwh).toBe(52);
    expect(shared.body.warnings).toEqual([expect.stringMatching(/mapped to vehicle V-next too/)]);

    const ended = await request(e.api.api.app)
      .post('/v1/telemetry/map/V-end/end')
      .send({ until: '2024-06-02T11:00:00Z' })
      .expect(200);
    expect(ended.body).toEqual({
      vehicleId: 'V-end',
      ended: { meterId: 'M-end', from: '2024-06-02T00:00:00.000Z', to: '2024-06-02T11:00:00.000Z' },
      changed: true,
    });
    await clearAnalyticsCache(e);
    const res = await report(e, 'V-end', window).expect(200);
    expect(res.body.meters).toEqual([
      {
        meterId: 'M-end',
        from: '2024-06-02T10:00:00.000Z',
        to: '2024-06-02T11:00:00.000Z',
        energyReadings: 'interval',
      },
    ]);
    expect(res.body.energy).toMatchObject({
      acConsumedKwh: 2,
      dcDeliveredKwh: 1.8,
      efficiency: 0.9,
    });
    expect(res.body.warnings).toEqual([]);
    const next = await report(e, 'V-next', window).expect(200);
    expect(next.body.energy.acConsumedKwh).toBe(50);
    expect(next.body.warnings).not.toContainEqual(expect.stringMatching(/mapped to vehicle/));
  });

  test('when a meter is mapped to a second vehicle while still mapped to the first, then each report counts its energy and warns of the other vehicle for the shared stretch only', async () => {
    await map(e, 'V-sh1', 'M-sh', '2024-09-01T00:00:00Z');
    await map(e, 'V-sh2', 'M-sh', '2024-09-01T11:00:00Z');
    await map(e, 'V-sh3', 'M-sh', '2024-09-02T00:00:00Z'); // after the window
    await ingest(e, [
      meter('M-sh', '2024-09-01T10:30:00Z', 2),
      meter('M-sh', '2024-09-01T11:30:00Z', 6),
      vehicle('V-sh1', '2024-09-01T10:45:00Z', 1.6),
      vehicle('V-sh2', '2024-09-01T11:45:00Z', 4.8),
    ]);
    const window = 'from=2024-09-01T10:00:00Z&to=2024-09-01T12:00:00Z';
    const first = await report(e, 'V-sh1', window).expect(200);
    expect(first.body.energy).toMatchObject({ acConsumedKwh: 8, dcDeliveredKwh: 1.6 });
    expect(first.body.warnings).toEqual([
      'Meter M-sh was mapped to vehicle V-sh2 too between 2024-09-01T11:00:00.000Z and 2024-09-01T12:00:00.000Z: its AC energy counts in each of their reports',
    ]);
    const second = await report(e, 'V-sh2', window).expect(200);
    expect(second.body.energy).toMatchObject({ acConsumedKwh: 6, dcDeliveredKwh: 4.8 });
    // Mapped from 11:00 on, but it took nothing before: the stretch is not worth a warning.
    expect(second.body.warnings).toEqual([
      'Meter M-sh was mapped to vehicle V-sh1 too between 2024-09-01T11:00:00.000Z and 2024-09-01T12:00:00.000Z: its AC energy counts in each of their reports',
    ]);
    // Before the second mapping the meter was the first vehicle's alone.
    const before = await report(e, 'V-sh1', 'from=2024-09-01T09:00:00Z&to=2024-09-01T11:00:00Z');
    expect(before.body.warnings).toEqual([]);
  });

  test('when a vehicle took DC energy before its first mapping in the window, then the report names that stretch; readings of no energy there are not worth a word', async () => {
    await map(e, 'V-late', 'M-late', '2024-09-03T11:00:00Z');
    await map(e, 'V-drove', 'M-drove', '2024-09-03T11:00:00Z');
    await ingest(e, [
      vehicle('V-late', '2024-09-03T10:30:00Z', 2), // charged before the mapping: no AC for it
      vehicle('V-late', '2024-09-03T11:30:00Z', 1.8),
      meter('M-late', '2024-09-03T11:30:00Z', 2),
      vehicle('V-drove', '2024-09-03T10:30:00Z', 0), // driving: no energy taken
      vehicle('V-drove', '2024-09-03T11:30:00Z', 1.8),
      meter('M-drove', '2024-09-03T11:30:00Z', 2),
    ]);
    const window = 'from=2024-09-03T10:00:00Z&to=2024-09-03T12:00:00Z';
    const res = await report(e, 'V-late', window);
    expect(res.body.energy).toMatchObject({ acConsumedKwh: 2, dcDeliveredKwh: 3.8 });
    expect(res.body.warnings).toContain(
      'Vehicle V-late took DC energy between 2024-09-03T10:00:00.000Z and 2024-09-03T11:00:00.000Z, when it was mapped to no meter: the AC energy of that charging is unknown, while its DC counts',
    );
    expect((await report(e, 'V-drove', window)).body.warnings).toEqual([]);
    // A window from the mapping on has no such stretch.
    const mapped = await report(e, 'V-late', 'from=2024-09-03T11:00:00Z&to=2024-09-03T12:00:00Z');
    expect(mapped.body.warnings).toEqual([]);
  });

  test('when a window crosses midnight UTC, then readings on both days count', async () => {
    await map(e, 'V-mid', 'M-mid', '2024-08-01T00:00:00Z');
    await ingest(e, [
      meter('M-mid', '2024-08-01T23:30:00Z', 4),
      meter('M-mid', '2024-08-01T23:59:59.999Z', 1),
      meter('M-mid', '2024-08-02T00:00:00Z', 2),
      meter('M-mid', '2024-08-02T00:30:00Z', 3),
      vehicle('V-mid', '2024-08-01T23:45:00Z', 4),
      vehicle('V-mid', '2024-08-02T00:15:00Z', 4),
    ]);
    const res = await report(
      e,
      'V-mid',
      'from=2024-08-01T23:00:00Z&to=2024-08-02T01:00:00Z',
    ).expect(200);
    expect(res.body.energy).toMatchObject({
      acConsumedKwh: 10,
      dcDeliveredKwh: 8,
      efficiency: 0.8,
      alert: true,
    });
    expect(res.body.counts).toEqual({ vehicleReadings: 2, meterReadings: 4 });
  });

  test('when the vehicle has no mapping, then AC and efficiency are null with a warning saying why', async () => {
    await ingest(e, [vehicle('V-alone', '2024-03-20T10:00:00Z', 3)]);
    const res = await report(
      e,
      'V-alone',
      'from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z',
    ).expect(200);
    expect(res.body.energy).toMatchObject({
      acConsumedKwh: null,
      dcDeliveredKwh: 3,
      efficiency: null,
      alert: null,
    });
    expect(res.body.warnings).toEqual([expect.stringMatching(/mapped to no meter/)]);
  });

  test('when the mapped meter sent nothing, then the warning names the meter', async () => {
    await map(e, 'V-quiet', 'M-quiet', '2024-03-01T00:00:00Z');
    await ingest(e, [vehicle('V-quiet', '2024-03-20T10:00:00Z', 3)]);
    const res = await report(
      e,
      'V-quiet',
      'from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z',
    ).expect(200);
    expect(res.body.energy.efficiency).toBeNull();
    expect(res.body.warnings).toEqual([expect.stringMatching(/Meter M-quiet sent no readings/)]);
  });

  test('when a vehicle is unknown, then 404', async () => {
    const res = await report(e, 'V-ghost', 'hours=24').expect(404);
    expect(res.body.error).toBe('not_found');
  });

  test('when no window is given, then it is the last 24 hours ending now', async () => {
    const res = await report(e, 'V-456', '').expect(200);
    const { from, to } = res.body.window;
    expect(Date.parse(to) - Date.parse(from)).toBe(24 * 3600_000);
    expect(Math.abs(Date.parse(to) - Date.now())).toBeLessThan(61_000);
  });

  test.each([
    ['hours=0', '/hours'],
    ['hours=169', '/hours'],
    ['hours=abc', '/hours'],
    ['from=yesterday&to=2024-03-20T00:00:00Z', '/from'],
    ['from=2024-03-21T00:00:00Z&to=2024-03-20T00:00:00Z', '/from'],
    ['from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z&hours=2', '/hours'],
    ['from=2024-01-01T00:00:00Z&to=2024-06-01T00:00:00Z', '/to'],
    ['window=24h', '/window'],
    ['from=2024-03-20T00:00:00Z&from=2024-03-21T00:00:00Z', '/from'],
    ['hours=Infinity', '/hours'],
    ['from=2024-03-20T00:00:00Z&hours=-Infinity', '/hours'],
    ['hours=0x10', '/hours'],
    ['hours=1e1', '/hours'],
    ['hours=%201', '/hours'],
    ['bucket=day', '/bucket'],
  ])('when the query is %s, then 400 names %s', async (query, path) => {
    const res = await report(e, 'V-456', query).expect(400);
    expect(res.body.error).toBe('invalid_parameter');
    expect(res.body.details[0].path).toBe(path);
  });

  test.each([
    ['hours=Infinity', 'hours must be a whole number from 1 to 168'],
    // A bound out of range states the whole range: "must be >= 1" left out the 168.
    ['hours=0', 'hours must be a whole number from 1 to 168'],
    ['hours=169', 'hours must be a whole number from 1 to 168'],
    [
      'hours=1e1',
      'hours must be a whole number from 1 to 168 written in plain digits (1e1 is not)',
    ],
    ['hours=010', null],
    ['bucket=day', 'bucket must be "hour"'],
  ])('when the query is %s, then the message says what is accepted', async (query, message) => {
    const res = await report(e, 'V-456', query);
    if (message === null) expect(res.status).toBe(200);
    else expect(res.body.message).toContain(message);
  });

  test('when Redis is down, then the report is still answered from PostgreSQL', async () => {
    const deadRedis = createRedis(
      { redisUrl: 'redis://127.0.0.1:1', redisClusterNodes: '' },
      'command',
    );
    const deadQueues = new IngestQueues({
      connection: deadRedis,
      keys: createRedisKeys('dead2'),
      config: e.ctx.config,
    });
    const api = createApp({
      config: e.ctx.config,
      db: e.ctx.db,
      redis: deadRedis,
      queues: deadQueues,
      logger: e.ctx.logger,
    });
    try {
      const res = await request(api.app)
        .get('/v1/analytics/performance/V-456?from=2024-03-19T10:00:01Z&to=2024-03-20T10:00:01Z')
        .expect(200);
      expect(res.body.energy.efficiency).toBe(0.7987);
      expect(res.body.cache).toBe('miss');
    } finally {
      api.admission.stop();
      await deadQueues.close().catch(() => undefined);
      deadRedis.disconnect();
    }
  });
});

describe('performance report, cumulative register readings', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ENERGY_READINGS: 'cumulative', ...WITHOUT_LOCAL_COPIES });
    await map(e, 'V-cum', 'M-cum', '2024-03-01T00:00:00Z');
    await ingest(e, [
      meter('M-cum', '2024-03-20T09:50:00Z', 100), // the register before the window
      meter('M-cum', '2024-03-20T10:10:00Z', 105), // +5
      meter('M-cum', '2024-03-20T10:40:00Z', 112), // +7
      meter('M-cum', '2024-03-20T11:10:00Z', 3), //   reset: +3
      meter('M-cum', '2024-03-20T11:40:00Z', 10), //  +7
      meter('M-cum', '2024-03-20T12:10:00Z', 15), //  after the window
      vehicle('V-cum', '2024-03-20T09:55:00Z', 1000),
      vehicle('V-cum', '2024-03-20T10:30:00Z', 1009), // +9
      vehicle('V-cum', '2024-03-20T11:30:00Z', 1018.9), // +9.9
    ]);
  });
  afterAll(() => e.stop());

  test('when the window covers whole hours, then energy is the sum of register increases, a reset counting its new value', async () => {
    const res = await report(
      e,
      'V-cum',
      'from=2024-03-20T10:00:00Z&to=2024-03-20T12:00:00Z',
    ).expect(200);
    expect(res.body.energy).toEqual({
      acConsumedKwh: 22,
      dcDeliveredKwh: 18.9,
      efficiency: 0.8591,
      threshold: 0.85,
      alert: false,
      mode: 'cumulative',
    });
  });

  test('when the window cuts hours, then the increase starts from the last reading before it', async () => {
    const res = await report(
      e,
      'V-cum',
      'from=2024-03-20T10:30:00Z&to=2024-03-20T11:45:00Z',
    ).expect(200);
    // meter: 105 -> 112 (+7) -> 3 (+3) -> 10 (+7); vehicle: 1000 -> 1009 (+9) -> 1018.9 (+9.9)
    expect(res.body.energy).toMatchObject({ acConsumedKwh: 17, dcDeliveredKwh: 18.9 });
  });

  test('when bucket=hour is asked in cumulative mode, then each increase counts in the hour of the later reading', async () => {
    const res = await report(
      e,
      'V-cum',
      'from=2024-03-20T10:00:00Z&to=2024-03-20T12:00:00Z&bucket=hour',
    ).expect(200);
    expect(
      res.body.series.map((p: { acConsumedKwh: number; dcDeliveredKwh: number }) => [
        p.acConsumedKwh,
        p.dcDeliveredKwh,
      ]),
    ).toEqual([
      [12, 9],
      [10, 9.9],
    ]);
  });

  test('when a reading arrives late inside an hour already rolled up, then the hour is recomputed', async () => {
    // 105 -> 40 falls below half: a reset, +40; then 40 -> 112: +72.
    await ingest(e, [meter('M-cum', '2024-03-20T10:20:00Z', 40)]);
    await clearAnalyticsCache(e);
    const fresh = await report(
      e,
      'V-cum',
      'from=2024-03-20T10:00:00Z&to=2024-03-20T12:00:00Z',
    ).expect(200);
    expect(fresh.body.energy.acConsumedKwh).toBe(5 + 40 + 72 + 3 + 7);
  });
});

describe('performance report, a register that dips', () => {
  let e: TestEngine;
  const readings = [
    meter('M-dip', '2024-03-21T10:00:00Z', 100.456),
    meter('M-dip', '2024-03-21T10:01:00Z', 100.4), // read again in tenths: a dip, +0
    meter('M-dip', '2024-03-21T10:10:00Z', 101.4), // +1
    meter('M-dip', '2024-03-21T10:20:00Z', 102.456), // +1.056
    meter('M-dip', '2024-03-21T10:30:00Z', 0.5), // below half: a reset, +0.5
  ];
  const window = 'from=2024-03-21T10:00:00Z&to=2024-03-21T11:00:00Z';
  beforeAll(async () => {
    e = await startTestEngine({ ENERGY_READINGS: 'cumulative', ...WITHOUT_LOCAL_COPIES });
    await map(e, 'V-dip', 'M-dip', '2024-03-01T00:00:00Z');
    await ingest(e, readings);
  });
  afterAll(() => e.stop());

  test('when a register drops but stays at half its reading or more, then the drop adds nothing (a reset would have counted the whole register); below half it is a reset', async () => {
    const res = await report(e, 'V-dip', window).expect(200);
    expect(res.body.energy.acConsumedKwh).toBe(2.556);
  });

  test('when a database rolled up under the old rule (every drop a reset) is migrated, then the hours holding a dip are rolled up again and the report counts no dip', async () => {
    const { db } = e.ctx;
    // The register rule before its migration: the migrations undone back to it.
    await undoMigrationsThrough(db, 'register-drops');
    await db('rollup_pending').del();
    await new RollupStore(db).rebuild(
      new Date('2024-03-21T10:00:00Z'),
      new Date('2024-03-21T11:00:00Z'),
    );
    await db('session_dirty').del();
    const before = await db('telemetry_hourly')
      .where({ device_id: 'M-dip' })
      .first('register_increase');
    expect(before.register_increase).toBeCloseTo(100.4 + 1 + 1.056 + 0.5, 6);
    await migrateToLatest(db);
    const marked = await db('rollup_pending').where({ device_id: 'M-dip' }).pluck('quarter');
    expect(marked.map((q: Date) => q.toISOString())).toEqual(['2024-03-21T10:00:00.000Z']);
    expect(await db('session_dirty').where({ vehicle_id: 'V-dip' }).first('since')).toEqual({
      since: new Date('2024-03-21T10:01:00Z'),
    });
    await clearAnalyticsCache(e);
    const res = await report(e, 'V-dip', window).expect(200);
    expect(res.body.energy.acConsumedKwh).toBe(2.556);
  });
});

describe('query plans', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine();
    // 300 devices x 300 readings, interleaved in time as real traffic is.
    await e.ctx.db.raw(`SELECT ensure_history_partitions('2024-09-01', '2024-09-02')`);
    await e.ctx.db.raw(`
      INSERT INTO telemetry_history (device_type, device_id, ts, soc, kwh_delivered_dc, battery_temp, received_at)
      SELECT 'vehicle', 'V-' || d, timestamptz '2024-09-01T00:00:00Z' + m * interval '1 minute', 50, 1, 30, now()
      FROM generate_series(1, 300) m, generate_series(1, 300) d`);
    await new RollupStore(e.ctx.db).rebuild(
      new Date('2024-09-01T00:00:00Z'),
      new Date('2024-09-02T00:00:00Z'),
    );
    await e.ctx.db.raw('ANALYZE');
  });
  afterAll(() => e.stop());

  // Both forms of the statement: with the hours of a chart, and whole windows only.
  const forms = [{ hours: true }, { hours: false }];

  test.each(forms)(
    'when the report (hours: $hours) reads history and rollups, then it uses index scans, never a sequential scan of history',
    async (form) => {
      const store = new EnergyReportStore(e.ctx.db);
      const query = store.vehicleQuery(
        'V-7',
        new Date('2024-09-01T00:10:00Z'),
        new Date('2024-09-01T04:30:00Z'),
        'cumulative',
        form,
      );
      const plan = (await e.ctx.db.raw(`EXPLAIN ${query.toString()}`)).rows
        .map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN'])
        .join('\n');
      // The mapping and rollup_pending are near empty here: reading them whole is the right plan.
      expect(plan).not.toMatch(/Seq Scan on telemetry_/);
      expect(plan).toMatch(/Index (Only )?Scan using telemetry_hourly_pkey/);
      expect(plan).toMatch(/Index (Only )?Scan using telemetry_history_p20240901_pkey/);
      expect(plan).not.toMatch(/telemetry_history_p2024090[2-9]/); // only the window's partition
    },
  );

  test.each(forms)(
    'when the report query (hours: $hours) runs prepared (a generic plan), then it still uses index scans, also of the marks and the mapping while they are empty, and prunes history to the window at run time',
    async (form) => {
      const store = new EnergyReportStore(e.ctx.db);
      await e.ctx.db.raw(`SELECT ensure_history_partition('2024-09-03')`); // one more to prune
      const plan = await explainGeneric(
        e.ctx.db,
        store.vehicleQuery(
          'V-7',
          new Date('2024-09-01T00:10:00Z'),
          new Date('2024-09-01T04:30:00Z'),
          'cumulative',
          form,
        ),
      );
      // The mapping and rollup_pending are near empty here, but a generic plan lives on while the
      // marks come and go: read whole, each of the report's lookups read every mark, dead ones too.
      expect(plan).not.toMatch(/Seq Scan/);
      expect(plan).toMatch(/Index (Only )?Scan using rollup_pending_pkey/);
      expect(plan).toMatch(/Index (Only )?Scan using telemetry_hourly_pkey/);
      expect(plan).toMatch(/Subplans Removed: [1-9]/); // history partitions outside the window
      expect(plan).not.toMatch(/telemetry_history_p20240903/);
      // Nothing is marked: history is read at the edges only (50 and 30 minutes), never the whole
      // window's 260 readings to look up marks for each (what a generic plan once did).
      const historyRows = [
        ...plan.matchAll(/Scan using telemetry_history_\w+ .*rows=(\d+) loops=(\d+)/g),
      ];
      expect(historyRows.length).toBeGreaterThan(0);
      for (const [, rows, loops] of historyRows)
        expect(Number(rows) * Number(loops)).toBeLessThanOrEqual(50);
    },
  );

  test('when rollups are lost, then npm run rollups:rebuild recomputes them from history', async () => {
    const count = async () =>
      Number(
        (
          await e.ctx
            .db('telemetry_hourly')
            .where('hour', '>=', '2024-09-01')
            .where('hour', '<', '2024-09-02')
            .count({ n: '*' })
        )[0].n,
      );
    const before = await count();
    expect(before).toBe(300 * 6); // 300 vehicles x the hours 00:00 to 05:00
    await e.ctx
      .db('telemetry_hourly')
      .where('hour', '>=', '2024-09-01')
      .where('hour', '<', '2024-09-02')
      .del();
    const env = { DATABASE_URL: e.ctx.config.databaseUrl, LOG_LEVEL: 'warn' };
    const ok = startProcess('scripts/rollups-rebuild.ts', env, [
      '--from',
      '2024-09-01T00:00:00Z',
      '--to',
      '2024-09-02T00:00:00Z',
    ]);
    expect(await ok.exited).toBe(0);
    expect(await count()).toBe(before);
    const bad = startProcess('scripts/rollups-rebuild.ts', env, [
      '--from',
      'yesterday',
      '--to',
      '2024-09-02T00:00:00Z',
    ]);
    expect(await bad.exited).toBe(2); // a usage error
    expect(bad.output()).toMatch(/--from must be an RFC 3339 date-time/);
  });

  test('when rollups are maintained by the flusher, then they equal a rebuild from raw history, at both grains', async () => {
    const random = seededRandom(11);
    const readings = Array.from({ length: 600 }, (_, i) => {
      const ts = new Date(
        Date.parse('2024-10-01T00:00:00Z') + Math.floor(random() * 5 * 3600_000),
      ).toISOString();
      return i % 2 === 0
        ? meter(`M-r${i % 7}`, ts, Math.round(random() * 100) / 10)
        : vehicle(
            `V-r${i % 5}`,
            ts,
            Math.round(random() * 100) / 10,
            Math.round(random() * 100),
            Math.round(random() * 40),
          );
    });
    for (const part of [readings.slice(0, 200), readings.slice(150, 450), readings.slice(100)]) {
      await ingest(e, shuffle(part, random));
    }
    const snapshot = async (table: string, bucket: string) =>
      (
        await e.ctx.db.raw(`
          SELECT device_type, device_id, ${bucket}, readings, round(energy_sum::numeric, 6) AS energy_sum,
                 round(register_increase::numeric, 6) AS register_increase, first_ts, last_ts,
                 first_energy, last_energy, round(temp_sum::numeric, 6) AS temp_sum, temp_min, temp_max,
                 soc_min, soc_max, first_soc, last_soc
          FROM ${table} WHERE ${bucket} >= '2024-10-01' AND ${bucket} < '2024-10-02' ORDER BY 1, 2, 3`)
      ).rows;
    const both = async () => ({
      hours: await snapshot('telemetry_hourly', 'hour'),
      quarters: await snapshot('telemetry_15min', 'quarter'),
    });
    await e.flusher.flusher.rollups.rollUpNow();
    const maintained = await both();
    await new RollupStore(e.ctx.db).rebuild(
      new Date('2024-10-01T00:00:00Z'),
      new Date('2024-10-02T00:00:00Z'),
    );
    expect(maintained.hours.length).toBeGreaterThan(0);
    // 600 readings at random times over 5 hours: most device quarters hold several.
    expect(maintained.quarters.length).toBeGreaterThan(maintained.hours.length);
    expect(maintained).toEqual(await both());
  });
});

describe('a window reaching before what history keeps (RETENTION_DAYS)', () => {
  test('when a report window starts before the cutoff, then the report, the fleet report and the session lists warn that its readings before it were dropped; one after the cutoff says nothing of it', async () => {
    const e = await startTestEngine({ RETENTION_DAYS: '3' });
    try {
      const cutoff = retainedFrom(Date.now(), 3) as number;
      const at = (ms: number) => new Date(ms).toISOString();
      await map(e, 'V-ret', 'M-ret', at(cutoff));
      await ingest(e, [
        vehicle('V-ret', at(cutoff + HOUR_MS), 10),
        meter('M-ret', at(cutoff + HOUR_MS), 12),
      ]);
      const across = await report(
        e,
        'V-ret',
        `from=${at(cutoff - HOUR_MS)}&to=${at(cutoff + 2 * HOUR_MS)}`,
      ).expect(200);
      expect(across.body.warnings).toContain(
        `History is kept from ${at(cutoff)} (RETENTION_DAYS=3): this window starts before it, and its readings before it are dropped within the hour, if not already`,
      );
      const inside = await report(e, 'V-ret', `from=${at(cutoff)}&to=${at(cutoff + 2 * HOUR_MS)}`);
      expect(inside.body.warnings.join('\n')).not.toMatch(/History is kept/);
      // The fleet report and the session lists say it too: a fleet whose readings retention
      // dropped otherwise reads as meters that sent nothing.
      const warned = `History is kept from ${at(cutoff)} (RETENTION_DAYS=3): this window starts before it, and its readings before it are dropped within the hour, if not already`;
      for (const path of [
        '/v1/analytics/fleet',
        '/v1/analytics/sessions',
        '/v1/vehicles/V-ret/sessions',
      ]) {
        const before = await request(e.api.api.app)
          .get(`${path}?from=${at(cutoff - 2 * DAY_MS)}&to=${at(cutoff - DAY_MS)}`)
          .expect(200);
        expect({ path, warnings: before.body.warnings }).toEqual({ path, warnings: [warned] });
        const after = await request(e.api.api.app)
          .get(`${path}?from=${at(cutoff)}&to=${at(cutoff + 2 * HOUR_MS)}`)
          .expect(200);
        expect({ path, warnings: after.body.warnings }).toEqual({ path, warnings: [] });
      }
      // A device whose readings retention dropped is not said never to have sent any.
      const gone = await request(e.api.api.app).get('/v1/meters/M-gone/status').expect(404);
      expect(gone.body.message).toBe(
        'No reading of meter M-gone is kept: none has been received, or the newest is older than the 3 days RETENTION_DAYS keeps',
      );
    } finally {
      await e.stop();
    }
  });
});

describe('register devices across what retention drops', () => {
  test("when retention drops the days before a report's window, then the report over the days kept is unchanged: each device's last reading before them is kept as its baseline", async () => {
    const e = await startTestEngine({ ENERGY_READINGS: 'cumulative', ...WITHOUT_LOCAL_COPIES });
    try {
      const cutoff = retainedFrom(Date.now(), 3) as number;
      const at = (ms: number) => new Date(ms).toISOString();
      const quarter = HOUR_MS / 4;
      await map(e, 'V-base', 'M-base', at(cutoff - 2 * HOUR_MS));
      // Registers rising 1.75 kWh AC and 1.5 kWh DC a quarter, from before the cutoff to after it.
      const steps = [-2, -1, 0, 1, 2, 3];
      await ingest(e, [
        ...steps.map((i) => meter('M-base', at(cutoff + i * quarter), 100 + 1.75 * i)),
        ...steps.map((i) => vehicle('V-base', at(cutoff + i * quarter), 50 + 1.5 * i)),
        // A meter whose readings all go: forgotten, with no baseline to count its return from.
        meter('M-left', at(cutoff - HOUR_MS), 500),
      ]);
      await e.flusher.flusher.rollups.rollUpNow();
      const window = `from=${at(cutoff)}&to=${at(cutoff + HOUR_MS)}&fresh=true`;
      const figures = async () => {
        const { body } = await report(e, 'V-base', window).expect(200);
        return {
          ac: body.energy.acConsumedKwh,
          dc: body.energy.dcDeliveredKwh,
          warnings: body.warnings,
        };
      };
      const before = await figures();
      // The readings at the cutoff and the three after it, each a step from the one before.
      expect(before).toEqual({ ac: 7, dc: 6, warnings: [] });

      const maintainer = new PartitionMaintainer({
        db: e.ctx.db,
        liveState: liveStateOf(e.ctx),
        config: { ...e.ctx.config, retentionDays: 3 },
        logger: e.ctx.logger,
      });
      await maintainer.maintain();
      const kept = await e.ctx.db('telemetry_history').where('ts', '<', new Date(cutoff));
      expect(kept).toEqual([]);
      await clearAnalyticsCache(e);
      expect(await figures()).toEqual(before);
      // Sessions read the reading before a window the same way.
      const { rows } = await e.ctx.db.raw(
        `SELECT ts, kwh_consumed_ac FROM history_before('meter', 'M-base', ?)`,
        [new Date(cutoff)],
      );
      expect(rows).toEqual([{ ts: new Date(cutoff - quarter), kwh_consumed_ac: 98.25 }]);
      const baselines = await e.ctx
        .db('history_baseline')
        .orderBy(['device_type', 'device_id'])
        .pluck('device_id');
      expect(baselines).toEqual(['M-base', 'V-base']);
      // Days later every reading is gone: the devices are forgotten, their baselines with them.
      await new PartitionMaintainer({
        db: e.ctx.db,
        liveState: liveStateOf(e.ctx),
        config: { ...e.ctx.config, retentionDays: 3 },
        logger: e.ctx.logger,
        now: () => Date.now() + 5 * DAY_MS,
      }).maintain();
      expect(await e.ctx.db('history_baseline').pluck('device_id')).toEqual([]);
    } finally {
      await e.stop();
    }
  });
});

describe('a vehicle whose first readings are not stored yet', () => {
  test('when its report or sessions are asked before the flusher stores them, then the 404 says they are accepted and not stored yet, not that it sent none', async () => {
    const ctx = await createTestContext();
    const api = await startTestApi(ctx); // no flusher: what it accepts stays in the queue
    try {
      const app = request(api.api.app);
      await app
        .post('/v1/telemetry/ingest')
        .send({
          vehicleId: 'V-new',
          soc: 50,
          kwhDeliveredDc: 1,
          batteryTemp: 30,
          timestamp: new Date().toISOString(),
        })
        .expect(202);
      for (const path of ['/v1/analytics/performance/V-new', '/v1/vehicles/V-new/sessions']) {
        const res = await app.get(path).expect(404);
        expect(res.body.message).toBe(
          'Vehicle V-new has readings accepted but none stored (the flusher is behind or stopped, or PostgreSQL refused them: see the dead letters); its reports count them once stored',
        );
      }
      const never = await app.get('/v1/analytics/performance/V-never').expect(404);
      expect(never.body.message).toBe(
        'Vehicle V-never has sent no readings and is mapped to no meter',
      );
    } finally {
      await api.close();
      await ctx.cleanup();
    }
  });
});

describe('when PostgreSQL is unreachable', () => {
  test.each([
    ['its database does not exist (dropped, being restored)', { database: 'energy_no_such_db' }],
    ['it refuses the login (a role or password changed)', { user: 'energy_no_such_role' }],
  ])(
    'when PostgreSQL answers but %s, then reads answer 503 database_unavailable, not 500',
    async (_, change: { database?: string; user?: string }) => {
      const ctx = await createTestContext();
      const url = new URL(ctx.config.databaseUrl);
      if (change.database) url.pathname = `/${change.database}`;
      if (change.user) url.username = change.user;
      const api = await startTestApi(ctx, { databaseUrl: url.toString() });
      try {
        const res = await request(api.api.app).get('/v1/analytics/fleet');
        expect(res.status).toBe(503);
        expect(res.body.error).toBe('database_unavailable');
        expect(res.headers['retry-after']).toBe('5');
      } finally {
        await api.close();
        await ctx.cleanup();
      }
    },
  );

  test('then reports, status and mapping answer 503 database_unavailable with Retry-After, while ingest still answers 202 and stays ready', async () => {
    const ctx = await createTestContext();
    // Port 1: nothing listens there, so every connection is refused at once.
    const api = await startTestApi(ctx, { databaseUrl: 'postgres://postgres@127.0.0.1:1/none' });
    try {
      const app = request(api.api.app);
      for (const res of [
        await app.get('/v1/analytics/performance/V-1'),
        await app.get('/v1/analytics/fleet'),
        await app.get('/v1/vehicles/V-unknown/status'),
        await app.post('/v1/telemetry/map').send({ vehicleId: 'V-1', meterId: 'M-1' }),
      ]) {
        expect(res.status).toBe(503);
        expect(res.body.error).toBe('database_unavailable');
        expect(res.headers['retry-after']).toBe('5');
        expect(JSON.stringify(res.body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
      }
      await app
        .post('/v1/telemetry/ingest')
        .send(meter('M-1', '2024-03-20T10:00:00Z', 1))
        .expect(202);
      const ready = await app.get('/health/ready').expect(503);
      expect(ready.body.checks).toMatchObject({
        postgres: expect.stringMatching(/failing/),
        redis: 'ok',
      });
      // What a load balancer in front of ingest asks: Redis only, so ingest stays in rotation.
      const ingestReady = await app.get('/health/ready/ingest').expect(200);
      expect(ingestReady.body).toEqual({ status: 'ready', checks: { redis: 'ok' } });
    } finally {
      await api.close();
      await ctx.cleanup();
    }
  });

  test('when PostgreSQL answers after the API started without it but lacks migrations, then reads answer 503 database_not_migrated and readiness says to run npm run migrate', async () => {
    const ctx = await createTestContext();
    const name = `energy_unmigrated_api_${process.pid}`;
    const url = withDatabaseName(baseDatabaseUrl(), name);
    await withMaintenanceClient(url, (c) => c.query(`CREATE DATABASE ${name}`));
    const api = await startTestApi(ctx, { databaseUrl: url });
    try {
      const app = request(api.api.app);
      for (const res of [
        await app.get('/v1/analytics/performance/V-1'),
        await app.get('/v1/analytics/fleet'),
        await app.get('/v1/vehicles/V-unknown/status'),
      ]) {
        expect({ status: res.status, error: res.body.error }).toEqual({
          status: 503,
          error: 'database_not_migrated',
        });
        expect(res.body.message).toMatch(/npm run migrate/);
      }
      const checks = await Promise.all([1, 2, 3, 4].map(() => app.get('/health/ready')));
      for (const ready of checks) {
        expect(ready.status).toBe(503);
        expect(ready.body.checks.postgres).toMatch(/lacks \d+ migration\(s\).*npm run migrate/);
      }
      const db = createDb(loadConfig({ DATABASE_URL: url }));
      try {
        // Readiness only reads: knex's list made its tables and lock row (two, when at once).
        const made = await db.raw(`SELECT to_regclass('knex_migrations_lock') AS t`);
        expect(made.rows[0].t).toBeNull();
        await migrateToLatest(db);
        await app.get('/health/ready').expect(200);
        await app.get('/v1/analytics/fleet').expect(200);
        // A table missing from a migrated database is a bug, not a migration to run: a 500.
        await db.raw('ALTER TABLE vehicle_status RENAME TO vehicle_status_elsewhere');
        const bug = await app.get('/v1/vehicles/V-unknown/status');
        expect({ status: bug.status, error: bug.body.error }).toEqual({
          status: 500,
          error: 'internal_error',
        });
        // Migrated down while running: said again (the check is not remembered).
        await db.raw('ALTER TABLE vehicle_status_elsewhere RENAME TO vehicle_status');
        await db.raw(
          'DELETE FROM knex_migrations WHERE name = (SELECT max(name) FROM knex_migrations)',
        );
        const behind = await app.get('/health/ready').expect(503);
        expect(behind.body.checks.postgres).toMatch(/lacks 1 migration\(s\)/);
      } finally {
        await db.destroy();
      }
    } finally {
      await api.close();
      await withMaintenanceClient(url, (c) =>
        c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
      );
      await ctx.cleanup();
    }
  });

  test('when PostgreSQL is too slow (a locked table past the statement timeout), then reports answer 503 database_timeout', async () => {
    const ctx = await createTestContext();
    const api = await startTestApi(ctx, { dbStatementTimeoutMs: 200 });
    const locker = await ctx.db.transaction();
    try {
      await locker.raw('LOCK TABLE telemetry_hourly IN ACCESS EXCLUSIVE MODE');
      const res = await request(api.api.app).get(
        '/v1/analytics/performance/V-1?from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z',
      );
      expect(res.status).toBe(503);
      expect(res.body.error).toBe('database_timeout');
      expect(res.headers['retry-after']).toBe('5');
    } finally {
      await locker.rollback();
      await api.close();
      await ctx.cleanup();
    }
  });

  test('when PostgreSQL stops answering without closing connections, then a report answers 503 by the query deadline and the next one works once it answers again', async () => {
    const ctx = await createTestContext();
    const proxy = await TcpProxy.inFrontOf(ctx.config.databaseUrl);
    // A 300 ms statement timeout puts the query deadline at 5.3 s.
    const api = await startTestApi(ctx, {
      databaseUrl: proxy.rewrite(ctx.config.databaseUrl),
      dbStatementTimeoutMs: 300,
    });
    const report = () =>
      request(api.api.app).get(
        '/v1/analytics/performance/V-none?from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z',
      );
    try {
      expect((await report()).status).toBe(404); // unknown vehicle: PostgreSQL answered
      proxy.freeze();
      const started = Date.now();
      const frozen = await report();
      expect(frozen.status).toBe(503);
      expect(frozen.body.error).toBe('database_unavailable');
      expect(Date.now() - started).toBeLessThan(10_000);
      // That connection was cut; a new one gets no answer to its start-up either: still a 503.
      const connecting = await report();
      expect(connecting.status).toBe(503);
      expect(connecting.body.error).toBe('database_unavailable');
      proxy.thaw();
      expect((await report()).status).toBe(404);
    } finally {
      proxy.thaw();
      await api.close();
      await proxy.cut();
      await ctx.cleanup();
    }
  });
});
