/**
 * `npm run bench [-- --quick]`: one reproducible run on this machine. Starts its own API, flusher,
 * bare HTTP server and load generator (autocannon) against a fresh benchmark database and Redis
 * prefix, measures ingest, end-to-end durability, the PostgreSQL COPY ceiling, analytics, memory
 * and OCPP charge points at scale (bench/ocpp.ts), prints a table with ratios to the ceilings, and
 * writes bench/results/latest.json. `--only ocpp` runs the OCPP phase alone (nothing written).
 */
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import { mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import knex from 'knex';
import { createDb } from '../db/create-db';
import { ensureDatabase, migrateToLatest, quoteIdent, withMaintenanceClient } from '../db/migrate';
import { loadConfig } from '../src/config';
import { createRedisKeys } from '../src/redis-keys';
import { UsageError, commandLineOrExit, parseCommandLine } from '../scripts/cli';
import { RollupStore } from '../src/stores/rollup-store';
import { benchMqtt, type MqttBenchResults } from './mqtt';
import {
  fmt,
  freePort,
  histogramDelta,
  sleep,
  startNode,
  waitForHttp,
  type Proc,
} from './bench-helpers';
import { benchOcpp, type OcppBenchPlan, type OcppBenchResults } from './ocpp';

const { quick, onlyOcpp } = commandLineOrExit(() => {
  const { values } = parseCommandLine(process.argv.slice(2), {
    usage: 'npm run bench [-- --quick] [-- --only ocpp]',
    options: {
      quick: { type: 'boolean', help: 'shorter runs, under three minutes' },
      only: { type: 'string', value: 'PHASE', help: 'run only this phase: ocpp' },
    },
  });
  if (values.only !== undefined && values.only !== 'ocpp')
    throw new UsageError('--only: the phase that runs alone is ocpp');
  return { quick: values.quick ?? false, onlyOcpp: values.only === 'ocpp' };
});
const SECONDS = quick ? 5 : 15;
const E2E_READINGS = quick ? 200_000 : 1_000_000;
const ANALYTICS_VEHICLES = quick ? 200 : 1000;
const DEVICES = 10_000;
/** The engine's QUEUE_SHARDS for this run (the processes inherit it from the environment). */
const QUEUE_SHARDS = Number(process.env.QUEUE_SHARDS ?? 1);
/** 10,000 charge points, each sending MeterValues ten times as often as the nominal 60 s. */
const OCPP: Omit<OcppBenchPlan, 'env'> = {
  chargePoints: quick ? 1000 : 10_000,
  clientProcesses: 2,
  intervalS: 6,
  trafficS: quick ? 12 : 60,
};

const baseUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/energy_bench';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `bench-${Date.now().toString(36)}`;

interface Results {
  machine: Record<string, unknown>;
  mode: 'quick' | 'full';
  httpCeiling: { requestsPerS: number; p50Ms: number; p99Ms: number };
  singleIngest: {
    requestsPerS: number;
    p50Ms: number;
    p99Ms: number;
    non2xx: number;
    ratioToCeiling: number;
  };
  batchIngest: { readingsPerS: number; requestsPerS: number; p99Ms: number; rejected503: number };
  nominalLag: {
    readingsPerS: number;
    batches: number;
    p50Ms: number | null;
    p99Ms: number | null;
  };
  endToEnd: {
    readings: number;
    seconds: number;
    readingsPerS: number;
    maxLagMs: number;
    ratioToCopy: number;
  };
  copyCeiling: { rows: number; rowsPerS: number };
  analytics: {
    vehicles: number;
    uncached: { p50Ms: number; p99Ms: number; requestsPerS: number };
    cached: { p50Ms: number; p99Ms: number; requestsPerS: number };
  };
  mqtt: MqttBenchResults & { batchRatioToHttpBatch: number; singleRatioToHttpSingle: number };
  memory: { apiPeakRssMb: number; flusherPeakRssMb: number; mqttPeakRssMb: number };
  ocpp: OcppBenchResults;
}

/** Load timestamps start three days ago, so every phase stays in the past (and fresh partitions). */
const loadBase = () => Math.floor(Date.now() / 60_000) * 60_000 - 3 * 86_400_000;

function meterJson(n: number, base: number): string {
  const device = n % DEVICES;
  const minute = Math.floor(n / DEVICES);
  return `{"meterId":"M-${device}","kwhConsumedAc":0.0167,"voltage":230,"timestamp":"${new Date(base + minute * 60_000).toISOString()}"}`;
}

function vehicleJson(n: number, base: number): string {
  const device = n % DEVICES;
  const minute = Math.floor(n / DEVICES);
  return `{"vehicleId":"V-${device}","soc":${50 + (minute % 50)},"kwhDeliveredDc":0.015,"batteryTemp":31.5,"timestamp":"${new Date(base + minute * 60_000).toISOString()}"}`;
}

/** Autocannon requests posting to the ingest endpoint, each with the body `next()` makes. */
function ingestRequests(next: () => string) {
  return [
    {
      method: 'POST' as const,
      path: '/v1/telemetry/ingest',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req: autocannon.Request) => ({ ...req, body: next() }),
    },
  ];
}

/** Single-reading requests, each a different device and minute, as a fleet sends them. */
function singleReadingRequests(startAt: number, base: number) {
  let n = startAt;
  return ingestRequests(() => meterJson(n++, base));
}

/** Batch requests of 1,000 mixed readings. */
function batchRequests(startAt: number, base: number) {
  let n = startAt;
  return ingestRequests(() => {
    const parts: string[] = [];
    for (let i = 0; i < 500; i++, n++) parts.push(meterJson(n, base), vehicleJson(n, base));
    return `[${parts.join(',')}]`;
  });
}

async function run(opts: autocannon.Options): Promise<autocannon.Result> {
  return autocannon({ ...opts });
}

/** 1. The HTTP ceiling: a bare node http server under the same single-reading requests. */
async function httpCeiling(procs: Proc[], base: number): Promise<autocannon.Result> {
  const barePort = await freePort();
  const bare = startNode('bare', 'bench/bare-server.js', [String(barePort)], {});
  procs.push(bare);
  await sleep(500);
  const ceiling = await run({
    url: `http://127.0.0.1:${barePort}`,
    connections: 64,
    duration: SECONDS,
    requests: singleReadingRequests(0, base),
  });
  await bare.stop();
  console.log(`HTTP ceiling: ${fmt(ceiling.requests.average)} req/s`);
  return ceiling;
}

async function waitUntilDrained(
  redis: Redis,
  sampleLag: () => Promise<void>,
  timeoutMs = 600_000,
): Promise<number> {
  const shards = createRedisKeys(prefix).shards(QUEUE_SHARDS);
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    await sampleLag();
    const pending = await Promise.all(
      shards.flatMap((shard) => [
        redis.get(shard.backlogReadings).then((n) => Math.max(0, Number(n ?? 0))),
        redis.llen(shard.queueKey('wait')),
        redis.llen(shard.queueKey('active')),
        redis.zcard(shard.queueKey('delayed')),
      ]),
    );
    if (pending.every((n) => n === 0)) return Date.now();
    await sleep(100);
  }
  throw new Error('backlog did not drain');
}

/** Age of the oldest reading still in the queue (waiting jobs are in arrival order). */
async function oldestQueuedAgeMs(redis: Redis): Promise<number> {
  let oldest = Infinity;
  for (const shard of createRedisKeys(prefix).shards(QUEUE_SHARDS)) {
    const ids = await redis.lrange(shard.queueKey('wait'), -1, -1);
    const active = await redis.lrange(shard.queueKey('active'), 0, 50);
    for (const id of [...ids, ...active]) {
      const data = await redis.hget(shard.queueKey(id), 'data');
      if (data) oldest = Math.min(oldest, (JSON.parse(data) as { acceptedAt: number }).acceptedAt);
    }
  }
  return oldest === Infinity ? 0 : Date.now() - oldest;
}

async function copyCeiling(
  databaseUrl: string,
  rows: number,
): Promise<{ rows: number; rowsPerS: number }> {
  const db = knex({ client: 'pg', connection: databaseUrl });
  await db.raw('DROP TABLE IF EXISTS bench_copy');
  await db.raw(
    `CREATE TABLE bench_copy (LIKE telemetry_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
  );
  await db.raw('ALTER TABLE bench_copy ADD PRIMARY KEY (device_type, device_id, ts)');
  const file = path.join(os.tmpdir(), `bench-copy-${process.pid}.csv`);
  const base = loadBase();
  const lines: string[] = [];
  const received = new Date().toISOString();
  for (let n = 0; n < rows; n += 2) {
    const ts = new Date(base + Math.floor(n / DEVICES) * 60_000).toISOString();
    lines.push(`meter,M-${n % DEVICES},${ts},0.0167,230,,,,${received}`);
    lines.push(`vehicle,V-${n % DEVICES},${ts},,,55,0.015,31.5,${received}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
  const started = process.hrtime.bigint();
  execFileSync('psql', [databaseUrl, '-q', '-c', `\\copy bench_copy FROM '${file}' CSV`]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  unlinkSync(file);
  await db.raw('DROP TABLE bench_copy');
  await db.destroy();
  return { rows: lines.length, rowsPerS: lines.length / seconds };
}

/** A day of time-ordered readings for `vehicles` vehicles and their meters, loaded with SQL. */
async function loadAnalyticsData(databaseUrl: string, vehicles: number): Promise<number> {
  const db = knex({ client: 'pg', connection: databaseUrl });
  const end = Math.floor(Date.now() / 60_000) * 60_000;
  const start = new Date(end - 1440 * 60_000).toISOString();
  await db.raw(`SELECT ensure_history_partitions((?::timestamptz)::date, current_date)`, [start]);
  for (const [type, columns, values] of [
    ['vehicle', 'soc, kwh_delivered_dc, battery_temp', `50 + (m % 50), 0.015, 30 + (d % 10)`],
    ['meter', 'kwh_consumed_ac, voltage', `0.0167, 230`],
  ]) {
    const idPrefix = type === 'vehicle' ? 'AV-' : 'AM-';
    await db.raw(
      `INSERT INTO telemetry_history (device_type, device_id, ts, ${columns}, received_at)
       SELECT ?, ? || d, ?::timestamptz + m * interval '1 minute', ${values}, now()
       FROM generate_series(0, 1439) m, generate_series(1, ?) d`,
      [type, idPrefix, start, vehicles],
    );
  }
  await new RollupStore(db).rebuild(new Date(start), new Date());
  await db.raw(
    `INSERT INTO vehicle_meter_map (vehicle_id, meter_id, valid_from)
     SELECT 'AV-' || d, 'AM-' || d, ?::timestamptz - interval '1 day' FROM generate_series(1, ?) d`,
    [start, vehicles],
  );
  await db.raw('ANALYZE');
  await db.destroy();
  return end;
}

async function main(): Promise<void> {
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    date: new Date().toISOString(),
  };
  console.log(
    `benchmark (${quick ? 'quick' : 'full'}) on ${machine.cpus} cores, ${machine.cpuModel}`,
  );

  // Fresh database and prefix.
  const name = new URL(baseUrl).pathname.slice(1);
  await withMaintenanceClient(baseUrl, (c) =>
    c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
  );
  await ensureDatabase(baseUrl);
  const config = loadConfig({ DATABASE_URL: baseUrl, REDIS_URL: redisUrl, REDIS_PREFIX: prefix });
  const migrator = createDb(config);
  await migrateToLatest(migrator);
  await migrator.destroy();
  const redis = new Redis(redisUrl);
  const procs: Proc[] = [];

  try {
    const base = loadBase();
    const ceiling = onlyOcpp ? null : await httpCeiling(procs, base);

    // 2. The engine.
    const apiPort = await freePort();
    const flusherPort = await freePort();
    const env = {
      DATABASE_URL: baseUrl,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      PORT: String(apiPort),
      FLUSHER_PORT: String(flusherPort),
      LOG_LEVEL: 'warn',
      AUTH: 'off',
      ANALYTICS_CACHE_TTL_S: '30',
    };
    const api = startNode('api', 'src/server.js', [], env);
    const flusher = startNode('flusher', 'workers/flusher.js', [], env);
    procs.push(api, flusher);
    await waitForHttp(`http://127.0.0.1:${apiPort}/health/ready`);
    await waitForHttp(`http://127.0.0.1:${flusherPort}/health/ready`);
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const ocppPhase = async () => {
      console.log(
        `OCPP: ${fmt(OCPP.chargePoints)} charge points, MeterValues every ${OCPP.intervalS} s for ${OCPP.trafficS} s`,
      );
      const figures = await benchOcpp({ ...OCPP, env });
      console.log(
        `OCPP: ${fmt(figures.traffic.answeredPerS)} MeterValues/s answered, p99 ${fmt(figures.traffic.p99Ms, 1)} ms`,
      );
      return figures;
    };
    if (!ceiling) {
      const figures = await ocppPhase();
      printRows(ocppRows(figures));
      console.log(`\nnote: ${figures.note}`);
      console.log(JSON.stringify(figures, null, 2));
      return;
    }

    const single = await run({
      url: apiUrl,
      connections: 64,
      duration: SECONDS,
      requests: singleReadingRequests(0, base),
    });
    console.log(
      `single-reading ingest: ${fmt(single.requests.average)} req/s, p99 ${single.latency.p99} ms`,
    );
    await waitUntilDrained(redis, async () => undefined);

    const batch = await run({
      url: apiUrl,
      connections: 8,
      duration: SECONDS,
      requests: batchRequests(3_000_000, base),
    });
    const batch2xx = batch.requests.total - batch.non2xx;
    console.log(`batch ingest: ${fmt((batch2xx * 1000) / batch.duration)} readings/s`);
    await waitUntilDrained(redis, async () => undefined);

    // 2b. The same ingest through MQTT (its own process and broker, the same queue and flusher).
    const mqtt = await benchMqtt({
      env,
      quick,
      seconds: SECONDS,
      meterJson: (n) => meterJson(n, base),
      mixedBatch: (n, size) => {
        const parts: string[] = [];
        for (let i = 0; i < size / 2; i++)
          parts.push(meterJson(n + i, base), vehicleJson(n + i, base));
        return `[${parts.join(',')}]`;
      },
      waitUntilDrained: () => waitUntilDrained(redis, async () => undefined),
    });
    console.log(
      `MQTT: ${fmt(mqtt.batch.readingsPerS)} readings/s in 100-reading messages, ${fmt(mqtt.single.readingsPerS)} in single-reading messages; at ${rateLabel(mqtt.nominal.readingsPerS)} stored-PUBACK p99 ${fmt(mqtt.nominal.storedAckP99Ms)} ms`,
    );

    // 3. End to end: E2E_READINGS as fast as accepted, until all are durable in PostgreSQL.
    let maxLagMs = 0;
    const sampleLag = async () => {
      maxLagMs = Math.max(maxLagMs, await oldestQueuedAgeMs(redis));
    };
    const e2eStart = Date.now();
    const lagTimer = setInterval(() => void sampleLag(), 250);
    const e2eLoad = await run({
      url: apiUrl,
      connections: 8,
      amount: E2E_READINGS / 1000,
      requests: batchRequests(6_000_000, base),
    });
    const drainedAt = await waitUntilDrained(redis, sampleLag);
    clearInterval(lagTimer);
    const e2eAccepted = (e2eLoad.requests.total - e2eLoad.non2xx) * 1000;
    const e2eSeconds = (drainedAt - e2eStart) / 1000;
    console.log(
      `end-to-end: ${fmt(e2eAccepted / e2eSeconds)} readings/s durable, max lag ${fmt(maxLagMs)} ms`,
    );

    // 3b. Lag at the nominal rate of a 10,000-device fleet: 166 single readings/s.
    const flusherMetrics = () =>
      fetch(`http://127.0.0.1:${flusherPort}/metrics`).then((r) => r.text());
    const lagBefore = await flusherMetrics();
    const paced = await run({
      url: apiUrl,
      connections: 8,
      duration: SECONDS,
      overallRate: 166,
      requests: singleReadingRequests(9_000_000, base),
    });
    await waitUntilDrained(redis, async () => undefined);
    await sleep(200);
    const lag = histogramDelta(
      lagBefore,
      await flusherMetrics(),
      'energy_ingest_to_durable_seconds',
    );
    console.log(
      `nominal lag: p50 ${fmt(lag.p50Ms)} ms, p99 ${fmt(lag.p99Ms)} ms over ${lag.count} batches`,
    );

    // 4. PostgreSQL COPY ceiling on the same rows.
    const copy = await copyCeiling(baseUrl, E2E_READINGS);
    console.log(`COPY ceiling: ${fmt(copy.rowsPerS)} rows/s`);

    // 5. Analytics: a day of time-ordered readings per vehicle.
    const end = await loadAnalyticsData(baseUrl, ANALYTICS_VEHICLES);
    let k = 0;
    const uncachedRequests = [
      {
        method: 'GET' as const,
        setupRequest: (req: autocannon.Request) => {
          const vehicle = 1 + (k % ANALYTICS_VEHICLES);
          const to = new Date(end - (k++ % 60_000)).toISOString(); // a different window each time
          return {
            ...req,
            path: `/v1/analytics/performance/AV-${vehicle}?hours=24&to=${encodeURIComponent(to)}`,
          };
        },
      },
    ];
    // Warm-up (connections, JIT, buffer cache), then the measured run.
    await run({
      url: apiUrl,
      connections: 10,
      duration: Math.ceil(SECONDS / 2),
      requests: uncachedRequests,
    });
    const uncached = await run({
      url: apiUrl,
      connections: 10,
      duration: SECONDS,
      requests: uncachedRequests,
    });
    const fixedTo = encodeURIComponent(new Date(end).toISOString());
    let j = 0;
    const cached = await run({
      url: apiUrl,
      connections: 10,
      duration: SECONDS,
      requests: [
        {
          method: 'GET',
          setupRequest: (req: autocannon.Request) => ({
            ...req,
            path: `/v1/analytics/performance/AV-${1 + (j++ % 50)}?hours=24&to=${fixedTo}`,
          }),
        },
      ],
    });
    console.log(
      `analytics: uncached p99 ${uncached.latency.p99} ms, cached p99 ${cached.latency.p99} ms`,
    );

    const memory = {
      apiPeakRssMb: api.peakRssMb(),
      flusherPeakRssMb: flusher.peakRssMb(),
      mqttPeakRssMb: mqtt.peakRssMb,
    };
    const httpBatchReadingsPerS = (batch2xx * 1000) / batch.duration;
    // 7. OCPP charge points, on an API process of their own (measured from its start).
    const ocpp = await ocppPhase();
    const results: Results = {
      machine,
      mode: quick ? 'quick' : 'full',
      httpCeiling: {
        requestsPerS: ceiling.requests.average,
        p50Ms: ceiling.latency.p50,
        p99Ms: ceiling.latency.p99,
      },
      singleIngest: {
        requestsPerS: single.requests.average,
        p50Ms: single.latency.p50,
        p99Ms: single.latency.p99,
        non2xx: single.non2xx,
        ratioToCeiling: single.requests.average / ceiling.requests.average,
      },
      batchIngest: {
        readingsPerS: httpBatchReadingsPerS,
        requestsPerS: batch.requests.average,
        p99Ms: batch.latency.p99,
        rejected503: batch.non2xx,
      },
      endToEnd: {
        readings: e2eAccepted,
        seconds: e2eSeconds,
        readingsPerS: e2eAccepted / e2eSeconds,
        maxLagMs,
        ratioToCopy: e2eAccepted / e2eSeconds / copy.rowsPerS,
      },
      nominalLag: {
        readingsPerS: (paced.requests.total - paced.non2xx) / paced.duration,
        batches: lag.count,
        p50Ms: lag.p50Ms,
        p99Ms: lag.p99Ms,
      },
      mqtt: {
        ...mqtt,
        batchRatioToHttpBatch: mqtt.batch.readingsPerS / httpBatchReadingsPerS,
        singleRatioToHttpSingle: mqtt.single.readingsPerS / single.requests.average,
      },
      copyCeiling: copy,
      analytics: {
        vehicles: ANALYTICS_VEHICLES,
        uncached: {
          p50Ms: uncached.latency.p50,
          p99Ms: uncached.latency.p99,
          requestsPerS: uncached.requests.average,
        },
        cached: {
          p50Ms: cached.latency.p50,
          p99Ms: cached.latency.p99,
          requestsPerS: cached.requests.average,
        },
      },
      memory,
      ocpp,
    };
    printTable(results);
    console.log(`\nnote (OCPP rows): ${ocpp.note}`);
    const dir = path.join(__dirname, '..', '..', 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
    console.log(`\nwritten: bench/results/latest.json`);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    const keys = await redis.keys(`*${prefix}*`);
    for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
    redis.disconnect();
  }
}

const rateLabel = (readingsPerS: number) => `${fmt(readingsPerS)} readings/s`;

function printTable(r: Results): void {
  const rows: [string, string, string][] = [
    [
      'HTTP ceiling (bare node http, 64 conns)',
      `${fmt(r.httpCeiling.requestsPerS)} req/s, p99 ${r.httpCeiling.p99Ms} ms`,
      '1.00',
    ],
    [
      'single-reading ingest (64 conns)',
      `${fmt(r.singleIngest.requestsPerS)} req/s, p50 ${r.singleIngest.p50Ms} ms, p99 ${r.singleIngest.p99Ms} ms`,
      `${fmt(r.singleIngest.ratioToCeiling, 2)} of HTTP ceiling`,
    ],
    [
      'batch ingest (1,000 readings/request, 8 conns)',
      `${fmt(r.batchIngest.readingsPerS)} readings/s, p99 ${r.batchIngest.p99Ms} ms`,
      `${fmt(r.batchIngest.rejected503)} 503s`,
    ],
    [
      'MQTT batch (100 readings/message, QoS 1, PUBACK once stored)',
      `${fmt(r.mqtt.batch.readingsPerS)} readings/s (${fmt(r.mqtt.batch.messages)} messages)`,
      `${fmt(r.mqtt.batchRatioToHttpBatch, 2)} of HTTP batch`,
    ],
    [
      'MQTT single-reading messages (QoS 1, PUBACK once stored)',
      `${fmt(r.mqtt.single.readingsPerS)} readings/s (${fmt(r.mqtt.single.messages)} messages)`,
      `${fmt(r.mqtt.singleRatioToHttpSingle, 2)} of HTTP single`,
    ],
    [
      `MQTT at ${rateLabel(r.mqtt.nominal.readingsPerS)}: publish -> broker PUBACK; receive -> stored PUBACK`,
      `p50 ${fmt(r.mqtt.nominal.brokerPubackP50Ms, 1)} ms, p99 ${fmt(r.mqtt.nominal.brokerPubackP99Ms, 1)} ms; p50 ${fmt(r.mqtt.nominal.storedAckP50Ms, 1)} ms, p99 ${fmt(r.mqtt.nominal.storedAckP99Ms, 1)} ms`,
      '',
    ],
    [
      `end-to-end (${fmt(r.endToEnd.readings)} readings durable)`,
      `${fmt(r.endToEnd.readingsPerS)} readings/s, max lag ${fmt(r.endToEnd.maxLagMs)} ms`,
      `${fmt(r.endToEnd.ratioToCopy, 2)} of COPY ceiling`,
    ],
    [
      `ingest-to-durable lag at ${fmt(r.nominalLag.readingsPerS)} readings/s`,
      `p50 ${fmt(r.nominalLag.p50Ms)} ms, p99 ${fmt(r.nominalLag.p99Ms)} ms (${fmt(r.nominalLag.batches)} group-committed batches)`,
      '',
    ],
    ['PostgreSQL COPY ceiling (same rows)', `${fmt(r.copyCeiling.rowsPerS)} rows/s`, '1.00'],
    [
      `analytics uncached (${r.analytics.vehicles} vehicles x 1,440/day, 10 conns)`,
      `p50 ${r.analytics.uncached.p50Ms} ms, p99 ${r.analytics.uncached.p99Ms} ms, ${fmt(r.analytics.uncached.requestsPerS)} req/s`,
      '',
    ],
    [
      'analytics cached',
      `p50 ${r.analytics.cached.p50Ms} ms, p99 ${r.analytics.cached.p99Ms} ms, ${fmt(r.analytics.cached.requestsPerS)} req/s`,
      '',
    ],
    [
      'peak RSS',
      `API ${fmt(r.memory.apiPeakRssMb)} MB, flusher ${fmt(r.memory.flusherPeakRssMb)} MB, MQTT ${fmt(r.memory.mqttPeakRssMb)} MB`,
      '',
    ],
    ...ocppRows(r.ocpp),
  ];
  printRows(rows);
}

function ocppRows(o: OcppBenchResults): [string, string, string][] {
  const met = (ok: boolean) => (ok ? 'met' : 'not met');
  const loaded = o.memory.loadedKbPerConnection;
  const idle = o.memory.idleKbPerConnection;
  return [
    [
      `OCPP charge points (${fmt(o.chargePointsPlanned)}, in ${o.clientProcesses} client processes)`,
      `${fmt(o.connectionsHeld)} connections held; all connected in ${fmt(o.connect.seconds, 1)} s`,
      '',
    ],
    [
      `OCPP MeterValues, each every ${o.traffic.intervalS} s (${fmt(o.traffic.seconds)} s)`,
      `${fmt(o.traffic.answeredPerS)} answered/s, p50 ${fmt(o.traffic.p50Ms, 1)} ms, p99 ${fmt(o.traffic.p99Ms, 1)} ms CALL to .conf at the clients (in the API: p99 ${o.traffic.server.atLeast ? '>= ' : ''}${fmt(o.traffic.server.p99Ms, 1)} ms); ${fmt(o.traffic.callErrors + o.traffic.failed)} unanswered; API CPU ${fmt(o.traffic.apiCpuMsPerMessage, 2)} ms/message, ${fmt(o.traffic.apiCores, 2)} cores (clients ${fmt(o.traffic.clientCores, 2)})`,
      `goal p99 <= ${o.goals.p99Ms} ms: ${met((o.traffic.p99Ms ?? Infinity) <= o.goals.p99Ms)}`,
    ],
    [
      'OCPP API memory per connection (after GC)',
      `RSS ${fmt(loaded.rss, 1)} KB, heap ${fmt(loaded.heap, 1)} KB after traffic (idle: ${fmt(idle.rss, 1)} / ${fmt(idle.heap, 1)} KB)`,
      `goal <= ${o.goals.kbPerConnection} KB: ${met(loaded.rss <= o.goals.kbPerConnection)}`,
    ],
  ];
}

function printRows(rows: [string, string, string][]): void {
  console.log('\n| figure | measured | ratio |\n|---|---|---|');
  for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
