import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createDb } from '../db/create-db';
import { ensureDatabase, migrateToLatest, quoteIdent, withMaintenanceClient } from '../db/migrate';
import { loadConfig } from '../src/config';
import { PROCESS_ENV_DEFAULTS } from '../src/lifecycle';

export const DIST_ROOT = path.join(__dirname, '..');

/** The benchmark's database (dropped and made again by the commands that load it) and Redis. */
export const BENCH_DATABASE_URL =
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/energy_bench';
export const BENCH_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Drops the database `url` names, creates it again and migrates it to the latest schema. */
export async function freshDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  await withMaintenanceClient(url, (c) =>
    c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
  );
  await ensureDatabase(url);
  const migrator = createDb(loadConfig({ DATABASE_URL: url }));
  await migrateToLatest(migrator);
  await migrator.destroy();
}

export interface Proc {
  child: ChildProcess;
  name: string;
  stop(): Promise<void>;
  peakRssMb(): number;
}

/** Starts a compiled entry point (relative to dist/) with the given environment and node flags. */
export function startNode(
  name: string,
  entry: string,
  args: string[],
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Proc {
  const child = spawn(process.execPath, [...nodeArgs, path.join(DIST_ROOT, entry), ...args], {
    // As npm start does: the engine's defaults unless the environment sets them.
    env: { ...PROCESS_ENV_DEFAULTS, ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  child.on('exit', (code) => {
    if (code && code !== 0) console.error(`${name} exited with ${code}:\n${stderr}`);
  });
  let peak = 0;
  const peakRssMb = () => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb / 1024);
    } catch {
      // exited: keep the last peak read
    }
    return peak;
  };
  return {
    child,
    name,
    peakRssMb,
    stop: () =>
      new Promise<void>((resolve) => {
        peakRssMb();
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export async function waitForHttp(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

/** The environment of the engine processes a benchmark starts (quiet logs, no auth). */
export function engineEnv(
  {
    databaseUrl,
    redisUrl,
    prefix,
    apiPort,
    flusherPort,
  }: {
    databaseUrl: string;
    redisUrl: string;
    prefix: string;
    apiPort: number;
    flusherPort: number;
  },
  overrides: Record<string, string> = {},
): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    PORT: String(apiPort),
    FLUSHER_PORT: String(flusherPort),
    LOG_LEVEL: 'warn',
    AUTH: 'off',
    ANALYTICS_CACHE_TTL_S: '30',
    ...overrides,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const fmt = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined || !Number.isFinite(n)
    ? 'n/a'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The sum of a Prometheus counter's series whose labels include `labels` (e.g. `result="miss"`). */
export function counterTotal(text: string, name: string, labels = ''): number {
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm')))
    if (m[1].includes(labels)) total += Number(m[2]);
  return total;
}

/**
 * Quantiles of a Prometheus histogram's growth between two scrapes (linear inside a bucket), of
 * the series whose labels include `labels` (e.g. `action="MeterValues"`), else of every series.
 */
export function histogramDelta(
  before: string,
  after: string,
  name: string,
  labels = '',
): { count: number; p50Ms: number | null; p99Ms: number | null } {
  const buckets = (text: string) => {
    const map = new Map<number, number>();
    for (const m of text.matchAll(
      new RegExp(`^${name}_bucket\\{([^}]*)le="([^"]+)"([^}]*)\\} (\\S+)$`, 'gm'),
    )) {
      if (!`${m[1]}${m[3]}`.includes(labels)) continue;
      const le = m[2] === '+Inf' ? Infinity : Number(m[2]);
      map.set(le, (map.get(le) ?? 0) + Number(m[4]));
    }
    return map;
  };
  const a = buckets(before);
  const b = buckets(after);
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const counts = bounds.map((le) => (b.get(le) ?? 0) - (a.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  const quantile = (q: number): number | null => {
    if (total === 0) return null;
    const rank = q * total;
    for (let i = 0; i < bounds.length; i++) {
      if (counts[i] >= rank) {
        const lower = i === 0 ? 0 : bounds[i - 1];
        const below = i === 0 ? 0 : counts[i - 1];
        const upper = Number.isFinite(bounds[i]) ? bounds[i] : lower;
        const share = counts[i] === below ? 1 : (rank - below) / (counts[i] - below);
        return (lower + (upper - lower) * share) * 1000;
      }
    }
    return null;
  };
  return { count: total, p50Ms: quantile(0.5), p99Ms: quantile(0.99) };
}

/** CPU seconds (user + system) a process has used so far, from /proc; null elsewhere. */
export function cpuSeconds(pid: number | undefined): number | null {
  try {
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const ticksPerSecond = 100; // USER_HZ on Linux
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** The ids of the processes running `command` (e.g. every PostgreSQL backend), or none. */
function processesNamed(command: string): number[] {
  try {
    return execFileSync('pgrep', ['-x', command], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches, and is missing off Linux
  }
}

/** Where a phase's CPU goes: each named party's processes, as pids or a command name. */
export type CpuParties = Record<
  string,
  { pids: () => (number | undefined)[] } | { command: string }
>;

/**
 * Cores each party used while `work` ran (CPU seconds over wall seconds; null off Linux), and the
 * load generator's own (this process). A process counts while it is seen at the end of the phase,
 * from the start of the phase or from when it started.
 */
export async function measureCores<T>(
  parties: CpuParties,
  work: () => Promise<T>,
): Promise<{ result: T; cores: Record<string, number | null> }> {
  /** Each party's processes, by pid, with the CPU seconds each has used so far. */
  const sample = () =>
    Object.entries(parties).map(([name, party]) => {
      const pids = 'command' in party ? processesNamed(party.command) : party.pids();
      const seconds = new Map<number, number>();
      for (const pid of pids) {
        const s = cpuSeconds(pid);
        if (pid !== undefined && s !== null) seconds.set(pid, s);
      }
      return { name, seconds };
    });
  const before = sample();
  const generatorBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const result = await work();
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const generator = process.cpuUsage(generatorBefore);
  const cores: Record<string, number | null> = {};
  sample().forEach(({ name, seconds }, i) => {
    let used = 0;
    for (const [pid, s] of seconds) used += s - (before[i].seconds.get(pid) ?? 0);
    cores[name] = process.platform === 'linux' ? used / wallS : null;
  });
  cores.generator = (generator.user + generator.system) / 1e6 / wallS;
  return { result, cores };
}
