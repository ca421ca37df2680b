import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitForHttp } from '../../bench/bench-helpers';
import type { Config } from '../../src/config';
import { envFor, startProcess, type EngineProcess } from '../helpers/processes';
import { ensureDatabase, migrateToLatest } from '../../db/migrate';
import { createDb } from '../../db/create-db';
import { createTestConfig, openTestContext, type TestContext } from '../helpers/test-env';
import { OwnRedis } from '../helpers/own-redis';

export { OwnRedis };

const execFileAsync = promisify(execFile);

/**
 * Where initdb and pg_ctl live: Debian keeps them in /usr/lib/postgresql/<version>/bin, off PATH
 * (the newest version wins); elsewhere `pg_config --bindir`, else PATH.
 */
function postgresBinDir(): string {
  const debian = '/usr/lib/postgresql';
  const versions = existsSync(debian)
    ? readdirSync(debian)
        .filter((v) => existsSync(path.join(debian, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length > 0) return path.join(debian, versions[0], 'bin');
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(path.join(dir, 'initdb'))) return dir;
  } catch {
    // no pg_config: fall back to PATH
  }
  return '';
}

/**
 * A PostgreSQL cluster of the test's own (initdb, then pg_ctl on its own port and socket directory),
 * so a scenario can stop and restart it without touching the machine's server. initdb refuses to
 * run as root, so as root the cluster belongs to the `postgres` user and its tools run as that user.
 */
export class OwnPostgres {
  private readonly data: string;
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly bin: string,
  ) {
    this.data = path.join(dir, 'data');
  }

  static async create(): Promise<OwnPostgres> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fault-pg-'));
    const pg = new OwnPostgres(await freePort(), dir, postgresBinDir());
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
      chownSync(dir, uid, gid);
    }
    await pg.tool('initdb', ['-D', pg.data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8']);
    await pg.start();
    return pg;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/energy_faults`;
  }

  async start(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      '-c listen_addresses=127.0.0.1',
      // The scenario stops the server, not the machine: the OS cache keeps what fsync would.
      '-c fsync=off',
    ].join(' ');
    await this.tool('pg_ctl', [
      '-D',
      this.data,
      '-l',
      path.join(this.dir, 'log'),
      '-o',
      options,
      '-w',
      '-t',
      '30',
      'start',
    ]);
  }

  /** `immediate` is a crash as far as clients see: every connection drops at once. */
  async stop(mode: 'fast' | 'immediate' = 'immediate'): Promise<void> {
    await this.tool('pg_ctl', ['-D', this.data, '-m', mode, '-w', 'stop']);
  }

  async destroy(): Promise<void> {
    await this.stop('fast').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async tool(name: string, args: string[]): Promise<void> {
    const file = this.bin ? path.join(this.bin, name) : name;
    const [command, commandArgs] =
      process.getuid?.() === 0
        ? ['runuser', ['-u', 'postgres', '--', file, ...args]]
        : [file, args];
    try {
      await execFileAsync(command, commandArgs, { cwd: this.dir, timeout: 60_000 });
    } catch (err) {
      throw new Error(
        `${name} failed (the PostgreSQL scenario needs the server binaries, e.g. Debian's postgresql): ${(err as Error).message}`,
      );
    }
  }
}

/** A test context whose database is on the scenario's own cluster, migrated to latest. */
export async function openOwnDatabaseContext(
  pg: OwnPostgres,
  redisUrl: string,
): Promise<TestContext> {
  await ensureDatabase(pg.url);
  const config = createTestConfig({ DATABASE_URL: pg.url, REDIS_URL: redisUrl });
  const migrator = createDb(config, 'energy-test-migrate');
  try {
    await migrateToLatest(migrator);
  } finally {
    await migrator.destroy();
  }
  return openTestContext(config, () => pg.destroy());
}

/** API and flusher processes pointed at a context's database and a Redis URL. */
export class EngineProcesses {
  readonly flushers: EngineProcess[] = [];
  api: EngineProcess | null = null;
  constructor(
    readonly env: Record<string, string>,
    readonly apiPort: number,
  ) {}

  static async create(
    ctx: TestContext,
    redisUrl: string,
    extra: Record<string, string> = {},
  ): Promise<EngineProcesses> {
    const apiPort = await freePort();
    const config: Config = { ...ctx.config, redisUrl };
    return new EngineProcesses(
      envFor(config, { PORT: String(apiPort), FLUSHER_LOCK_MS: '2000', ...extra }),
      apiPort,
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  async startApi(): Promise<void> {
    this.api = startProcess('src/server.ts', this.env);
    await waitForHttp(`${this.url}/health/ready`, 30_000);
  }

  startFlusher(): EngineProcess {
    const flusher = startProcess('workers/flusher.ts', this.env);
    this.flushers.push(flusher);
    return flusher;
  }

  async stopAll(): Promise<void> {
    const all = [...this.flushers, ...(this.api ? [this.api] : [])];
    for (const p of all)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    await Promise.all(all.map((p) => p.exited));
  }
}

/**
 * Continuous load with a ledger: batches of new readings, each reading recorded only when the
 * engine acknowledged it with 2xx. 503s and refused connections are retried later, not recorded.
 */
export class LoadWithLedger {
  readonly acknowledged = new Map<string, number>(); // "M-3@ts" -> kwh
  /** Error codes of refused requests (e.g. redis_memory_high), counted. */
  readonly refusals = new Map<string, number>();
  sent = 0;
  refused = 0;
  /** The slowest answer (ms) and when it came (epoch ms), and 503s without a Retry-After. */
  slowestMs = 0;
  slowestAt = 0;
  refusedWithoutRetryAfter = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private counter = 0;

  constructor(
    private readonly url: () => string,
    private readonly devices = 50,
    private readonly batch = 50,
    /** Pause after each acknowledged request, for a steady rate rather than as fast as possible. */
    private readonly pauseMs = 0,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private timed(started: number): void {
    const ms = Date.now() - started;
    if (ms > this.slowestMs) [this.slowestMs, this.slowestAt] = [ms, Date.now()];
  }

  private nextBatch() {
    const base = Date.parse('2024-05-01T00:00:00Z');
    return Array.from({ length: this.batch }, () => {
      const n = this.counter++;
      return {
        meterId: `F-${n % this.devices}`,
        kwhConsumedAc: (n % 97) / 10,
        voltage: 230,
        timestamp: new Date(base + n * 1000).toISOString(),
      };
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      const readings = this.nextBatch();
      const started = Date.now();
      try {
        const res = await fetch(`${this.url()}/v1/telemetry/ingest`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(readings),
          signal: AbortSignal.timeout(5000),
        });
        this.sent += readings.length;
        this.timed(started);
        if (res.status === 503 && !res.headers.get('retry-after')) this.refusedWithoutRetryAfter++;
        if (res.status === 202) {
          for (const r of readings)
            this.acknowledged.set(`${r.meterId}@${Date.parse(r.timestamp)}`, r.kwhConsumedAc);
          if (this.pauseMs > 0) await new Promise((r) => setTimeout(r, this.pauseMs));
        } else {
          this.refused += readings.length;
          const body = (await res.json().catch(() => ({}))) as { error?: string };
          const code = `${res.status} ${body.error ?? ''}`.trim();
          this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, 50));
        }
        if (!res.bodyUsed) await res.arrayBuffer().catch(() => undefined);
      } catch {
        // Refused connections, and answers cut at the 5 s timeout (a hang).
        this.timed(started);
        this.refused += readings.length;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/** What a load acknowledged: "device@ms" -> the kWh it sent. */
export interface Ledger {
  readonly acknowledged: ReadonlyMap<string, number>;
}

/**
 * Every acknowledged reading is in history exactly once with the value sent, and status holds the
 * newest per device; `devices` is a LIKE pattern for the load's meter ids.
 */
export async function verifyLedger(
  ctx: TestContext,
  ledger: Ledger,
  devices = 'F-%',
): Promise<{ acknowledged: number; stored: number }> {
  const rows = await ctx.db.raw(
    `SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint AS ms, kwh_consumed_ac AS kwh,
            count(*) OVER (PARTITION BY device_id, ts) AS copies
     FROM telemetry_history WHERE device_type = 'meter' AND device_id LIKE ?`,
    [devices],
  );
  const stored = new Map<string, number>();
  for (const row of rows.rows as { device_id: string; ms: number; kwh: number; copies: number }[]) {
    if (Number(row.copies) !== 1)
      throw new Error(`${row.device_id}@${row.ms} is stored ${row.copies} times`);
    stored.set(`${row.device_id}@${Number(row.ms)}`, row.kwh);
  }
  const missing = [...ledger.acknowledged.keys()].filter((k) => !stored.has(k));
  if (missing.length > 0)
    throw new Error(
      `${missing.length} acknowledged readings are missing, e.g. ${missing.slice(0, 3).join(', ')}`,
    );
  const altered = [...ledger.acknowledged].filter(
    ([k, kwh]) => Math.abs((stored.get(k) ?? NaN) - kwh) > 1e-9,
  );
  if (altered.length > 0)
    throw new Error(
      `${altered.length} readings are stored with another value, e.g. ${altered[0][0]}`,
    );
  const newest = await ctx.db.raw(
    `SELECT s.meter_id FROM meter_status s
     JOIN (SELECT device_id, max(ts) AS ts FROM telemetry_history WHERE device_type = 'meter' GROUP BY device_id) h
       ON h.device_id = s.meter_id WHERE s.ts <> h.ts AND s.meter_id LIKE ?`,
    [devices],
  );
  if (newest.rows.length > 0)
    throw new Error(`status is not on the newest reading for ${newest.rows.length} meters`);
  return { acknowledged: ledger.acknowledged.size, stored: stored.size };
}
