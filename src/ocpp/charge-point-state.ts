import { sendEach, type RedisClient } from '../redis';
import type { RedisKeys } from '../redis-keys';

/**
 * A charge point's meter for one connector (0: the whole charge point). The sessions' SQL names a
 * transaction's meter the same way (src/sessions/session-sql.ts).
 */
export const connectorMeterId = (chargePointId: string, connectorId: number) =>
  `${chargePointId}:${connectorId}`;

/**
 * A meter id's charge point and connector if it is exactly a connector's meter (`CP:1`, not
 * `CP:01`), or null. Such a meter is the charge point's register once that charge point has
 * connected to the engine: only it writes the meter's readings (connectorMetersAmong) and no
 * setting changes how they are read (ChargePointStore.connectorOf).
 */
export function connectorOfMeterId(
  meterId: string,
): { chargePointId: string; connectorId: number } | null {
  const chargePointId = /^(.+):\d{1,4}$/.exec(meterId)?.[1];
  if (chargePointId === undefined) return null;
  const connectorId = Number(meterId.slice(chargePointId.length + 1));
  return connectorMeterId(chargePointId, connectorId) === meterId
    ? { chargePointId, connectorId }
    : null;
}

/** How long a connector check waits for Redis before the write it guards is refused for now (503). */
export const CONNECTOR_CHECK_MS = 1000;

/**
 * Of these meter ids, those of a connector of a charge point that has connected to this engine
 * (its live state exists): the charge point's own registers, which only it may write, also those
 * of connectors it has not used yet (a reading posted there first counted in every later
 * transaction on it). Ids without the shape of one cost no Redis command.
 */
export async function connectorMetersAmong(
  redis: RedisClient,
  keys: RedisKeys,
  meterIds: readonly string[],
): Promise<Set<string>> {
  const candidates = [...new Set(meterIds)].flatMap((id) => {
    const connector = connectorOfMeterId(id);
    return connector ? [{ id, ...connector }] : [];
  });
  const found = await sendEach(redis, candidates, (c) =>
    redis.exists(keys.chargePoint(c.chargePointId)),
  );
  return new Set(candidates.filter((_, i) => found[i] === 1).map((c) => c.id));
}

export interface ConnectorStatus {
  status: string;
  errorCode: string;
  /** Free text the charge point added to the status (OCPP `info`). */
  info: string | null;
  /** The manufacturer's own error code, beside OCPP's `errorCode`. */
  vendorErrorCode: string | null;
  /** When the charge point says the status began (its timestamp, else when it arrived). */
  at: string;
}

/** A charge point's connection to this process. */
export interface LiveConnection {
  chargePointId: string;
  /** The connection's token, as `connected` recorded it. */
  connection: string;
  connectedAt: Date;
}

export interface ChargePointLiveState {
  connected: boolean;
  /** Since when it is connected, or when it was last seen. */
  connectedAt: string | null;
  lastSeenAt: string | null;
  lastBootAt: string | null;
  connectors: { connectorId: number; status: ConnectorStatus | null }[];
}

/** Writes a connector's status unless the stored one is newer (ARGV: at-ms, field/value pairs). */
const SET_STATUS_IF_NEWER = `
local current = redis.call('HGET', KEYS[1], 'atMs')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'atMs', ARGV[1], unpack(ARGV, 2))
return 1`;

/**
 * Forgets the connection only if it is still the one that closed (it may have reconnected
 * elsewhere), and keeps its token as the last one closed, for SEEN.
 */
const DISCONNECT = `
redis.call('HSET', KEYS[1], 'lastClosed', ARGV[1])
if redis.call('HGET', KEYS[1], 'connection') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'connection', 'connectedAt')
  redis.call('HSET', KEYS[1], 'lastSeenAt', ARGV[2])
  return 1
end
return 0`;

/**
 * Still connected here (ARGV: seen at, this connection, since when): records the connection too
 * when none is recorded (another replica's connection of the same id closed and took it away, or
 * Redis lost its data), unless this is the connection that closed last: a refresh sent before its
 * close may arrive after it (a command retried across a Redis failover), and must not show it
 * connected again. Returns 2 when it recorded the connection, 1 when it was recorded, 0 if closed.
 */
const SEEN = `
if redis.call('HGET', KEYS[1], 'lastClosed') == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lastSeenAt', ARGV[1])
if redis.call('HSETNX', KEYS[1], 'connection', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], 'connectedAt', ARGV[3])
  return 2
end
return 1`;
const RECORDED_AGAIN = 2;

type RedisWithScripts = RedisClient & {
  setConnectorStatusIfNewer(numKeys: 1, key: string, ...args: string[]): Promise<number>;
  disconnectChargePoint(numKeys: 1, key: string, connection: string, at: string): Promise<number>;
  seenChargePoint(
    numKeys: 1,
    key: string,
    at: string,
    connection: string,
    connectedAt: string,
  ): Promise<number>;
};

/**
 * What the engine knows live about charge points, in Redis so every API replica sees it: which
 * replica connection holds each charge point (refreshed while it lives: a replica that dies
 * stops refreshing, and its charge points read as disconnected after `staleAfterMs`), its last
 * boot, and each connector's latest StatusNotification.
 */
export class ChargePointState {
  private readonly redis: RedisWithScripts;

  constructor(
    redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly staleAfterMs: number,
  ) {
    redis.defineCommand('setConnectorStatusIfNewer', { lua: SET_STATUS_IF_NEWER });
    redis.defineCommand('disconnectChargePoint', { lua: DISCONNECT });
    redis.defineCommand('seenChargePoint', { lua: SEEN });
    this.redis = redis as RedisWithScripts;
  }

  async connected(chargePointId: string, connection: string, at: Date): Promise<void> {
    const now = at.toISOString();
    await this.redis.hset(this.keys.chargePoint(chargePointId), {
      connection,
      connectedAt: now,
      lastSeenAt: now,
    });
  }

  async disconnected(chargePointId: string, connection: string, at: Date): Promise<void> {
    await this.redis.disconnectChargePoint(
      1,
      this.keys.chargePoint(chargePointId),
      connection,
      at.toISOString(),
    );
  }

  /**
   * Marks these charge points as still connected here (one round trip for all of them). One whose
   * recorded connection is gone is recorded with this one: a connection of the same id to another
   * replica (two chargers sharing an id, a socket not closed) closed and took it away, or Redis
   * lost its data. Returns those recorded again: what else Redis held of them may be gone too.
   */
  async seen(connections: LiveConnection[], at: Date): Promise<LiveConnection[]> {
    if (connections.length === 0) return [];
    const seenAt = at.toISOString();
    // One command each: three each for 10,000 charge points every 30 s showed in the bench's
    // MeterValues p99 (348 and 671 ms, against 172-271 ms with one, run by run).
    const results = await sendEach(
      this.redis,
      connections,
      ({ chargePointId, connection, connectedAt }) =>
        this.redis.seenChargePoint(
          1,
          this.keys.chargePoint(chargePointId),
          seenAt,
          connection,
          connectedAt.toISOString(),
        ),
    );
    return connections.filter((_, i) => results[i] === RECORDED_AGAIN);
  }

  /**
   * Marks these charge points as recorded in PostgreSQL (one round trip for all), whatever else
   * Redis holds of them: their connectors' meters are theirs alone (connectorMetersAmong) also
   * after Redis lost its data. Nothing else reads the mark (`get` shows no state for it alone).
   */
  async markRecorded(chargePointIds: readonly string[]): Promise<void> {
    await sendEach(this.redis, chargePointIds, (id) =>
      this.redis.hsetnx(this.keys.chargePoint(id), 'recorded', '1'),
    );
  }

  /**
   * Calls `listener` each time the Redis connection is ready (again, after a loss: a Redis that
   * restarted without its data is back empty); returns what stops it.
   */
  onReady(listener: () => void): () => void {
    this.redis.on('ready', listener);
    return () => this.redis.off('ready', listener);
  }

  /**
   * Records a boot. A charge point may lose its clock when it reboots and date its statuses
   * earlier than those before: the first status of each connector after a boot replaces the
   * stored one whatever its timestamp (its order among the later ones is by timestamp again).
   */
  async booted(chargePointId: string, at: Date): Promise<void> {
    const [, connectorIds] = await Promise.all([
      this.redis.hset(this.keys.chargePoint(chargePointId), 'lastBootAt', at.toISOString()),
      this.redis.smembers(this.keys.chargePointConnectors(chargePointId)),
    ]);
    if (connectorIds.length === 0) return;
    await sendEach(this.redis, connectorIds, (id) =>
      this.redis.hdel(
        this.keys.connectorStatus(connectorMeterId(chargePointId, Number(id))),
        'atMs',
      ),
    );
  }

  async connectorStatus(
    chargePointId: string,
    connectorId: number,
    status: ConnectorStatus,
  ): Promise<void> {
    const meterId = connectorMeterId(chargePointId, connectorId);
    await Promise.all([
      this.redis.sadd(this.keys.chargePointConnectors(chargePointId), String(connectorId)),
      this.redis.setConnectorStatusIfNewer(
        1,
        this.keys.connectorStatus(meterId),
        String(Date.parse(status.at)),
        'status',
        status.status,
        'errorCode',
        status.errorCode,
        'info',
        status.info ?? '',
        'vendorErrorCode',
        status.vendorErrorCode ?? '',
        'at',
        status.at,
      ),
    ]);
  }

  /** Remembers connectors that sent meter values before any status (one round trip for all). */
  async knownConnectors(
    connectors: readonly { chargePointId: string; connectorId: number }[],
  ): Promise<void> {
    if (connectors.length === 0) return;
    await sendEach(this.redis, connectors, ({ chargePointId, connectorId }) =>
      this.redis.sadd(this.keys.chargePointConnectors(chargePointId), String(connectorId)),
    );
  }

  async statusOf(meterId: string): Promise<ConnectorStatus | null> {
    const hash = await this.redis.hgetall(this.keys.connectorStatus(meterId));
    if (!hash.status) return null;
    return {
      status: hash.status,
      errorCode: hash.errorCode,
      info: hash.info || null,
      vendorErrorCode: hash.vendorErrorCode || null,
      at: hash.at,
    };
  }

  async get(chargePointId: string, now: Date): Promise<ChargePointLiveState | null> {
    const [hash, connectorIds] = await Promise.all([
      this.redis.hgetall(this.keys.chargePoint(chargePointId)),
      this.redis.smembers(this.keys.chargePointConnectors(chargePointId)),
    ]);
    if (!hash.lastSeenAt && !hash.lastBootAt && connectorIds.length === 0) return null;
    const ids = connectorIds.map(Number).sort((a, b) => a - b);
    const statuses = await Promise.all(
      ids.map((id) => this.statusOf(connectorMeterId(chargePointId, id))),
    );
    const fresh =
      hash.lastSeenAt !== undefined &&
      now.getTime() - Date.parse(hash.lastSeenAt) <= this.staleAfterMs;
    return {
      connected: Boolean(hash.connection) && fresh,
      connectedAt: hash.connection ? (hash.connectedAt ?? null) : null,
      lastSeenAt: hash.lastSeenAt ?? null,
      lastBootAt: hash.lastBootAt ?? null,
      connectors: ids.map((connectorId, i) => ({ connectorId, status: statuses[i] })),
    };
  }
}
