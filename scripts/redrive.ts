/**
 * `npm run redrive [-- --dry-run]`: retries failed flush jobs and re-enqueues dead-lettered readings.
 */
import { loadConfig, warnOfMisspelledSettings } from '../src/config';
import { exitOnStartupFailure } from '../src/lifecycle';
import { createLogger, startingLogLevel } from '../src/logger';
import { openShard, shardsInUse } from '../src/queue/ingest-queue';
import { createRedis, waitForRedis } from '../src/redis';
import { assertRedisReachable } from '../src/startup-checks';
import { createRedisKeys } from '../src/redis-keys';
import { redrive } from '../workers/redrive';
import { commandLineOrExit, parseCommandLine } from './cli';

const command = {
  usage: 'npm run redrive [-- --dry-run]',
  options: {
    'dry-run': { type: 'boolean', help: 'count the failed jobs and dead letters, change nothing' },
  },
} as const;

async function main(): Promise<void> {
  const logger = createLogger({ level: startingLogLevel(process.env), name: 'redrive' });
  const dryRun = commandLineOrExit(
    () => parseCommandLine(process.argv.slice(2), command).values['dry-run'] ?? false,
  );
  try {
    warnOfMisspelledSettings(process.env, logger);
    const config = loadConfig(process.env);
    await assertRedisReachable(config); // names Redis, its URL and what to do
    const redis = createRedis(config, 'command');
    await waitForRedis(redis, 3000);
    const keys = createRedisKeys(config.redisPrefix);
    const shards = (await shardsInUse(redis, keys, config.queueShards)).map((k) =>
      openShard(redis, k, config),
    );
    const report = await redrive(
      {
        redis,
        shards,
        target: shards[0],
        deadLetters: [keys.deadLetters, keys.legacyDeadLetters],
        logger,
      },
      { dryRun },
    );
    logger.info({ ...report, dryRun }, dryRun ? 'would re-drive (dry run)' : 're-driven');
    console.log(
      `${dryRun ? 'would retry' : 'retried'} ${report.failedJobsRetried} failed job(s); ` +
        `${dryRun ? 'would re-enqueue' : 're-enqueued'} ${report.deadLettersRequeued} dead-lettered reading(s)` +
        (report.deadLettersUnreadable
          ? `; dropped ${report.deadLettersUnreadable} unreadable entries`
          : ''),
    );
    await Promise.all(shards.map((s) => s.queue.close()));
    await redis.quit();
  } catch (err) {
    exitOnStartupFailure(err, logger);
  }
}

void main();
