import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { Queue } from 'bullmq';
import { generateKey } from '../src/auth/api-keys';
import type { IngestJobData } from '../src/queue/ingest-queue';
import { parseChargePointKeys } from '../scripts/charge-point-keys';
import { idTagOf } from '../scripts/ocpp-fleet';
import { Fleet, parseChargerMix } from '../scripts/fleet-model';
import type { JudgedSession } from '../scripts/fleet-sessions';
import { judgingSettings, parseArgs, simulate } from '../scripts/simulate';
import {
  startTestEngine,
  waitFor,
  waitForDrained,
  type TestApi,
  type TestEngine,
} from './helpers/engine';
import { TcpProxy } from './helpers/tcp-proxy';

let testEngine: TestEngine;
let url: string;
let api: TestApi;
let queue: Queue<IngestJobData>;

beforeAll(async () => {
  testEngine = await startTestEngine();
  ({ queue, url } = testEngine);
  api = testEngine.api;
});
afterAll(() => testEngine.stop());

describe('fleet simulator', () => {
  test('when options are given, then they are parsed with units and defaults', () => {
    const options = parseArgs([
      '--meters',
      '7',
      '--vehicles',
      '5',
      '--backfill',
      '24h',
      '--mode',
      'cumulative',
      '--faulty',
      '0.1',
    ]);
    expect(options).toMatchObject({
      meters: 7,
      vehicles: 5,
      backfillMs: 86_400_000,
      mode: 'cumulative',
      faulty: 0.1,
      intervalS: 60,
    });
    expect(() => parseArgs(['--mode', 'weekly'])).toThrow(/interval or cumulative/);
  });

  test("when power classes and drift are asked for, then the mix is as given and the judging settings are the engine environment's", () => {
    const env = { EFFICIENCY_THRESHOLDS: '3.7:0.75,*:0.88', SESSION_GAP_S: '900' };
    expect(
      parseArgs(['--chargers', '2.3:0.25,11:0.5,22:0.25', '--drifting', '0.2'], env),
    ).toMatchObject({
      chargers: [
        { ratedKw: 2.3, share: 0.25 },
        { ratedKw: 11, share: 0.5 },
        { ratedKw: 22, share: 0.25 },
      ],
      drifting: 0.2,
      judging: {
        efficiencyThreshold: 0.85,
        efficiencyThresholds: '3.7:0.75,*:0.88',
        efficiencyDrift: 0.04,
        sessionGapS: 900,
      },
    });
    expect(parseArgs([], {})).toMatchObject({ chargers: [{ ratedKw: 11, share: 1 }], drifting: 0 });
    expect(() => parseArgs(['--chargers', '11kW'])).toThrow(/--chargers: not kW:share/);
    // Shares not adding up to 1 are refused, not scaled: 11:0.5 is not all wallboxes.
    expect(() => parseArgs(['--chargers', '2.3:1,11:2,22:1'])).toThrow(
      /^--chargers: the shares add up to 4, not 1/,
    );
    expect(() => parseArgs(['--chargers', '11:0.5'])).toThrow(/the shares add up to 0.5, not 1/);
    expect(parseArgs(['--chargers', '2.3:0.34,11:0.33,22:0.33']).chargers).toHaveLength(3);
    // Its numbers are written as a number setting's are.
    expect(parseArgs(['--chargers', '2.3:.2,11:.8']).chargers).toEqual([
      { ratedKw: 2.3, share: 0.2 },
      { ratedKw: 11, share: 0.8 },
    ]);
    expect(() => parseArgs(['--chargers', '11:1e0'])).toThrow(/--chargers: not kW:share/);
    // Out of range is refused, not quietly made a value in range.
    expect(() => parseArgs(['--vehicles', '0'])).toThrow(
      /--vehicles must be an integer from 1 to 100000/,
    );
    expect(() => parseArgs(['--meters', '1e9'])).toThrow(
      /--meters must be an integer from 1 to 100000/,
    );
    expect(() => parseArgs(['--faulty', '2'])).toThrow(/--faulty must be a number from 0 to 1/);
    expect(() => parseArgs(['--batch', '0'])).toThrow(/--batch must be an integer of at least 1/);
    expect(() => parseArgs(['--speed', '0'])).toThrow(/--speed must be a number of at least/);
  });

  test('when a past span is back-filled, then the performance report flags exactly the faulty chargers', async () => {
    const lines: string[] = [];
    const fleet = await simulate(
      {
        ...parseArgs([
          '--meters',
          '20',
          '--vehicles',
          '20',
          '--faulty',
          '0.25',
          '--backfill',
          '3h',
          '--quiet',
        ]),
        url,
      },
      (line) => lines.push(line),
    );
    await waitForDrained(queue, 60_000);
    const faulty = new Set(fleet.faulty().map((f) => f.vehicleId));
    expect(faulty.size).toBe(5);
    expect(printedVehicles(lines, 'alert')).toEqual([...faulty].sort());

    const from = new Date(Date.now() - 4 * 3600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    for (const vehicle of fleet.vehicles) {
      const res = await request(api.api.app)
        .get(`/v1/analytics/performance/${vehicle.id}?from=${from}&to=${to}`)
        .expect(200);
      expect(res.body.energy.alert).toBe(faulty.has(vehicle.id));
      expect(res.body.energy.efficiency).toBeCloseTo(vehicle.meter.efficiency, 2);
      expect(res.body.battery.socMax).toBeGreaterThan(res.body.battery.socMin);
    }
  });

  test('when run live for a --duration shorter than its interval, then it sends one tick and ends (it slept a whole interval)', async () => {
    const lines: string[] = [];
    await simulate(
      {
        ...parseArgs(['--meters', '2', '--vehicles', '2', '--duration', '1s', '--interval', '600']),
        url,
        quiet: true,
      },
      (line) => lines.push(line),
    );
    expect(lines.at(-1)).toMatch(/^\nCheck: curl '/);
  });

  test('when run live with --speed, then simulated time runs that much faster up to the clock, and the readings imply no more than the charger draws', async () => {
    expect(() => parseArgs(['--speed', '10'])).toThrow(/--speed above 1 needs --duration/);
    const startedAt = Date.now();
    const fleet = await simulate(
      {
        ...parseArgs([
          ...['--meters', '2', '--vehicles', '2', '--interval', '60', '--speed', '60'],
          ...['--duration', '4s', '--faulty', '0', '--prefix', 'SP-', '--quiet'],
        ]),
        url,
      },
      () => {},
    );
    await waitForDrained(queue, 60_000);
    await expectSpeedRun(testEngine, fleet, 'SP-', startedAt);
  });

  test('when the engine cannot be reached, then the simulator says where it looked', async () => {
    await expect(
      simulate({
        ...parseArgs(['--meters', '1', '--vehicles', '1', '--backfill', '1h']),
        url: 'http://127.0.0.1:39',
      }),
    ).rejects.toThrow(/^the engine at http:\/\/127\.0\.0\.1:39 did not answer \(ECONNREFUSED\)/);
  });

  test('when the engine it reached goes away for a few seconds (an API restarting), then the run waits for it and sends everything', async () => {
    const proxy = await TcpProxy.inFrontOf(url);
    const stored = async () => {
      const [row] = await testEngine.ctx
        .db('telemetry_history')
        .where('device_id', 'like', 'SR-%')
        .count({ n: '*' });
      return Number(row.n);
    };
    try {
      const run = simulate({
        ...parseArgs([
          ...['--meters', '10', '--vehicles', '10', '--backfill', '6h', '--batch', '10'],
          ...['--faulty', '0', '--prefix', 'SR-', '--quiet'],
        ]),
        url: proxy.rewrite(url).replace(/\/$/, ''),
      });
      run.catch(() => undefined); // awaited below
      // Once its readings flow, the engine is out of reach for 6 s: longer than it waited before.
      await waitFor(async () => (await stored()) > 0, 30_000, 'the first readings');
      await proxy.cut();
      await new Promise((resolve) => setTimeout(resolve, 6000));
      await proxy.restore();
      await run;
      await waitForDrained(queue, 60_000);
      // 10 meters and 10 vehicles, a reading a minute over the 6 hours (the edges by the clock).
      expect(await stored()).toBeGreaterThanOrEqual(20 * 6 * 60);
    } finally {
      await proxy.cut();
    }
  }, 90_000);
});

describe('fleet simulator as OCPP charge points (--ocpp)', () => {
  // AUTH on: the simulator registers idTags with an admin key, each charge point has its own key.
  const admin = generateKey('simulator', ['ingest', 'read', 'admin']);
  const chargePointKeys = [
    ...Array.from({ length: 20 }, (_, i) => `OC-CP-${i + 1}`),
    ...['OS-CP-1', 'OS-CP-2'],
  ].map((id) => ({ id, ...generateKey(id, ['charge-point']) }));
  let e: TestEngine;
  let keyFile: string;

  beforeAll(async () => {
    e = await startTestEngine({
      AUTH: 'on',
      API_KEYS: [admin.entry, ...chargePointKeys.map((k) => k.entry)].join(','),
    });
    keyFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'cp-keys-')), 'keys.txt');
    writeFileSync(
      keyFile,
      `# charge point keys\n${chargePointKeys.map((k) => `${k.id} ${k.key}`).join('\n')}\n`,
    );
  });
  afterAll(() => e.stop());

  test('when there are fewer meters (charge points) than vehicles or an id OCPP refuses, then it says so', () => {
    expect(() => parseArgs(['--ocpp', '--meters', '2', '--vehicles', '3'])).toThrow(
      /--meters must be at least --vehicles/,
    );
    expect(() => parseArgs(['--ocpp', '--prefix', 'a/b'])).toThrow(/charge point id a\/bCP-10/);
    expect(() => parseArgs(['--cp-key-file', 'x'])).toThrow(/is for --ocpp/);
    expect(parseArgs(['--ocpp'])).toMatchObject({ ocpp: true, cpKeyFile: null });
  });

  test('when a key file has comments and blank lines, then each line gives a charge point its key', () => {
    expect(parseChargePointKeys('# keys\nCP-1 k1\n\n  CP-2\tk2  # spare\n')).toEqual(
      new Map([
        ['CP-1', 'k1'],
        ['CP-2', 'k2'],
      ]),
    );
    expect(() => parseChargePointKeys('CP-1 k1\nCP-2\n', 'keys.txt')).toThrow(/keys.txt, line 2/);
  });

  test('when a past span is back-filled over OCPP, then the transactions alone map the vehicles and the fleet report flags exactly the faulty ones', async () => {
    const lines: string[] = [];
    const fleet = await simulate(
      {
        ...parseArgs([
          '--ocpp',
          '--meters',
          '20',
          '--vehicles',
          '20',
          '--faulty',
          '0.25',
          '--backfill',
          '3h',
          '--prefix',
          'OC-',
          '--cp-key-file',
          keyFile,
          '--key',
          admin.key,
          '--quiet',
        ]),
        url: e.url,
      },
      (line) => lines.push(line),
    );
    await waitForDrained(e.queue, 60_000);
    const faulty = fleet.faulty().map((f) => f.vehicleId);
    expect(faulty).toHaveLength(5);
    expect(printedVehicles(lines, 'alert')).toEqual([...faulty].sort());
    expect(lines.join('\n')).not.toMatch(/refused:/);

    // Every mapping period is a transaction's (start, stop]: none was made by hand.
    const { rows: periods } = await e.ctx.db.raw(
      `SELECT m.vehicle_id, m.meter_id, t.id_tag, t.id AS transaction_id
       FROM vehicle_meter_map m
       LEFT JOIN ocpp_transactions t ON t.vehicle_id = m.vehicle_id
        AND m.valid_from = t.started_at + interval '1 millisecond'
        AND m.meter_id = t.charge_point_id || ':' || t.connector_id`,
    );
    expect(periods.length).toBeGreaterThanOrEqual(20);
    for (const p of periods as { vehicle_id: string; id_tag: string; transaction_id: number }[]) {
      expect(p.transaction_id).not.toBeNull();
      expect(p.id_tag).toBe(idTagOf(p.vehicle_id).toUpperCase());
    }

    const from = new Date(Date.now() - 4 * 3600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const res = await request(e.api.api.app)
      .get(`/v1/analytics/fleet?from=${from}&to=${to}&limit=1000`)
      .set('authorization', `Bearer ${admin.key}`)
      .expect(200);
    expect(res.body.totals).toMatchObject({
      vehiclesChecked: 20,
      vehiclesFlagged: 5,
      withoutMapping: 0,
      withoutMeterData: 0,
    });
    const flagged = (res.body.vehicles as { vehicleId: string; alert: boolean }[])
      .filter((v) => v.alert)
      .map((v) => v.vehicleId);
    expect(flagged.sort()).toEqual([...faulty].sort());
    for (const line of res.body.vehicles as {
      vehicleId: string;
      efficiency: number;
      meters: { meterId: string }[];
    }[]) {
      const vehicle = fleet.vehicles.find((v) => v.id === line.vehicleId);
      expect(line.meters.every((m) => m.meterId === vehicle?.meter.id)).toBe(true);
      expect(line.efficiency).toBeCloseTo(vehicle?.meter.efficiency ?? 0, 2);
    }
    // The transactions are the sessions, flagged as the simulator judged them.
    const sessions = await fleetSessions(e, from, to, admin.key);
    expect(sessions.every((s) => s.source === 'ocpp')).toBe(true);
    expect(flagKeys(sessions)).toEqual(flagKeys(fleet.sessions.judged().map(asJson)));
  });

  test('when run live with --speed, then the transactions run on simulated time up to the clock, at no more than the charge point draws', async () => {
    const startedAt = Date.now();
    const fleet = await simulate(
      {
        ...parseArgs([
          ...['--ocpp', '--meters', '2', '--vehicles', '2', '--interval', '60', '--speed', '60'],
          ...['--duration', '4s', '--faulty', '0', '--prefix', 'OS-', '--quiet'],
          ...['--cp-key-file', keyFile, '--key', admin.key],
        ]),
        url: e.url,
      },
      () => {},
    );
    await waitForDrained(e.queue, 60_000);
    await expectSpeedRun(e, fleet, 'OS-', startedAt, admin.key);
  });
});

describe('fleet simulator over several days: power classes, faulty and drifting chargers', () => {
  let e: TestEngine;
  let fleet: Fleet;
  let lines: string[];
  let judged: JudgedSession[];
  let from: string;
  let to: string;

  beforeAll(async () => {
    e = await startTestEngine({
      ANALYTICS_CACHE_TTL_S: '0',
      ENERGY_READINGS: 'cumulative',
      EFFICIENCY_THRESHOLDS: '3.7:0.75,11:0.82,22:0.85,*:0.88',
    });
    from = new Date(Date.now() - 3 * 86_400_000 - 10 * 60_000).toISOString();
    lines = [];
    fleet = await simulate(
      {
        ...parseArgs([
          ...['--meters', '12', '--vehicles', '12', '--mode', 'cumulative', '--quiet'],
          ...['--chargers', '2.3:0.34,11:0.33,22:0.33', '--faulty', '0.25', '--drifting', '0.25'],
          ...['--backfill', '3d', '--interval', '120', '--prefix', 'MD-', '--seed', '42'],
        ]),
        url: e.url,
        // Judged by the engine's own settings, read as the engine reads them.
        judging: judgingSettings({
          EFFICIENCY_THRESHOLDS: e.ctx.config.efficiencyThresholds,
          EFFICIENCY_THRESHOLD: String(e.ctx.config.efficiencyThreshold),
          EFFICIENCY_DRIFT: String(e.ctx.config.efficiencyDrift),
          SESSION_GAP_S: String(e.ctx.config.sessionGapS),
        }),
      },
      (line) => lines.push(line),
    );
    await waitForDrained(e.queue, 120_000);
    // Build every session that can end, as the flusher does once hours close: the drift baseline
    // is the kept sessions.
    await e.flusher.flusher.sessions.buildNow(new Date());
    to = new Date(Date.now() + 60_000).toISOString();
    judged = fleet.sessions.judged();
  }, 300_000);
  afterAll(() => e.stop());

  test('then the engine finds the sessions the simulator sent, with its figures', async () => {
    const sessions = await fleetSessions(e, from, to);
    expect(sessions.length).toBeGreaterThan(100);
    const byKey = new Map(
      judged.map((s) => [`${s.vehicleId} ${new Date(s.startMs).toISOString()}`, s]),
    );
    expect(sessions.map((s) => `${s.vehicleId} ${s.start}`).sort()).toEqual(
      [...byKey.keys()].sort(),
    );
    for (const s of sessions) {
      const own = byKey.get(`${s.vehicleId} ${s.start}`);
      expect(s.end).toBe(new Date(own?.endMs ?? 0).toISOString());
      expect(s.efficiency).toBeCloseTo(own?.efficiency ?? 0, 4);
      expect(s.threshold).toBe(own?.threshold);
    }
  });

  test('then the flagged sessions are exactly the ones the simulator printed: faulty by alert, drifting by drift', async () => {
    const flagged = await fleetSessions(e, from, to, null, true);
    expect(flagKeys(flagged)).toEqual(flagKeys(judged.map(asJson)));
    const vehiclesWith = (flag: 'alert' | 'drift') =>
      [...new Set(flagged.filter((s) => s[flag] === true).map((s) => s.vehicleId))].sort();
    expect(printedVehicles(lines, 'alert')).toEqual(vehiclesWith('alert'));
    expect(printedVehicles(lines, 'drift')).toEqual(vehiclesWith('drift'));
    // What the simulator built in is what is caught, and drifting chargers stay above threshold.
    expect(vehiclesWith('alert')).toEqual(
      fleet
        .faulty()
        .map((f) => f.vehicleId)
        .sort(),
    );
    expect(vehiclesWith('drift')).toEqual(
      fleet
        .withCharger('drifting')
        .map((f) => f.vehicleId)
        .sort(),
    );
    expect(vehiclesWith('drift').length).toBeGreaterThanOrEqual(2);
    expect(flagged.filter((s) => s.drift === true).every((s) => s.alert === false)).toBe(true);
    expect(lines.join('\n')).toMatch(
      /EFFICIENCY_THRESHOLD=0.85 EFFICIENCY_THRESHOLDS=3.7:0.75,11:0.82,22:0.85,\*:0.88 EFFICIENCY_DRIFT=0.04 SESSION_GAP_S=600/,
    );
  });

  test('then healthy household sockets are not flagged, though below the single threshold', async () => {
    const sockets = fleet.withCharger('healthy').filter((v) => v.ratedKw === 2.3);
    expect(sockets.length).toBeGreaterThan(0);
    const flagged = new Set((await fleetSessions(e, from, to, null, true)).map((s) => s.vehicleId));
    for (const socket of sockets) {
      expect(flagged.has(socket.vehicleId)).toBe(false);
      const own = judged.filter((s) => s.vehicleId === socket.vehicleId);
      expect(own.length).toBeGreaterThan(0);
      for (const s of own) expect(s).toMatchObject({ threshold: 0.75, alert: false });
      expect(own.every((s) => (s.efficiency ?? 1) < e.ctx.config.efficiencyThreshold)).toBe(true);
    }
  });

  test('when the same fleet is judged under the single threshold, then its healthy sockets are listed too', () => {
    const single = new Fleet({
      meters: 12,
      vehicles: 12,
      faultyShare: 0.25,
      driftingShare: 0.25,
      chargers: parseChargerMix('2.3:0.34,11:0.33,22:0.33'),
      mode: 'cumulative',
      seed: 42,
      prefix: 'MD-',
      judging: judgingSettings({}),
      span: { fromMs: 0, toMs: 3 * 86_400_000 },
    });
    single.baseline(-120_000);
    for (let t = 0; t <= 3 * 86_400_000; t += 120_000) single.step(t, 120);
    const sockets = single.withCharger('healthy').filter((v) => v.ratedKw === 2.3);
    const alerted = new Set(
      single.sessions
        .judged()
        .filter((s) => s.alert)
        .map((s) => s.vehicleId),
    );
    expect(sockets.length).toBeGreaterThan(0);
    for (const socket of sockets) expect(alerted.has(socket.vehicleId)).toBe(true);
  });

  test("then the fleet report ranked by session and each vehicle's report carry the same flags", async () => {
    const res = await request(e.api.api.app)
      .get(`/v1/analytics/fleet?from=${from}&to=${to}&rank=session&limit=100`)
      .expect(200);
    const lines = res.body.vehicles as {
      vehicleId: string;
      worstSession: { efficiency: number; alert: boolean; drift: boolean | null };
    }[];
    expect(lines).toHaveLength(12);
    for (const line of lines) {
      const own = judged.filter((s) => s.vehicleId === line.vehicleId);
      const worst = own.reduce((a, b) => ((a.efficiency ?? 9) <= (b.efficiency ?? 9) ? a : b));
      expect(line.worstSession.efficiency).toBeCloseTo(worst.efficiency ?? 0, 4);
      // Equal-efficiency sessions (a steady charger) tie: a first one has no drift baseline (null),
      // a later one does (false); either way it is not drift.
      expect([line.worstSession.alert, line.worstSession.drift === true]).toEqual([
        worst.alert,
        worst.drift === true,
      ]);
    }
    const drifting = fleet.withCharger('drifting')[0].vehicleId;
    const report = await request(e.api.api.app)
      .get(`/v1/analytics/performance/${drifting}?from=${from}&to=${to}`)
      .expect(200);
    const own = judged.filter((s) => s.vehicleId === drifting);
    expect(report.body.sessions).toMatchObject({
      count: own.length,
      flagged: own.filter((s) => s.alert === true || s.drift === true).length,
    });
  });
});

interface SessionLine {
  vehicleId: string;
  source: string;
  start: string;
  end: string;
  efficiency: number | null;
  open: boolean;
  acConsumedKwh: number | null;
  meanAcPowerKw: number | null;
  peakAcPowerKw: number | null;
  threshold: number;
  alert: boolean | null;
  drift: boolean | null;
}

/**
 * A live run of 4 s at --speed 60 and a 60 s interval: its sessions cover about 4 simulated
 * minutes ending by the clock, the engine's peak AC power (between consecutive readings) is each
 * charger's draw, within its rating, and the simulator judged them as the engine does.
 */
async function expectSpeedRun(
  e: TestEngine,
  fleet: Fleet,
  prefix: string,
  startedAt: number,
  key: string | null = null,
): Promise<void> {
  const from = new Date(startedAt - 3600_000).toISOString();
  const to = new Date(Date.now() + 60_000).toISOString();
  const sessions = (await fleetSessions(e, from, to, key)).filter((s) =>
    s.vehicleId.startsWith(prefix),
  );
  expect(sessions).toHaveLength(2);
  const judged = fleet.sessions.judged();
  for (const s of sessions) {
    const vehicle = fleet.vehicles.find((v) => v.id === s.vehicleId);
    const ratedKw = vehicle?.meter.ratedKw ?? 0;
    // The power between consecutive readings is what the charger draws (90-97 % of its rating).
    expect(s.peakAcPowerKw).toBeGreaterThan(0.85 * ratedKw);
    expect(s.peakAcPowerKw).toBeLessThanOrEqual(ratedKw);
    expect(s.meanAcPowerKw).toBeLessThanOrEqual(ratedKw);
    // About 4 simulated minutes (the edges by the clock), none of it ahead of the clock.
    const minutes = (Date.parse(s.end) - Date.parse(s.start)) / 60_000;
    expect(minutes).toBeGreaterThanOrEqual(3);
    expect(minutes).toBeLessThanOrEqual(6);
    expect(Date.parse(s.end)).toBeLessThanOrEqual(Date.now());
    // The simulator judged the session as the engine does.
    const own = judged.find((j) => j.vehicleId === s.vehicleId);
    expect(new Date(own?.startMs ?? 0).toISOString()).toBe(s.start);
    expect(own?.acKwh).toBeCloseTo(s.acConsumedKwh ?? 0, 3);
    expect(own?.efficiency).toBeCloseTo(s.efficiency ?? 0, 4);
    expect(own?.threshold).toBe(s.threshold);
    if (s.source === 'ocpp') {
      // A transaction still running lasts until the clock, past its last MeterValues.
      expect(s.open).toBe(true);
      expect(Date.parse(s.end)).toBeGreaterThanOrEqual(own?.endMs ?? Infinity);
    } else {
      expect(new Date(own?.endMs ?? 0).toISOString()).toBe(s.end);
      expect(own?.meanAcPowerKw).toBeCloseTo(s.meanAcPowerKw ?? 0, 2);
    }
  }
}

/** The vehicles printed under the simulator's `alert` or `drift` heading, sorted. */
function printedVehicles(lines: string[], flag: 'alert' | 'drift'): string[] {
  const text = lines.join('\n').split('\n');
  const heading = text.findIndex((l) =>
    flag === 'alert'
      ? /vehicles have a session below its threshold/.test(l)
      : /flagged drift/.test(l),
  );
  const listed: string[] = [];
  for (const l of text.slice(heading + 1)) {
    const match = /^ {2}(\S+) on /.exec(l);
    if (!match) break;
    listed.push(match[1]);
  }
  return listed.sort();
}

/** Every page of GET /v1/analytics/sessions over the window. */
async function fleetSessions(
  e: TestEngine,
  from: string,
  to: string,
  key: string | null = null,
  flagged = false,
): Promise<SessionLine[]> {
  const res = await request(e.api.api.app)
    .get(
      `/v1/analytics/sessions?from=${from}&to=${to}&limit=10000${flagged ? '&flagged=true' : ''}`,
    )
    .set(key ? { authorization: `Bearer ${key}` } : {})
    .expect(200);
  expect(res.body.nextCursor).toBeNull();
  return res.body.sessions as SessionLine[];
}

const asJson = (s: JudgedSession) => ({
  vehicleId: s.vehicleId,
  start: new Date(s.startMs).toISOString(),
  alert: s.alert,
  drift: s.drift,
});

/** The flagged sessions as `vehicle start alert drift`, sorted. */
const flagKeys = (
  sessions: { vehicleId: string; start: string; alert: boolean | null; drift: boolean | null }[],
) =>
  sessions
    .filter((s) => s.alert === true || s.drift === true)
    .map((s) => `${s.vehicleId} ${s.start} alert=${String(s.alert)} drift=${String(s.drift)}`)
    .sort();

describe('fleet simulator against a rate-limited engine', () => {
  test('when its key is over the rate limit, then it waits Retry-After and sends everything', async () => {
    const key = generateKey('simulator', ['ingest', 'admin']);
    const limited = await startTestEngine({
      AUTH: 'on',
      API_KEYS: key.entry,
      RATE_LIMIT_PER_S: '5',
      RATE_LIMIT_BURST: '2',
    });
    try {
      const lines: string[] = [];
      const options = parseArgs([
        ...['--meters', '4', '--vehicles', '4', '--backfill', '1h', '--batch', '40'],
        ...['--key', key.key, '--quiet'],
      ]);
      await simulate({ ...options, url: limited.url }, (line) => lines.push(line));
      await waitForDrained(limited.queue, 60_000);
      const [row] = await limited.ctx
        .db('telemetry_history')
        .countDistinct({ devices: 'device_id' })
        .count({ readings: '*' });
      // 4 meters and 4 vehicles, a reading a minute for the hour (the edges by the clock).
      expect(Number(row.devices)).toBe(8);
      expect(Number(row.readings)).toBeGreaterThanOrEqual(8 * 60);
      const mapped = await limited.ctx.db('vehicle_meter_map').countDistinct({ n: 'vehicle_id' });
      expect(Number(mapped[0].n)).toBe(4);
    } finally {
      await limited.stop();
    }
  });

  test('when the limit asks it to wait longer than a run should, then it stops naming the limit rather than sleeping or spinning', async () => {
    const key = generateKey('simulator', ['ingest', 'admin']);
    // A request a day after a burst of 1: Retry-After is about 86,400 s.
    const limited = await startTestEngine({
      AUTH: 'on',
      API_KEYS: key.entry,
      RATE_LIMIT_PER_S: String(1 / 86_400),
      RATE_LIMIT_BURST: '1',
    });
    try {
      const options = parseArgs([
        ...['--meters', '2', '--vehicles', '2', '--backfill', '1h'],
        ...['--key', key.key, '--quiet'],
      ]);
      await expect(simulate({ ...options, url: limited.url }, () => {})).rejects.toThrow(
        /answered 429 asking to retry after \d+ s \(more than 60 s\): the key's rate limit \(RATE_LIMIT_PER_S\) is too low/,
      );
    } finally {
      await limited.stop();
    }
  });
});
