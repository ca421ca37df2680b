/**
 * `npm run rollups:rebuild -- --from 2024-03-01T00:00:00Z --to 2024-03-08T00:00:00Z`
 * Recomputes the hourly rollups of [from, to) from raw history, one day per transaction: for
 * repairs and for history loaded from outside the engine (e.g. a bulk COPY).
 */
import { createDb } from '../db/create-db';
import { assertPostgresReachable, assertSchemaMigrated } from '../src/startup-checks';
import { loadConfig, warnOfMisspelledSettings } from '../src/config';
import { exitOnStartupFailure } from '../src/lifecycle';
import { createLogger, startingLogLevel } from '../src/logger';
import { RollupStore } from '../src/stores/rollup-store';
import { MIN_TIMESTAMP_MS } from '../src/telemetry/validation';
import { compile, createAjv } from '../src/schema/validator';
import { instantMs, REAL_INSTANT_RULE, Timestamp, TIMESTAMP_RULE } from '../src/schema/primitives';
import { commandLineOrExit, parseCommandLine, UsageError } from './cli';
import { DAY_MS, HOUR_MS } from '../src/time-units';

const command = {
  usage: 'npm run rollups:rebuild -- --from DATE-TIME --to DATE-TIME',
  options: {
    from: {
      type: 'string',
      value: 'DATE-TIME',
      help: 'start of the range, e.g. 2024-03-01T00:00:00Z',
    },
    to: { type: 'string', value: 'DATE-TIME', help: 'end of the range (excluded)' },
  },
} as const;

const isTimestamp = compile(createAjv(), Timestamp);

export function parseRange(argv: string[], now = Date.now()): { from: Date; to: Date } {
  const { values } = parseCommandLine(argv, command);
  const value = (name: 'from' | 'to') => {
    const text = values[name];
    if (!text) throw new UsageError(`--${name} is required\nusage: ${command.usage}`);
    // As a reading's timestamp or a report's window is read: the same format, the same instant.
    if (!isTimestamp(text)) throw new UsageError(`--${name} ${TIMESTAMP_RULE}: ${text}`);
    const ms = instantMs(text);
    if (!Number.isFinite(ms)) throw new UsageError(`--${name} ${REAL_INSTANT_RULE}: ${text}`);
    return ms;
  };
  const from = value('from');
  const to = value('to');
  if (from >= to) {
    throw new UsageError(
      `--from (${values.from}) must be earlier than --to (${values.to}): the range is [from, to)`,
    );
  }
  // No reading is older, or more than a clock skew ahead: a wider range is days of empty work.
  if (from < MIN_TIMESTAMP_MS) {
    throw new UsageError(`--from must not be before ${new Date(MIN_TIMESTAMP_MS).toISOString()}`);
  }
  if (to > now + DAY_MS) throw new UsageError('--to must be at most a day from now');
  // Rollups are whole hours: widen to the hours that contain the range's ends.
  return {
    from: new Date(Math.floor(from / HOUR_MS) * HOUR_MS),
    to: new Date(Math.ceil(to / HOUR_MS) * HOUR_MS),
  };
}

async function main(): Promise<void> {
  const logger = createLogger({ level: startingLogLevel(process.env), name: 'rollups-rebuild' });
  const { from, to } = commandLineOrExit(() => parseRange(process.argv.slice(2)));
  try {
    warnOfMisspelledSettings(process.env, logger);
    const config = loadConfig(process.env);
    await assertPostgresReachable(config.databaseUrl); // names PostgreSQL, its URL and what to do
    const db = createDb(config, 'energy-rollups-rebuild', logger);
    await assertSchemaMigrated(db, config.databaseUrl);
    const rollups = new RollupStore(db);
    let rows = 0;
    for (let start = from.getTime(); start < to.getTime(); start += DAY_MS) {
      const end = new Date(Math.min(start + DAY_MS, to.getTime()));
      const day = await rollups.rebuild(new Date(start), end);
      rows += day;
      logger.info(
        { from: new Date(start).toISOString(), to: end.toISOString(), rows: day },
        'rebuilt',
      );
    }
    logger.info(
      { from: from.toISOString(), to: to.toISOString(), rows },
      'rollups rebuilt from history',
    );
    await db.destroy();
  } catch (err) {
    exitOnStartupFailure(err, logger);
  }
}

if (require.main === module) void main();
