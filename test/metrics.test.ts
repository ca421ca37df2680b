import request from 'supertest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type { IngestJobData } from '../src/queue/ingest-queue';
import {
  startTestEngine,
  waitForDrained,
  type TestApi,
  type TestEngine,
  type TestFlusher,
} from './helpers/engine';
import type { TestContext } from './helpers/test-env';

let testEngine: TestEngine;
let ctx: TestContext;
let api: TestApi;
let flusher: TestFlusher;
let queue: Queue<IngestJobData>;

beforeAll(async () => {
  testEngine = await startTestEngine();
  ({ ctx, flusher, queue } = testEngine);
  api = testEngine.api;
});
afterAll(() => testEngine.stop());

/** The value of the sample `name` whose labels include `labels` (label order does not matter). */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return NaN;
}

/** `promtool check metrics` where the machine has it (CI installs Debian's prometheus package). */
function promtoolCheck(text: string): string | null {
  const promtool = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
  if (!promtool) {
    // CI installs it (.ci/run); a developer without it still gets every other check.
    if (process.env.CI) throw new Error('promtool is missing: install Debian package prometheus');
    return null;
  }
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'metrics-')), 'metrics.txt');
  writeFileSync(file, text);
  return execFileSync('sh', ['-c', `${promtool} check metrics < ${file} 2>&1 || true`]).toString();
}

describe('Prometheus metrics', () => {
  test('when readings are ingested and flushed, then both processes export the counters that moved', async () => {
    await request(api.api.app)
      .post('/v1/telemetry/ingest')
      .set('Content-Type', 'application/json')
      .send([
        { meterId: 'M-1', kwhConsumedAc: 1, voltage: 230, timestamp: '2024-03-20T10:00:00Z' },
        {
          vehicleId: 'V-1',
          soc: 50,
          kwhDeliveredDc: 1,
          batteryTemp: 30,
          timestamp: '2024-03-20T10:00:00Z',
        },
        {
          vehicleId: 'V-1',
          soc: 500,
          kwhDeliveredDc: 1,
          batteryTemp: 30,
          timestamp: '2024-03-20T10:01:00Z',
        },
      ])
      .expect(207);
    await waitForDrained(queue);
    await request(api.api.app).get('/v1/vehicles/V-1/status').expect(200);

    const apiText = (await request(api.api.app).get('/metrics').expect(200)).text;
    expect(
      value(apiText, 'energy_ingest_readings_accepted_total', { type: 'meter', process: 'api' }),
    ).toBe(1);
    expect(value(apiText, 'energy_ingest_readings_accepted_total', { type: 'vehicle' })).toBe(1);
    expect(
      value(apiText, 'energy_ingest_readings_rejected_total', { reason: 'invalid_reading' }),
    ).toBe(1);
    expect(
      value(apiText, 'energy_http_request_duration_seconds_count', {
        route: '/v1/vehicles/:vehicleId/status',
        method: 'GET',
        status_code: '200',
      }),
    ).toBe(1);
    expect(value(apiText, 'energy_queue_readings_waiting')).toBe(0);
    expect(
      value(apiText, 'energy_db_pool_connections', { state: 'in_use' }),
    ).toBeGreaterThanOrEqual(0);
    expect(apiText).toMatch(/process_resident_memory_bytes/);
    expect(apiText).not.toMatch(/V-1|M-1/); // no device ids as labels

    const flusherText = (await request(flusher.flusher.healthApp).get('/metrics').expect(200)).text;
    expect(value(flusherText, 'energy_flush_readings_written_total', { process: 'flusher' })).toBe(
      2,
    );
    expect(value(flusherText, 'energy_ingest_to_durable_seconds_count')).toBe(1);
    expect(value(flusherText, 'energy_oldest_unflushed_reading_age_seconds')).toBe(0);

    for (const text of [apiText, flusherText]) {
      const problems = promtoolCheck(text);
      if (problems !== null) expect(problems.trim()).toBe('');
    }
  });

  test('when a 503 is answered for a full backlog, then it is counted by cause', async () => {
    await ctx.redis.set(
      `{${ctx.config.redisPrefix}}:ingest:backlog-readings`,
      String(ctx.config.maxBacklogReadings),
    );
    await api.api.admission.refresh();
    await request(api.api.app)
      .post('/v1/telemetry/ingest')
      .set('Content-Type', 'application/json')
      .send({ meterId: 'M-2', kwhConsumedAc: 1, voltage: 230, timestamp: '2024-03-20T10:00:00Z' })
      .expect(503);
    await ctx.redis.set(`{${ctx.config.redisPrefix}}:ingest:backlog-readings`, '0');
    await api.api.admission.refresh();
    const text = (await request(api.api.app).get('/metrics').expect(200)).text;
    expect(value(text, 'energy_ingest_unavailable_total', { cause: 'backlog_full' })).toBe(1);
    // Beside the limit it was refused at, which the backlog alert compares the backlog with:
    // from the flusher too, so the alert holds when only the flusher is scraped.
    const flushers = (await request(flusher.flusher.healthApp).get('/metrics').expect(200)).text;
    for (const exported of [text, flushers]) {
      expect(value(exported, 'energy_ingest_backlog_limit_readings')).toBe(
        ctx.config.maxBacklogReadings,
      );
    }
  });

  test('when a request holds more readings than MAX_BATCH_READINGS, as a JSON array or as NDJSON, then every one counts as rejected', async () => {
    const rejected = async () =>
      value(
        (await request(api.api.app).get('/metrics').expect(200)).text,
        'energy_ingest_readings_rejected_total',
        { reason: 'too_many_readings' },
      ) || 0;
    const count = ctx.config.maxBatchReadings + 1;
    const reading = { meterId: 'M-3', kwhConsumedAc: 1, voltage: 230 };
    const before = await rejected();
    const post = (type: string, body: string) =>
      request(api.api.app).post('/v1/telemetry/ingest').set('Content-Type', type).send(body);
    await post('application/json', JSON.stringify(Array(count).fill(reading))).expect(413);
    // NDJSON lines are counted before any is parsed, on the way to the service.
    await post('application/x-ndjson', `${JSON.stringify(reading)}\n`.repeat(count)).expect(413);
    expect(await rejected()).toBe(before + 2 * count);
  });

  test('when each report is asked twice, then the cache counts a miss and a hit for each report', async () => {
    const window = 'from=2024-03-20T00:00:00Z&to=2024-03-21T00:00:00Z';
    const paths = [
      `/v1/analytics/performance/V-1?${window}`,
      `/v1/analytics/fleet?${window}`,
      `/v1/analytics/sessions?${window}`,
      `/v1/vehicles/V-1/sessions?${window}`,
    ];
    for (const path of [...paths, ...paths]) await request(api.api.app).get(path).expect(200);
    const text = (await request(api.api.app).get('/metrics').expect(200)).text;
    for (const report of ['performance', 'fleet', 'sessions']) {
      const lookups = (result: string) =>
        value(text, 'energy_analytics_cache_total', { report, result });
      expect({ report, hits: lookups('hit') > 0, misses: lookups('miss') > 0 }).toEqual({
        report,
        hits: true,
        misses: true,
      });
    }
  });
});
