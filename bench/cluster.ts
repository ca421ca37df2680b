/**
 * `npm run bench:cluster [-- --quick]`: the same engine on standalone Redis and on a Redis Cluster
 * (3 masters, 3 replicas on loopback, test/helpers/redis-cluster.ts) with 1 and 3 queue shards,
 * side by side in one run. Per setup: readings/s the API accepts alone (no flusher), and end-to-end
 * readings/s (a fixed number of readings posted with the flusher running, until all are in
 * PostgreSQL). Every Redis runs `appendonly yes`, `appendfsync everysec`.
 *
 * On a shared machine one measurement says little, so the setups are measured in ROUNDS rounds,
 * every other round in reverse order, and the table shows each setup's best round (the least
 * disturbed) with the range.
 */
import autocannon from 'autocannon';
import { createDb } from '../db/create-db';
import { ensureDatabase, migrateToLatest } from '../db/migrate';
import { loadConfig } from '../src/config';
import { commandLineOrExit, parseCommandLine } from '../scripts/cli';
import { startRedisCluster, type RedisClusterHandle } from '../test/helpers/redis-cluster';
import { OwnRedis } from '../test/helpers/own-redis';
import { fmt, freePort, sleep, startNode, waitForHttp, type Proc } from './bench-helpers';

const { quick } = commandLineOrExit(() => {
  const { values } = parseCommandLine(process.argv.slice(2), {
    usage: 'npm run bench:cluster [-- --quick]',
    options: { quick: { type: 'boolean', help: 'shorter runs, about two minutes' } },
  });
  return { quick: values.quick ?? false };
});
const ACCEPT_SECONDS = quick ? 5 : 10;
const E2E_READINGS = quick ? 50_000 : 200_000;
const ROUNDS = 2;
/** Readings per request: a gateway's batch. */
const BATCH = 100;
const DEVICES = 10_000;
const databaseUrl =
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/energy_bench_cluster';

interface Setup {
  name: string;
  env: Record<string, string>;
}

interface Row {
  setup: string;
  acceptedPerS: number;
  refused: number;
  endToEndPerS: number;
}

function batchBody(startAt: number, base: number): string {
  const parts: string[] = [];
  for (let n = startAt; n < startAt + BATCH; n++) {
    const minute = Math.floor(n / DEVICES);
    const ts = new Date(base + minute * 60_000).toISOString();
    parts.push(
      `{"meterId":"M-${n % DEVICES}","kwhConsumedAc":0.0167,"voltage":230,"timestamp":"${ts}"}`,
    );
  }
  return `[${parts.join(',')}]`;
}

/** Requests of BATCH new readings each; `counter.n` numbers the next reading. */
function ingestRequests(counter: { n: number }, base: number) {
  return [
    {
      method: 'POST' as const,
      path: '/v1/telemetry/ingest',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req: autocannon.Request) => {
        const body = batchBody(counter.n, base);
        counter.n += BATCH;
        return { ...req, body };
      },
    },
  ];
}

async function historyRows(db: ReturnType<typeof createDb>): Promise<number> {
  const [row] = await db('telemetry_history').count({ n: '*' });
  return Number(row.n);
}

function processEnv(setup: Setup, prefix: string, port: number, flusherPort: number) {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_PREFIX: prefix,
    PORT: String(port),
    FLUSHER_PORT: String(flusherPort),
    LOG_LEVEL: 'warn',
    AUTH: 'off',
    ...setup.env,
  };
}

/** One setup: the API alone for ACCEPT_SECONDS, then E2E_READINGS with the flusher running. */
async function measure(setup: Setup, db: ReturnType<typeof createDb>, round: number): Promise<Row> {
  await db.raw('TRUNCATE telemetry_history, meter_status');
  const [port, flusherPort] = [await freePort(), await freePort()];
  const env = processEnv(setup, `bench-cluster-${Date.now()}-${round}`, port, flusherPort);
  const url = `http://127.0.0.1:${port}`;
  const procs: Proc[] = [];
  try {
    const api = startNode('api', 'src/server.js', [], env);
    procs.push(api);
    await waitForHttp(`${url}/health/ready/ingest`, 30_000);
    const base = Math.floor(Date.now() / 60_000) * 60_000 - 2 * 86_400_000;
    const counter = { n: 0 };
    const accepted = await autocannon({
      url,
      connections: 32,
      duration: ACCEPT_SECONDS,
      requests: ingestRequests(counter, base),
    });
    const acceptedPerS = (accepted['2xx'] * BATCH) / ACCEPT_SECONDS;
    const refused = accepted.non2xx;
    console.log(`${setup.name}: API alone ${fmt(acceptedPerS)} readings/s accepted`);

    // End to end: the queue written so far drains first, then a fixed amount is timed.
    const flusher = startNode('flusher', 'workers/flusher.js', [], env);
    procs.push(flusher);
    await waitForHttp(`http://127.0.0.1:${flusherPort}/health/ready`, 30_000);
    const backlog = accepted['2xx'] * BATCH;
    while ((await historyRows(db)) < backlog) await sleep(200);
    const target = backlog + E2E_READINGS;
    const started = Date.now();
    const sent = await autocannon({
      url,
      connections: 32,
      amount: E2E_READINGS / BATCH,
      requests: ingestRequests(counter, base),
    });
    if (sent.non2xx > 0) console.log(`${setup.name}: ${sent.non2xx} requests refused end to end`);
    const expected = target - sent.non2xx * BATCH;
    while ((await historyRows(db)) < expected) await sleep(100);
    const endToEndPerS = (expected - backlog) / ((Date.now() - started) / 1000);
    console.log(`${setup.name}: end to end ${fmt(endToEndPerS)} readings/s`);
    return { setup: setup.name, acceptedPerS, refused, endToEndPerS };
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

/** A setup's best round, and the range over its rounds. */
function summary(rounds: Row[]) {
  const range = (pick: (r: Row) => number) =>
    rounds
      .map(pick)
      .sort((a, b) => a - b)
      .map((n) => fmt(n))
      .join('-');
  return {
    setup: rounds[0].setup,
    accepted: Math.max(...rounds.map((r) => r.acceptedPerS)),
    acceptedRange: range((r) => r.acceptedPerS),
    refused: rounds.reduce((n, r) => n + r.refused, 0),
    endToEnd: Math.max(...rounds.map((r) => r.endToEndPerS)),
    endToEndRange: range((r) => r.endToEndPerS),
  };
}

function printTable(bySetup: Row[][]): void {
  const rows = bySetup.map(summary);
  const first = rows[0];
  console.log(
    `\n| setup | accepted readings/s, API alone (rounds) | vs standalone | non-2xx | end-to-end readings/s (rounds) | vs standalone |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| ${r.setup} | ${fmt(r.accepted)} (${r.acceptedRange}) | ${fmt(r.accepted / first.accepted, 2)} | ${fmt(r.refused)} | ${fmt(r.endToEnd)} (${r.endToEndRange}) | ${fmt(r.endToEnd / first.endToEnd, 2)} |`,
    );
  }
}

async function main(): Promise<void> {
  await ensureDatabase(databaseUrl);
  const db = createDb(loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }), 'bench');
  await migrateToLatest(db);
  let standalone: OwnRedis | undefined;
  let cluster: RedisClusterHandle | undefined;
  try {
    standalone = await OwnRedis.create(['--appendfsync', 'everysec']);
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    const nodes = cluster.seeds.join(',');
    const setups: Setup[] = [
      { name: 'standalone Redis', env: { REDIS_URL: standalone.url } },
      { name: 'cluster, 1 shard', env: { REDIS_CLUSTER_NODES: nodes, QUEUE_SHARDS: '1' } },
      { name: 'cluster, 3 shards', env: { REDIS_CLUSTER_NODES: nodes, QUEUE_SHARDS: '3' } },
      {
        name: 'cluster, 3 shards, WAIT 1',
        env: { REDIS_CLUSTER_NODES: nodes, QUEUE_SHARDS: '3', REDIS_WAIT_REPLICAS: '1' },
      },
    ];
    const bySetup: Row[][] = setups.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      const order = setups.map((_, i) => i);
      if (round % 2 === 1) order.reverse();
      for (const i of order) bySetup[i].push(await measure(setups[i], db, round * 10 + i));
    }
    printTable(bySetup);
    console.log(
      `\nBest of ${ROUNDS} rounds; ${BATCH}-reading requests, 32 connections; API alone ${ACCEPT_SECONDS} s, end to end ${fmt(E2E_READINGS)} readings. ` +
        'Every Redis node, the API, the flusher, PostgreSQL and the load share this machine.',
    );
  } finally {
    await cluster?.stop();
    await standalone?.kill('SIGTERM');
    await db.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
