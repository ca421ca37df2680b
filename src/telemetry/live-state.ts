import { isCluster, type RedisClient } from '../redis';
import type { RedisKeys } from '../redis-keys';
import { DEVICE_KINDS, valuesOf, type DeviceType, type Reading } from '../devices/device-kinds';

/**
 * Live state: one Redis string per device holding its newest reading,
 * `<ts>|receivedAt=<ms>|<field>=<value>|...`, where ts is epoch ms padded to TS_DIGITS digits so
 * that stored states and timestamps compare as strings. A reading replaces the state only if it is
 * newer, checked and written atomically inside one script call.
 *
 * KEYS: one reading's device each. ARGV[1]: a JSON array holding, per key, the reading's padded ts
 * and its state. The script reads every key with one MGET and writes the newer ones with one MSET:
 * inside Redis's Lua each command call and each string made costs about a microsecond, and a hash
 * per device (HGET, HSET, a decoded table of values per reading) cost Redis 5-7 µs a reading; this
 * costs 3. Of two readings with the same timestamp the first stays, as in history.
 */
const SET_IF_NEWER = `
local entries = cjson.decode(ARGV[1])
local stored = redis.call('MGET', unpack(KEYS))
local writes = {}
local written = {}
local n = 0
for i = 1, #KEYS do
  local key = KEYS[i]
  local ts = entries[2 * i - 1]
  local at = written[key]
  -- A state is its padded ts and more: it sorts below a padded ts exactly when it is older.
  if at then
    -- The key came earlier in this call: the newer of the two is written.
    if writes[at + 1] < ts then writes[at + 1] = entries[2 * i] end
  elseif (not stored[i]) or stored[i] < ts then
    writes[n + 1] = key
    writes[n + 2] = entries[2 * i]
    written[key] = n + 1
    n = n + 2
  end
end
if n > 0 then redis.call('MSET', unpack(writes)) end
return n / 2
`;

/** Digits of a padded ts: every epoch ms up to the year 33658 (readings are after 1970). */
const TS_DIGITS = 15;

const FIELD_NAMES = new Map(DEVICE_KINDS.map((k) => [k.type as string, k.fieldNames]));

/** Keys per script call: keeps each call short so Redis stays responsive to other clients. */
const KEYS_PER_CALL = 500;

type RedisWithScript = RedisClient & {
  setLiveIfNewer(numKeys: number, ...args: string[]): Promise<number>;
};

export interface LiveState {
  type: DeviceType;
  id: string;
  ts: number;
  receivedAt: number;
  values: Record<string, number>;
}

/**
 * A reading's two script entries, as JSON: its padded ts and its state. Written out directly: a
 * number's text and a field name need no escaping.
 */
function entriesJson(reading: Reading, receivedAt: number): string {
  const values = valuesOf(reading);
  const ts = String(reading.ts).padStart(TS_DIGITS, '0');
  let state = `${ts}|receivedAt=${receivedAt}`;
  for (const name of FIELD_NAMES.get(reading.type)!) {
    const value = values[name];
    if (value !== undefined && value !== null) state += `|${name}=${value}`;
  }
  return `"${ts}","${state}"`;
}

/** Parses a stored state; fields it does not hold (an optional one left out) are absent. */
function parseState(type: DeviceType, id: string, state: string): LiveState {
  const [ts, ...parts] = state.split('|');
  const values: Record<string, number> = {};
  let receivedAt = 0;
  for (const part of parts) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq);
    const value = Number(part.slice(eq + 1));
    if (name === 'receivedAt') receivedAt = value;
    else values[name] = value;
  }
  return { type, id, ts: Number(ts), receivedAt, values };
}

export class LiveStateStore {
  private readonly redis: RedisWithScript;
  private readonly cluster: boolean;

  constructor(
    redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {
    redis.defineCommand('setLiveIfNewer', { lua: SET_IF_NEWER });
    this.redis = redis as RedisWithScript;
    this.cluster = isCluster(redis);
  }

  /**
   * Applies readings newer than the stored state; returns how many states moved. On a cluster, one
   * script call per live-state bucket present (a call may only touch keys of one slot); on a single
   * Redis the buckets do not matter, and a batch takes one call per KEYS_PER_CALL readings.
   */
  async applyReadings(readings: Reading[], receivedAt: number): Promise<number> {
    const calls: Promise<number>[] = [];
    for (const group of this.cluster ? this.byBucket(readings) : [readings]) {
      for (let start = 0; start < group.length; start += KEYS_PER_CALL) {
        calls.push(this.applyToBucket(group.slice(start, start + KEYS_PER_CALL), receivedAt));
      }
    }
    const updated = await Promise.all(calls);
    return updated.reduce((sum, n) => sum + n, 0);
  }

  private byBucket(readings: Reading[]): Reading[][] {
    const buckets = new Map<string, Reading[]>();
    for (const reading of readings) {
      const key = this.keys.liveState(reading.type, reading.id);
      const tag = key.slice(0, key.indexOf('}') + 1);
      const bucket = buckets.get(tag);
      if (bucket) bucket.push(reading);
      else buckets.set(tag, [reading]);
    }
    return [...buckets.values()];
  }

  private applyToBucket(readings: Reading[], receivedAt: number): Promise<number> {
    let json = '[';
    for (const reading of readings) {
      if (json.length > 1) json += ',';
      json += entriesJson(reading, receivedAt);
    }
    return this.redis.setLiveIfNewer(
      readings.length,
      ...readings.map((r) => this.keys.liveState(r.type, r.id)),
      `${json}]`,
    );
  }

  async get(type: DeviceType, id: string): Promise<LiveState | null> {
    const state = await this.redis.get(this.keys.liveState(type, id));
    return state === null ? null : parseState(type, id, state);
  }
}
