import request from 'supertest';
import type { Knex } from 'knex';
import {
  SessionStore,
  readsFrom,
  type LiveFrom,
  type SessionRow,
} from '../src/sessions/session-store';
import { SESSIONS_SQL, bindSessionSql } from '../src/sessions/session-sql';
import { RollupStore } from '../src/stores/rollup-store';
import { SessionService } from '../src/sessions/session-service';
import { ReportCache } from '../src/reports/report-cache';
import { createRedisKeys } from '../src/redis-keys';
import { SessionBuilder } from '../workers/session-builder';
import { startTestEngine, waitForDrained, type TestEngine } from './helpers/engine';
import { undoMigrationsThrough } from './helpers/migrations';
import { createTestContext, type TestContext } from './helpers/test-env';
import { explainGeneric } from './helpers/plans';
import { seededRandom, shuffle, vehicleReading } from './helpers/readings';
import { HistoryStore } from '../src/stores/history-store';
import { statusUpsertsFrom } from '../src/stores/status-store';
import { markSessionsChanged, SESSION_RULES } from '../src/stores/session-marks';
import { retainedFrom } from '../src/stores/retention';
import { RollupRoller } from '../workers/rollup-roller';

const MIN = 60_000;
const at = (day: string, hhmm: string) => Date.parse(`2024-05-${day}T${hhmm}:00Z`);
const iso = (ms: number) => new Date(ms).toISOString();

/** Readings every `stepMin` minutes in [from, to], with `value` each. */
function every(stepMin: number, from: number, to: number, value: (ts: number) => object) {
  const readings: object[] = [];
  for (let ts = from; ts <= to; ts += stepMin * MIN) readings.push(value(ts));
  return readings;
}
const vehicle =
  (id: string, dc: number, soc = 50, temp = 30) =>
  (ts: number) => ({
    vehicleId: id,
    kwhDeliveredDc: dc,
    soc,
    batteryTemp: temp,
    timestamp: iso(ts),
  });
const meter = (id: string, ac: number) => (ts: number) => ({
  meterId: id,
  kwhConsumedAc: ac,
  voltage: 230,
  timestamp: iso(ts),
});

async function ingest(e: TestEngine, readings: object[]): Promise<void> {
  for (let i = 0; i < readings.length; i += 2000) {
    await request(e.api.api.app)
      .post('/v1/telemetry/ingest')
      .send(readings.slice(i, i + 2000))
      .expect(202);
  }
  await waitForDrained(e.queue);
}

const map = (e: TestEngine, vehicleId: string, meterId: string, since: string) =>
  request(e.api.api.app).post('/v1/telemetry/map').send({ vehicleId, meterId, since }).expect(200);

/** Rolls the hours up and builds the sessions, as the flusher does in the background. */
async function build(e: TestEngine): Promise<void> {
  const horizon = new Date(Date.now() - 3600_000);
  await e.flusher.flusher.rollups.rollUpNow(horizon);
  await e.flusher.flusher.sessions.buildNow(horizon);
}

/**
 * Rolls the hours up and builds the sessions to a chosen horizon, with the given store (and the
 * builder's configuration, when it is not the test context's).
 */
async function buildAt(
  e: TestEngine,
  store: SessionStore,
  horizon: Date,
  config = e.ctx.config,
): Promise<void> {
  await new RollupStore(e.ctx.db).rollUpPending(horizon, 100_000);
  await new SessionBuilder({
    store,
    horizon: () => horizon,
    config,
    logger: e.ctx.logger,
  }).buildNow();
}

interface SessionJson {
  id: string;
  start: string;
  end: string;
  meters: string[];
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
  efficiency: number | null;
  meanAcPowerKw: number | null;
  peakAcPowerKw: number | null;
  threshold: number;
  alert: boolean | null;
  drift: boolean | null;
  source: string;
  open: boolean;
  warnings: string[];
}

async function sessionsOf(e: TestEngine, vehicleId: string, from: string, to: string) {
  const res = await request(e.api.api.app)
    .get(`/v1/vehicles/${vehicleId}/sessions?from=${from}&to=${to}`)
    .expect(200);
  return res.body.sessions as SessionJson[];
}

describe('charging sessions without an efficiency', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
  });
  afterAll(() => e.stop());

  test('when a session has no efficiency, then its warnings say what was missing: a meter, its readings, or AC energy', async () => {
    await map(e, 'V-silent', 'M-silent', '2024-05-01T00:00:00Z');
    await map(e, 'V-zero', 'M-zero', '2024-05-01T00:00:00Z');
    await ingest(e, [
      ...every(5, at('12', '08:00'), at('12', '08:30'), vehicle('V-unmapped', 1)),
      ...every(5, at('12', '08:00'), at('12', '08:30'), vehicle('V-silent', 1)),
      ...every(5, at('12', '08:00'), at('12', '08:30'), vehicle('V-zero', 1)),
      ...every(5, at('12', '07:55'), at('12', '08:30'), meter('M-zero', 0)),
    ]);
    const only = async (vehicleId: string) => {
      const found = await sessionsOf(e, vehicleId, '2024-05-12T00:00:00Z', '2024-05-13T00:00:00Z');
      expect(found).toHaveLength(1);
      expect(found[0].efficiency).toBeNull();
      return found[0].warnings;
    };
    expect(await only('V-unmapped')).toEqual([
      'No meter was mapped to the vehicle during this session, so AC energy is unknown',
    ]);
    expect(await only('V-silent')).toEqual([
      'Meter M-silent sent no readings during this session, so AC energy is unknown',
    ]);
    expect(await only('V-zero')).toEqual([
      'AC energy in this session is 0, so efficiency is undefined',
    ]);
  });
});

describe('warnings of a doubtful session about its mappings', () => {
  let e: TestEngine;
  const day = (hhmm: string) => at('14', hhmm);
  const whole = ['2024-05-14T00:00:00Z', '2024-05-15T00:00:00Z'] as const;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await map(e, 'V-past', 'M-past', '2024-05-01T00:00:00Z');
    await request(e.api.api.app)
      .post('/v1/telemetry/map/V-past/end')
      .send({ until: iso(day('09:00')) })
      .expect(200);
    await map(e, 'V-sh1', 'M-sh', '2024-05-01T00:00:00Z');
    await map(e, 'V-sh2', 'M-sh', '2024-05-01T00:00:00Z');
    await map(e, 'V-late', 'M-late', iso(day('11:00')));
    await map(e, 'V-began', 'M-began', iso(day('12:30')));
    await map(e, 'V-ended', 'M-ended', '2024-05-01T00:00:00Z');
    await request(e.api.api.app)
      .post('/v1/telemetry/map/V-ended/end')
      .send({ until: iso(day('13:30')) })
      .expect(200);
    await map(e, 'V-silent', 'M-heard', '2024-05-01T00:00:00Z');
    await map(e, 'V-silent', 'M-silent', iso(day('14:15')));
    await ingest(e, [
      // Charging 08:30-09:30, its meter mapped until 09:00 only: DC 13, AC 7 x 1.25.
      ...every(5, day('08:30'), day('09:30'), vehicle('V-past', 1)),
      ...every(5, day('08:25'), day('09:30'), meter('M-past', 1.25)),
      // A meter two vehicles are mapped to: V-sh1's session counts both (AC 8 x 2.5, DC 7).
      ...every(5, day('10:00'), day('10:30'), vehicle('V-sh1', 1)),
      ...every(5, day('09:55'), day('10:30'), meter('M-sh', 2.5)),
      // Mapped at its first charging reading: the span's 10 minutes before it are no gap.
      ...every(5, day('11:00'), day('11:30'), vehicle('V-late', 1)),
      ...every(5, day('11:00'), day('11:30'), meter('M-late', 0.9)),
      // Mapped at its last charging reading: only that reading's AC counts.
      ...every(5, day('12:00'), day('12:30'), vehicle('V-began', 1)),
      ...every(5, day('12:00'), day('12:30'), meter('M-began', 1.1)),
      // Its mapping ended at its last charging reading: that reading's AC is not counted.
      ...every(5, day('13:00'), day('13:30'), vehicle('V-ended', 1)),
      ...every(5, day('13:00'), day('13:30'), meter('M-ended', 1)),
      // Moved at 14:15 to a meter that sends nothing: AC 4 x 1.25 (13:55-14:10), DC 7.
      ...every(5, day('14:00'), day('14:30'), vehicle('V-silent', 1)),
      ...every(5, day('13:55'), day('14:30'), meter('M-heard', 1.25)),
    ]);
  });
  afterAll(() => e.stop());

  const only = async (vehicleId: string) => {
    const found = await sessionsOf(e, vehicleId, ...whole);
    expect(found).toHaveLength(1);
    return found[0];
  };

  test("when a session runs past its mapping's end, then its warnings name the part mapped to no meter", async () => {
    const session = await only('V-past');
    expect(session).toMatchObject({ dcDeliveredKwh: 13, acConsumedKwh: 8.75 });
    expect(session.warnings).toEqual([
      'DC delivered exceeds AC consumed: check the meter mapping and the energy mode',
      'Vehicle V-past was mapped to no meter from 2024-05-14T09:00:00.000Z to 2024-05-14T09:30:00.000Z of this session: the AC energy drawn then is unknown, while its DC counts',
    ]);
  });

  test("when another vehicle is mapped to the session's meter too, then its warnings name it, in the sessions and in the report's worst session", async () => {
    // From its first charging reading, as the unmapped parts are.
    const shared =
      'Meter M-sh was mapped to vehicle V-sh2 too, between 2024-05-14T10:00:00.000Z and 2024-05-14T10:30:00.000Z of this session: its AC energy counts for both vehicles';
    const session = await only('V-sh1');
    expect(session).toMatchObject({ dcDeliveredKwh: 7, acConsumedKwh: 20, alert: true });
    expect(session.warnings).toEqual([shared]);
    const report = await request(e.api.api.app)
      .get(`/v1/analytics/performance/V-sh1?from=${whole[0]}&to=${whole[1]}`)
      .expect(200);
    expect(report.body.sessions.worst.warnings).toEqual([shared]);
  });

  test("when a mapping begins or ends at the session's last charging reading, then the part it leaves out is named, to the millisecond the windows use", async () => {
    const began = await only('V-began');
    expect(began).toMatchObject({ dcDeliveredKwh: 7, acConsumedKwh: 1.1 });
    expect(began.warnings).toContain(
      'Vehicle V-began was mapped to no meter from 2024-05-14T12:00:00.000Z to 2024-05-14T12:30:00.000Z of this session: the AC energy drawn then is unknown, while its DC counts',
    );
    const ended = await only('V-ended');
    expect(ended).toMatchObject({ dcDeliveredKwh: 7, acConsumedKwh: 6 });
    expect(ended.warnings).toEqual([
      'DC delivered exceeds AC consumed: check the meter mapping and the energy mode',
      'Vehicle V-ended was mapped to no meter at 2024-05-14T13:30:00.000Z of this session: the AC energy drawn then is unknown, while its DC counts',
    ]);
  });

  test('when a meter mapped during the session sent no readings then, then its warnings name that meter and when', async () => {
    const session = await only('V-silent');
    expect(session).toMatchObject({ dcDeliveredKwh: 7, acConsumedKwh: 5 });
    expect(session.meters).toEqual(['M-heard', 'M-silent']);
    expect(session.warnings).toEqual([
      'DC delivered exceeds AC consumed: check the meter mapping and the energy mode',
      'Meter M-silent sent no readings from 2024-05-14T14:15:00.000Z to 2024-05-14T14:30:00.000Z of this session, while the vehicle was mapped to it: the AC energy drawn then is unknown, while its DC counts',
    ]);
  });

  test('when the vehicle was mapped at its first charging reading, then the span before it is not called unmapped', async () => {
    const session = await only('V-late');
    expect(session).toMatchObject({ start: iso(day('10:50')), dcDeliveredKwh: 7 });
    expect(session.efficiency).toBeGreaterThan(1);
    expect(session.warnings).toEqual([
      'DC delivered exceeds AC consumed: check the meter mapping and the energy mode',
    ]);
  });
});

describe('charging sessions detected from readings', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await map(e, 'V-s', 'M-s', '2024-05-01T00:00:00Z');
    await ingest(e, [
      // Session 1: idle at 07:55, charging 08:00-08:30 every 5 min (1 kWh DC, 1.25 kWh AC each).
      vehicle('V-s', 0)(at('10', '07:55')),
      ...every(5, at('10', '08:00'), at('10', '08:30'), vehicle('V-s', 1)),
      // A 15-minute gap (more than SESSION_GAP_S = 600 s) splits: session 2, 08:45-09:00.
      ...every(5, at('10', '08:45'), at('10', '09:00'), vehicle('V-s', 2)),
      // An 8-minute gap does not: session 3 runs 14:00-14:10 and 14:18-14:20.
      ...every(5, at('10', '14:00'), at('10', '14:10'), vehicle('V-s', 1)),
      vehicle('V-s', 1)(at('10', '14:18')),
      vehicle('V-s', 1)(at('10', '14:20')),
      ...every(5, at('10', '07:55'), at('10', '09:00'), meter('M-s', 1.25)),
      ...every(5, at('10', '13:55'), at('10', '14:20'), meter('M-s', 1.25)),
      meter('M-s', 1.25)(at('10', '14:18')),
    ]);
  });
  afterAll(() => e.stop());

  test('when a vehicle charges twice a day, and a gap longer than SESSION_GAP_S splits a run, then each run is a session with hand-computed figures', async () => {
    const found = await sessionsOf(e, 'V-s', '2024-05-10T00:00:00Z', '2024-05-11T00:00:00Z');
    expect(found.map((s) => [s.id, s.start, s.end])).toEqual([
      // No reading since 09:00: the span starts SESSION_GAP_S before the first charging one.
      [`d-${at('10', '13:50')}`, iso(at('10', '13:50')), iso(at('10', '14:20'))],
      [`d-${at('10', '08:35')}`, iso(at('10', '08:35')), iso(at('10', '09:00'))],
      [`d-${at('10', '07:55')}`, iso(at('10', '07:55')), iso(at('10', '08:30'))],
    ]);
    const [afternoon, second, first] = found;
    // 7 readings of 1 kWh DC; the meter's 7 readings in (07:55, 08:30] of 1.25 kWh.
    expect(first).toMatchObject({
      source: 'detected',
      meters: ['M-s'],
      dcDeliveredKwh: 7,
      acConsumedKwh: 8.75,
      efficiency: 0.8,
      meanAcPowerKw: 15, // 8.75 kWh over 35 minutes
      peakAcPowerKw: 15, // 1.25 kWh in 5 minutes
      threshold: 0.85,
      alert: true,
      open: false,
    });
    // Its first charging reading is 15 min after the previous reading: the span starts 10 min
    // (SESSION_GAP_S) before it. The meter read 08:40 ... 09:00 (5 x 1.25) in (08:35, 09:00].
    expect(second).toMatchObject({ dcDeliveredKwh: 8, acConsumedKwh: 6.25, efficiency: 1.28 });
    // More DC than AC, which no charger does: said, as the performance report says it.
    expect(second.warnings).toEqual([
      'DC delivered exceeds AC consumed: check the meter mapping and the energy mode',
    ]);
    expect(first.warnings).toEqual([]);
    // 14:00, 14:05, 14:10, 14:18, 14:20: one session (the 8-minute gap is within 600 s).
    expect(afternoon).toMatchObject({ dcDeliveredKwh: 5 });
  });

  test('when the window is given as hours from a start, then the session lists answer as the reports take it', async () => {
    const day = await sessionsOf(e, 'V-s', '2024-05-10T00:00:00Z', '2024-05-11T00:00:00Z');
    const byHours = await request(e.api.api.app)
      .get('/v1/vehicles/V-s/sessions?from=2024-05-10T00:00:00Z&hours=24')
      .expect(200);
    expect(byHours.body.window).toEqual({
      from: '2024-05-10T00:00:00.000Z',
      to: '2024-05-11T00:00:00.000Z',
    });
    expect(byHours.body.sessions).toEqual(day);
    const fleet = await request(e.api.api.app)
      .get('/v1/analytics/sessions?to=2024-05-11T00:00:00Z&hours=24')
      .expect(200);
    expect(fleet.body.sessions.map((s: SessionJson) => s.id).sort()).toEqual(
      day.map((s) => s.id).sort(),
    );
  });

  test('when a vehicle the engine never saw is asked for, then its sessions answer 404 as its report does; a known one without sessions answers an empty list', async () => {
    const window = 'from=2024-05-10T00:00:00Z&to=2024-05-11T00:00:00Z';
    const unknown = await request(e.api.api.app)
      .get(`/v1/vehicles/V-never-seen/sessions?${window}`)
      .expect(404);
    const report = await request(e.api.api.app)
      .get(`/v1/analytics/performance/V-never-seen?${window}`)
      .expect(404);
    expect(unknown.body).toMatchObject({
      error: 'not_found',
      message: 'Vehicle V-never-seen has sent no readings and is mapped to no meter',
    });
    expect(unknown.body.message).toBe(report.body.message);
    // Known by its readings, and by a meter mapped alone: no sessions in a window is an answer.
    const quiet = await request(e.api.api.app)
      .get('/v1/vehicles/V-s/sessions?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z')
      .expect(200);
    expect(quiet.body.sessions).toEqual([]);
    await request(e.api.api.app)
      .post('/v1/telemetry/map')
      .send({ vehicleId: 'V-mapped-only', meterId: 'M-mapped-only' })
      .expect(200);
    const mapped = await request(e.api.api.app)
      .get(`/v1/vehicles/V-mapped-only/sessions?${window}`)
      .expect(200);
    expect(mapped.body.sessions).toEqual([]);
  });

  test('when the hours are built in the background, then the kept sessions are the same', async () => {
    const live = await sessionsOf(e, 'V-s', '2024-05-10T00:00:00Z', '2024-05-11T00:00:00Z');
    await build(e);
    const kept = Number((await e.ctx.db('charging_sessions').count({ n: '*' }))[0].n);
    expect(kept).toBe(3);
    expect(await sessionsOf(e, 'V-s', '2024-05-10T00:00:00Z', '2024-05-11T00:00:00Z')).toEqual(
      live,
    );
  });

  test('when a window ends before where sessions are computed live, then only the kept ones are read: the same sessions, nothing computed', async () => {
    await build(e);
    /** The API's session store, counting the live computations it is asked for. */
    class CountingStore extends SessionStore {
      computed: string[][] = [];
      override compute(targets: LiveFrom[], to: Date, db?: Knex): Promise<SessionRow[]> {
        this.computed.push(targets.map((t) => t.vehicleId));
        return super.compute(targets, to, db);
      }
    }
    const store = new CountingStore(e.ctx.db, e.ctx.config);
    const service = new SessionService({
      store,
      cache: new ReportCache({
        redis: e.ctx.redis,
        ttlS: 0,
        localBudgetChars: 0,
        logger: e.ctx.logger,
      }),
      keys: createRedisKeys(e.ctx.config.redisPrefix),
      config: e.ctx.config,
      vehicleExists: async () => true,
      unknownVehicleError: async (vehicleId) => new Error(`no vehicle ${vehicleId}`),
    });
    const day = { from: new Date(at('10', '00:00')), to: new Date(at('11', '00:00')) };
    const past = await service.ofVehicle('V-s', day.from, day.to);
    expect(store.computed).toEqual([[]]);
    // The API, which computes them, answers the same three sessions.
    expect(past.sessions.map((s) => s.id)).toEqual(
      (await sessionsOf(e, 'V-s', iso(at('10', '00:00')), iso(at('11', '00:00')))).map((s) => s.id),
    );
    expect(past.sessions).toHaveLength(3);
    // A window up to now computes what is after the kept sessions.
    await service.ofVehicle('V-s', day.from, new Date());
    expect(store.computed[1]).toEqual(['V-s']);
  });

  test('when a late reading fills the gap, then the two sessions merge; the session detail has its minutes', async () => {
    await ingest(e, [vehicle('V-s', 1)(at('10', '08:38'))]);
    const live = await sessionsOf(e, 'V-s', '2024-05-10T08:00:00Z', '2024-05-10T10:00:00Z');
    expect(live.map((s) => [s.start, s.end, s.dcDeliveredKwh])).toEqual([
      [iso(at('10', '07:55')), iso(at('10', '09:00')), 7 + 1 + 8],
    ]);
    await build(e);
    expect(await sessionsOf(e, 'V-s', '2024-05-10T08:00:00Z', '2024-05-10T10:00:00Z')).toEqual(
      live,
    );
    const detail = await request(e.api.api.app)
      .get(`/v1/vehicles/V-s/sessions/${live[0].id}`)
      .expect(200);
    const minute = detail.body.series.find(
      (m: { minute: string }) => m.minute === iso(at('10', '08:05')),
    );
    // 1.25 and 1 kWh over the 5 minutes since the previous reading: 15 and 12 kW, the peak.
    expect(minute).toMatchObject({ acPowerKw: 15, dcPowerKw: 12 });
    expect(live[0].peakAcPowerKw).toBe(15);
    await request(e.api.api.app).get('/v1/vehicles/V-s/sessions/d-1').expect(404);
    // The merged session's old id (its start, 08:35, now inside the merged one) still answers.
    const merged = await request(e.api.api.app)
      .get(`/v1/vehicles/V-s/sessions/d-${at('10', '08:35')}`)
      .expect(200);
    expect(merged.body).toEqual(detail.body);
  });

  test("when a session holds its devices' very first readings, then the minute's power counts their energy over the time since the session's start, as its totals do", async () => {
    await map(e, 'V-first', 'M-first', '2024-05-12T00:00:00Z');
    await ingest(e, [
      vehicle('V-first', 1)(at('12', '10:00')),
      vehicle('V-first', 0.1)(at('12', '10:00') + 30_000),
      meter('M-first', 1.2)(at('12', '10:00')),
      meter('M-first', 0.12)(at('12', '10:00') + 30_000),
    ]);
    const [session] = await sessionsOf(
      e,
      'V-first',
      '2024-05-12T00:00:00Z',
      '2024-05-13T00:00:00Z',
    );
    const detail = await request(e.api.api.app)
      .get(`/v1/vehicles/V-first/sessions/${session.id}`)
      .expect(200);
    // The session starts SESSION_GAP_S (10 minutes) before its first reading: 1.2 + 0.12 and
    // 1 + 0.1 kWh over 10.5 minutes. Left out, as they were, the chart's line began a reading
    // after its totals did; over the 30 s of the second reading they made 158.4 and 132.
    expect(detail.body.series).toEqual([
      expect.objectContaining({
        minute: iso(at('12', '10:00')),
        acPowerKw: 7.543,
        dcPowerKw: 6.286,
      }),
    ]);
    // The peak is a step between two of the meter's readings.
    expect(session.peakAcPowerKw).toBe(14.4);
  });
});

describe('a vehicle named fleet', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine();
    await map(e, 'fleet', 'M-fl', '2024-05-01T00:00:00Z');
    await map(e, 'V-other', 'M-ot', '2024-05-01T00:00:00Z');
    await ingest(e, [
      ...every(5, at('12', '10:00'), at('12', '10:20'), vehicle('fleet', 1)),
      ...every(5, at('12', '10:00'), at('12', '10:20'), meter('M-fl', 1.25)),
      ...every(5, at('12', '11:00'), at('12', '11:20'), vehicle('V-other', 1)),
      ...every(5, at('12', '11:00'), at('12', '11:20'), meter('M-ot', 1.25)),
    ]);
  });
  afterAll(() => e.stop());

  test("when its sessions and the fleet's are asked for the same window, then each is its own answer, whichever is cached first", async () => {
    const vehicles = async (path: string) =>
      (await request(e.api.api.app).get(path).expect(200)).body.sessions.map(
        (s: { vehicleId: string }) => s.vehicleId,
      );
    // Two windows over the same sessions: the vehicle's list cached first, then the fleet's.
    for (const [hour, fleetFirst] of [
      ['00', false],
      ['01', true],
    ] as const) {
      const window = `from=2024-05-12T${hour}:00:00Z&to=2024-05-12T23:00:00Z`;
      const own = () => vehicles(`/v1/vehicles/fleet/sessions?${window}`);
      const fleet = () => vehicles(`/v1/analytics/sessions?${window}`);
      if (fleetFirst) expect(await fleet()).toEqual(['V-other', 'fleet']);
      expect(await own()).toEqual(['fleet']);
      expect(await fleet()).toEqual(['V-other', 'fleet']);
    }
  });

  test('when an unknown vehicle is answered 404 and then becomes known, then its sessions are computed, not an empty list cached with the 404', async () => {
    const path = '/v1/vehicles/V-later/sessions?from=2024-05-12T00:00:00Z&to=2024-05-13T00:00:00Z';
    await request(e.api.api.app).get(path).expect(404);
    await map(e, 'V-later', 'M-later', '2024-05-01T00:00:00Z');
    const known = await request(e.api.api.app).get(path).expect(200);
    expect(known.body).toMatchObject({ sessions: [], cache: 'miss' });
  });
});

describe("a device's energy semantics changed after its sessions were built", () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await map(e, 'V-mode', 'M-mode', '2024-05-01T00:00:00Z');
    // The meter sends a register (200, 202, ...) while the engine reads it as intervals.
    let register = 198;
    await ingest(e, [
      vehicle('V-mode', 0)(at('14', '09:55')),
      ...every(10, at('14', '10:00'), at('14', '10:30'), vehicle('V-mode', 1.8)),
      ...every(10, at('14', '09:50'), at('14', '10:30'), (ts) => ({
        ...meter('M-mode', (register += 2))(ts),
      })),
    ]);
    await build(e);
  });
  afterAll(() => e.stop());

  const session = async () =>
    (await sessionsOf(e, 'V-mode', '2024-05-14T00:00:00Z', '2024-05-15T00:00:00Z')).map((s) => [
      s.acConsumedKwh,
      s.dcDeliveredKwh,
    ]);

  test('when the meter is set to cumulative, then the kept session is built again with its register increases; the same setting again marks nothing', async () => {
    expect(await session()).toEqual([[202 + 204 + 206 + 208, 7.2]]); // (09:55, 10:30] as intervals
    const settings = (mode: string) =>
      request(e.api.api.app)
        .put('/v1/meters/M-mode/settings')
        .send({ energyReadings: mode })
        .expect(200);
    await settings('cumulative');
    const marked = await e.ctx.db('session_dirty').where({ vehicle_id: 'V-mode' }).first();
    expect(marked).toBeDefined();
    await build(e);
    expect(await session()).toEqual([[8, 7.2]]); // 200 -> 208
    expect(await e.ctx.db('session_dirty').where({ vehicle_id: 'V-mode' }).first()).toBeUndefined();
    await settings('cumulative');
    expect(await e.ctx.db('session_dirty').where({ vehicle_id: 'V-mode' }).first()).toBeUndefined();
  });
});

describe("a meter's late register reading just before a vehicle's mapping period starts", () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await request(e.api.api.app)
      .put('/v1/meters/M-before/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    await map(e, 'V-before', 'M-before', '2024-05-22T10:20:00Z');
    await ingest(e, [
      vehicle('V-before', 0)(at('22', '10:15')),
      ...every(5, at('22', '10:20'), at('22', '11:00'), vehicle('V-before', 0.8)),
      meter('M-before', 50)(at('22', '10:00')),
      ...every(5, at('22', '10:20'), at('22', '11:00'), (ts) =>
        meter('M-before', 60 + (ts - at('22', '10:20')) / (5 * MIN))(ts),
      ),
    ]);
    await build(e);
  });
  afterAll(() => e.stop());

  const ac = async () =>
    (await sessionsOf(e, 'V-before', '2024-05-22T00:00:00Z', '2024-05-23T00:00:00Z')).map(
      (s) => s.acConsumedKwh,
    );

  test('when it arrives after the session was kept, in a quarter hour before the period, then the session counts from it, live and once built again', async () => {
    expect(await ac()).toEqual([18]); // 50 (10:00) -> 68
    // Late, in the quarter 10:00-10:15, before the mapping starts: the period's starting point.
    await ingest(e, [meter('M-before', 59.5)(at('22', '10:10'))]);
    expect(await ac()).toEqual([8.5]);
    await build(e);
    expect(await ac()).toEqual([8.5]);
    const report = await request(e.api.api.app)
      .get('/v1/analytics/performance/V-before?from=2024-05-22T00:00:00Z&to=2024-05-23T00:00:00Z')
      .expect(200);
    expect(report.body.energy.acConsumedKwh).toBe(8.5);
  });
});

describe("a vehicle's own semantics changed after its sessions were built", () => {
  let e: TestEngine;
  const kept = async (vehicleId: string) =>
    (await e.ctx.db('charging_sessions').where({ vehicle_id: vehicleId }).orderBy('start_ts')).map(
      (s: { start_ts: Date; end_ts: Date; dc_kwh: number }) => [
        iso(s.start_ts.getTime()),
        iso(s.end_ts.getTime()),
        Math.round(s.dc_kwh * 1000) / 1000,
      ],
    );
  const settings = (vehicleId: string, mode: string) =>
    request(e.api.api.app)
      .put(`/v1/vehicles/${vehicleId}/settings`)
      .send({ energyReadings: mode })
      .expect(200);

  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    for (const id of ['V-reg', 'V-flat']) await settings(id, 'cumulative');
    // V-reg's register: flat from 07:50 to 08:00, up 0.9 kWh every 5 minutes to 08:35, then flat.
    // V-flat's never moves: as a register it never charged, so it has no kept session.
    let register = 500;
    await ingest(e, [
      vehicle('V-reg', 500)(at('16', '07:50')),
      ...every(5, at('16', '08:00'), at('16', '08:35'), (ts) =>
        vehicle('V-reg', ts === at('16', '08:00') ? register : (register += 0.9))(ts),
      ),
      vehicle('V-reg', register)(at('16', '08:40')),
      ...every(10, at('16', '09:00'), at('16', '09:20'), vehicle('V-flat', 300)),
    ]);
    await build(e);
  });
  afterAll(() => e.stop());

  test('when it is set to intervals, then its sessions are built again from its first reading: one starting before the kept one, one where none was kept', async () => {
    // As a register: charging from 08:05 (the first rise), the span from the reading before it.
    expect(await kept('V-reg')).toEqual([[iso(at('16', '08:00')), iso(at('16', '08:35')), 6.3]]);
    expect(await kept('V-flat')).toEqual([]);
    for (const id of ['V-reg', 'V-flat']) await settings(id, 'interval');
    await build(e);
    // As intervals every reading charges: one session from SESSION_GAP_S before the first one.
    expect(await kept('V-reg')).toEqual([
      [
        iso(at('16', '07:40')),
        iso(at('16', '08:40')),
        500 * 2 + 500.9 + 501.8 + 502.7 + 503.6 + 504.5 + 505.4 + 506.3 * 2,
      ],
    ]);
    expect(await kept('V-flat')).toEqual([[iso(at('16', '08:50')), iso(at('16', '09:20')), 900]]);
    // The live answer is the kept one.
    expect(
      (await sessionsOf(e, 'V-reg', '2024-05-16T00:00:00Z', '2024-05-17T00:00:00Z')).map((s) => [
        s.start,
        s.dcDeliveredKwh,
      ]),
    ).toEqual([[iso(at('16', '07:40')), 5031.5]]);
  });
});

describe('ENERGY_READINGS changed between runs of the flusher', () => {
  let e: TestEngine;
  const kept = async (vehicleId: string) =>
    (await e.ctx.db('charging_sessions').where({ vehicle_id: vehicleId }).orderBy('start_ts')).map(
      (s: { ac_kwh: number; dc_kwh: number }) => [s.ac_kwh, s.dc_kwh],
    );
  const marked = async () =>
    (await e.ctx.db('session_dirty').select('vehicle_id').orderBy('vehicle_id')).map(
      (r: { vehicle_id: string }) => r.vehicle_id,
    );
  const recorded = async () =>
    (await e.ctx.db('session_defaults').where({ id: 1 }).first())?.energy_readings;

  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await map(e, 'V-dflt', 'M-dflt', '2024-05-01T00:00:00Z');
    await map(e, 'V-own', 'M-own', '2024-05-01T00:00:00Z');
    // V-own and M-own have semantics of their own: a change of the default is not theirs. V-dflt
    // has too (its readings are intervals), but charges from M-dflt, which follows the default.
    for (const path of [
      '/v1/vehicles/V-own/settings',
      '/v1/meters/M-own/settings',
      '/v1/vehicles/V-dflt/settings',
    ]) {
      await request(e.api.api.app).put(path).send({ energyReadings: 'interval' }).expect(200);
    }
    // M-dflt sends a register (200, 202, ...) while the default reads it as intervals.
    let register = 198;
    await ingest(e, [
      ...[vehicle('V-dflt', 0), vehicle('V-own', 0)].map((v) => v(at('15', '09:55'))),
      ...every(10, at('15', '10:00'), at('15', '10:30'), vehicle('V-dflt', 1.8)),
      ...every(10, at('15', '09:50'), at('15', '10:30'), (ts) =>
        meter('M-dflt', (register += 2))(ts),
      ),
      ...every(10, at('15', '10:00'), at('15', '10:30'), vehicle('V-own', 1.8)),
      ...every(10, at('15', '10:00'), at('15', '10:30'), meter('M-own', 2)),
      // V-free follows the default and sends a flat register: two sessions as intervals, none as a
      // register.
      vehicle('V-free', 3)(at('15', '09:40')),
      ...every(10, at('15', '10:00'), at('15', '10:20'), vehicle('V-free', 3)),
    ]);
    await build(e);
    // From here on, flushers of another configuration build: this one's would race them.
    await e.flusher.flusher.sessions.stop();
  });
  afterAll(() => e.stop());

  test('when a flusher starts with another default, then the sessions that followed the old one are built again, the others are left as built, and a second start marks nothing', async () => {
    expect(await recorded()).toBe('interval');
    expect(await kept('V-dflt')).toEqual([[202 + 204 + 206 + 208, 7.2]]); // (09:55, 10:30] as intervals
    expect(await kept('V-own')).toEqual([[8, 7.2]]);
    expect(await kept('V-free')).toHaveLength(2);

    const store = new SessionStore(e.ctx.db, { ...e.ctx.config, energyReadings: 'cumulative' });
    const gap = e.ctx.config.sessionGapS;
    expect(await store.adoptSessionDefaults()).toEqual({
      previous: { energyReadings: 'interval', sessionGapS: gap, sessionRules: SESSION_RULES },
      now: { energyReadings: 'cumulative', sessionGapS: gap, sessionRules: SESSION_RULES },
      marked: 2,
    });
    expect(await marked()).toEqual(['V-dflt', 'V-free']);
    // A vehicle following the default from its first reading (which charges or not by it).
    const free = await e.ctx.db('session_dirty').where({ vehicle_id: 'V-free' }).first();
    expect(free.since).toEqual(new Date(at('15', '09:40')));
    await buildAt(e, store, new Date(Date.now() - 3600_000));
    expect(await kept('V-dflt')).toEqual([[8, 7.2]]); // 200 -> 208
    expect(await kept('V-own')).toEqual([[8, 7.2]]);
    expect(await kept('V-free')).toEqual([]);
    expect(await marked()).toEqual([]);
    expect(await recorded()).toBe('cumulative');

    expect(await store.adoptSessionDefaults()).toEqual({
      previous: { energyReadings: 'cumulative', sessionGapS: gap, sessionRules: SESSION_RULES },
      now: { energyReadings: 'cumulative', sessionGapS: gap, sessionRules: SESSION_RULES },
      marked: 0,
    });
    expect(await marked()).toEqual([]);
  });
});

describe('SESSION_GAP_S changed between runs of the flusher', () => {
  let e: TestEngine;
  const kept = async (vehicleId: string) =>
    (await e.ctx.db('charging_sessions').where({ vehicle_id: vehicleId }).orderBy('start_ts')).map(
      (s: { start_ts: Date; end_ts: Date }) => [iso(+s.start_ts), iso(+s.end_ts)],
    );

  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await map(e, 'V-gap', 'M-gap', '2024-05-01T00:00:00Z');
    // Charging every half hour: four sessions with a 10-minute gap, one with a 30-minute gap.
    await ingest(e, [
      ...every(30, at('17', '11:00'), at('17', '12:30'), vehicle('V-gap', 1.8)),
      ...every(30, at('17', '11:00'), at('17', '12:30'), meter('M-gap', 2)),
    ]);
    await build(e);
    // From here on, flushers of another configuration build: this one's would race them.
    await e.flusher.flusher.sessions.stop();
  });
  afterAll(() => e.stop());

  test('when a flusher starts with another gap, then every kept session is built again with it, and a second start marks nothing', async () => {
    expect(e.ctx.config.sessionGapS).toBe(600);
    const before = await kept('V-gap');
    expect(before).toHaveLength(4);

    const config = { ...e.ctx.config, sessionGapS: 1800 };
    const store = new SessionStore(e.ctx.db, config);
    const { energyReadings } = config;
    expect(await store.adoptSessionDefaults()).toEqual({
      previous: { energyReadings, sessionGapS: 600, sessionRules: SESSION_RULES },
      now: { energyReadings, sessionGapS: 1800, sessionRules: SESSION_RULES },
      marked: 1,
    });
    const mark = await e.ctx.db('session_dirty').where({ vehicle_id: 'V-gap' }).first();
    expect(mark.since).toEqual(new Date(at('17', '11:00'))); // from its first reading
    await buildAt(e, store, new Date(Date.now() - 3600_000), config);
    expect(await kept('V-gap')).toHaveLength(1);
    expect((await kept('V-gap'))[0][1]).toBe(iso(at('17', '12:30')));

    expect((await store.adoptSessionDefaults()).marked).toBe(0);
    expect(await e.ctx.db('session_dirty').where({ vehicle_id: 'V-gap' })).toEqual([]);
  });

  test('when the gap was not recorded (sessions built before it was), then it is taken to be the one in force: recorded, nothing marked', async () => {
    await e.ctx.db('session_defaults').where({ id: 1 }).update({ session_gap_s: null });
    const store = new SessionStore(e.ctx.db, { ...e.ctx.config, sessionGapS: 900 });
    expect(await store.adoptSessionDefaults()).toMatchObject({
      previous: { sessionGapS: null },
      now: { sessionGapS: 900 },
      marked: 0,
    });
    expect((await e.ctx.db('session_defaults').where({ id: 1 }).first()).session_gap_s).toBe(900);
  });
});

describe('sessions at the edge of what history keeps (RETENTION_DAYS)', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine();
  });
  afterAll(() => e.stop());

  test("when the readings before a vehicle's first kept one were dropped, then its first session starts at the cutoff (a millisecond before, so that a reading at it counts), not a gap before it", async () => {
    const cutoff = retainedFrom(Date.now(), 3) as number;
    await ingest(e, [
      vehicle('V-kept', 1.8)(cutoff + 5 * MIN),
      vehicle('V-kept', 1.8)(cutoff + 10 * MIN),
    ]);
    const startOf = async (retentionDays: number) => {
      const store = new SessionStore(e.ctx.db, { ...e.ctx.config, retentionDays });
      const [session] = await store.compute(
        [{ vehicleId: 'V-kept', from: new Date(cutoff - 86_400_000) }],
        new Date(),
      );
      return session.start.toISOString();
    };
    // Kept whole, a first reading has no reading before it: its span starts a gap before it.
    expect(await startOf(0)).toBe(iso(cutoff + 5 * MIN - e.ctx.config.sessionGapS * 1000));
    expect(await startOf(3)).toBe(iso(cutoff - 1));
  });

  const keptStore = (retentionDays: number) =>
    new SessionStore(e.ctx.db, { ...e.ctx.config, retentionDays });

  test('when a charging reading falls exactly on the cutoff, then it counts in its session, as in the report', async () => {
    const cutoff = retainedFrom(Date.now(), 4) as number;
    await map(e, 'V-edge', 'M-edge', iso(cutoff - 86_400_000));
    await ingest(e, [
      ...every(10, cutoff, cutoff + 60 * MIN, vehicle('V-edge', 1)),
      ...every(10, cutoff, cutoff + 60 * MIN, meter('M-edge', 1.1)),
    ]);
    const [session, ...more] = await keptStore(4).compute(
      [{ vehicleId: 'V-edge', from: new Date(cutoff - 86_400_000) }],
      new Date(),
    );
    expect(more).toEqual([]);
    expect(session).toMatchObject({ vehicleReadings: 7, meterReadings: 7, dcKwh: 7 });
    expect(session.acKwh).toBeCloseTo(7.7, 9);
  });

  test('when a kept session was judged against 30 days that now reach before the cutoff, then its drift baseline is computed again from the sessions still kept, as a session built again would be', async () => {
    const cutoff = retainedFrom(Date.now(), 40) as number;
    const kept = (days: number, sessions: number) =>
      ({
        vehicleId: 'V-baseline-cut',
        meterIds: ['M-baseline-cut'],
        start: new Date(cutoff + days * 86_400_000),
        baseline: { median: 0.9, sessions },
      }) as SessionRow;
    // Built when 27 sessions were in its 30 days, which retention has dropped since but for the
    // three kept after the cutoff (efficiencies 0.8, 0.82, 0.84).
    await e.ctx.db('charging_sessions').insert(
      [1, 2, 3].map((day) => ({
        vehicle_id: 'V-baseline-cut',
        key: `d-${cutoff + day * 86_400_000}`,
        source: 'detected',
        start_ts: new Date(cutoff + day * 86_400_000),
        end_ts: new Date(cutoff + day * 86_400_000 + 3_600_000),
        meter_ids: ['M-baseline-cut'],
        ac_kwh: 10,
        dc_kwh: 7.8 + day * 0.2,
        vehicle_readings: 6,
        meter_readings: 6,
      })),
    );
    const reaching = kept(10, 27);
    const within = kept(35, 7);
    const [recomputed, stored] = await keptStore(40).baselinesOf(
      [reaching, within],
      () => null,
      [],
    );
    expect(recomputed?.sessions).toBe(3);
    expect(recomputed?.median).toBeCloseTo(0.82, 12);
    expect(stored).toEqual({ median: 0.9, sessions: 7 });
    expect(await keptStore(0).baselinesOf([reaching, within], () => null, [])).toEqual([
      { median: 0.9, sessions: 27 },
      { median: 0.9, sessions: 7 },
    ]);
  });

  test('when readings older than the cutoff reach history (accepted before it passed them, flushed after), then they make no session', async () => {
    const cutoff = retainedFrom(Date.now(), 5) as number;
    const stale = cutoff - 2 * 86_400_000;
    await ingest(e, every(10, stale, stale + 60 * MIN, vehicle('V-stale', 1)));
    const sessions = await keptStore(5).compute(
      [{ vehicleId: 'V-stale', from: new Date(stale - 86_400_000) }],
      new Date(),
    );
    // Before: one session from the cutoff to the last stale reading, ending before it started.
    expect(sessions).toEqual([]);
  });
});

describe('the sessions statement with many devices configured', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine();
    await map(e, 'V-p', 'M-p', '2024-05-01T00:00:00Z');
    await ingest(e, every(5, at('10', '08:00'), at('10', '09:00'), vehicle('V-p', 1)));
    await e.ctx.db.raw(`INSERT INTO device_settings (device_type, device_id, energy_readings)
      SELECT 'meter', 'M-set-' || d, 'interval' FROM generate_series(1, 10000) d`);
    await e.ctx.db.raw(`INSERT INTO vehicle_meter_map (vehicle_id, meter_id, valid_from)
      SELECT 'V-map-' || d, 'M-map-' || d, '2024-01-01' FROM generate_series(1, 10000) d`);
    await e.ctx.db.raw('ANALYZE device_settings, vehicle_meter_map');
  });
  afterAll(() => e.stop());

  test('when it runs prepared (a generic plan, as on every report), then it looks settings and mappings up by key, never reading either table whole', async () => {
    const { sql, bindings } = bindSessionSql(SESSIONS_SQL, {
      VEHICLES: ['V-p'],
      FROMS: [new Date(at('10', '00:00'))],
      TO: new Date(at('11', '00:00')),
      GAP: 600,
      KEPT: null,
      MODE: 'interval',
    });
    const plan = await explainGeneric(e.ctx.db, e.ctx.db.raw(sql, bindings as Knex.RawBinding[]));
    expect(plan).toMatch(/device_settings_pkey/);
    expect(plan).not.toMatch(/Seq Scan/);
  });
});

describe('a session across midnight and a re-mapping, register devices among interval ones', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await map(e, 'V-m', 'M-a', '2024-05-01T00:00:00Z');
    await map(e, 'V-m', 'M-b', '2024-05-13T00:00:00Z');
    // The vehicle reports a register; meter A intervals, meter B a register.
    await request(e.api.api.app)
      .put('/v1/vehicles/V-m/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    await request(e.api.api.app)
      .put('/v1/meters/M-b/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    let register = 100;
    await ingest(e, [
      ...every(10, at('12', '23:20'), at('12', '23:30'), () => ({})).map((_, i) =>
        vehicle('V-m', 100)(at('12', '23:20') + i * 10 * MIN),
      ),
      ...every(10, at('12', '23:40'), at('12', '23:50'), (ts) =>
        vehicle('V-m', (register += 2))(ts),
      ),
      ...every(10, at('13', '00:00'), at('13', '00:20'), (ts) =>
        vehicle('V-m', (register += 2))(ts),
      ),
      ...every(10, at('12', '23:30'), at('12', '23:50'), meter('M-a', 2.5)),
      meter('M-a', 2.5)(at('13', '00:00')),
      meter('M-a', 99)(at('13', '00:10')), // after the re-mapping: not this vehicle's
      ...every(10, at('12', '23:50'), at('13', '00:20'), (ts) =>
        meter('M-b', 1000 + ((ts - at('12', '23:50')) / (10 * MIN)) * 2.5)(ts),
      ),
    ]);
  });
  afterAll(() => e.stop());

  test('then it is one session; each meter counts only for its part, each device by its semantics', async () => {
    const [session] = await sessionsOf(e, 'V-m', '2024-05-12T00:00:00Z', '2024-05-14T00:00:00Z');
    // The register rises at 23:40, 23:50, 00:00, 00:10, 00:20 (+2 each): 10 kWh.
    expect(session).toMatchObject({
      start: iso(at('12', '23:30')),
      end: iso(at('13', '00:20')),
      meters: ['M-a', 'M-b'],
      dcDeliveredKwh: 10,
    });
    // M-a (intervals) in (23:30, 00:00]: 23:40, 23:50, 00:00 = 7.5; M-b (register) in
    // (00:00, 00:20]: from 1002.5 at 23:50... its prior at 00:00 is 1002.5 -> 1007.5 at 00:20 = 5.
    expect(session.acConsumedKwh).toBe(12.5);
    expect(session.efficiency).toBe(0.8);
  });

  test("when the register is reset mid-charge, then the reset reading charges (its new value), as in the report: one session with the window's DC", async () => {
    // 100 first heard of, then 102, 104.5, 3 (reset), 5: the report counts 2 + 2.5 + 3 + 2 = 9.5.
    await request(e.api.api.app)
      .put('/v1/vehicles/V-r/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    await ingest(e, [
      vehicle('V-r', 100)(at('20', '09:50')),
      vehicle('V-r', 102)(at('20', '10:10')),
      vehicle('V-r', 104.5)(at('20', '10:20')),
      vehicle('V-r', 3)(at('20', '10:30')),
      vehicle('V-r', 5)(at('20', '10:40')),
    ]);
    const sessions = await sessionsOf(e, 'V-r', '2024-05-20T00:00:00Z', '2024-05-21T00:00:00Z');
    expect(sessions.map((s) => [s.start, s.end, s.dcDeliveredKwh])).toEqual([
      [iso(at('20', '10:00')), iso(at('20', '10:40')), 9.5],
    ]);
    const report = await request(e.api.api.app)
      .get('/v1/analytics/performance/V-r?from=2024-05-20T00:00:00Z&to=2024-05-21T00:00:00Z')
      .expect(200);
    expect(report.body.energy.dcDeliveredKwh).toBe(9.5);
  });
});

describe('register devices silent for days before a session', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await map(e, 'V-q', 'M-q', '2024-05-01T00:00:00Z');
    for (const path of ['/v1/vehicles/V-q/settings', '/v1/meters/M-q/settings']) {
      await request(e.api.api.app).put(path).send({ energyReadings: 'cumulative' }).expect(200);
    }
    // Last heard of three days before the session: the registers count from there.
    await ingest(e, [
      vehicle('V-q', 500, 40)(at('01', '10:00')),
      meter('M-q', 2000)(at('01', '10:00')),
      vehicle('V-q', 510)(at('04', '10:00')),
      vehicle('V-q', 515)(at('04', '10:05')),
      meter('M-q', 2012.5)(at('04', '10:00')),
      meter('M-q', 2018.75)(at('04', '10:05')),
    ]);
  });
  afterAll(() => e.stop());

  test('then the session starts SESSION_GAP_S before its first reading and its energy and SoC count from the readings days before', async () => {
    const [session] = await sessionsOf(e, 'V-q', '2024-05-04T00:00:00Z', '2024-05-05T00:00:00Z');
    expect(session).toMatchObject({
      start: iso(at('04', '09:50')),
      end: iso(at('04', '10:05')),
      dcDeliveredKwh: 15, // 500 -> 515
      acConsumedKwh: 18.75, // 2000 -> 2018.75
      efficiency: 0.8,
      socStart: 40,
      socEnd: 50,
      peakAcPowerKw: 75, // 6.25 kWh in the last 5 minutes
    });
  });
});

describe('power classes and drift', () => {
  let classes: TestEngine;
  let single: TestEngine;
  // A 2.31 kW socket session at 0.80 (healthy for slow AC charging): idle at 09:50, then
  // 7 readings 10:00-11:00 of 0.385 kWh AC and 0.308 kWh DC: 2.695 kWh over 70 minutes.
  const slow = [
    vehicle('V-slow', 0)(at('20', '09:50')),
    ...every(10, at('20', '10:00'), at('20', '11:00'), vehicle('V-slow', 0.308)),
    ...every(10, at('20', '10:00'), at('20', '11:00'), meter('M-slow', 0.385)),
  ];
  // 3.3 kWh of AC over 18 minutes: 11 kW exactly (summed from 1.1s, 11.000000000000002), at
  // 0.836: within the class up to 11 kW (0.82), not above it (0.85).
  const boundaryAt = (hhmm: string) => Date.parse(`2024-06-20T${hhmm}:00Z`);
  const onTheBoundary = [
    vehicle('V-11kw', 0)(boundaryAt('10:00')),
    meter('M-11kw', 0)(boundaryAt('10:00')),
    ...every(6, boundaryAt('10:06'), boundaryAt('10:18'), vehicle('V-11kw', 0.92)),
    ...every(6, boundaryAt('10:06'), boundaryAt('10:18'), meter('M-11kw', 1.1)),
  ];
  // Six weeks of 0.93 sessions, then one at 0.87: above 0.85, but 0.06 below its median.
  const drifting = [0, 1, 2, 3, 4, 5, 6].flatMap((day) => {
    const eff = day === 6 ? 0.87 : 0.93;
    const start = Date.parse('2024-06-01T08:00:00Z') + day * 86_400_000;
    return [
      ...every(10, start, start + 60 * MIN, vehicle('V-drift', 1.74)),
      ...every(10, start, start + 60 * MIN, meter('M-drift', 1.74 / eff)),
    ];
  });

  // Baselines a hair either side of 0.93 and last sessions a hair either side of 0.89: shown
  // alike (0.89 against 0.93), each 0.04 below, one just less (no drift), one just more (drift).
  const nearTheMargin = (
    [
      ['V-edge-in', 0.92996, 0.88998],
      ['V-edge-out', 0.93004, 0.89002],
    ] as const
  ).flatMap(([id, usual, last]) =>
    [0, 1, 2, 3, 4, 5, 6].flatMap((day) => {
      const start = Date.parse('2024-07-01T08:00:00Z') + day * 86_400_000;
      return [
        ...every(10, start, start + 60 * MIN, vehicle(id, day === 6 ? last : usual)),
        ...every(10, start, start + 60 * MIN, meter(`M-${id}`, 1)),
      ];
    }),
  );

  beforeAll(async () => {
    [classes, single] = await Promise.all([
      startTestEngine({
        ANALYTICS_CACHE_TTL_S: '0',
        EFFICIENCY_THRESHOLDS: '3.7:0.75,11:0.82,22:0.85,*:0.88',
      }),
      startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' }),
    ]);
    for (const e of [classes, single]) {
      await map(e, 'V-slow', 'M-slow', '2024-05-01T00:00:00Z');
      await map(e, 'V-drift', 'M-drift', '2024-05-01T00:00:00Z');
      await map(e, 'V-edge-in', 'M-V-edge-in', '2024-05-01T00:00:00Z');
      await map(e, 'V-edge-out', 'M-V-edge-out', '2024-05-01T00:00:00Z');
      await map(e, 'V-11kw', 'M-11kw', '2024-05-01T00:00:00Z');
      await ingest(e, [...slow, ...onTheBoundary, ...drifting, ...nearTheMargin]);
      await build(e);
    }
  });
  afterAll(() => Promise.all([classes.stop(), single.stop()]));

  test('when a vehicle charges slowly at 0.80, then its power class (<= 3.7 kW: 0.75) does not flag it; the single threshold does', async () => {
    const window = ['2024-05-20T00:00:00Z', '2024-05-21T00:00:00Z'] as const;
    const [withClasses] = await sessionsOf(classes, 'V-slow', ...window);
    const [withSingle] = await sessionsOf(single, 'V-slow', ...window);
    expect(withClasses).toMatchObject({ meanAcPowerKw: 2.31, efficiency: 0.8 });
    expect(withClasses).toMatchObject({ threshold: 0.75, alert: false });
    expect(withSingle).toMatchObject({ threshold: 0.85, alert: true });
  });

  test("when a session's mean AC power is a class's limit to the last bit of a float, then that class's threshold applies", async () => {
    const [session] = await sessionsOf(
      classes,
      'V-11kw',
      '2024-06-20T00:00:00Z',
      '2024-06-21T00:00:00Z',
    );
    expect(session).toMatchObject({ meanAcPowerKw: 11, threshold: 0.82, alert: false });
    expect(session.efficiency).toBeCloseTo(0.8364, 4);
  });

  test('when a charger degrades from 0.93 to 0.87, then its session is flagged drift while above its threshold', async () => {
    const found = await sessionsOf(
      single,
      'V-drift',
      '2024-06-07T00:00:00Z',
      '2024-06-08T00:00:00Z',
    );
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ efficiency: 0.87, alert: false, drift: true });
    expect(found[0]).toMatchObject({ baseline: { medianEfficiency: 0.93, sessions: 6 } });
    const fleet = await request(single.api.api.app)
      .get('/v1/analytics/sessions?from=2024-05-20T00:00:00Z&to=2024-06-10T00:00:00Z&flagged=true')
      .expect(200);
    // Worst efficiency first: the slow session (0.80, under the single threshold), then drift.
    expect(fleet.body.sessions.map((s: SessionJson) => [s.id, s.alert, s.drift])).toEqual([
      [`d-${at('20', '09:50')}`, true, null],
      [found[0].id, false, true],
    ]);
    expect(fleet.body.totals).toEqual({ sessions: 8, flagged: 2, drifting: 1 });
    // Paged: the cursor keeps the flagged list, asked again without the filter or the window.
    const first = await request(single.api.api.app)
      .get(
        '/v1/analytics/sessions?from=2024-05-20T00:00:00Z&to=2024-06-10T00:00:00Z&flagged=true&limit=1',
      )
      .expect(200);
    const second = await request(single.api.api.app)
      .get(`/v1/analytics/sessions?limit=1&cursor=${first.body.nextCursor}`)
      .expect(200);
    expect([...first.body.sessions, ...second.body.sessions]).toEqual(fleet.body.sessions);
    expect(second.body.nextCursor).toBeNull();
    await request(single.api.api.app)
      .get(`/v1/analytics/sessions?flagged=false&cursor=${first.body.nextCursor}`)
      .expect(400);
  });
  test('when a session is within a hair of EFFICIENCY_DRIFT below its median, then drift judges the figures before rounding, as alerts do', async () => {
    const window = ['2024-07-07T00:00:00Z', '2024-07-08T00:00:00Z'] as const;
    const [inside] = await sessionsOf(single, 'V-edge-in', ...window);
    const [outside] = await sessionsOf(single, 'V-edge-out', ...window);
    for (const s of [inside, outside]) {
      expect(s).toMatchObject({
        efficiency: 0.89,
        baseline: { medianEfficiency: 0.93, sessions: 6 },
      });
    }
    expect([inside.drift, outside.drift]).toEqual([false, true]);
  });
});

describe('drift before the sessions are built', () => {
  test('when the earlier sessions are still computed live, then drift is judged against them as it is once they are kept', async () => {
    const e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    try {
      await map(e, 'V-d', 'M-d', '2024-05-01T00:00:00Z');
      // Six days of 0.93 sessions, then one at 0.87, none of them built yet.
      await ingest(
        e,
        [0, 1, 2, 3, 4, 5, 6].flatMap((day) => {
          const start = Date.parse('2024-06-01T08:00:00Z') + day * 86_400_000;
          const eff = day === 6 ? 0.87 : 0.93;
          return [
            ...every(10, start, start + 60 * MIN, vehicle('V-d', 1.74)),
            ...every(10, start, start + 60 * MIN, meter('M-d', 1.74 / eff)),
          ];
        }),
      );
      const window = ['2024-06-01T00:00:00Z', '2024-06-08T00:00:00Z'] as const;
      const live = await sessionsOf(e, 'V-d', ...window);
      expect(live).toHaveLength(7);
      expect(live[0]).toMatchObject({
        efficiency: 0.87,
        alert: false,
        drift: true,
        baseline: { medianEfficiency: 0.93, sessions: 6 },
      });
      expect(live.slice(1).map((s) => s.drift)).toEqual([false, null, null, null, null, null]);
      await build(e);
      // Kept with their baselines (0 to 6 sessions before each), which reports then read.
      const kept = await e.ctx
        .db('charging_sessions')
        .orderBy('start_ts')
        .select('baseline_median', 'baseline_sessions');
      expect(kept.map((k) => k.baseline_sessions)).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(kept[6].baseline_median).toBeCloseTo(0.93, 10);
      expect(await sessionsOf(e, 'V-d', ...window)).toEqual(live);
    } finally {
      await e.stop();
    }
  });
});

describe('the fleet report ranked by sessions', () => {
  test('when rank=session, then vehicles come worst session first, each with that session', async () => {
    const e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    try {
      await map(e, 'V-good', 'M-good', '2024-05-01T00:00:00Z');
      await map(e, 'V-bad', 'M-bad', '2024-05-01T00:00:00Z');
      await ingest(e, [
        // V-good: a long 0.92 session and a short 0.80 one; V-bad: one 0.84 session.
        ...every(5, at('21', '08:00'), at('21', '12:00'), vehicle('V-good', 0.92)),
        ...every(5, at('21', '08:00'), at('21', '12:00'), meter('M-good', 1)),
        ...every(5, at('21', '14:00'), at('21', '14:10'), vehicle('V-good', 0.8)),
        ...every(5, at('21', '14:00'), at('21', '14:10'), meter('M-good', 1)),
        ...every(5, at('21', '08:00'), at('21', '09:00'), vehicle('V-bad', 0.84)),
        ...every(5, at('21', '08:00'), at('21', '09:00'), meter('M-bad', 1)),
      ]);
      const query = 'from=2024-05-21T00:00:00Z&to=2024-05-22T00:00:00Z';
      const byWindow = await request(e.api.api.app).get(`/v1/analytics/fleet?${query}`).expect(200);
      expect(byWindow.body.vehicles.map((v: { vehicleId: string }) => v.vehicleId)).toEqual([
        'V-bad',
        'V-good',
      ]);
      const bySession = await request(e.api.api.app)
        .get(`/v1/analytics/fleet?${query}&rank=session`)
        .expect(200);
      expect(
        bySession.body.vehicles.map((v: { vehicleId: string; worstSession: object }) => [
          v.vehicleId,
          v.worstSession,
        ]),
      ).toEqual([
        ['V-good', expect.objectContaining({ efficiency: 0.8, alert: true })],
        ['V-bad', expect.objectContaining({ efficiency: 0.84, alert: true })],
      ]);
    } finally {
      await e.stop();
    }
  });
});

describe('paging the fleet report ranked by sessions', () => {
  test('when the fleet sessions change between pages, then every page is cut from the ranking of the first', async () => {
    // No copy in the process: the fleet sessions' cache entry, where a page made one, is taken
    // away in Redis below, as its expiry would (cached apart, it may expire between two pages of one ranking).
    const e = await startTestEngine({
      ANALYTICS_CACHE_TTL_S: '300',
      ANALYTICS_CACHE_LOCAL_KB: '0',
    });
    try {
      for (const id of ['a', 'b', 'c'])
        await map(e, `V-p${id}`, `M-p${id}`, '2024-05-01T00:00:00Z');
      await ingest(e, [
        ...['a', 'b', 'c'].flatMap((id) => [
          ...every(5, at('23', '08:00'), at('23', '09:00'), vehicle(`V-p${id}`, 0.9)),
          ...every(5, at('23', '08:00'), at('23', '09:00'), meter(`M-p${id}`, 1)),
        ]),
      ]);
      const query = 'from=2024-05-23T00:00:00Z&to=2024-05-24T00:00:00Z';
      const get = async (path: string) => (await request(e.api.api.app).get(path).expect(200)).body;
      const first = await get(`/v1/analytics/fleet?${query}&rank=session&limit=1`);
      expect(first.vehicles.map((v: { vehicleId: string }) => v.vehicleId)).toEqual(['V-pa']);

      // V-pc's session becomes the fleet's worst, and its sessions are computed again.
      await ingest(e, [meter('M-pc', 10)(at('23', '08:30') + 30_000)]);
      const sessionKeys = await e.ctx.redis.keys(
        `${e.ctx.config.redisPrefix}:analytics:*:sessions:*`,
      );
      if (sessionKeys.length > 0) await e.ctx.redis.del(...sessionKeys);

      const pages = [first];
      while (pages[pages.length - 1].nextCursor)
        pages.push(
          await get(
            `/v1/analytics/fleet?cursor=${encodeURIComponent(pages[pages.length - 1].nextCursor)}`,
          ),
        );
      expect(
        pages.flatMap((p) => p.vehicles.map((v: { vehicleId: string }) => v.vehicleId)),
      ).toEqual(['V-pa', 'V-pb', 'V-pc']);
      // A new ranking, once the cached one is gone, has V-pc first.
      await e.ctx.redis.del(...(await e.ctx.redis.keys(`${e.ctx.config.redisPrefix}:analytics:*`)));
      const fresh = await get(`/v1/analytics/fleet?${query}&rank=session&limit=1`);
      expect(fresh.vehicles.map((v: { vehicleId: string }) => v.vehicleId)).toEqual(['V-pc']);
      // A vehicle's sessions may be asked fresh; paged reports may not (another client's fresh
      // first page would replace the report its pages are cut from).
      const ofVehicle = `/v1/vehicles/V-pc/sessions?${query}`;
      expect((await get(ofVehicle)).cache).toBe('miss');
      expect((await get(ofVehicle)).cache).toBe('hit');
      expect((await get(`${ofVehicle}&fresh=true`)).cache).toBe('miss');
      for (const paged of ['/v1/analytics/fleet', '/v1/analytics/sessions']) {
        const refused = await request(e.api.api.app)
          .get(`${paged}?${query}&fresh=true`)
          .expect(400);
        expect(refused.body.details).toEqual([expect.objectContaining({ path: '/fresh' })]);
      }
    } finally {
      await e.stop();
    }
  });
  test('when the ranking by session is first asked, then it is computed then, not made of the efficiency ranking or the fleet sessions cached before', async () => {
    const e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '300' });
    try {
      await map(e, 'V-q', 'M-q', '2024-05-01T00:00:00Z');
      const query = 'from=2024-05-24T00:00:00Z&to=2024-05-25T00:00:00Z';
      const get = async (path: string) => (await request(e.api.api.app).get(path).expect(200)).body;
      // Cached while the vehicle had sent nothing.
      expect((await get(`/v1/analytics/fleet?${query}`)).withoutMeterData).toEqual(['V-q']);
      expect((await get(`/v1/analytics/sessions?${query}`)).sessions).toEqual([]);
      await ingest(e, [
        ...every(5, at('24', '08:00'), at('24', '09:00'), vehicle('V-q', 0.9)),
        ...every(5, at('24', '08:00'), at('24', '09:00'), meter('M-q', 1)),
      ]);
      const bySession = await get(`/v1/analytics/fleet?${query}&rank=session`);
      expect(bySession).toMatchObject({ cache: 'miss', withoutMeterData: [] });
      expect(bySession.vehicles).toEqual([
        expect.objectContaining({
          vehicleId: 'V-q',
          efficiency: 0.9,
          worstSession: expect.objectContaining({ efficiency: 0.9 }),
        }),
      ]);
    } finally {
      await e.stop();
    }
  });
});

describe('sessions whose efficiencies round to the same figure', () => {
  test('when one is worse before rounding, then it ranks first everywhere, as it is the one that alerts', async () => {
    const e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    try {
      // 17 of 20 kWh (0.85, the threshold: no alert) against 16.9992 of 20 (0.84996: an alert),
      // both shown as 0.85; V-e1 sorts before V-e2 by name. V-e3 has one of each, the better first.
      for (const id of ['1', '2', '3'])
        await map(e, `V-e${id}`, `M-e${id}`, '2024-05-01T00:00:00Z');
      await ingest(e, [
        ...every(5, at('22', '08:00'), at('22', '08:45'), vehicle('V-e1', 1.7)),
        ...every(5, at('22', '08:00'), at('22', '08:45'), vehicle('V-e2', 1.69992)),
        ...every(5, at('22', '08:00'), at('22', '08:45'), vehicle('V-e3', 1.7)),
        ...every(5, at('22', '14:00'), at('22', '14:45'), vehicle('V-e3', 1.69992)),
        ...['1', '2', '3'].flatMap((id) => [
          ...every(5, at('22', '08:00'), at('22', '08:45'), meter(`M-e${id}`, 2)),
          ...every(5, at('22', '14:00'), at('22', '14:45'), meter(`M-e${id}`, 2)),
        ]),
      ]);
      const query = 'from=2024-05-22T00:00:00Z&to=2024-05-23T00:00:00Z';
      const get = async (path: string) => (await request(e.api.api.app).get(path).expect(200)).body;
      const fleetSessions = await get(`/v1/analytics/sessions?${query}`);
      expect(
        fleetSessions.sessions
          .filter((s: SessionJson) => s.efficiency !== null)
          .map((s: SessionJson & { vehicleId: string }) => [s.vehicleId, s.efficiency, s.alert]),
      ).toEqual([
        ['V-e2', 0.85, true],
        ['V-e3', 0.85, true],
        ['V-e1', 0.85, false],
        ['V-e3', 0.85, false],
      ]);
      const bySession = await get(`/v1/analytics/fleet?${query}&rank=session`);
      expect(bySession.vehicles.map((v: { vehicleId: string }) => v.vehicleId)).toEqual([
        'V-e2',
        'V-e3',
        'V-e1',
      ]);
      const report = await get(`/v1/analytics/performance/V-e3?${query}`);
      expect(report.sessions.worst).toMatchObject({ start: iso(at('22', '13:50')), alert: true });
    } finally {
      await e.stop();
    }
  });
});

describe('sessions under any arrival order', () => {
  test('when readings arrive shuffled, late and duplicated, with builds in between, then the sessions equal the ones computed from scratch', async () => {
    const e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    try {
      const random = seededRandom(7);
      await map(e, 'V-r', 'M-r', '2024-05-01T00:00:00Z');
      const readings: object[] = [];
      let charging = false;
      for (let ts = at('25', '00:00'); ts < at('26', '00:00'); ts += 3 * MIN) {
        if (random() < 0.06) charging = !charging;
        if (random() < 0.1) continue; // a missing reading, sometimes a gap
        const dc = charging ? Math.round(random() * 100) / 100 : 0;
        readings.push(vehicle('V-r', dc)(ts), meter('M-r', Math.round(dc * 125) / 100)(ts));
      }
      const parts = shuffle([...readings, ...readings.slice(0, 40)], random);
      for (let i = 0; i < parts.length; i += 97) {
        await ingest(e, parts.slice(i, i + 97));
        if (random() < 0.5) await build(e);
      }
      const window = ['2024-05-24T00:00:00Z', '2024-05-27T00:00:00Z'] as const;
      const answered = await sessionsOf(e, 'V-r', ...window);
      await build(e);
      const built = await sessionsOf(e, 'V-r', ...window);
      const scratch = await new SessionStore(e.ctx.db, e.ctx.config).compute(
        [{ vehicleId: 'V-r', from: new Date('2024-05-20T00:00:00Z') }],
        new Date(),
      );
      expect(scratch.length).toBeGreaterThan(3);
      const keys = (s: { start: string | Date; end: string | Date }[]) =>
        s.map((x) => [new Date(x.start).toISOString(), new Date(x.end).toISOString()]).sort();
      expect(keys(answered)).toEqual(keys(scratch));
      expect(built).toEqual(answered);
      const dc = (s: { dcKwh?: number | null; dcDeliveredKwh?: number | null }[]) =>
        s.map((x) => Math.round(((x.dcKwh ?? x.dcDeliveredKwh) as number) * 1e4) / 1e4).sort();
      expect(dc(answered)).toEqual(dc(scratch));
    } finally {
      await e.stop();
    }
  });
});

describe('an open session continued from where it was built', () => {
  const T = (hhmm: string) => at('21', hhmm);
  let e: TestEngine;
  let store: SessionStore;

  /** The two vehicles' sessions as the API answers them. */
  const answer = async () => ({
    interval: await sessionsOf(e, 'V-oi', '2024-05-20T00:00:00Z', '2024-05-23T00:00:00Z'),
    register: await sessionsOf(e, 'V-oc', '2024-05-20T00:00:00Z', '2024-05-23T00:00:00Z'),
  });

  /** The same, with every session computed whole: a session mark (far ahead) stops continuing. */
  async function answerWhole() {
    await e.ctx.db('session_dirty').insert([
      { vehicle_id: 'V-oi', since: '2030-01-01T00:00:00Z' },
      { vehicle_id: 'V-oc', since: '2030-01-01T00:00:00Z' },
    ]);
    try {
      return await answer();
    } finally {
      await e.ctx.db('session_dirty').where('since', '2030-01-01T00:00:00Z').del();
    }
  }

  /** Continued and whole agree (a mean of temperatures summed in another order: to 0.01). */
  async function expectSameAsWhole(continuedFrom: boolean) {
    const open = await store.liveFrom(['V-oi', 'V-oc'], new Date(T('00:00')));
    expect(open.map((l) => [l.vehicleId, l.open ? 'continued' : 'whole']).sort()).toEqual([
      ['V-oc', continuedFrom ? 'continued' : 'whole'],
      ['V-oi', continuedFrom ? 'continued' : 'whole'],
    ]);
    const continued = await answer();
    const whole = await answerWhole();
    const temps = (s: { interval: object[]; register: object[] }) =>
      [...s.interval, ...s.register].map(
        (x) => (x as { batteryTempMeanC: number }).batteryTempMeanC,
      );
    temps(continued).forEach((t, i) => expect(Math.abs(t - temps(whole)[i])).toBeLessThan(0.0101));
    const withoutTemps = (s: { interval: object[]; register: object[] }) => ({
      interval: s.interval.map((x) => ({ ...x, batteryTempMeanC: null })),
      register: s.register.map((x) => ({ ...x, batteryTempMeanC: null })),
    });
    expect(withoutTemps(continued)).toEqual(withoutTemps(whole));
    return continued;
  }

  /** Both vehicles, every minute of [from, to]: charging where `dc` says, their meters alike. */
  function minutes(from: string, to: string, dc: (ts: number) => number, random: () => number) {
    const readings: object[] = [];
    for (let ts = T(from); ts <= T(to); ts += MIN) {
      const kwh = dc(ts) > 0 ? Math.round((dc(ts) + random() * 0.2) * 100) / 100 : 0;
      const temp = 25 + Math.floor(random() * 10);
      registers.vehicle += kwh;
      registers.meter += Math.round(kwh * 115) / 100;
      readings.push(
        vehicle('V-oi', kwh, 40 + (ts - T('10:00')) / MIN / 4, temp)(ts),
        meter(ts < T('10:40') ? 'M-oi' : 'M-oi2', Math.round(kwh * 115) / 100)(ts),
        vehicle('V-oc', Math.round(registers.vehicle * 100) / 100, 50, temp)(ts),
        meter('M-oc', Math.round(registers.meter * 100) / 100)(ts),
      );
    }
    return readings;
  }
  const registers = { vehicle: 500, meter: 800 };

  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    // Rolled up and built here, to a chosen horizon, not on the flusher's schedule.
    await e.flusher.flusher.rollups.stop();
    await e.flusher.flusher.sessions.stop();
    store = new SessionStore(e.ctx.db, e.ctx.config);
    await map(e, 'V-oi', 'M-oi', '2024-05-01T00:00:00Z');
    await map(e, 'V-oi', 'M-oi2', iso(T('10:40'))); // a re-mapping inside the session
    await map(e, 'V-oc', 'M-oc', '2024-05-01T00:00:00Z');
    for (const path of ['/v1/vehicles/V-oc/settings', '/v1/meters/M-oc/settings']) {
      await request(e.api.api.app).put(path).send({ energyReadings: 'cumulative' }).expect(200);
    }
  });
  afterAll(() => e.stop());

  test('when it is built while charging, then reports continue it from its end and equal it computed whole, through pauses, a new session and a late reading', async () => {
    const random = seededRandom(11);
    // Charging from 10:00, a 5-minute pause (shorter than the gap) at 10:30.
    await ingest(
      e,
      minutes('10:00', '11:20', (ts) => (ts >= T('10:30') && ts < T('10:35') ? 0 : 0.2), random),
    );
    await buildAt(e, store, new Date(T('11:15')));
    const built = await e.ctx.db('session_built').whereIn('vehicle_id', ['V-oi', 'V-oc']);
    expect(built.map((b) => b.open_session?.end).sort()).toEqual([
      iso(T('11:14')),
      iso(T('11:14')),
    ]);
    expect((await expectSameAsWhole(true)).interval).toHaveLength(1);

    // It goes on past a 7-minute pause, stops for longer than the gap, and a new session starts.
    await ingest(
      e,
      minutes(
        '11:21',
        '12:40',
        (ts) =>
          (ts >= T('11:40') && ts < T('11:47')) || (ts >= T('12:10') && ts < T('12:31')) ? 0 : 0.3,
        random,
      ),
    );
    const { interval } = await expectSameAsWhole(true);
    expect(interval.map((s) => [s.start, s.end])).toEqual([
      [iso(T('12:30')), iso(T('12:40'))],
      [iso(T('09:50')), iso(T('12:09'))],
    ]);

    // A late reading inside what was built: computed whole until built again.
    await ingest(e, [
      meter('M-oc', 850)(T('10:05') + 30_000),
      vehicle('V-oi', 0.1)(T('10:05') + 30_000),
    ]);
    await expectSameAsWhole(false);
  });
});

describe('the builder continuing the session still going on', () => {
  const T = (hhmm: string) => at('22', hhmm);
  let e: TestEngine;
  /** Every computation the builder asks for: where it starts reading, continuing or not. */
  const computed: { readFrom: string; continued: boolean }[] = [];
  let store: SessionStore;

  class RecordingStore extends SessionStore {
    override async compute(targets: LiveFrom[], to: Date, db?: Knex): Promise<SessionRow[]> {
      for (const t of targets) {
        computed.push({ readFrom: iso(readsFrom(t).getTime()), continued: !!t.open });
      }
      return super.compute(targets, to, db);
    }
  }

  /** Charging (0.2 kWh DC, 0.25 AC a minute) where `charging` says, every minute of [from, to]. */
  function minutes(from: number, to: number, charging: (ts: number) => boolean) {
    const readings: object[] = [];
    for (let ts = from; ts <= to; ts += MIN) {
      const on = charging(ts);
      readings.push(
        vehicle('V-ob', on ? 0.2 : 0, 40 + (ts - T('10:00')) / MIN / 10, 25 + ((ts / MIN) % 7))(ts),
        meter('M-ob', on ? 0.25 : 0)(ts),
      );
    }
    return readings;
  }

  /** The session as kept (built or still going on), its figures to 9 digits. */
  const figures = (s: SessionRow) => ({
    start: iso(s.start.getTime()),
    end: iso(s.end.getTime()),
    acKwh: s.acKwh?.toFixed(9),
    dcKwh: s.dcKwh?.toFixed(9),
    readings: [s.vehicleReadings, s.meterReadings],
    peakAcKw: s.peakAcKw?.toFixed(9),
    soc: [s.socStart, s.socEnd],
    tempMean: s.tempMean?.toFixed(9),
    tempMax: s.tempMax,
  });

  /** Rolls up and builds to `horizon`; returns the session kept there, open or final. */
  async function buildTo(hhmm: string): Promise<SessionRow> {
    const horizon = new Date(T(hhmm));
    await buildAt(e, store, horizon);
    const built = await e.ctx.db('session_built').where({ vehicle_id: 'V-ob' }).first();
    if (built.open_session) {
      const open = built.open_session as SessionRow;
      return { ...open, start: new Date(open.start), end: new Date(open.end) };
    }
    const [kept] = await store.kept('V-ob', new Date(T('00:00')), horizon);
    return kept;
  }

  /** The same session computed from scratch, from the day's start. */
  async function whole(hhmm: string): Promise<SessionRow> {
    const sessions = await new SessionStore(e.ctx.db, e.ctx.config).compute(
      [{ vehicleId: 'V-ob', from: new Date(T('00:00')) }],
      new Date(T(hhmm)),
    );
    expect(sessions).toHaveLength(1);
    return sessions[0];
  }

  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await e.flusher.flusher.rollups.stop();
    await e.flusher.flusher.sessions.stop();
    store = new RecordingStore(e.ctx.db, e.ctx.config);
    await map(e, 'V-ob', 'M-ob', '2024-05-01T00:00:00Z');
  });
  afterAll(() => e.stop());

  test('when a session is built again while charging, then it is read on from its end, and kept as computed whole; a late reading inside it has it read whole again', async () => {
    await ingest(
      e,
      minutes(T('10:00'), T('11:20'), () => true),
    );
    expect(figures(await buildTo('11:15'))).toEqual(figures(await whole('11:15')));
    // The first build reads from the mapping's start (it marked the vehicle from there).
    expect(computed.splice(0).map((c) => c.continued)).toEqual([false]);

    // Still charging: only what came after the kept end (11:14) is read.
    await ingest(
      e,
      minutes(T('11:21'), T('11:50'), () => true),
    );
    const continued = await buildTo('11:45');
    expect(figures(continued)).toEqual(figures(await whole('11:45')));
    expect(figures(continued).end).toBe(iso(T('11:44')));
    expect(computed.splice(0)).toEqual([{ readFrom: iso(T('11:14')), continued: true }]);

    // A late reading inside the kept session: read whole again, from its start.
    await ingest(e, [vehicle('V-ob', 0.1, 45, 30)(T('10:30') + 30_000)]);
    await ingest(
      e,
      minutes(T('11:51'), T('12:05'), () => true),
    );
    expect(figures(await buildTo('12:00'))).toEqual(figures(await whole('12:00')));
    expect(computed.splice(0)).toEqual([{ readFrom: iso(T('09:50')), continued: false }]);

    // It stops: continued to its end, it is final and kept as computed whole.
    await ingest(
      e,
      minutes(T('12:06'), T('12:40'), (ts) => ts < T('12:10')),
    );
    const final = await buildTo('12:30');
    expect(figures(final)).toEqual(figures(await whole('12:30')));
    expect(figures(final).end).toBe(iso(T('12:09')));
    expect(computed.splice(0)).toEqual([{ readFrom: iso(T('11:59')), continued: true }]);
    const built = await e.ctx.db('session_built').where({ vehicle_id: 'V-ob' }).first();
    expect(built.open_session).toBeNull();
  });

  test("when a meter's semantics change while its session is still going on, then that session is read whole again with them", async () => {
    await map(e, 'V-os', 'M-os', '2024-05-01T00:00:00Z');
    // The meter sends a register (100.5, 101, ...), read as intervals at first.
    const readings: object[] = [];
    for (let ts = T('14:00'), register = 100; ts <= T('14:40'); ts += MIN) {
      readings.push(vehicle('V-os', 0.2)(ts), meter('M-os', (register += 0.5))(ts));
    }
    await ingest(e, readings);
    const openAt = async (hhmm: string) => {
      await buildAt(e, store, new Date(T(hhmm)));
      const built = await e.ctx.db('session_built').where({ vehicle_id: 'V-os' }).first();
      return built.open_session as { acKwh: number } | null;
    };
    expect((await openAt('14:30'))?.acKwh).toBeGreaterThan(1000); // the register summed
    await request(e.api.api.app)
      .put('/v1/meters/M-os/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    const [whole] = await new SessionStore(e.ctx.db, e.ctx.config).compute(
      [{ vehicleId: 'V-os', from: new Date(T('00:00')) }],
      new Date(T('14:35')),
    );
    expect(whole.acKwh).toBeLessThan(20); // its increases: 0.5 kWh a minute
    expect((await openAt('14:35'))?.acKwh).toBeCloseTo(whole.acKwh as number, 9);
  });
});

describe('a vehicle whose sessions cannot be built', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ ANALYTICS_CACHE_TTL_S: '0' });
    await e.flusher.flusher.rollups.stop();
    await e.flusher.flusher.sessions.stop();
  });
  afterAll(() => e.stop());

  const built = async (vehicleId: string) =>
    !!(await e.ctx.db('session_built').where({ vehicle_id: vehicleId }).first());
  const marked = async (vehicleId: string) =>
    !!(await e.ctx.db('session_dirty').where({ vehicle_id: vehicleId }).first());

  test('when one vehicle fails for good (a data error), then the builder sets it aside, leaves it marked, and builds every other one, again on its next run', async () => {
    const T = at('24', '10:00');
    const horizon = new Date(at('24', '13:00'));
    await ingest(e, [
      ...every(1, T, T + 30 * MIN, vehicle('V-ok1', 0.2)),
      ...every(1, T, T + 30 * MIN, vehicle('V-ok2', 0.2)),
    ]);
    // Into the day's partition, stored past validation (history written directly): two charging readings whose energies
    // overflow float8 when summed, marked as any flushed reading is.
    await new HistoryStore(e.ctx.db).insert(
      [
        vehicleReading('V-poison', T, 50, 1.7e308),
        vehicleReading('V-poison', T + MIN, 51, 1.7e308),
      ],
      Date.now(),
      e.ctx.db,
      statusUpsertsFrom,
    );
    // Its quarter cannot be rolled up (set aside by the roller); a mapping change marks it.
    const roller = new RollupRoller({ store: new RollupStore(e.ctx.db), logger: e.ctx.logger });
    await roller.rollUpNow(horizon);
    await markSessionsChanged(e.ctx.db, 'V-poison', new Date(T));
    const builder = new SessionBuilder({
      store: new SessionStore(e.ctx.db, e.ctx.config),
      horizon: () => horizon,
      config: e.ctx.config,
      logger: e.ctx.logger,
    });

    expect(await builder.buildNow()).toBe(2);
    expect([await built('V-ok1'), await built('V-ok2')]).toEqual([true, true]);
    expect([await built('V-poison'), await marked('V-poison')]).toEqual([false, true]);
    expect(await sessionsOf(e, 'V-ok1', '2024-05-24T00:00:00Z', '2024-05-25T00:00:00Z')).toEqual([
      expect.objectContaining({ dcDeliveredKwh: 6.2, source: 'detected' }),
    ]);

    // Its next run builds the new marks and leaves the set-aside one without failing.
    await ingest(e, every(1, T + 60 * MIN, T + 70 * MIN, vehicle('V-ok1', 0.2)));
    await roller.rollUpNow(horizon);
    expect(await marked('V-ok1')).toBe(true);
    expect(await builder.buildNow()).toBe(1);
    expect([await marked('V-ok1'), await marked('V-poison')]).toEqual([false, true]);
  });
});

describe('sessions kept before a change of what they count', () => {
  /** Two kept OCPP sessions of one vehicle and a detected one of another, as built before. */
  const keepSessions = (ctx: TestContext) =>
    ctx.db('charging_sessions').insert(
      [
        ['V-ocpp', 'ocpp', '2024-05-02T10:00:00Z'],
        ['V-ocpp', 'ocpp', '2024-05-01T10:00:00Z'],
        ['V-detected', 'detected', '2024-05-01T10:00:00Z'],
      ].map(([vehicle, source, start]) => ({
        vehicle_id: vehicle,
        key: `${source}-${start}`,
        source,
        start_ts: start,
        end_ts: start,
        meter_ids: [],
        vehicle_readings: 0,
        meter_readings: 0,
      })),
    );
  /** The vehicles marked to be built again, each with since when. */
  const marksOf = async (ctx: TestContext) =>
    (await ctx.db('session_dirty').select('vehicle_id', 'since')).map(
      (m: { vehicle_id: string; since: Date }) => [m.vehicle_id, m.since.toISOString()],
    );
  const OCPP_VEHICLE_FROM_ITS_FIRST = [['V-ocpp', '2024-05-01T10:00:00.000Z']];

  test.each([
    // An older flusher records its defaults and knows no rules.
    ['no rules recorded (an older flusher rebuilt what the migrations marked)', null],
    ['the rules of an older release (a rollback)', SESSION_RULES - 1],
    ['no record at all (a release before records were kept)', undefined],
  ])(
    'when a flusher finds %s, then it marks every vehicle with kept OCPP sessions again, once',
    async (_what, rules) => {
      const ctx = await createTestContext();
      try {
        await keepSessions(ctx);
        if (rules !== undefined) {
          await ctx.db('session_defaults').insert({
            id: 1,
            energy_readings: ctx.config.energyReadings,
            session_gap_s: ctx.config.sessionGapS,
            session_rules: rules,
          });
        }
        const store = new SessionStore(ctx.db, ctx.config);
        expect(await store.adoptSessionDefaults()).toMatchObject({
          now: { sessionRules: SESSION_RULES },
          marked: 1,
        });
        expect(await marksOf(ctx)).toEqual(OCPP_VEHICLE_FROM_ITS_FIRST);
        await ctx.db('session_dirty').del();
        expect((await store.adoptSessionDefaults()).marked).toBe(0);
      } finally {
        await ctx.cleanup();
      }
    },
  );

  test.each([
    ['folds OCPP transactions with a reset', '20261206030000'],
    ['bills OCPP transactions with a glitch again', '20261207110000'],
  ])(
    'when the migration that %s runs, then every vehicle with kept OCPP sessions is marked to be built again from its first',
    async (_what, migration) => {
      const ctx = await createTestContext();
      try {
        await undoMigrationsThrough(ctx.db, migration);
        await keepSessions(ctx);
        await ctx.db.migrate.latest();
        expect(await marksOf(ctx)).toEqual(OCPP_VEHICLE_FROM_ITS_FIRST);
      } finally {
        await ctx.cleanup();
      }
    },
  );
});
