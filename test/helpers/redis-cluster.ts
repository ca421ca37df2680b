/**
 * Test harness: a real, throw-away Redis Cluster made of `redis-server --cluster-enabled yes`
 * processes on free loopback ports, for integration and fault tests (failover, whole-cluster
 * restart from AOF).
 *
 * Dependencies: node built-ins and ioredis only. Needs `redis-server` and `redis-cli` (>= 7.0) on
 * PATH, or pass `redisServer` / `redisCli`.
 *
 *   const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
 *   try {
 *     const client = cluster.connect();              // ioredis Cluster, closed by stop()
 *     const master = await cluster.masterForKey('{energy:q0}');
 *     await cluster.kill(master.port);               // SIGKILL
 *     const { newMaster } = await cluster.waitForFailover(master.port);
 *     await cluster.restart(master.port);            // rejoins as a replica of newMaster
 *     await cluster.restartAll();                    // SIGKILL everything, restart from AOF
 *   } finally {
 *     await cluster.stop();                          // kills every process, removes the dirs
 *   }
 *
 * No leaked redis-server processes: every pid is also handed to a small detached watchdog
 * process that SIGKILLs them when this process goes away without calling stop() (crash, SIGKILL,
 * jest worker torn down), and a process 'exit' hook kills them on a normal exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Redis, { Cluster, type ClusterOptions } from 'ioredis';

export const CLUSTER_SLOTS = 16384;
const HOST = '127.0.0.1';

export type NodeRole = 'master' | 'replica' | 'unknown';

export interface StartRedisClusterOptions {
  /** Number of masters (>= 3, redis-cli refuses fewer). Default 3. */
  masters?: number;
  /** Replicas per master. Default 1. */
  replicasPerMaster?: number;
  /** AOF persistence, needed for restartAll() to keep data. Default true. */
  appendonly?: boolean;
  /** Default 'everysec'. A SIGKILLed *process* loses nothing either way (the OS still has the
   * written pages); 'always' only matters for power loss. */
  appendfsync?: 'always' | 'everysec';
  /** cluster-node-timeout. Default 1000 ms (failover in ~2-3 s). */
  nodeTimeoutMs?: number;
  /** Extra redis.conf directives for every node, e.g. { maxmemory: '64mb' }. */
  extraConfig?: Record<string, string | number>;
  /** Overall deadline of start, restart and restartAll. Default 30 000 ms. */
  timeoutMs?: number;
  /** Parent directory for the per-node temp dirs. Default os.tmpdir(). */
  baseDir?: string;
  /** Keep the node dirs on stop() (debugging). Default false. */
  keepDirs?: boolean;
  redisServer?: string;
  redisCli?: string;
}

export interface ClusterNode {
  port: number;
  /** pid of the running process, undefined while the node is down. */
  pid: number | undefined;
  /** Last role seen in CLUSTER NODES (refreshed by start, waitForFailover, restart, restartAll,
   * refreshTopology). */
  role: NodeRole;
  /** Cluster node id (stable across restarts: it lives in nodes.conf). */
  id: string;
  /** For a replica: the port of its master. */
  masterPort: number | undefined;
  alive: boolean;
  dir: string;
  logFile: string;
}

export interface SlotOwner {
  port: number;
  id: string;
  pid: number | undefined;
  /** Replica ports of that master (as seen by the node that answered). */
  replicaPorts: number[];
}

export interface FailoverResult {
  newMaster: SlotOwner;
  /** From the call to kill() of the old master (or the call of waitForFailover if it was not
   * killed through the harness) until cluster_state:ok everywhere with the slots re-owned. */
  elapsedMs: number;
}

export interface RedisClusterHandle {
  /** "127.0.0.1:port" of every node, for `new Cluster(seeds)` or redis-cli. */
  readonly seeds: string[];
  /** Snapshot of every node (copies; call refreshTopology() for live roles). */
  readonly nodes: ClusterNode[];
  /** ioredis-style startup nodes. */
  readonly startupNodes: { host: string; port: number }[];
  /** Master currently owning the key's slot (asks the cluster: CLUSTER NODES). */
  masterForKey(key: string): Promise<SlotOwner>;
  masterForSlot(slot: number): Promise<SlotOwner>;
  /** Re-reads roles from CLUSTER NODES of a live node and returns the snapshot. */
  refreshTopology(): Promise<ClusterNode[]>;
  /** Sends a signal to a node (default SIGKILL) and, for terminating signals, waits until the
   * process has exited. SIGSTOP / SIGCONT pause and resume it (a hung node). */
  kill(port: number, signal?: NodeJS.Signals): Promise<void>;
  /** Restarts a stopped node with the same dir/config (same nodes.conf, AOF). Waits until it
   * answers, sees cluster_state:ok and, if it is a replica, is in sync with its master. */
  restart(port: number): Promise<ClusterNode>;
  /** Waits until another node owns the old master's slots, the old master owns none in any
   * live node's view, every slot is served and cluster_state:ok holds on every live node. */
  waitForFailover(oldMasterPort: number, timeoutMs?: number): Promise<FailoverResult>;
  /** Kills every node (default SIGKILL: a crash; SIGTERM: clean shutdown) and starts them all
   * again on the same ports from their dirs (AOF + nodes.conf). Waits for a healthy cluster. */
  restartAll(opts?: { signal?: 'SIGKILL' | 'SIGTERM'; timeoutMs?: number }): Promise<void>;
  /** Resolves when cluster_state:ok and all slots covered on every live node (and every live
   * replica's link to its master is up). */
  waitForHealthy(timeoutMs?: number): Promise<void>;
  /** A new ioredis Cluster client on this cluster; disconnected by stop(). */
  connect(options?: ClusterOptions): Cluster;
  /** Runs fn with a short-lived direct (non-cluster) connection to one node. */
  withNode<T>(port: number, fn: (redis: Redis) => Promise<T>): Promise<T>;
  /** Last lines of a node's log file (for error messages). */
  logTail(port: number, lines?: number): string;
  /** Kills everything, removes the dirs. Idempotent; never throws. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Key slot (CRC16/XMODEM of the hash tag or the whole key), same as CLUSTER KEYSLOT.

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let j = 0; j < 8; j++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** Hash slot of a key, honouring `{hash tags}` exactly as Redis does. */
export function keySlot(key: string | Buffer): number {
  let buf = typeof key === 'string' ? Buffer.from(key) : key;
  const open = buf.indexOf(0x7b); // {
  if (open !== -1) {
    const close = buf.indexOf(0x7d, open + 1); // }
    if (close > open + 1) buf = buf.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of buf) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc % CLUSTER_SLOTS;
}

// ---------------------------------------------------------------------------------------------
// Small utilities.

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

class TimeoutError extends Error {
  override name = 'RedisClusterTimeoutError';
}

/** Thrown inside a waitUntil check to stop waiting at once. */
class FatalError extends Error {
  override name = 'RedisClusterError';
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes; the error
 * names what was awaited and the last state/err seen. */
async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  describe: () => string = () => '',
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
      lastError = undefined;
    } catch (err) {
      if (err instanceof FatalError) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? ` Last error: ${lastError.message}.` : '';
      const detail = describe();
      throw new TimeoutError(
        `Timed out after ${timeoutMs} ms waiting for ${what}.${cause}${detail ? `\n${detail}` : ''}`,
      );
    }
    await sleep(intervalMs);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function canListenOn(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Whether this machine has the IPv6 loopback, which the nodes then listen on too. */
export const hasIpv6Loopback: Promise<boolean> = canListenOn('::1', 0);

/** Free on every address a node binds (a port taken on ::1 alone makes redis-server abort). */
async function canListen(port: number): Promise<boolean> {
  if (!(await canListenOn(HOST, port))) return false;
  return !(await hasIpv6Loopback) || canListenOn('::1', port);
}

const reservedPorts = new Set<number>();

/** Ports below the kernel's ephemeral range (32768+), so that neither the client port nor the
 * cluster bus port (port + 10000) collides with outgoing sockets, and they stay free across
 * restarts. */
async function allocatePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; attempt < 2000 && ports.length < count; attempt++) {
    const port = 17000 + Math.floor(Math.random() * 5000); // 17000..21999, bus 27000..31999
    if (reservedPorts.has(port) || ports.includes(port)) continue;
    if ((await canListen(port)) && (await canListen(port + 10000))) ports.push(port);
  }
  if (ports.length < count)
    throw new Error(`could not find ${count} free port pairs (port, port+10000)`);
  for (const p of ports) reservedPorts.add(p);
  return ports;
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

interface NodesLine {
  id: string;
  port: number;
  flags: string[];
  masterId: string | undefined;
  configEpoch: number;
  linkState: string;
  slots: [number, number][];
}

/** Parses CLUSTER NODES output. */
export function parseClusterNodes(text: string): NodesLine[] {
  const out: NodesLine[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, addr, flags, master, , , epoch, link, ...slotSpecs] = parts as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      ...string[],
    ];
    const port = Number(addr.split('@')[0]!.split(':').pop());
    const slots: [number, number][] = [];
    for (const spec of slotSpecs) {
      if (spec.startsWith('[')) continue; // slot being migrated/imported
      const [a, b] = spec.split('-');
      slots.push([Number(a), Number(b ?? a)]);
    }
    out.push({
      id,
      port,
      flags: flags.split(','),
      masterId: master === '-' ? undefined : master,
      configEpoch: Number(epoch),
      linkState: link,
      slots,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Leak protection: a detached watchdog kills our redis-servers when this process dies.

let watchdog: ChildProcess | undefined;
const livePids = new Set<number>();
/** Temp roots to remove if this process dies without stop() (unless keepDirs). */
const liveDirs = new Set<string>();
let exitHookInstalled = false;

const WATCHDOG_SOURCE = `
const pids = new Set();
const dirs = new Set();
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    const sp = line.indexOf(' ');
    const op = line.slice(0, sp), arg = line.slice(sp + 1);
    if (op === 'add') pids.add(Number(arg));
    else if (op === 'del') pids.delete(Number(arg));
    else if (op === 'dir+') dirs.add(arg);
    else if (op === 'dir-') dirs.delete(arg);
  }
});
const killAll = () => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch {} }
  // Give the kernel a moment to release the files, then remove the node dirs.
  setTimeout(() => {
    for (const d of dirs) { try { require('fs').rmSync(d, { recursive: true, force: true }); } catch {} }
    process.exit(0);
  }, 200);
};
process.stdin.on('end', killAll);
process.stdin.on('error', killAll);
process.on('SIGINT', () => {}); process.on('SIGTERM', killAll); process.on('SIGHUP', () => {});
`;

function tellWatchdog(line: string): void {
  if (!watchdog || watchdog.exitCode !== null || !watchdog.stdin?.writable) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true, // survives a Ctrl-C to our process group, to clean up after us
      env: { PATH: process.env.PATH ?? '' }, // no NODE_OPTIONS (tsx loaders etc.)
    });
    watchdog.on('error', () => undefined);
    watchdog.stdin?.on('error', () => undefined);
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    for (const pid of livePids) watchdog.stdin?.write(`add ${pid}\n`);
    for (const dir of liveDirs) watchdog.stdin?.write(`dir+ ${dir}\n`);
  }
  watchdog.stdin?.write(`${line}\n`);
}

function trackPid(pid: number): void {
  livePids.add(pid);
  tellWatchdog(`add ${pid}`);
  installExitHook();
}

function trackDir(dir: string): void {
  liveDirs.add(dir);
  tellWatchdog(`dir+ ${dir}`);
  installExitHook();
}

function untrackDir(dir: string): void {
  liveDirs.delete(dir);
  if (watchdog?.stdin?.writable) watchdog.stdin.write(`dir- ${dir}\n`);
}

function installExitHook(): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const p of livePids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      // The dirs are left to the watchdog: the processes may still hold files open here.
    });
  }
}

function untrackPid(pid: number): void {
  livePids.delete(pid);
  if (watchdog?.stdin?.writable) watchdog.stdin.write(`del ${pid}\n`);
}

// ---------------------------------------------------------------------------------------------

interface NodeState {
  port: number;
  dir: string;
  confFile: string;
  logFile: string;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  id: string;
  role: NodeRole;
  masterId: string | undefined;
  /** Slots owned at the last topology read. */
  slots: [number, number][];
  killedAt: number | undefined;
  /** Last bytes of stderr of the current/last process (config errors land here). */
  stderr: string;
}

/**
 * Starts a cluster (see the file header). Retries with other ports (up to 3 attempts) when a port
 * turned out to be taken between the free-port check and redis-server's bind (parallel jest
 * workers).
 */
export async function startRedisCluster(
  opts: StartRedisClusterOptions = {},
): Promise<RedisClusterHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/Address already in use/i.test((err as Error).message)) throw err;
    }
  }
}

async function startOnce(opts: StartRedisClusterOptions): Promise<RedisClusterHandle> {
  const masters = opts.masters ?? 3;
  const replicasPerMaster = opts.replicasPerMaster ?? 1;
  const appendonly = opts.appendonly ?? true;
  const appendfsync = opts.appendfsync ?? 'everysec';
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 1000;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const redisServer = opts.redisServer ?? 'redis-server';
  const redisCli = opts.redisCli ?? 'redis-cli';
  if (masters < 3) throw new Error('startRedisCluster: redis-cli needs at least 3 masters');
  if (replicasPerMaster < 0) throw new Error('startRedisCluster: replicasPerMaster must be >= 0');

  const total = masters * (1 + replicasPerMaster);
  const ports = await allocatePorts(total);
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'redis-cluster-'));
  if (!opts.keepDirs) trackDir(root);
  const nodes = new Map<number, NodeState>();
  const clients = new Set<Cluster>();
  let stopped = false;

  for (const port of ports) {
    const dir = path.join(root, String(port));
    fs.mkdirSync(dir);
    const logFile = path.join(dir, 'redis.log');
    const conf: Record<string, string | number> = {
      port,
      // IPv6 loopback too where the machine has it, for IPv6 seeds (`-`: skipped where not).
      bind: (await hasIpv6Loopback) ? `${HOST} -::1` : HOST,
      'protected-mode': 'no',
      daemonize: 'no',
      dir,
      logfile: logFile,
      loglevel: 'notice',
      'cluster-enabled': 'yes',
      'cluster-config-file': 'nodes.conf',
      'cluster-node-timeout': nodeTimeoutMs,
      // Replicas may always fail over, however long ago they last heard from their master
      // (tests kill and restart nodes in quick succession).
      'cluster-replica-validity-factor': 0,
      'cluster-require-full-coverage': 'yes',
      appendonly: appendonly ? 'yes' : 'no',
      appendfsync,
      save: '""',
      // Full resyncs start at once instead of after the default 5 s.
      'repl-diskless-sync-delay': 0,
      'repl-ping-replica-period': 1,
      'enable-debug-command': 'local',
      ...opts.extraConfig,
    };
    const confFile = path.join(dir, 'redis.conf');
    fs.writeFileSync(
      confFile,
      Object.entries(conf)
        .map(([k, v]) => `${k} ${v}`)
        .join('\n') + '\n',
    );
    nodes.set(port, {
      port,
      dir,
      confFile,
      logFile,
      child: undefined,
      exited: Promise.resolve(),
      id: '',
      role: 'unknown',
      masterId: undefined,
      slots: [],
      killedAt: undefined,
      stderr: '',
    });
  }

  const nodeOf = (port: number): NodeState => {
    const n = nodes.get(port);
    if (!n)
      throw new Error(`no cluster node on port ${port} (ports: ${[...nodes.keys()].join(', ')})`);
    return n;
  };
  const alive = (n: NodeState) => n.child !== undefined;
  const portOfId = (id: string | undefined) =>
    id === undefined ? undefined : [...nodes.values()].find((n) => n.id === id)?.port;

  const logTail = (port: number, lines = 15): string => {
    try {
      const text = fs.readFileSync(nodeOf(port).logFile, 'utf8').trimEnd().split('\n');
      return text.slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };
  const allLogTails = (lines = 6) =>
    [...nodes.keys()]
      .map((p) => `--- node ${p} (${alive(nodeOf(p)) ? 'up' : 'down'}) ---\n${logTail(p, lines)}`)
      .join('\n');

  function spawnNode(n: NodeState): void {
    if (n.child) throw new Error(`node ${n.port} is already running (pid ${n.child.pid})`);
    const child = spawn(redisServer, [n.confFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: n.dir,
    });
    n.stderr = '';
    child.stderr?.on('data', (d: Buffer) => (n.stderr = (n.stderr + d.toString()).slice(-2000)));
    child.unref();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    n.child = child;
    n.killedAt = undefined;
    const pid = child.pid;
    if (pid !== undefined) trackPid(pid);
    n.exited = new Promise<void>((resolve) => {
      const done = () => {
        if (pid !== undefined) untrackPid(pid);
        if (n.child === child) n.child = undefined;
        resolve();
      };
      child.once('exit', done);
      child.once('error', (err) => {
        n.stderr += String(err);
        done();
      });
    });
  }

  async function withNode<T>(
    port: number,
    fn: (redis: Redis) => Promise<T>,
    ms = 3000,
  ): Promise<T> {
    const redis = new Redis({
      host: HOST,
      port,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1000,
      commandTimeout: ms,
    });
    redis.on('error', () => undefined);
    try {
      await withTimeout(redis.connect(), ms, `connect to node ${port}`);
      return await withTimeout(fn(redis), ms, `command on node ${port}`);
    } finally {
      redis.disconnect();
    }
  }

  const clusterCmd = (port: number, ...args: string[]) =>
    withNode(port, (r) => r.call('CLUSTER', ...args) as Promise<string>);

  async function waitForPing(n: NodeState, ms: number): Promise<void> {
    await waitUntil(
      `node ${n.port} to answer PING`,
      async () => {
        if (!alive(n))
          throw new FatalError(`redis-server on ${n.port} exited:\n${n.stderr}${logTail(n.port)}`);
        const pid = parseInfo(await withNode(n.port, (r) => r.info('server'), 1000)).process_id;
        // Someone else's server on "our" port (it was taken after the free-port check).
        if (pid !== String(n.child?.pid)) {
          await n.exited; // ours cannot bind: wait for it to give up
          throw new FatalError(`port ${n.port}: Address already in use (answered by pid ${pid})`);
        }
        return true;
      },
      ms,
      () => logTail(n.port),
      50,
    );
  }

  interface View {
    port: number;
    info: Record<string, string>;
    repl: Record<string, string>;
    lines: NodesLine[];
    self: NodesLine | undefined;
  }

  /** CLUSTER INFO, CLUSTER NODES and INFO replication of every live node, in parallel. */
  async function readViews(): Promise<{ views: View[]; errors: string[] }> {
    const errors: string[] = [];
    const views = await Promise.all(
      [...nodes.values()].filter(alive).map(async (n): Promise<View | undefined> => {
        try {
          const [info, text, repl] = await withNode(n.port, async (r) => [
            parseInfo((await r.call('CLUSTER', 'INFO')) as string),
            (await r.call('CLUSTER', 'NODES')) as string,
            parseInfo(await r.info('replication')),
          ]);
          const lines = parseClusterNodes(text);
          return {
            port: n.port,
            info,
            repl,
            lines,
            self: lines.find((l) => l.flags.includes('myself')),
          };
        } catch (err) {
          errors.push(`${n.port}: ${(err as Error).message}`);
          return undefined;
        }
      }),
    );
    return { views: views.filter((v): v is View => v !== undefined), errors };
  }

  const roleOf = (l: NodesLine): NodeRole =>
    l.flags.includes('master') ? 'master' : l.flags.includes('slave') ? 'replica' : 'unknown';

  /**
   * Topology from the nodes themselves: a live node's role, master and slots are taken from its
   * own `myself` line (authoritative; other nodes' views may lag behind gossip). Dead nodes are
   * described by the other views. Updates the cache and returns one line per node.
   */
  async function readTopology(): Promise<NodesLine[]> {
    const { views, errors } = await readViews();
    if (views.length === 0)
      throw new Error(`no live node answered CLUSTER NODES: ${errors.join('; ')}`);
    const result = new Map<number, NodesLine>();
    for (const v of views) if (v.self) result.set(v.port, v.self);
    for (const v of views) for (const l of v.lines) if (!result.has(l.port)) result.set(l.port, l);
    for (const line of result.values()) {
      const n = nodes.get(line.port);
      if (!n) continue;
      n.id = line.id;
      n.masterId = line.masterId;
      n.role = roleOf(line);
      n.slots = line.slots;
    }
    return [...result.values()];
  }

  const snapshot = (): ClusterNode[] =>
    [...nodes.values()].map((n) => ({
      port: n.port,
      pid: n.child?.pid,
      role: n.role,
      id: n.id,
      masterPort: n.role === 'replica' ? portOfId(n.masterId) : undefined,
      alive: alive(n),
      dir: n.dir,
      logFile: n.logFile,
    }));

  /** Health of the cluster as seen by every live node; undefined when all is fine, else a
   * description of what is not. Besides cluster_state:ok and full slot coverage by live masters,
   * every view must agree with each live node's own idea of its role and master (so a caller
   * reading the topology right after gets a settled answer). */
  async function healthProblems(opts2: {
    requireAllKnown: boolean;
    requireReplicaSync: boolean;
  }): Promise<string | undefined> {
    const problems: string[] = [];
    const { views, errors } = await readViews();
    problems.push(...errors);
    if (views.length === 0) return problems.join('; ') || 'no live node';
    for (const v of views) {
      const { port, info, repl, lines } = v;
      if (info.cluster_state !== 'ok')
        problems.push(`${port}: cluster_state:${info.cluster_state}`);
      if (info.cluster_slots_ok !== String(CLUSTER_SLOTS))
        problems.push(`${port}: cluster_slots_ok:${info.cluster_slots_ok}`);
      if (opts2.requireAllKnown && info.cluster_known_nodes !== String(nodes.size))
        problems.push(`${port}: cluster_known_nodes:${info.cluster_known_nodes}/${nodes.size}`);
      let covered = 0;
      for (const l of lines) {
        const owner = nodes.get(l.port);
        if (owner && !alive(owner)) {
          if (l.flags.includes('master') && l.slots.length)
            problems.push(`${port}: slots still owned by dead node ${l.port}`);
          continue;
        }
        if (l.flags.includes('fail') || l.flags.includes('fail?')) {
          problems.push(`${port} flags live node ${l.port} ${l.flags.join(',')}`);
          continue;
        }
        if (l.flags.includes('master')) for (const [a, b] of l.slots) covered += b - a + 1;
        // Agreement with the node's own view of itself.
        const selfView = views.find((x) => x.port === l.port)?.self;
        if (selfView && (roleOf(selfView) !== roleOf(l) || selfView.masterId !== l.masterId))
          problems.push(`${port} sees ${l.port} as ${roleOf(l)}, it says ${roleOf(selfView)}`);
      }
      if (covered !== CLUSTER_SLOTS)
        problems.push(`${port}: ${covered}/${CLUSTER_SLOTS} slots on live masters`);
      if (opts2.requireReplicaSync && repl.role === 'slave' && repl.master_link_status !== 'up')
        problems.push(`${port}: replica link ${repl.master_link_status}`);
    }
    return problems.length ? problems.join('; ') : undefined;
  }

  async function waitForHealthy(ms = timeoutMs, requireAllKnown = false): Promise<void> {
    let last = '';
    await waitUntil(
      'cluster_state:ok with all slots covered on every live node',
      async () => {
        const p = await healthProblems({ requireAllKnown, requireReplicaSync: true });
        last = p ?? '';
        return p === undefined ? true : undefined;
      },
      ms,
      () => `Last state: ${last}\n${allLogTails()}`,
      100,
    );
    await readTopology();
  }

  function runCli(args: string[], ms: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(redisCli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new TimeoutError(`redis-cli ${args.join(' ')} timed out after ${ms} ms:\n${out}`));
      }, ms);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${redisCli}: ${err.message}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (code === 0 && !/\[ERR\]/.test(out)) resolve(out);
        else reject(new Error(`redis-cli ${args.join(' ')} failed (exit ${code}):\n${out}`));
      });
    });
  }

  async function killNode(port: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = nodeOf(port);
    const child = n.child;
    if (!child) throw new Error(`node ${port} is not running`);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT' || signal === 'SIGTSTP') {
      child.kill(signal);
      return;
    }
    n.killedAt = Date.now();
    child.kill(signal);
    try {
      await withTimeout(
        n.exited,
        signal === 'SIGKILL' ? 5000 : 15_000,
        `exit of node ${port} after ${signal}`,
      );
    } catch (err) {
      child.kill('SIGKILL'); // e.g. SIGTERM while SIGSTOPped
      await withTimeout(n.exited, 5000, `exit of node ${port} after SIGKILL`);
      if (signal !== 'SIGTERM') throw err;
    }
  }

  async function startNode(n: NodeState, ms: number): Promise<void> {
    // The port may still be in TIME_WAIT/held for a moment after a kill; redis binds with
    // SO_REUSEADDR so this is usually immediate.
    spawnNode(n);
    await waitForPing(n, ms);
  }

  const handle: RedisClusterHandle = {
    seeds: ports.map((p) => `${HOST}:${p}`),
    startupNodes: ports.map((port) => ({ host: HOST, port })),
    get nodes() {
      return snapshot();
    },

    async masterForSlot(slot: number): Promise<SlotOwner> {
      if (!Number.isInteger(slot) || slot < 0 || slot >= CLUSTER_SLOTS)
        throw new Error(`bad slot ${slot}`);
      const lines = await readTopology();
      const owners = lines.filter(
        (l) =>
          l.flags.includes('master') &&
          !l.flags.includes('fail') &&
          nodes.get(l.port) !== undefined &&
          alive(nodes.get(l.port)!) &&
          l.slots.some(([a, b]) => slot >= a && slot <= b),
      );
      // A node that just came back may still claim its old slots: the highest config epoch wins,
      // as in Redis itself.
      owners.sort((a, b) => b.configEpoch - a.configEpoch);
      const owner = owners[0];
      if (!owner) throw new Error(`slot ${slot} is not served by any live master right now`);
      return {
        port: owner.port,
        id: owner.id,
        pid: nodes.get(owner.port)?.child?.pid,
        replicaPorts: lines
          .filter((l) => l.masterId === owner.id && roleOf(l) === 'replica')
          .map((l) => l.port),
      };
    },

    async masterForKey(key: string): Promise<SlotOwner> {
      return handle.masterForSlot(keySlot(key));
    },

    async refreshTopology(): Promise<ClusterNode[]> {
      await readTopology();
      return snapshot();
    },

    kill: killNode,

    async restart(port: number): Promise<ClusterNode> {
      const n = nodeOf(port);
      await startNode(n, timeoutMs);
      let last = '';
      await waitUntil(
        `restarted node ${port} to rejoin (cluster_state:ok, replica link up)`,
        async () => {
          const [info, repl] = await withNode(port, async (r) => [
            parseInfo((await r.call('CLUSTER', 'INFO')) as string),
            parseInfo(await r.info('replication')),
          ]);
          last = `cluster_state:${info.cluster_state} role:${repl.role} master_link_status:${repl.master_link_status ?? '-'}`;
          if (info.cluster_state !== 'ok') return undefined;
          if (repl.role === 'slave' && repl.master_link_status !== 'up') return undefined;
          // ...and every other node agrees about it.
          const p = await healthProblems({ requireAllKnown: false, requireReplicaSync: true });
          if (p) last += `; ${p}`;
          return p === undefined ? true : undefined;
        },
        timeoutMs,
        () => `Last: ${last}\n${logTail(port)}`,
      );
      await readTopology();
      return snapshot().find((s) => s.port === port)!;
    },

    async waitForFailover(oldMasterPort: number, ms = timeoutMs): Promise<FailoverResult> {
      const old = nodeOf(oldMasterPort);
      const started = old.killedAt ?? Date.now();
      if (old.role !== 'master') {
        throw new Error(
          `node ${oldMasterPort} was not a master at the last topology read (role: ${old.role})`,
        );
      }
      const oldSlot = old.slots[0]?.[0];
      let last = '';
      await waitUntil(
        `a replica of ${oldMasterPort} to be promoted`,
        async () => {
          // The old master must own no slot in any live node's view.
          for (const n of nodes.values()) {
            if (!alive(n)) continue;
            const lines = parseClusterNodes(await clusterCmd(n.port, 'NODES'));
            const o = lines.find((l) => l.port === oldMasterPort);
            if (o && o.slots.length && o.flags.includes('master')) {
              last = `${n.port} still sees ${oldMasterPort} as master of ${o.slots.length} range(s) (flags ${o.flags.join(',')})`;
              return undefined;
            }
          }
          const p = await healthProblems({ requireAllKnown: false, requireReplicaSync: false });
          last = p ?? '';
          return p === undefined ? true : undefined;
        },
        ms,
        () => `Last: ${last}\n${allLogTails()}`,
        50,
      );
      const elapsedMs = Date.now() - started;
      const newMaster =
        oldSlot !== undefined
          ? await handle.masterForSlot(oldSlot)
          : await (async () => {
              await readTopology();
              const promoted = [...nodes.values()].find(
                (n) => n.role === 'master' && n.masterId === undefined && n.port !== oldMasterPort,
              );
              if (!promoted) throw new Error('failover finished but no new master found');
              return handle.masterForSlot(promoted.slots[0]?.[0] ?? 0);
            })();
      return { newMaster, elapsedMs };
    },

    async restartAll(o = {}): Promise<void> {
      const signal = o.signal ?? 'SIGKILL';
      const ms = o.timeoutMs ?? timeoutMs;
      await Promise.all([...nodes.values()].filter(alive).map((n) => killNode(n.port, signal)));
      for (const n of nodes.values()) spawnNode(n);
      await Promise.all([...nodes.values()].map((n) => waitForPing(n, ms)));
      await waitForHealthy(ms, true);
    },

    waitForHealthy: (ms?: number) => waitForHealthy(ms ?? timeoutMs),

    connect(options: ClusterOptions = {}): Cluster {
      const client = new Cluster(
        ports.map((port) => ({ host: HOST, port })),
        options,
      );
      clients.add(client);
      client.once('end', () => clients.delete(client));
      return client;
    },

    withNode: (port, fn) => withNode(port, fn, 10_000),
    logTail,

    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      for (const c of clients) c.disconnect();
      clients.clear();
      for (const n of nodes.values()) {
        if (n.child) {
          n.child.kill('SIGCONT');
          n.child.kill('SIGKILL');
        }
      }
      await Promise.all(
        [...nodes.values()].map((n) =>
          withTimeout(n.exited, 5000, `exit of node ${n.port}`).catch(() => undefined),
        ),
      );
      for (const p of ports) reservedPorts.delete(p);
      if (!opts.keepDirs) {
        fs.rmSync(root, { recursive: true, force: true });
        untrackDir(root);
      }
    },
  };

  try {
    for (const n of nodes.values()) spawnNode(n);
    await Promise.all([...nodes.values()].map((n) => waitForPing(n, timeoutMs)));
    await runCli(
      [
        '--cluster',
        'create',
        ...handle.seeds,
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ],
      timeoutMs,
    );
    await waitForHealthy(timeoutMs, true);
    // Every node's id is known from now on (they live in nodes.conf across restarts).
    const missing = [...nodes.values()].filter((n) => !n.id);
    if (missing.length)
      throw new Error(`nodes missing from CLUSTER NODES: ${missing.map((n) => n.port).join(', ')}`);
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}
