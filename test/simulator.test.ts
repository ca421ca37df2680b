import request from 'supertest';
import type { Queue } from 'bullmq';
import type { IngestJobData } from '../src/queue/ingest-queue';
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
