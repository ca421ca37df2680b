/**
 * `npm run bench [-- --quick]`: one reproducible run on this machine. Starts its own API, flusher
 * and ceiling servers (bench/express-ceiling.ts, bench/bare-server.ts) against a fresh benchmark
 * database and Redis prefix, and measures each figure beside the ceiling it is held against, in
 * the same run: throughput with autocannon (closed loops at saturation), latency with the open-loop
 * generator at a fixed rate (bench/open-loop.ts). Then MQTT (bench/mqtt.ts) and OCPP charge points
 * at scale (bench/ocpp.ts). Prints each figure, its ceiling, the ratio, the target and whether it
 * is met, and writes bench/results/latest.json. `--only ocpp` runs the OCPP phase alone.
 */
import autocannon from 'autocannon';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import knex, { type Knex } from 'knex';
import { createRedisKeys } from '../src/redis-keys';
import { UsageError, commandLineOrExit, parseCommandLine } from '../scripts/cli';
import { RollupStore } from '../src/stores/rollup-store';
import {
  INGEST_PATH,
  JSON_HEADERS,
  backfillJson,
  batchRequests,
  copyCeiling,
  flushRate,
  ingestRequests,
  waitUntilDrained,
  loadBase,
  meterJson,
  vehicleJson,
  type CopyResult,
} from './batches';
import { benchMqtt, type MqttBenchResults } from './mqtt';
import {
  BENCH_DATABASE_URL,
  BENCH_REDIS_URL,
  counterTotal,
  fmt,
  engineEnv,
  freePort,
  freshDatabase,
  histogramDelta,
  measureCores,
  sleep,
  startNode,
  waitForHttp,
  type CpuParties,
  type Proc,
} from './bench-helpers';
import { openLoop, type OpenLoopRequest, type OpenLoopResult } from './open-loop';
import { benchOcpp, type OcppBenchPlan, type OcppBenchResults } from './ocpp';

const { quick, onlyOcpp } = commandLineOrExit(() => {
  const { values } = parseCommandLine(process.argv.slice(2), {
    usage: 'npm run bench [-- --quick] [-- --only ocpp]',
    options: {
      quick: { type: 'boolean', help: 'shorter runs' },
      only: { type: 'string', value: 'PHASE', help: 'run only this phase: ocpp' },
    },
  });
  if (values.only !== undefined && values.only !== 'ocpp')
    throw new UsageError('--only: the phase that runs alone is ocpp');
  return { quick: values.quick ?? false, onlyOcpp: values.only === 'ocpp' };
});
const SECONDS = quick ? 5 : 15;
/**
 * The throughput phases alternate ceiling and engine in this many rounds, after a warm-up of each:
 * on these shared VMs throughput drifts by a third within a minute, and one run of each, one after
 * the other, read that drift as a difference (single-reading ratios of 0.54 and 0.75-0.98 on one VM).
 */
const ROUNDS = 3;
/** The backlog the API accepts with the flusher stopped (below MAX_BACKLOG_READINGS). */
const BACKLOG_READINGS = quick ? 200_000 : 500_000;
/** 1,000-reading bodies of the backfill phase. */
const BACKFILL_REQUESTS = quick ? 50 : 150;
const ANALYTICS_VEHICLES = quick ? 200 : 1000;
/** The engine's QUEUE_SHARDS for this run (the processes inherit it from the environment). */
const QUEUE_SHARDS = Number(process.env.QUEUE_SHARDS ?? 1);
/** 10,000 charge points, each sending MeterValues ten times as often as the nominal 60 s. */
const OCPP: Omit<OcppBenchPlan, 'env'> = {
  chargePoints: quick ? 1000 : 10_000,
  clientProcesses: 2,
  intervalS: 6,
  trafficS: quick ? 12 : 60,
};
/** The issue-18 targets, each against a ceiling measured in the same run. */
const TARGETS = {
  singleRatio: 0.8,
  singleRatePerS: 1000,
  singleP95Ms: 10,
  p99TimesCeiling: 2,
  batchRatio: 0.35,
  flushRatio: 0.35,
  uncachedRatePerS: 100,
  uncachedP95Ms: 10,
  cachedRatePerS: 500,
  cachedP95Ms: 3,
  floorRatePerS: 500,
  nominalReadingsPerS: 166,
  apiPeakRssMb: 150,
};

const baseUrl = BENCH_DATABASE_URL;
const redisUrl = BENCH_REDIS_URL;
const prefix = `bench-${Date.now().toString(36)}`;
const shards = createRedisKeys(prefix).shards(QUEUE_SHARDS);

/** One printed row: a figure beside its ceiling of the same run, and the target it is held to. */
interface Row {
  figure: string;
  measured: string;
  ceiling: string;
  /** figure / ceiling (throughput), or p99 / the ceiling's p99 (latency). */
  ratio: number | null;
  target: string;
  met: boolean | null;
}

type Latency = Pick<
  OpenLoopResult,
  'ratePerS' | 'sent' | 'errors' | 'achievedPerS' | 'p50Ms' | 'p95Ms' | 'p99Ms' | 'maxMs'
> & {
  /** Cores each process used during the phase (see measureCores), where they were measured. */
  cores?: Record<string, number | null>;
};

/** One round of a throughput phase: the ceiling's figure and the engine's, measured back to back. */
interface RoundRatio {
  ceiling: number;
  engine: number;
}

interface Results {
  machine: Record<string, unknown>;
  mode: 'quick' | 'full';
  rows: Row[];
  single: { expressPerS: number; apiPerS: number; apiNon2xx: number; rounds: RoundRatio[] };
  singleLatency: { express: Latency; api: Latency; apiAlone: Latency; bareFloor: Latency };
  batch: {
    bareReadingsPerS: number;
    apiReadingsPerS: number;
    api503: number;
    rounds: RoundRatio[];
    /** A gateway's backfill (50 devices x 20 minutes a body), API alone. */
    backfillReadingsPerS: number;
  };
  flush: { rows: number; rowsPerS: number; rollupsDoneS: number; copy: CopyResult };
  nominalLag: { readingsPerS: number; batches: number; p50Ms: number | null; p99Ms: number | null };
  analytics: {
    vehicles: number;
    uncached: { express: Latency; api: Latency };
    /** `misses`: reports computed during the cached phase (0 when it measured hits alone). */
    cached: { express: Latency; api: Latency; misses: number };
  };
  mqtt: MqttBenchResults & { batchRatioToHttpBatch: number; singleRatioToHttpSingle: number };
  memory: {
    apiPeakRssMb: number;
    /** The API's peak so far at the end of each phase: the phase that raised it to its peak. */
    apiPeakRssMbAfter: Record<string, number>;
    flusherPeakRssMb: number;
    mqttPeakRssMb: number;
  };
  ocpp: OcppBenchResults;
}

/** Single-reading requests, each a different device and minute, as a fleet sends them. */
function singleReadingRequests(startAt: number, base: number) {
  let n = startAt;
  return ingestRequests(() => meterJson(n++, base));
}

/** Open-loop single-reading requests from reading number `startAt` on. */
const singleReadingAt =
  (startAt: number, base: number) =>
  (i: number): OpenLoopRequest => ({
    method: 'POST',
    path: INGEST_PATH,
    headers: JSON_HEADERS,
    body: meterJson(startAt + i, base),
  });

const run = (opts: autocannon.Options): Promise<autocannon.Result> => autocannon({ ...opts });

/**
 * A run of `amount` requests, timed to its last response: autocannon notices the end only on its
 * next one-second tick, so its own duration rounds up to whole seconds (4.1 s of work read as 5).
 */
async function runAmount(
  opts: autocannon.Options,
): Promise<{ result: autocannon.Result; seconds: number }> {
  const start = process.hrtime.bigint();
  let last = start;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({ ...opts }, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on('response', () => (last = process.hrtime.bigint()));
  });
  return { result, seconds: Number(last - start) / 1e9 };
}

const latencyOf = (r: OpenLoopResult): Latency => ({
  ratePerS: r.ratePerS,
  sent: r.sent,
  errors: r.errors,
  achievedPerS: r.achievedPerS,
  p50Ms: r.p50Ms,
  p95Ms: r.p95Ms,
  p99Ms: r.p99Ms,
  maxMs: r.maxMs,
});

/**
 * The open loop against `url` at `ratePerS` for `durationS`, printed as it ends; with `parties`,
 * also the cores each of them used meanwhile.
 */
async function steady(
  label: string,
  url: string,
  ratePerS: number,
  request: (i: number) => OpenLoopRequest,
  parties: CpuParties = {},
  durationS = SECONDS,
): Promise<Latency> {
  const { result, cores } = await measureCores(parties, () =>
    openLoop({ url, ratePerS, durationS, request, maxConnections: 64 }),
  );
  const statuses = Object.entries(result.statuses)
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ');
  console.log(
    `${label} at ${fmt(ratePerS)}/s: ${describeLatency(result)} (${statuses}; ${result.connections} connections, generator up to ${fmt(result.maxSendLagMs, 1)} ms late)`,
  );
  if (Object.keys(parties).length > 0) console.log(`  CPU meanwhile: ${describeCores(cores)}`);
  return { ...latencyOf(result), cores };
}

const describeCores = (cores: Record<string, number | null>) =>
  Object.entries(cores)
    .map(([name, n]) => `${name} ${fmt(n, 2)}`)
    .join(', ') + ' cores';

const describeLatency = (l: Latency) =>
  `p50 ${fmt(l.p50Ms, 1)} ms, p95 ${fmt(l.p95Ms, 1)} ms, p99 ${fmt(l.p99Ms, 1)} ms, max ${fmt(l.maxMs)} ms; ${fmt(l.errors)} errors of ${fmt(l.sent)}, ${fmt(l.achievedPerS)}/s answered`;

/** Waits until `rows` (a query of the bench database) finds none; the seconds since `since`. */
async function waitUntilNone(
  databaseUrl: string,
  since: number,
  rows: (db: Knex) => Knex.QueryBuilder,
): Promise<number> {
  const db = knex({ client: 'pg', connection: databaseUrl });
  try {
    for (;;) {
      const [{ count }] = await rows(db).count<{ count: string }[]>({ count: '*' });
      if (Number(count) === 0) return (Date.now() - since) / 1000;
      await sleep(200);
    }
  } finally {
    await db.destroy();
  }
}

/** Waits until every marked quarter hour is rolled up; the seconds since `since`. */
const waitForRollups = (databaseUrl: string, since: number) =>
  waitUntilNone(databaseUrl, since, (db) => db('rollup_pending'));

/** Waits until the session builder has built the analytics vehicles; the seconds since `since`. */
const waitForSessions = (databaseUrl: string, since: number) =>
  waitUntilNone(databaseUrl, since, (db) =>
    db('session_dirty').where('vehicle_id', 'like', 'AV-%'),
  );

/** A day of time-ordered readings for `vehicles` vehicles and their meters, loaded with SQL. */
async function loadAnalyticsData(databaseUrl: string, vehicles: number): Promise<number> {
  const db = knex({ client: 'pg', connection: databaseUrl });
  const end = Math.floor(Date.now() / 60_000) * 60_000;
  const start = new Date(end - 1440 * 60_000).toISOString();
  // As the default (RETENTION_DAYS=0) makes them: a partition a month.
  await db.raw(`SELECT ensure_history_partitions((?::timestamptz)::date, current_date, true)`, [
    start,
  ]);
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
    loadAverage: os.loadavg().map((n) => Number(n.toFixed(2))),
    date: new Date().toISOString(),
  };
  console.log(
    `benchmark (${quick ? 'quick' : 'full'}) on ${machine.cpus} cores, ${machine.cpuModel}, load average ${machine.loadAverage.join(' ')}`,
  );

  // Fresh database and prefix.
  await freshDatabase(baseUrl);
  const redis = new Redis(redisUrl);
  const procs: Proc[] = [];

  try {
    const apiPort = await freePort();
    const flusherPort = await freePort();
    const env = engineEnv({ databaseUrl: baseUrl, redisUrl, prefix, apiPort, flusherPort });
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
    if (onlyOcpp) {
      const figures = await ocppPhase();
      printOtherRows(ocppRows(figures));
      console.log(`\nnote: ${figures.note}`);
      console.log(JSON.stringify(figures, null, 2));
      return;
    }

    // The ceilings' servers and the engine, all up for the whole run.
    const barePort = await freePort();
    const expressPort = await freePort();
    const bare = startNode('bare', 'bench/bare-server.js', [String(barePort)], {});
    const express = startNode('express', 'bench/express-ceiling.js', [String(expressPort)], env);
    const api = startNode('api', 'src/server.js', [], env);
    let flusher = startNode('flusher', 'workers/flusher.js', [], env);
    procs.push(bare, express, api, flusher);
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const bareUrl = `http://127.0.0.1:${barePort}`;
    const expressUrl = `http://127.0.0.1:${expressPort}`;
    const flusherReady = `http://127.0.0.1:${flusherPort}/health/ready`;
    // Generous: on a busy machine the processes take a while to start.
    for (const url of [`${apiUrl}/health/ready`, flusherReady, bareUrl, expressUrl])
      await waitForHttp(url, 120_000);
    const base = loadBase();
    const apiPeakRssMbAfter: Record<string, number> = {};
    const markApiPeak = (phase: string) => (apiPeakRssMbAfter[phase] = api.peakRssMb());

    // 1. Single readings at saturation, 64 connections: Express ceiling and the engine, in
    // alternating rounds after a warm-up of each. The engine's readings continue from round to round.
    const singleRequests = singleReadingRequests(0, base);
    const saturate = (url: string, durationS: number) =>
      run({ url, connections: 64, duration: durationS, requests: singleRequests });
    const roundS = Math.max(2, Math.round(SECONDS / ROUNDS));
    await saturate(expressUrl, 2);
    await saturate(apiUrl, 2);
    const singleRounds: RoundRatio[] = [];
    let singleNon2xx = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const ceiling = (await saturate(expressUrl, roundS)).requests.average;
      const engine = await saturate(apiUrl, roundS);
      singleNon2xx += engine.non2xx;
      singleRounds.push({ ceiling, engine: engine.requests.average });
    }
    const single = {
      expressPerS: mean(singleRounds.map((r) => r.ceiling)),
      apiPerS: mean(singleRounds.map((r) => r.engine)),
      apiNon2xx: singleNon2xx,
      rounds: singleRounds,
    };
    console.log(`Express ceiling: ${fmt(single.expressPerS)} req/s`);
    console.log(
      `single-reading ingest: ${fmt(single.apiPerS)} req/s (${fmt(single.apiNon2xx)} non-2xx); rounds ${describeRounds(singleRounds)}`,
    );
    await waitUntilDrained(redis, shards);
    markApiPeak('single at saturation');

    // 2. Single readings at a steady rate: the stall floor (bare), Express, then the engine.
    const bareFloor = await steady(
      'bare node:http (stall floor)',
      bareUrl,
      TARGETS.floorRatePerS,
      () => ({
        method: 'GET',
        path: '/',
      }),
    );
    const singleRate = TARGETS.singleRatePerS;
    // Where the CPU goes at that rate: the ceiling's one process, and every part of the engine.
    const expressSteady = await steady(
      'Express ceiling, single readings',
      expressUrl,
      singleRate,
      singleReadingAt(1_000_000, base),
      { express: { pids: () => [express.child.pid] } },
    );
    const engineParties = (withFlusher: boolean): CpuParties => ({
      api: { pids: () => [api.child.pid] },
      ...(withFlusher ? { flusher: { pids: () => [flusher.child.pid] } } : {}),
      redis: { command: 'redis-server' },
      postgres: { command: 'postgres' },
    });
    const apiSteady = await steady(
      'single-reading ingest',
      apiUrl,
      singleRate,
      singleReadingAt(1_000_000, base),
      engineParties(true),
    );
    await waitUntilDrained(redis, shards);
    // The same with the flusher stopped: what the API and Redis alone answer at that rate. Then
    // the flusher drains those readings before the batch phases, which start from an empty queue.
    await flusher.stop();
    const apiAloneSteady = await steady(
      'single-reading ingest, flusher stopped',
      apiUrl,
      singleRate,
      singleReadingAt(2_000_000, base),
      engineParties(false),
    );
    flusher = startNode('flusher', 'workers/flusher.js', [], env);
    procs.push(flusher);
    await waitUntilDrained(redis, shards);

    markApiPeak('single at a steady rate');

    // 3. 1,000-reading batches with the flusher stopped: bare parse ceiling and the API alone, in
    // alternating rounds (the API's add up to the backlog the flusher then drains).
    await flusher.stop();
    const bareRequests = batchRequests(3_000_000, base);
    const apiRequests = batchRequests(3_000_000, base);
    const bareBatchRate = async (durationS: number) => {
      const r = await run({
        url: bareUrl,
        connections: 8,
        duration: durationS,
        requests: bareRequests,
      });
      return ((r.requests.total - r.non2xx) * 1000) / r.duration;
    };
    await bareBatchRate(2);
    const batchRounds: RoundRatio[] = [];
    let backlog = 0;
    let batchSeconds = 0;
    let batch503 = 0;
    const batchRequestsTotal = BACKLOG_READINGS / 1000;
    for (let round = 0; round < ROUNDS; round++) {
      const ceiling = await bareBatchRate(roundS);
      const amount =
        Math.floor((batchRequestsTotal * (round + 1)) / ROUNDS) -
        Math.floor((batchRequestsTotal * round) / ROUNDS);
      const { result, seconds } = await runAmount({
        url: apiUrl,
        connections: 8,
        amount,
        requests: apiRequests,
      });
      const accepted = (result.requests.total - result.non2xx) * 1000;
      backlog += accepted;
      batchSeconds += seconds;
      batch503 += result.non2xx;
      batchRounds.push({ ceiling, engine: accepted / seconds });
    }
    const bareBatchPerS = mean(batchRounds.map((r) => r.ceiling));
    const batchPerS = backlog / batchSeconds;
    console.log(`bare parse ceiling: ${fmt(bareBatchPerS)} readings/s`);
    console.log(
      `batch ingest, API alone: ${fmt(batchPerS)} readings/s (${fmt(batch503)} non-2xx); rounds ${describeRounds(batchRounds)}`,
    );

    markApiPeak('batches');

    // 4. The flusher started on that backlog, then COPY of as many rows.
    flusher = startNode('flusher', 'workers/flusher.js', [], env);
    procs.push(flusher);
    const flushStart = Date.now();
    const flushed = await flushRate(redis, shards);
    const rollupsDoneS = await waitForRollups(baseUrl, flushStart);
    const flushPerS = flushed.rows / flushed.seconds;
    console.log(
      `flusher: ${fmt(flushPerS)} rows/s durable (${fmt(backlog)} readings drained; rollups done ${fmt(rollupsDoneS, 1)} s after start)`,
    );
    await waitForHttp(flusherReady, 120_000);
    const copy = await copyCeiling(baseUrl, backlog);
    console.log(`COPY ceiling: ${fmt(copy.rowsPerS)} rows/s`);

    // 4b. A gateway's backfill, the API alone again: bodies of the same size holding 20 minutes
    // of each of 50 devices (live state takes each device's newest alone).
    await flusher.stop();
    let backfilled = 0;
    const backfill = await runAmount({
      url: apiUrl,
      connections: 8,
      amount: BACKFILL_REQUESTS,
      requests: ingestRequests(() => backfillJson(backfilled++, base)),
    });
    const backfillPerS =
      ((backfill.result.requests.total - backfill.result.non2xx) * 1000) / backfill.seconds;
    console.log(`backfill batches, API alone: ${fmt(backfillPerS)} readings/s`);
    flusher = startNode('flusher', 'workers/flusher.js', [], env);
    procs.push(flusher);
    await waitUntilDrained(redis, shards);

    markApiPeak('flush and backfill batches');

    // 5. The same ingest through MQTT (its own process and broker, the same queue and flusher).
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
      waitUntilDrained: () => waitUntilDrained(redis, shards),
    });
    console.log(
      `MQTT: ${fmt(mqtt.batch.readingsPerS)} readings/s in 100-reading messages, ${fmt(mqtt.single.readingsPerS)} in single-reading messages`,
    );

    // 6. Ingest-to-durable lag at the nominal rate of a 10,000-device fleet.
    const flusherMetrics = () =>
      fetch(`http://127.0.0.1:${flusherPort}/metrics`).then((r) => r.text());
    const lagBefore = await flusherMetrics();
    const paced = await steady(
      'nominal single readings',
      apiUrl,
      TARGETS.nominalReadingsPerS,
      singleReadingAt(9_000_000, base),
    );
    await waitUntilDrained(redis, shards);
    await sleep(200);
    const lag = histogramDelta(
      lagBefore,
      await flusherMetrics(),
      'energy_ingest_to_durable_seconds',
    );
    console.log(`nominal lag: p50 ${fmt(lag.p50Ms)} ms, p99 ${fmt(lag.p99Ms)} ms`);

    markApiPeak('MQTT and nominal lag');

    // 7. Analytics right after a bulk load: a day of readings per vehicle, its sessions built by
    // the flusher as it builds those of any history loaded and rebuilt (npm run rollups:rebuild).
    const loaded = Date.now();
    const end = await loadAnalyticsData(baseUrl, ANALYTICS_VEHICLES);
    console.log(
      `analytics data: sessions built ${fmt(await waitForSessions(baseUrl, loaded), 1)} s after the load began`,
    );
    let k = 0;
    const uncachedRequest = (): OpenLoopRequest => {
      const vehicle = 1 + (k % ANALYTICS_VEHICLES);
      const to = new Date(end - (k++ % 60_000)).toISOString(); // a different window each time
      return {
        method: 'GET',
        path: `/v1/analytics/performance/AV-${vehicle}?hours=24&to=${encodeURIComponent(to)}`,
      };
    };
    const fixedTo = encodeURIComponent(new Date(end).toISOString());
    const cachedRequest = (i: number): OpenLoopRequest => ({
      method: 'GET',
      path: `/v1/analytics/performance/AV-${1 + (i % 50)}?hours=24&to=${fixedTo}`,
    });
    const uncachedRate = TARGETS.uncachedRatePerS;
    const cachedRate = TARGETS.cachedRatePerS;
    const uncached = {
      express: await steady('Express small JSON', expressUrl, uncachedRate, uncachedRequest),
      api: await steady(
        'analytics uncached',
        apiUrl,
        uncachedRate,
        uncachedRequest,
        engineParties(true),
      ),
    };
    const cachedExpress = await steady('Express small JSON', expressUrl, cachedRate, cachedRequest);
    // Warmed just before the API's phase, which ends within the cache's TTL: every answer is a hit
    // (warmed before the ceiling's phase instead, the entries expired in the phase's last second).
    await steady('analytics cache warm-up', apiUrl, 50, cachedRequest, {}, 1);
    const cacheMisses = async () => {
      const text = await (await fetch(`${apiUrl}/metrics`)).text();
      return counterTotal(text, 'energy_analytics_cache_total', 'result="miss"');
    };
    const missesBefore = await cacheMisses();
    const cached = {
      express: cachedExpress,
      api: await steady('analytics cached', apiUrl, cachedRate, cachedRequest, engineParties(true)),
      misses: 0,
    };
    cached.misses = (await cacheMisses()) - missesBefore;
    console.log(`  cache misses during the phase: ${fmt(cached.misses)}`);

    markApiPeak('analytics');
    console.log(
      `API peak RSS after each phase: ${Object.entries(apiPeakRssMbAfter)
        .map(([phase, mb]) => `${phase} ${fmt(mb)} MB`)
        .join(', ')}`,
    );
    const memory = {
      apiPeakRssMb: api.peakRssMb(),
      apiPeakRssMbAfter,
      flusherPeakRssMb: flusher.peakRssMb(),
      mqttPeakRssMb: mqtt.peakRssMb,
    };
    // 8. OCPP charge points, on an API process of their own (measured from its start).
    const ocpp = await ocppPhase();
    const results: Results = {
      machine,
      mode: quick ? 'quick' : 'full',
      rows: [],
      single,
      singleLatency: {
        express: expressSteady,
        api: apiSteady,
        apiAlone: apiAloneSteady,
        bareFloor,
      },
      batch: {
        bareReadingsPerS: bareBatchPerS,
        apiReadingsPerS: batchPerS,
        api503: batch503,
        rounds: batchRounds,
        backfillReadingsPerS: backfillPerS,
      },
      flush: { rows: flushed.rows, rowsPerS: flushPerS, rollupsDoneS, copy },
      nominalLag: {
        readingsPerS: paced.achievedPerS,
        batches: lag.count,
        p50Ms: lag.p50Ms,
        p99Ms: lag.p99Ms,
      },
      analytics: { vehicles: ANALYTICS_VEHICLES, uncached, cached },
      mqtt: {
        ...mqtt,
        batchRatioToHttpBatch: mqtt.batch.readingsPerS / batchPerS,
        singleRatioToHttpSingle: mqtt.single.readingsPerS / single.apiPerS,
      },
      memory,
      ocpp,
    };
    results.rows = rowsOf(results);
    printRows(results.rows);
    printOtherRows([...otherRows(results), ...ocppRows(ocpp)]);
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

const ms = (n: number) => `${fmt(n, 1)} ms`;

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;

/** Each round's engine figure over its ceiling's, e.g. `0.75, 0.98, 0.89`. */
const describeRounds = (rounds: RoundRatio[]) =>
  rounds.map((r) => fmt(r.engine / r.ceiling, 2)).join(', ');

/** A latency row: p95 under an absolute bound, p99 within TARGETS.p99TimesCeiling of the ceiling's. */
function latencyRow(figure: string, measured: Latency, ceiling: Latency, p95Ms: number): Row {
  const p99Bound = TARGETS.p99TimesCeiling * ceiling.p99Ms;
  return {
    figure,
    measured: `p50 ${ms(measured.p50Ms)}, p95 ${ms(measured.p95Ms)}, p99 ${ms(measured.p99Ms)}, max ${ms(measured.maxMs)}; ${fmt(measured.errors)} errors`,
    ceiling: `p50 ${ms(ceiling.p50Ms)}, p95 ${ms(ceiling.p95Ms)}, p99 ${ms(ceiling.p99Ms)}`,
    ratio: measured.p99Ms / ceiling.p99Ms,
    target: `p95 <= ${p95Ms} ms, p99 <= ${TARGETS.p99TimesCeiling} x ceiling's (${ms(p99Bound)})`,
    met: measured.errors === 0 && measured.p95Ms <= p95Ms && measured.p99Ms <= p99Bound,
  };
}

function throughputRow(
  figure: string,
  measured: number,
  ceiling: number,
  unit: string,
  ceilingName: string,
  target: number,
  rounds?: RoundRatio[],
): Row {
  const ratio = measured / ceiling;
  return {
    figure,
    measured: `${fmt(measured)} ${unit}${rounds ? ` (ratio by round: ${describeRounds(rounds)})` : ''}`,
    ceiling: `${ceilingName}: ${fmt(ceiling)} ${unit}`,
    ratio,
    target: `>= ${target}`,
    met: ratio >= target,
  };
}

function rowsOf(r: Results): Row[] {
  const { single, singleLatency, batch, flush, analytics } = r;
  return [
    throughputRow(
      'single-reading ingest, 64 connections',
      single.apiPerS,
      single.expressPerS,
      'req/s',
      'Express + express.json() answering 202',
      TARGETS.singleRatio,
      single.rounds,
    ),
    latencyRow(
      `single-reading ingest latency, open loop at ${fmt(TARGETS.singleRatePerS)} req/s`,
      singleLatency.api,
      singleLatency.express,
      TARGETS.singleP95Ms,
    ),
    throughputRow(
      'batch ingest, API alone (flusher stopped), 1,000 readings/request, 8 connections',
      batch.apiReadingsPerS,
      batch.bareReadingsPerS,
      'readings/s',
      'bare node:http parsing the same bodies',
      TARGETS.batchRatio,
      batch.rounds,
    ),
    throughputRow(
      `flusher started on that backlog (${fmt(flush.copy.rows)} readings): rows durable/s`,
      flush.rowsPerS,
      flush.copy.rowsPerS,
      'rows/s',
      'COPY of as many rows, same primary key',
      TARGETS.flushRatio,
    ),
    latencyRow(
      `analytics uncached after a bulk load (${fmt(analytics.vehicles)} vehicles), open loop at ${TARGETS.uncachedRatePerS} req/s`,
      analytics.uncached.api,
      analytics.uncached.express,
      TARGETS.uncachedP95Ms,
    ),
    latencyRow(
      `analytics cached, open loop at ${TARGETS.cachedRatePerS} req/s`,
      analytics.cached.api,
      analytics.cached.express,
      TARGETS.cachedP95Ms,
    ),
    {
      figure: 'API peak RSS through the run (before the OCPP phase)',
      measured: `${fmt(r.memory.apiPeakRssMb)} MB`,
      ceiling: '',
      ratio: null,
      target: `<= ${TARGETS.apiPeakRssMb} MB`,
      met: r.memory.apiPeakRssMb <= TARGETS.apiPeakRssMb,
    },
  ];
}

/** Figures printed for reference, without a ceiling of their own. */
function otherRows(r: Results): [string, string, string][] {
  const latency = r.singleLatency;
  const floor = latency.bareFloor;
  return [
    [
      `stall floor: bare node:http, open loop at ${fmt(floor.ratePerS)} req/s`,
      `p50 ${ms(floor.p50Ms)}, p95 ${ms(floor.p95Ms)}, p99 ${ms(floor.p99Ms)}, max ${ms(floor.maxMs)}`,
      '',
    ],
    [
      `CPU during single-reading ingest at ${fmt(latency.api.ratePerS)} req/s (cores)`,
      `engine: ${describeCores(latency.api.cores ?? {})}`,
      `Express ceiling at the same rate: ${describeCores(latency.express.cores ?? {})}`,
    ],
    [
      `single-reading ingest at ${fmt(latency.apiAlone.ratePerS)} req/s with the flusher stopped`,
      `p50 ${ms(latency.apiAlone.p50Ms)}, p95 ${ms(latency.apiAlone.p95Ms)}, p99 ${ms(latency.apiAlone.p99Ms)}, max ${ms(latency.apiAlone.maxMs)}`,
      describeCores(latency.apiAlone.cores ?? {}),
    ],
    [
      'backfill batches, API alone: 1,000 readings/request of 50 devices x 20 minutes, 8 connections',
      `${fmt(r.batch.backfillReadingsPerS)} readings/s`,
      `${fmt(r.batch.backfillReadingsPerS / r.batch.bareReadingsPerS, 2)} of bare parse (batch ceiling)`,
    ],
    [
      'analytics cached: reports computed during the phase (cache misses)',
      fmt(r.analytics.cached.misses),
      '',
    ],
    [
      'flusher: until every marked quarter hour is rolled up (the roller runs every 10 s)',
      `${fmt(r.flush.rollupsDoneS, 1)} s after the flusher started`,
      '',
    ],
    [
      'MQTT batch (100 readings/message, QoS 1, PUBACK once stored)',
      `${fmt(r.mqtt.batch.readingsPerS)} readings/s (${fmt(r.mqtt.batch.messages)} messages)`,
      `${fmt(r.mqtt.batchRatioToHttpBatch, 2)} of HTTP batch (API alone)`,
    ],
    [
      'MQTT single-reading messages (QoS 1, PUBACK once stored)',
      `${fmt(r.mqtt.single.readingsPerS)} readings/s (${fmt(r.mqtt.single.messages)} messages)`,
      `${fmt(r.mqtt.singleRatioToHttpSingle, 2)} of HTTP single`,
    ],
    [
      `MQTT at ${fmt(r.mqtt.nominal.readingsPerS)} readings/s: publish -> broker PUBACK; receive -> stored PUBACK`,
      `p50 ${fmt(r.mqtt.nominal.brokerPubackP50Ms, 1)} ms, p99 ${fmt(r.mqtt.nominal.brokerPubackP99Ms, 1)} ms; p50 ${fmt(r.mqtt.nominal.storedAckP50Ms, 1)} ms, p99 ${fmt(r.mqtt.nominal.storedAckP99Ms, 1)} ms`,
      '',
    ],
    [
      `ingest-to-durable lag at ${fmt(r.nominalLag.readingsPerS)} readings/s`,
      `p50 ${fmt(r.nominalLag.p50Ms)} ms, p99 ${fmt(r.nominalLag.p99Ms)} ms (${fmt(r.nominalLag.batches)} group-committed batches)`,
      '',
    ],
    [
      'peak RSS, other processes',
      `flusher ${fmt(r.memory.flusherPeakRssMb)} MB, MQTT ${fmt(r.memory.mqttPeakRssMb)} MB`,
      '',
    ],
  ];
}

function printRows(rows: Row[]): void {
  console.log('\n| figure | measured | ceiling (same run) | ratio | target | met |');
  console.log('|---|---|---|---|---|---|');
  for (const row of rows) {
    const met = row.met === null ? '' : row.met ? 'met' : 'not met';
    console.log(
      `| ${row.figure} | ${row.measured} | ${row.ceiling} | ${row.ratio === null ? '' : fmt(row.ratio, 2)} | ${row.target} | ${met} |`,
    );
  }
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
      `${fmt(o.traffic.answeredPerS)} answered/s, p50 ${fmt(o.traffic.p50Ms, 1)} ms, p99 ${fmt(o.traffic.p99Ms, 1)} ms CALL to .conf at the clients (in the API: p99 ${o.traffic.server.atLeast ? '>= ' : ''}${fmt(o.traffic.server.p99Ms, 1)} ms); each charge point's first: p50 ${fmt(o.traffic.firstOfEach.p50Ms, 1)} ms, p99 ${fmt(o.traffic.firstOfEach.p99Ms, 1)} ms; the later ones: p50 ${fmt(o.traffic.later.p50Ms, 1)} ms, p99 ${fmt(o.traffic.later.p99Ms, 1)} ms, their p99 above ${o.goals.p99Ms} ms in ${fmt(o.traffic.later.secondsOverGoal)} of ${fmt(o.traffic.later.seconds)} seconds; ${fmt(o.traffic.callErrors + o.traffic.failed)} unanswered; API CPU ${fmt(o.traffic.apiCpuMsPerMessage, 2)} ms/message, ${fmt(o.traffic.apiCores, 2)} cores (clients ${fmt(o.traffic.clientCores, 2)})`,
      `goal p99 <= ${o.goals.p99Ms} ms: ${met((o.traffic.p99Ms ?? Infinity) <= o.goals.p99Ms)}`,
    ],
    [
      'OCPP API memory per connection (after GC)',
      `RSS ${fmt(loaded.rss, 1)} KB, heap ${fmt(loaded.heap, 1)} KB after traffic (idle: ${fmt(idle.rss, 1)} / ${fmt(idle.heap, 1)} KB)`,
      `goal <= ${o.goals.kbPerConnection} KB: ${met(loaded.rss <= o.goals.kbPerConnection)}`,
    ],
  ];
}

function printOtherRows(rows: [string, string, string][]): void {
  console.log('\n| figure | measured | ratio |\n|---|---|---|');
  for (const [a, b, c] of rows) console.log(`| ${a} | ${b} | ${c} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
