/**
 * `node dist/bench/profile.js`: where the time goes, for the notes behind a performance change.
 * Against the database a `npm run bench` left behind (its analytics data), it runs the API and
 * the flusher under `node --cpu-prof` for four cases, each in processes of its own:
 * - single: single-reading ingest, 64 connections, for SECONDS;
 * - reports: uncached performance reports (a different window each time), 10 connections;
 * - batch: the API alone taking 1,000-reading batches, 8 connections (the flusher stopped);
 * - flush: the flusher started on that backlog;
 * - allocations: the API alone taking 100 more batches, its allocations sampled
 *   (bench/allocation-sampler.ts);
 * and prints each CPU profile's functions by self time, the bytes allocated per reading by
 * function, then EXPLAIN (ANALYZE, BUFFERS) of the uncached report's statement. The profiles stay
 * in a temporary directory (printed).
 */
import autocannon from 'autocannon';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex from 'knex';
import { Redis } from 'ioredis';
import { EnergyReportStore } from '../src/analytics/energy-report-store';
import { allocations, selfTimes, type AllocationNode, type CpuProfile } from './profile-summary';
import { createRedisKeys } from '../src/redis-keys';
import {
  DIST_ROOT,
  BENCH_DATABASE_URL,
  BENCH_REDIS_URL,
  engineEnv,
  fmt,
  freePort,
  sleep,
  startNode,
  waitForHttp,
} from './bench-helpers';

const SECONDS = Number(process.env.PROFILE_SECONDS ?? 15);
const databaseUrl = BENCH_DATABASE_URL;
const redisUrl = BENCH_REDIS_URL;

/** Batches the allocation case sends: enough for stable shares, few enough to sample quickly. */
const ALLOCATION_BATCHES = 100;

function printTop(label: string, dir: string, top = 20): void {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const rows = selfTimes(JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile);
    const busy = rows.filter((r) => !/^\((idle|program|garbage collector)\)/.test(r.name));
    const share = (name: string) => rows.find((r) => r.name.startsWith(name))?.share ?? 0;
    console.log(
      `\n${label} (${file}): idle ${fmt(share('(idle)') * 100, 1)} %, GC ${fmt(share('(garbage collector)') * 100, 1)} %, program ${fmt(share('(program)') * 100, 1)} %`,
    );
    for (const r of busy.slice(0, top))
      console.log(
        `  ${fmt(r.share * 100, 1).padStart(5)} %  ${fmt(r.ms).padStart(6)} ms  ${r.name}`,
      );
  }
}

function printAllocations(label: string, file: string, readings: number, top = 20): void {
  const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: AllocationNode };
  const rows = allocations(head);
  const total = rows.reduce((sum, r) => sum + r.bytes, 0);
  console.log(
    `\n${label}: ${fmt(total / readings)} bytes allocated per reading (start-up included)`,
  );
  for (const r of rows.slice(0, top))
    console.log(
      `  ${fmt((r.bytes / total) * 100, 1).padStart(5)} %  ${fmt(r.bytes / readings).padStart(5)} B/reading  ${r.name}`,
    );
}

async function drained(redis: Redis, prefix: string): Promise<void> {
  const [shard] = createRedisKeys(prefix).shards(1);
  while (Number((await redis.get(shard.backlogReadings)) ?? 0) > 0) await sleep(100);
}

const base = Math.floor(Date.now() / 60_000) * 60_000 - 2 * 86_400_000;
const reading = (n: number) =>
  `{"meterId":"PM-${n % 10_000}","kwhConsumedAc":0.0167,"voltage":230,"timestamp":"${new Date(base + Math.floor(n / 10_000) * 60_000).toISOString()}"}`;

/** How many analytics vehicles the bench loaded (200 in a quick run, 1,000 in a full one). */
async function loadedVehicles(): Promise<number> {
  const db = knex({ client: 'pg', connection: databaseUrl });
  try {
    const rows = await db('vehicle_meter_map')
      .where('vehicle_id', 'like', 'AV-%')
      .count({ n: '*' });
    return Number(rows[0].n);
  } finally {
    await db.destroy();
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'energy-profile-'));
  const redis = new Redis(redisUrl);
  const prefix = `profile-${Date.now().toString(36)}`;
  const apiPort = await freePort();
  const flusherPort = await freePort();
  const env = engineEnv({ databaseUrl, redisUrl, prefix, apiPort, flusherPort });
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const profiled = (name: string, entry: string, dir: string) =>
    startNode(name, entry, [], env, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  try {
    // 1. Single readings (the flusher runs, unprofiled).
    let n = 0;
    const dirs = { single: '', reports: '', batch: '', flush: '' };
    for (const k of Object.keys(dirs) as (keyof typeof dirs)[])
      dirs[k] = mkdtempSync(path.join(root, `${k}-`));
    let api = profiled('api', 'src/server.js', dirs.single);
    let flusher = startNode('flusher', 'workers/flusher.js', [], env);
    await waitForHttp(`${apiUrl}/health/ready`, 120_000);
    const single = await autocannon({
      url: apiUrl,
      connections: 64,
      duration: SECONDS,
      requests: [
        {
          method: 'POST',
          path: '/v1/telemetry/ingest',
          headers: { 'content-type': 'application/json' },
          setupRequest: (req) => ({ ...req, body: reading(n++) }),
        },
      ],
    });
    console.log(`single: ${fmt(single.requests.average)} req/s`);
    await api.stop();

    // 2. Uncached reports of the vehicles the bench loaded.
    api = profiled('api', 'src/server.js', dirs.reports);
    await waitForHttp(`${apiUrl}/health/ready`, 120_000);
    const end = Math.floor(Date.now() / 60_000) * 60_000;
    const vehicles = await loadedVehicles();
    let k = 0;
    const reports = await autocannon({
      url: apiUrl,
      connections: 10,
      duration: SECONDS,
      requests: [
        {
          method: 'GET',
          setupRequest: (req) => ({
            ...req,
            path: `/v1/analytics/performance/AV-${1 + (k % vehicles)}?hours=24&to=${encodeURIComponent(new Date(end - (k++ % 60_000)).toISOString())}`,
          }),
        },
      ],
    });
    console.log(`reports: ${fmt(reports.requests.average)} req/s, ${reports.non2xx} non-2xx`);
    await api.stop();

    // 3. Batches the API alone takes, then the flusher on that backlog.
    await drained(redis, prefix);
    await flusher.stop();
    api = profiled('api', 'src/server.js', dirs.batch);
    await waitForHttp(`${apiUrl}/health/ready`, 120_000);
    n = 5_000_000;
    const sendBatches = (amount: number) =>
      autocannon({
        url: apiUrl,
        connections: 8,
        amount,
        requests: [
          {
            method: 'POST',
            path: '/v1/telemetry/ingest',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({
              ...req,
              body: `[${Array.from({ length: 1000 }, () => reading(n++)).join(',')}]`,
            }),
          },
        ],
      });
    const batches = await sendBatches(200);
    console.log(
      `backlog: ${fmt((batches.requests.total - batches.non2xx) * 1000)} readings at ${fmt(((batches.requests.total - batches.non2xx) * 1000) / batches.duration)} readings/s`,
    );
    await api.stop();
    const flushStart = Date.now();
    flusher = profiled('flusher', 'workers/flusher.js', dirs.flush);
    await drained(redis, prefix);
    console.log(`flushed in ${fmt((Date.now() - flushStart) / 1000, 1)} s (with start-up)`);
    await flusher.stop();

    // 4. The batches' allocations (sampling slows the API: its own run, not the CPU profile's).
    const allocationFile = path.join(root, 'batch.heapprofile');
    api = startNode('api', 'src/server.js', [], { ...env, ALLOCATION_PROFILE: allocationFile }, [
      '--require',
      path.join(DIST_ROOT, 'bench', 'allocation-sampler.js'),
    ]);
    await waitForHttp(`${apiUrl}/health/ready`, 120_000);
    const sampled = await sendBatches(ALLOCATION_BATCHES);
    await api.stop();

    printTop('single-reading ingest, API', dirs.single);
    printTop('uncached reports, API', dirs.reports);
    printTop('batch ingest, API', dirs.batch);
    printTop('flushed batches, flusher', dirs.flush);
    printAllocations(
      'batch ingest, API, allocations',
      allocationFile,
      (sampled.requests.total - sampled.non2xx) * 1000,
    );
    await explainReport(end);
    console.log(`\nprofiles: ${root}`);
  } finally {
    const keys = await redis.keys(`*${prefix}*`);
    for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
    redis.disconnect();
  }
}

async function explainReport(end: number): Promise<void> {
  const db = knex({ client: 'pg', connection: databaseUrl });
  try {
    const store = new EnergyReportStore(db, { preparedStatements: false });
    const query = store
      .vehicleQuery(
        'AV-17',
        new Date(end - 86_400_000 - 12_345),
        new Date(end - 12_345),
        'interval',
        { hours: false },
      )
      .toSQL();
    const plan = await db.raw(`EXPLAIN (ANALYZE, BUFFERS) ${query.sql}`, [...query.bindings]);
    console.log('\nEXPLAIN (ANALYZE, BUFFERS) of the uncached report statement:');
    for (const row of (plan as { rows: Record<string, string>[] }).rows)
      console.log(Object.values(row)[0]);
  } finally {
    await db.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
