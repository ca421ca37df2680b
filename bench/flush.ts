/**
 * `npm run bench:flush [-- --rounds N] [-- --readings N]`: the flush phase of `npm run bench` alone,
 * repeated, to compare flusher changes in a few minutes (alternate two checkouts' rounds: the
 * machine drifts between minutes). Each round on a fresh database and Redis prefix: the API takes
 * a backlog of 1,000-reading batches with the flusher stopped, the flusher is started on it (rows
 * durable per second, and the cores the flusher, PostgreSQL and Redis used meanwhile), then `COPY`
 * of as many rows. Prints a line per round; writes nothing.
 */
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { createRedisKeys } from '../src/redis-keys';
import { commandLineOrExit, numberOption, parseCommandLine } from '../scripts/cli';
import { batchRequests, copyCeiling, flushRate, loadBase } from './batches';
import {
  BENCH_DATABASE_URL,
  BENCH_REDIS_URL,
  engineEnv,
  fmt,
  freePort,
  freshDatabase,
  measureCores,
  startNode,
  waitForHttp,
  type Proc,
} from './bench-helpers';

const { rounds, readings } = commandLineOrExit(() => {
  const { values } = parseCommandLine(process.argv.slice(2), {
    usage: 'npm run bench:flush [-- --rounds N] [-- --readings N]',
    options: {
      rounds: { type: 'string', value: 'N', help: 'rounds, each on a fresh database (3)' },
      readings: { type: 'string', value: 'N', help: 'backlog per round (500000, as the bench)' },
    },
  });
  return {
    rounds: numberOption('--rounds', values.rounds ?? '3', { min: 1, integer: true }),
    readings: numberOption('--readings', values.readings ?? '500000', { min: 1000, integer: true }),
  };
});

const databaseUrl = BENCH_DATABASE_URL;
const redisUrl = BENCH_REDIS_URL;

async function round(redis: Redis, index: number): Promise<void> {
  await freshDatabase(databaseUrl);
  const prefix = `bench-flush-${Date.now().toString(36)}`;
  const shards = createRedisKeys(prefix).shards(1);
  const [apiPort, flusherPort] = [await freePort(), await freePort()];
  const env = engineEnv({ databaseUrl, redisUrl, prefix, apiPort, flusherPort });
  const procs: Proc[] = [startNode('api', 'src/server.js', [], env)];
  try {
    await waitForHttp(`http://127.0.0.1:${apiPort}/health/ready`, 120_000);
    await autocannon({
      url: `http://127.0.0.1:${apiPort}`,
      connections: 8,
      amount: readings / 1000,
      requests: batchRequests(0, loadBase()),
    });
    const flusher = startNode('flusher', 'workers/flusher.js', [], env);
    procs.push(flusher);
    const { result: flushed, cores } = await measureCores(
      {
        flusher: { pids: () => [flusher.child.pid] },
        postgres: { command: 'postgres' },
        redis: { command: 'redis-server' },
      },
      () => flushRate(redis, shards),
    );
    await Promise.all(procs.map((p) => p.stop()));
    const copy = await copyCeiling(databaseUrl, flushed.rows);
    const perS = flushed.rows / flushed.seconds;
    console.log(
      `round ${index + 1}: flusher ${fmt(perS)} rows/s (${fmt(flushed.rows)}), COPY ${fmt(copy.rowsPerS)} rows/s, ratio ${fmt(perS / copy.rowsPerS, 3)}; cores: ${Object.entries(
        cores,
      )
        .map(([name, used]) => `${name} ${fmt(used, 2)}`)
        .join(', ')}`,
    );
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    const keys = await redis.keys(`*${prefix}*`);
    for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
  }
}

async function main(): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    for (let i = 0; i < rounds; i++) await round(redis, i);
  } finally {
    redis.disconnect();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
