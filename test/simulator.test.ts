import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import type { Queue } from 'bullmq';
import { generateKey } from '../src/auth/api-keys';
import type { IngestJobData } from '../src/queue/ingest-queue';
import { parseChargePointKeys } from '../scripts/charge-point-keys';
import { idTagOf } from '../scripts/ocpp-fleet';
import { parseArgs, simulate } from '../scripts/simulate';
import { startTestEngine, waitForDrained, type TestApi, type TestEngine } from './helpers/engine';

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
      '5',
      '--vehicles',
      '7',
      '--backfill',
      '24h',
      '--mode',
      'cumulative',
      '--faulty',
      '0.1',
    ]);
    expect(options).toMatchObject({
      meters: 5,
      vehicles: 7,
      backfillMs: 86_400_000,
      mode: 'cumulative',
      faulty: 0.1,
      intervalS: 60,
    });
    expect(() => parseArgs(['--mode', 'weekly'])).toThrow(/interval or cumulative/);
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
    expect(lines.join('\n')).toMatch(/5 of 20 vehicles charge from a faulty charger/);

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
});

describe('fleet simulator as OCPP charge points (--ocpp)', () => {
  // AUTH on: the simulator registers idTags with an admin key, each charge point has its own key.
  const admin = generateKey('simulator', ['ingest', 'read', 'admin']);
  const chargePointKeys = Array.from({ length: 20 }, (_, i) => ({
    id: `OC-CP-${i + 1}`,
    ...generateKey(`OC-CP-${i + 1}`, ['charge-point']),
  }));
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

  test('when --ocpp has fewer charge points than vehicles or an id OCPP refuses, then it says so', () => {
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
    expect(lines.join('\n')).toMatch(/5 of 20 vehicles charge from a faulty charger/);
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
  });
});
