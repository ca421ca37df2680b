import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from './logger';

/** A connection to standalone Redis or to a Redis Cluster: the engine uses either the same way. */
export type RedisClient = Redis | Cluster;

export interface RedisSettings {
  redisUrl: string;
  /** `host:port,...` seed nodes of a cluster; empty for standalone Redis at redisUrl. */
  redisClusterNodes: string;
}

/** A command connection's command fails after this long (a 503): a Redis that does not answer. */
export const COMMAND_TIMEOUT_MS = 2000;

/**
 * Two kinds of connection:
 * - `command`: the API's connection. No offline queue, one retry per request and a command
 *   timeout, so a Redis outage (or a cluster failover) turns into a fast error and a 503 instead
 *   of requests piling up in memory or hanging.
 * - `blocking`: for BullMQ workers, which must wait through outages (`maxRetriesPerRequest: null`).
 */
function optionsFor(kind: 'command' | 'blocking'): RedisOptions {
  return {
    connectTimeout: 2000,
    // Reconnect quickly at first, then every 2 s: an outage is ridden out, not given up on.
    retryStrategy: (times) => Math.min(times * 100, 2000),
    reconnectOnError: isReplicaRefusal,
    ...(kind === 'command'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: COMMAND_TIMEOUT_MS }
      : { maxRetriesPerRequest: null }),
  };
}

/**
 * A write refused by a replica: the master this connection was opened to was demoted behind the
 * same address (a Sentinel or managed service's failover points the address at the new master,
 * and the old one keeps its connections). Such a connection is replaced, not kept refusing every
 * write for good; the command itself fails (a 503, or retried by the flusher). Redis 7 answers
 * `READONLY You can't write...`; before 7 a write inside a script (most of the engine's and
 * BullMQ's) came wrapped, `ERR Error running script ... -READONLY You can't write against a read
 * only slave.`
 */
export const isReplicaRefusal = (err: Error): boolean =>
  /(^|-)READONLY You can't write against a read only (replica|slave)/.test(err.message);

/** Credentials and TLS from REDIS_URL, for a cluster's nodes. */
function credentialsOf(url: string): RedisOptions {
  const parsed = new URL(url);
  return {
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** REDIS_CLUSTER_NODES as written, each with its host and port (an IPv6 host loses its brackets). */
export function clusterSeeds(nodes: string): { node: string; host: string; port: number }[] {
  return nodes.split(',').map((node) => {
    const colon = node.lastIndexOf(':');
    const host = node.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    return { node, host, port: Number(node.slice(colon + 1)) };
  });
}

function createCluster(settings: RedisSettings, kind: 'command' | 'blocking'): Cluster {
  const seeds = clusterSeeds(settings.redisClusterNodes).map(({ host, port }) => ({ host, port }));
  const options: ClusterOptions = {
    redisOptions: { ...optionsFor(kind), ...credentialsOf(settings.redisUrl) },
    clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
    slotsRefreshTimeout: 2000,
    // Keyless commands (INFO, PING) go to masters; every command of a slot to its master.
    scaleReads: 'master',
    ...(kind === 'command' ? { enableOfflineQueue: false } : {}),
  };
  return new Cluster(seeds, options);
}

export function createRedis(
  settings: RedisSettings,
  kind: 'command' | 'blocking' = 'command',
): RedisClient {
  const redis = settings.redisClusterNodes
    ? createCluster(settings, kind)
    : new Redis(settings.redisUrl, optionsFor(kind));
  // Connection errors are reported by readiness and by the failing command; without a listener
  // ioredis would print every reconnect attempt as an unhandled error event.
  redis.on('error', () => undefined);
  return redis;
}

export const isCluster = (redis: RedisClient): redis is Cluster =>
  (redis as Cluster).isCluster === true;

/** The masters' connections of a cluster, or the one connection of standalone Redis. */
export function masters(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/**
 * Runs `send`, and sends the commands it issues synchronously in one write per connection: each
 * command is otherwise a socket write of its own, and such a write costs more than a small command
 * (a store of a few readings sends two). Corks the sockets, then uncorks them, which writes what
 * they hold at once.
 */
export function inOneWrite<T>(redis: RedisClient, send: () => T): T {
  // Undefined before a connection's first connect, whatever ioredis's type says.
  const sockets = masters(redis).flatMap((c) => (c.stream as Redis['stream'] | undefined) ?? []);
  for (const socket of sockets) socket.cork();
  try {
    return send();
  } finally {
    for (const socket of sockets) socket.uncork();
  }
}

/**
 * Sends one command per item, in one write per connection (inOneWrite), and waits for them all:
 * what a pipeline does, also on a cluster, which refuses a pipeline whose keys lie in more than
 * one slot ("All keys in the pipeline should belong to the same slots allocation group").
 */
export function sendEach<T>(
  redis: RedisClient,
  items: readonly T[],
  send: (item: T) => Promise<unknown>,
): Promise<unknown[]> {
  return Promise.all(inOneWrite(redis, () => items.map(send)));
}

/**
 * The connection a command on `key` goes over (on a cluster, its slot's master's), e.g. for a
 * `WAIT` that must follow the writes made on that very connection. Null while a cluster does not
 * know the slot's master (during a failover).
 */
export function connectionFor(redis: RedisClient, slot: number): Redis | null {
  if (!isCluster(redis)) return redis;
  const address = redis.slots[slot]?.[0];
  return address ? nodeAt(redis, address, 'master') : null;
}

/** A cluster's connected node at `host:port`, as its slot map and redirections name nodes. */
const nodeAt = (cluster: Cluster, address: string, role: 'master' | 'all'): Redis | null =>
  cluster.nodes(role).find((n) => `${n.options.host}:${n.options.port}` === address) ?? null;

/**
 * The node that holds `key`, asked of its slot's owner `owner` directly: the owner, or, while the
 * slot migrates and the key went ahead to the migration's target, that target (ioredis follows
 * such an ASK redirection without updating its slot map, so connectionFor still names the
 * owner). null: the target is not among the connected nodes.
 */
export async function nodeHolding(
  redis: RedisClient,
  owner: Redis,
  key: string,
): Promise<Redis | null> {
  if (!isCluster(redis)) return owner;
  try {
    await owner.exists(key);
    return owner;
  } catch (err) {
    const ask = /^ASK \d+ (\S+)$/.exec((err as Error).message);
    if (!ask) throw err;
    return nodeAt(redis, ask[1], 'all');
  }
}

/** How long a process waits for Redis at start before saying it cannot reach it. */
export const REDIS_START_WAIT_MS = 5000;

/** Waits until the connection is ready, or fails after `timeoutMs`. */
export async function waitForRedis(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | null = null;
    const timer = setTimeout(() => {
      cleanup();
      const cause = lastError ? `; last error: ${lastError.message}` : '';
      reject(new Error(`no answer within ${timeoutMs} ms${cause}`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    // Wrong credentials will not come right by waiting: said at once, in Redis's words.
    const onError = (err: Error) => {
      lastError = err;
      if (!isAuthError(err)) return;
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}

/** Redis refused the connection's credentials (a wrong user or password, or none given). */
export const isAuthError = (err: unknown): boolean =>
  /^(WRONGPASS|NOAUTH|NOPERM)|ERR AUTH|invalid password|invalid username-password/i.test(
    String((err as Error)?.message ?? ''),
  );

/**
 * Redis is down, loading, failing over or out of reach: ioredis's own refusals while the
 * connection is not ready (commands are not queued offline) and the server's "try later" replies.
 */
export function isRedisUnavailable(err: unknown): boolean {
  const { name, message } = (err ?? {}) as { name?: unknown; message?: unknown };
  if (name === 'MaxRetriesPerRequestError') return true;
  const text = typeof message === 'string' ? message : '';
  return (
    // "Command timed out": a command connection's COMMAND_TIMEOUT_MS passed without an answer (a
    // master hung, or stopped before the cluster fails it over).
    /^(Stream isn't writeable|Connection is closed|Reached the max retries|Command timed out)/.test(
      text,
    ) ||
    (name === 'ReplyError' && /^(LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY) /.test(text)) ||
    (err instanceof Error && isReplicaRefusal(err))
  );
}

/**
 * Redis refused a write at its maxmemory (`noeviction`). The flusher's moves of jobs are writes
 * too, so until memory is freed nothing drains: said so, with what to do, where it is logged.
 */
export function isRedisFull(err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' && /(^|-)OOM command not allowed/.test(message);
}

export const REDIS_FULL_HINT =
  "Redis is at its maxmemory and refuses writes, the flusher's moves of jobs among them: nothing drains until it has room. Raise maxmemory on that Redis (on a cluster, the full master's: redis-cli CONFIG SET maxmemory <bytes>, and in redis.conf) or free memory other data takes; ingest refuses readings above REDIS_MEMORY_HIGH_WATER so that it is not reached";

/** A field of INFO's text (`name:value` lines), e.g. `maxmemory_policy`. */
export const infoField = (info: string, name: string): string | undefined =>
  new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();

/** Replicas attached to a master and in sync with it: those a `WAIT` can count. */
async function onlineReplicas(master: Redis): Promise<number> {
  const info = await master.info('replication');
  return info.split('\n').filter((line) => /^slave\d+:.*\bstate=online\b/.test(line)).length;
}

/**
 * Resolves when at least one master has `wanted` online replicas, so an acknowledgement that
 * waits for them (REDIS_WAIT_REPLICAS) can be given; rejects naming what it found. On a cluster,
 * a shard whose master lacks them rests while the others take the readings.
 */
export async function checkReplicas(redis: RedisClient, wanted: number): Promise<void> {
  const counts = await Promise.all(masters(redis).map(onlineReplicas));
  if (counts.some((count) => count >= wanted)) return;
  const found = counts.length === 0 ? 'no master known' : `online: ${counts.join(', ')}`;
  throw new ReplicasLacking(
    `REDIS_WAIT_REPLICAS=${wanted} but no Redis master has that many replicas (${found})`,
  );
}

/** checkReplicas' answer that the replicas are not there (not that asking for them failed). */
export class ReplicasLacking extends Error {
  override name = 'ReplicasLacking';
}

/**
 * Why Redis may lose accepted readings by evicting keys (a `maxmemory` is set and its
 * `maxmemory-policy` is not `noeviction`, on some master), or null. The queue holds them until
 * PostgreSQL has them, and BullMQ needs noeviction as well. A master that does not answer INFO
 * (failing over, or INFO denied) says nothing here: other checks report it.
 */
export async function evictionProblem(redis: RedisClient): Promise<string | null> {
  const nodes = masters(redis);
  const answers = await Promise.allSettled(nodes.map((node) => node.info('memory')));
  for (const [i, answer] of answers.entries()) {
    if (answer.status === 'rejected') continue;
    const policy = infoField(answer.value, 'maxmemory_policy');
    const limited = Number(infoField(answer.value, 'maxmemory') ?? 0) > 0;
    if (!limited || policy === undefined || policy === 'noeviction') continue;
    const where = nodes.length > 1 ? ` on ${nodes[i].options.host}:${nodes[i].options.port}` : '';
    return `maxmemory-policy is ${policy}${where} with a maxmemory set: Redis may evict readings accepted but not yet stored; set it to noeviction (in redis.conf, or the managed service's parameter group)`;
  }
  return null;
}

/**
 * Throws when standalone Redis answers as a replica, which refuses every write, and reconnects:
 * after a failover the address may name the new master by now (see isReplicaRefusal). A server
 * that does not answer INFO (denied) says nothing here.
 */
async function notAReplica(redis: Redis): Promise<void> {
  const role = infoField(await redis.info('replication').catch(() => ''), 'role');
  if (role !== 'slave') return;
  redis.disconnect(true);
  throw new Error(
    'Redis at REDIS_URL answers as a replica, which refuses every write (a failover demoted it?): reconnecting; REDIS_URL must name the master',
  );
}

/**
 * Readiness of a Redis connection. While it is down, ioredis's own words ("Stream isn't writeable
 * and enableOfflineQueue options is false") say nothing an operator can act on: say what to check.
 */
export function redisReadiness(redis: RedisClient): () => Promise<void> {
  return async () => {
    if (redis.status !== 'ready') {
      throw new Error(
        `no connection (${redis.status}): check that Redis runs at REDIS_URL (or REDIS_CLUSTER_NODES) and accepts this process`,
      );
    }
    await redis.ping();
    if (!isCluster(redis)) return notAReplica(redis);
    // A cluster without a majority of its masters still answers PING and INFO, but no key.
    const state = infoField(await redis.cluster('INFO'), 'cluster_state');
    if (state !== 'ok') {
      throw new Error(
        `Redis Cluster state is ${state ?? 'unknown'} (CLUSTER INFO): it refuses every key until its failed masters are back or replaced by their replicas`,
      );
    }
  };
}

/**
 * What storing readings needs, as readiness checks: Redis, and with REDIS_WAIT_REPLICAS its
 * replicas (an acknowledgement that waits for them cannot be given without them). For every
 * process that acknowledges readings: the API and the MQTT process.
 */
export function ingestReadiness(
  redis: RedisClient,
  config: { redisWaitReplicas: number },
): Record<string, () => Promise<void>> {
  const reachable = redisReadiness(redis);
  return {
    redis: async () => {
      await reachable();
      // Set at run time too (CONFIG SET): not ready to acknowledge what it may evict.
      const evicts = await evictionProblem(redis);
      if (evicts) throw new Error(evicts);
    },
    ...(config.redisWaitReplicas > 0
      ? { replicas: () => checkReplicas(redis, config.redisWaitReplicas) }
      : {}),
  };
}

/**
 * Whether an unhandled rejection is one ioredis leaves of its own: following a cluster's ASK
 * redirection (a slot migrating) it sends ASKING without a handler for its answer
 * (redis/ioredis#1140), so a target connection closing then rejects "Connection is closed." where
 * nobody listens. The command redirected fails or is retried on its own path. Such an error is
 * made by the connection's close, so every frame of its stack is ioredis's or Node's own.
 */
export function isIoredisStrayRejection(reason: unknown): boolean {
  if (!(reason instanceof Error) || reason.message !== 'Connection is closed.') return false;
  const frames = (reason.stack ?? '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '));
  return (
    frames.length > 0 &&
    frames.every((frame) => /[\\/]node_modules[\\/]ioredis[\\/]|\(node:|^at node:/.test(frame))
  );
}

/**
 * Lets a process live through ioredis's stray rejections (isIoredisStrayRejection), logged: one
 * ended the API and every flusher when a slot's migration target dropped its connections. Any
 * other unhandled rejection still ends the process, as Node's default does: it is a bug.
 */
export function surviveIoredisStrayRejections(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    if (isIoredisStrayRejection(reason)) {
      logger.warn(
        { err: reason },
        'a Redis connection closed under a redirected command (ioredis left its ASKING unhandled): the command fails or is retried on its own',
      );
      return;
    }
    logger.fatal({ err: reason }, 'unhandled promise rejection: exiting');
    throw reason;
  });
}
