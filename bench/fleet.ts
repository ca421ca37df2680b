/**
 * `npm run bench:fleet [-- --vehicles 10000]`: the fleet report at fleet scale. Loads a day of
 * time-ordered readings (every vehicle and its meter each minute: 28.8 million rows at 10,000
 * vehicles) into a fresh `energy_fleet_bench` database with SQL, builds the rollups, then times
 * the uncached fleet statement for an hour-aligned and an unaligned 24-hour window. `--reuse`
 * times an already loaded database again (migrated first, so the statement of this checkout runs);
 * `--explain` prints each window's plan (EXPLAIN ANALYZE, BUFFERS) after its timings;
 * `--current-hour` times each window as if it ended now: every device's quarter hours that the
 * roller has not rolled up yet at the window's end (the quarter in progress, and one that closed
 * less than its delay before) are marked in rollup_pending while timing, and unmarked after.
 */
import { createDb, type Knex } from '../db/create-db';
import { ensureDatabase, migrateToLatest, quoteIdent, withMaintenanceClient } from '../db/migrate';
import { EnergyReportStore } from '../src/analytics/energy-report-store';
import { RollupStore } from '../src/stores/rollup-store';
import { loadConfig } from '../src/config';
import { commandLineOrExit, numberOption, parseCommandLine } from '../scripts/cli';
import { fmt } from './bench-helpers';

const options = commandLineOrExit(() => {
  const { values } = parseCommandLine(process.argv.slice(2), {
    usage: 'npm run bench:fleet [-- --vehicles N | --reuse] [--explain] [--current-hour]',
    options: {
      vehicles: {
        type: 'string',
        value: 'N',
        default: '10000',
        help: 'vehicles (and meters) loaded',
      },
      reuse: { type: 'boolean', help: 'time the already loaded database again, load nothing' },
      explain: { type: 'boolean', help: "print each window's plan with its timings and buffers" },
      'current-hour': {
        type: 'boolean',
        help: 'time each window as if it ended now: its last quarter hour marked, as the roller leaves it',
      },
    },
  });
  return {
    vehicles: numberOption('--vehicles', values.vehicles, { min: 1, integer: true }),
    reuse: values.reuse ?? false,
    explain: values.explain ?? false,
    currentHour: values['current-hour'] ?? false,
  };
});

async function main(): Promise<void> {
  const { vehicles } = options;
  const url =
    process.env.BENCH_FLEET_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/energy_fleet_bench';
  if (options.reuse) {
    const db = createDb(loadConfig({ DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: '3600000' }));
    const applied = await migrateToLatest(db);
    if (applied.length > 0) console.log(`migrated: ${applied.join(', ')}`);
    await db.raw('VACUUM ANALYZE');
    await db.destroy();
    return timeAll(url);
  }
  const name = new URL(url).pathname.slice(1);
  await withMaintenanceClient(url, (c) =>
    c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
  );
  await ensureDatabase(url);
  const db = createDb(loadConfig({ DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: '3600000' }));
  await migrateToLatest(db);

  const end = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000;
  const start = end - 86_400_000;
  await db.raw('SELECT ensure_history_partitions(?::date, ?::date, true)', [
    new Date(start).toISOString(),
    new Date(end).toISOString(),
  ]);
  const loadStarted = Date.now();
  for (let hour = 0; hour < 24; hour++) {
    const from = new Date(start + hour * 3_600_000).toISOString();
    // Faulty chargers: every 20th vehicle's charger delivers 75%, the rest 92%.
    await db.raw(
      `INSERT INTO telemetry_history (device_type, device_id, ts, kwh_consumed_ac, voltage, soc, kwh_delivered_dc, battery_temp, received_at)
       SELECT t.type, t.prefix || d, ?::timestamptz + m * interval '1 minute',
              CASE WHEN t.type = 'meter' THEN 0.2 END, CASE WHEN t.type = 'meter' THEN 230 END,
              CASE WHEN t.type = 'vehicle' THEN 50 END,
              CASE WHEN t.type = 'vehicle' THEN CASE WHEN d % 20 = 0 THEN 0.15 ELSE 0.184 END END,
              CASE WHEN t.type = 'vehicle' THEN 30 END, now()
       FROM generate_series(0, 59) m, generate_series(1, ?) d,
            (VALUES ('meter', 'FM-'), ('vehicle', 'FV-')) AS t(type, prefix)
       -- Minute by minute, as the flusher writes readings arriving live: BRIN ranges stay narrow.
       ORDER BY m, d, t.type`,
      [from, vehicles],
    );
    process.stdout.write(`\rloaded ${hour + 1}/24 hours`);
  }
  // An hour per statement keeps each sort small (as the migration that added quarter hours).
  const rollups = new RollupStore(db);
  for (let hour = start; hour < end; hour += 3_600_000) {
    await rollups.rebuild(new Date(hour), new Date(hour + 3_600_000));
  }
  await db.raw(
    `INSERT INTO vehicle_meter_map (vehicle_id, meter_id, valid_from)
     SELECT 'FV-' || d, 'FM-' || d, ?::timestamptz - interval '1 day' FROM generate_series(1, ?) d`,
    [new Date(start).toISOString(), vehicles],
  );
  await db.raw('VACUUM ANALYZE');
  const rows = Number((await db.raw('SELECT count(*) AS n FROM telemetry_history')).rows[0].n);
  console.log(`\nloaded ${fmt(rows)} rows in ${fmt((Date.now() - loadStarted) / 1000)} s`);

  await db.destroy();
  await timeAll(url);
}

/** Times the uncached fleet statement on the loaded database (`--reuse` skips the load). */
async function timeAll(url: string): Promise<void> {
  const db = createDb(loadConfig({ DATABASE_URL: url, DB_STATEMENT_TIMEOUT_MS: '3600000' }));
  const bounds = (
    await db.raw(
      `SELECT min(hour) AS start, max(hour) + interval '1 hour' AS "end" FROM telemetry_hourly`,
    )
  ).rows[0];
  const start = new Date(bounds.start).getTime();
  const end = new Date(bounds.end).getTime();
  const store = new EnergyReportStore(db);
  /** Marks what the roller (workers/rollup-roller.ts) leaves marked at `to`; undone by unmark. */
  const mark = async (to: number) => {
    await db.raw(
      `INSERT INTO rollup_pending (device_type, device_id, quarter)
       SELECT device_type, device_id, quarter FROM telemetry_15min
       -- The quarter in progress, and one closed less than the roller's 2-minute delay before.
       WHERE quarter > ?::timestamptz - interval '17 minutes' AND quarter < ?`,
      [new Date(to), new Date(to)],
    );
    await db.raw('ANALYZE rollup_pending');
  };
  const unmark = async () => {
    await db('rollup_pending').del();
    await db.raw('ANALYZE rollup_pending');
  };
  const time = async (label: string, from: number, to: number) => {
    if (options.currentHour) await mark(to);
    try {
      const runs: number[] = [];
      let flagged = 0;
      for (let i = 0; i < 5; i++) {
        const started = process.hrtime.bigint();
        const result = await store.fleet(new Date(from), new Date(to), 'interval');
        runs.push(Number(process.hrtime.bigint() - started) / 1e6);
        flagged = result.filter((r) => r.ac && r.dc !== null && r.dc / r.ac < 0.85).length;
      }
      runs.sort((a, b) => a - b);
      console.log(
        `${label}: median ${fmt(runs[2])} ms, best ${fmt(runs[0])} ms, worst ${fmt(runs[4])} ms (${flagged} flagged)`,
      );
      if (options.explain) await explain(db, store, from, to);
    } finally {
      if (options.currentHour) await unmark();
    }
  };
  const ending = options.currentHour ? ', ending now' : '';
  try {
    await time(`fleet report, 24 h aligned to hours${ending}`, start, end);
    await time(
      `fleet report, 24 h unaligned (partial edge hours)${ending}`,
      start + 17 * 60_000,
      end - 23 * 60_000,
    );
  } finally {
    await db.destroy();
  }
}

/**
 * Prints the fleet statement's plan: its SQL is caught on its way out (numbered placeholders, in
 * order, turned back into knex's `?`), then explained with the same settings.
 */
async function explain(db: Knex, store: EnergyReportStore, from: number, to: number) {
  let statement: { sql: string; bindings: unknown[] } | null = null;
  const catchFleet = (q: { sql: string; bindings?: unknown[] }) => {
    if (q.sql.length > (statement?.sql.length ?? 0)) {
      statement = { sql: q.sql.replace(/\$\d+\b/g, '?'), bindings: q.bindings ?? [] };
    }
  };
  db.on('query', catchFleet);
  await store.fleet(new Date(from), new Date(to), 'interval');
  db.off('query', catchFleet);
  const { sql, bindings } = statement as unknown as { sql: string; bindings: Knex.RawBinding[] };
  const plan = await db.transaction(async (trx) => {
    await trx.raw(`SET LOCAL work_mem = '64MB'`);
    await trx.raw('SET LOCAL jit = off');
    await trx.raw('SET LOCAL enable_mergejoin = off');
    return (await trx.raw(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, bindings)).rows as {
      'QUERY PLAN': string;
    }[];
  });
  console.log(plan.map((r) => r['QUERY PLAN']).join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
