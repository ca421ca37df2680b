/** `npm run migrate`: creates the database in DATABASE_URL if needed, then migrates to latest. */
import { createDb } from '../db/create-db';
import { ensureDatabase, migrateToLatest } from '../db/migrate';
import { loadConfig, redactUrl, warnOfMisspelledSettings, type Config } from '../src/config';
import { exitOnStartupFailure } from '../src/lifecycle';
import { createLogger, type Logger, startingLogLevel } from '../src/logger';
import { assertPostgresReachable } from '../src/startup-checks';
import { commandLineOrExit, parseCommandLine } from './cli';

/** A migration may backfill a big database (e.g. rollups from history): hours, not seconds. */
const MIGRATION_STATEMENT_TIMEOUT_MS = 6 * 3_600_000;

export async function runMigrations(config: Config, logger: Logger): Promise<void> {
  await assertPostgresReachable(config.databaseUrl);
  if (await ensureDatabase(config.databaseUrl)) {
    logger.info({ database: redactUrl(config.databaseUrl) }, 'database created');
  }
  const db = createDb(
    { ...config, dbStatementTimeoutMs: MIGRATION_STATEMENT_TIMEOUT_MS },
    'energy-migrate',
    logger,
  );
  try {
    const applied = await migrateToLatest(db, (ofLaterReleases) =>
      logger.warn(
        { ofLaterReleases },
        `the schema is newer than this release (a rollback): ${ofLaterReleases.length} migration(s) of a later release applied, up to ${ofLaterReleases[ofLaterReleases.length - 1]}; this release runs on it, as migrations only add`,
      ),
    );
    logger.info({ applied }, applied.length ? 'migrations applied' : 'schema is up to date');
  } finally {
    await db.destroy();
  }
}

const command = {
  usage: 'npm run migrate',
  summary:
    'Creates the database DATABASE_URL names if needed, then migrates it to the latest schema (settings from the environment: see the README, Configuration).',
  options: {},
} as const;

if (require.main === module) {
  commandLineOrExit(() => parseCommandLine(process.argv.slice(2), command));
  const logger = createLogger({ level: startingLogLevel(process.env), name: 'migrate' });
  Promise.resolve()
    .then(() => {
      warnOfMisspelledSettings(process.env, logger);
      return runMigrations(loadConfig(process.env), logger);
    })
    .catch((err: unknown) => exitOnStartupFailure(err, logger));
}
