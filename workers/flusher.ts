/** Entry point of the flusher process: `npm run start:flusher`. */
import type { AddressInfo } from 'node:net';
import { createDb, createGenericPlanDb } from '../db/create-db';
import { FLUSHER_BACKGROUND_CONNECTIONS } from '../db/knex-config';
import { loadConfig, warnOfMisspelledSettings } from '../src/config';
import {
  exitOnStartupFailure,
  limitHeapGrowth,
  listen,
  lowerCpuPriority,
  refuseArguments,
  stopOnSignals,
} from '../src/lifecycle';
import { createLogger } from '../src/logger';
import {
  createRedis,
  REDIS_START_WAIT_MS,
  surviveIoredisStrayRejections,
  waitForRedis,
} from '../src/redis';
import { warnIfRedisUnsafe } from '../src/redis-durability';
import { assertRedisReachable, assertSchemaMigrated, postgresProblem } from '../src/startup-checks';
import { createFlusher } from './flusher-service';

const LAG_LOG_INTERVAL_MS = 10_000;

async function main(): Promise<void> {
  refuseArguments(
    process.argv.slice(2),
    "The engine's flusher: writes accepted readings to PostgreSQL, rolls up hours, builds sessions.",
  );
  let logger = createLogger({ level: 'info', name: 'flusher' });
  try {
    const config = loadConfig(process.env);
    limitHeapGrowth(config.heapGrowingPercent);
    logger = createLogger({ level: config.logLevel, name: 'flusher' });
    surviveIoredisStrayRejections(logger);
    warnOfMisspelledSettings(process.env, logger);
    lowerCpuPriority(config.flusherNice, logger);
    // Readings wait in Redis: without PostgreSQL the flusher starts paused, and writes once it is back.
    await assertRedisReachable(config);

    const db = createDb(
      {
        ...config,
        dbPoolMax: Math.max(
          config.dbPoolMax,
          config.flusherConcurrency + FLUSHER_BACKGROUND_CONNECTIONS,
        ),
      },
      'energy-flusher',
      logger,
    );
    // PostgreSQL down: the flusher starts paused; up but not migrated: it cannot work at all.
    if (!(await postgresProblem(config.databaseUrl))) {
      await assertSchemaMigrated(db, config.databaseUrl);
    }
    // The session builder's statements, planned once per connection (see SessionStore).
    const genericDb = createGenericPlanDb(config, 'energy-flusher-generic', logger);
    const redis = createRedis(config, 'command');
    const workerConnection = createRedis(config, 'blocking');
    await waitForRedis(redis, REDIS_START_WAIT_MS);
    const flusher = createFlusher({
      config,
      db,
      genericDb,
      redis,
      workerConnection,
      logger,
    });

    await warnIfRedisUnsafe(redis, logger);
    // Its port first: a flusher that cannot serve health and metrics exits before taking a job.
    const server = await listen(flusher.healthApp, config.flusherPort, 'FLUSHER_PORT');
    await flusher.start();

    // The port bound: FLUSHER_PORT=0 takes a free one.
    const { port } = server.address() as AddressInfo;
    logger.info({ port, concurrency: config.flusherConcurrency }, 'flusher running');

    const lagTimer = setInterval(() => {
      flusher
        .oldestUnflushedAcceptedAt()
        .then((acceptedAt) => {
          if (acceptedAt !== null)
            logger.info({ oldestUnflushedAgeMs: Date.now() - acceptedAt }, 'flush lag');
        })
        .catch(() => undefined);
    }, LAG_LOG_INTERVAL_MS);
    lagTimer.unref();

    stopOnSignals(
      async () => {
        clearInterval(lagTimer);
        // Stop listening first: a flusher started in this one's place may take the port while
        // this one finishes its active jobs (they commit or are retried later); connections
        // already open are answered until then. Then close connections.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        await flusher.close();
        server.closeAllConnections();
        await closed;
        await workerConnection.quit().catch(() => workerConnection.disconnect());
        await redis.quit().catch(() => redis.disconnect());
        await db.destroy();
        await genericDb?.destroy();
      },
      logger,
      config.shutdownTimeoutMs,
    );
  } catch (err) {
    exitOnStartupFailure(err, logger);
  }
}

void main();
