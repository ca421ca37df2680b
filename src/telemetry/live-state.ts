import type { RedisClient } from '../redis';
import type { RedisKeys } from '../redis-keys';
import { kindOf, valuesOf, type DeviceType, type Reading } from '../devices/device-kinds';

/**
 * Live state: one Redis hash per device holding its newest reading. A reading moves the hash only
 * if it is newer than what is stored, checked and written atomically inside one script call.
 *
 * ARGV holds, per key: ts, field count n, then n field/value pairs.
 */
const SET_IF_NEWER = `
local a = 1
local updated = 0
for i = 1, #KEYS do
  local ts = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local current = redis.call('HGET', KEYS[i], 'ts')
  if (not current) or tonumber(current) < ts then
    local args = { 'ts', ARGV[a] }
    for j = 0, n - 1 do
      args[#args + 1] = ARGV[a + 2 + 2 * j]
      args[#args + 1] = ARGV[a + 3 + 2 * j]
    end
    redis.call('HSET', KEYS[i], unpack(args))
    updated = updated + 1
  end
  a = a + 2 + 2 * n
end
return updated
`;

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

/** The reading's declared fields, as the hash stores them ('' for an optional field left out). */
function fieldsOf(reading: Reading): [string, number | string][] {
  const values = valuesOf(reading);
  return kindOf(reading.type).fieldNames.map((name) => [name, values[name] ?? '']);
}

export class LiveStateStore {
  private readonly redis: RedisWithScript;

  constructor(
    redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {
    redis.defineCommand('setLiveIfNewer', { lua: SET_IF_NEWER });
    this.redis = redis as RedisWithScript;
  }

  /**
   * Applies readings newer than the stored state; returns how many hashes moved. One script call
   * per live-state bucket present (a call may only touch keys of one cluster slot).
   */
  async applyReadings(readings: Reading[], receivedAt: number): Promise<number> {
    const buckets = new Map<string, { key: string; reading: Reading }[]>();
    for (const reading of readings) {
      const key = this.keys.liveState(reading.type, reading.id);
      const tag = key.slice(0, key.indexOf('}') + 1);
      const bucket = buckets.get(tag) ?? [];
      bucket.push({ key, reading });
      buckets.set(tag, bucket);
    }
    const calls: Promise<number>[] = [];
    for (const entries of buckets.values()) {
      for (let start = 0; start < entries.length; start += KEYS_PER_CALL) {
        calls.push(this.applyToBucket(entries.slice(start, start + KEYS_PER_CALL), receivedAt));
      }
    }
    const updated = await Promise.all(calls);
    return updated.reduce((sum, n) => sum + n, 0);
  }

  private applyToBucket(
    entries: { key: string; reading: Reading }[],
    receivedAt: number,
  ): Promise<number> {
    const args: (string | number)[] = [];
    for (const { reading } of entries) {
      const fields = [...fieldsOf(reading), ['receivedAt', receivedAt] as [string, number]];
      args.push(reading.ts, fields.length);
      for (const [name, value] of fields) args.push(name, value);
    }
    return this.redis.setLiveIfNewer(entries.length, ...entries.map((e) => e.key), ...args);
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
