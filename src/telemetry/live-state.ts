import { isCluster, type RedisClient } from '../redis';
import type { RedisKeys } from '../redis-keys';
import { DEVICE_KINDS, valuesOf, type DeviceType, type Reading } from '../devices/device-kinds';

/**
 * Live state: one Redis hash per device holding its newest reading. A reading moves the hash only
 * if it is newer than what is stored, checked and written atomically inside one script call.
 *
 * ARGV: receivedAt; each kind's field names (JSON, by kind index); then one JSON array of entries,
 * one per key: [ts, kind index, the kind's values in field order], ts and values as the strings
 * the hash stores ('' for an optional field left out). Three arguments instead of a dozen per
 * reading: building and sending thousands of small arguments cost most of a batch's time in the API.
 */
const SET_IF_NEWER = `
local names = cjson.decode(ARGV[2])
local entries = cjson.decode(ARGV[3])
-- Per kind, the HSET arguments with its field names in place; each entry fills in its values.
local templates = {}
for kind, fields in ipairs(names) do
  local args = { 'ts', '' }
  for j = 1, #fields do
    args[#args + 1] = fields[j]
    args[#args + 1] = ''
  end
  args[#args + 1] = 'receivedAt'
  args[#args + 1] = ARGV[1]
  templates[kind] = args
end
local updated = 0
for i = 1, #KEYS do
  local entry = entries[i]
  local current = redis.call('HGET', KEYS[i], 'ts')
  if (not current) or tonumber(current) < tonumber(entry[1]) then
    local args = templates[entry[2]]
    args[2] = entry[1]
    for j = 3, #entry do
      args[2 * j - 2] = entry[j]
    end
    redis.call('HSET', KEYS[i], unpack(args))
    updated = updated + 1
  end
end
return updated
`;

/** Each kind's field names, by the 1-based kind index the script's entries carry. */
const FIELD_NAMES_JSON = JSON.stringify(DEVICE_KINDS.map((k) => k.fieldNames));
const KINDS = new Map(
  DEVICE_KINDS.map((k, i) => [k.type, { index: i + 1, fieldNames: k.fieldNames }]),
);

/** Keys per script call: keeps each call short so Redis stays responsive to other clients. */
const KEYS_PER_CALL = 500;

type RedisWithScript = RedisClient & {
  setLiveIfNewer(numKeys: number, ...args: (string | number)[]): Promise<number>;
};

export interface LiveState {
  type: DeviceType;
  id: string;
  ts: number;
  receivedAt: number;
  values: Record<string, number>;
}

/**
 * A reading's script entry as JSON, written out directly (no arrays built to be stringified): a
 * number's text never needs escaping.
 */
function entryJson(reading: Reading): string {
  const values = valuesOf(reading);
  const { index, fieldNames } = KINDS.get(reading.type)!;
  let json = `["${reading.ts}",${index}`;
  for (const name of fieldNames) json += `,"${values[name] ?? ''}"`;
  return `${json}]`;
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
   * Applies readings newer than the stored state; returns how many hashes moved. On a cluster, one
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
    return this.redis.setLiveIfNewer(
      readings.length,
      ...readings.map((r) => this.keys.liveState(r.type, r.id)),
      String(receivedAt),
      FIELD_NAMES_JSON,
      `[${readings.map(entryJson).join(',')}]`,
    );
  }

  async get(type: DeviceType, id: string): Promise<LiveState | null> {
    const hash = await this.redis.hgetall(this.keys.liveState(type, id));
    if (!hash.ts) return null;
    const { ts, receivedAt, ...rest } = hash;
    const values: Record<string, number> = {};
    for (const [name, value] of Object.entries(rest))
      if (value !== '') values[name] = Number(value);
    return { type, id, ts: Number(ts), receivedAt: Number(receivedAt), values };
  }
}
