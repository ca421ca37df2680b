import { isCluster, type RedisClient } from '../redis';
import { withTimeout } from '../with-timeout';
import type { RedisKeys } from '../redis-keys';
import { DEVICE_KINDS, valuesOf, type DeviceType, type Reading } from '../devices/device-kinds';

/**
 * Live state: one Redis string per device holding its newest reading,
 * `<ts>|receivedAt=<ms>|<field>=<value>|...`, where ts is epoch ms padded to TS_DIGITS digits so
 * that stored states and timestamps compare as strings. A reading replaces the state only if it is
 * newer, checked and written atomically inside one script call.
 *
 * KEYS: distinct devices (applyReadings sends each device's newest reading alone). ARGV[1]: a JSON
 * array holding, per key, the reading's padded ts and its state. The script reads every key with
 * one MGET and writes the newer ones with one MSET: inside Redis's Lua each command call and each
 * string made costs about a microsecond, and a hash per device (HGET, HSET, a decoded table of
 * values per reading) cost Redis 5-7 µs a reading; this costs 3. Of two readings with the same
 * timestamp the first stays, as in history.
 */
const SET_IF_NEWER = `
local entries = cjson.decode(ARGV[1])
local stored = redis.call('MGET', unpack(KEYS))
local writes = {}
local n = 0
for i = 1, #KEYS do
  local ts = entries[2 * i - 1]
  -- A state is its padded ts and more: it sorts below a padded ts exactly when it is older.
  if (not stored[i]) or stored[i] < ts then
    writes[n + 1] = KEYS[i]
    writes[n + 2] = entries[2 * i]
    n = n + 2
  end
end
if n > 0 then redis.call('MSET', unpack(writes)) end
return n / 2
`;

/** Deletes a device's state if it is older than ARGV[1] (a padded ts); 1 when deleted. */
const DELETE_IF_OLDER = `
local stored = redis.call('GET', KEYS[1])
if stored and stored < ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Digits of a padded ts: every epoch ms up to the year 33658 (readings are after 1970). */
const TS_DIGITS = 15;

/** An epoch ms as a state begins with it: states then sort by their readings' times as text. */
const paddedTs = (ms: number) => String(ms).padStart(TS_DIGITS, '0');

const FIELD_NAMES = new Map(DEVICE_KINDS.map((k) => [k.type as string, k.fieldNames]));

/** Keys per script call: keeps each call short so Redis stays responsive to other clients. */
const KEYS_PER_CALL = 500;

/**
 * On a cluster, a bucket whose write failed or outlived its deadline (its master is failing over)
 * is not waited for during this long: its writes are still sent, but a store is answered without
 * them. Otherwise every store, all of which touch most buckets, waited out the deadline on that
 * one master, and ingest fell to a store a second on every shard for the whole failover.
 */
export const BUCKET_REST_MS = 5000;

type RedisWithScript = RedisClient & {
  setLiveIfNewer(numKeys: number, ...args: string[]): Promise<number>;
  deleteLiveIfOlder(numKeys: 1, key: string, before: string): Promise<number>;
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
  const ts = paddedTs(reading.ts);
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

/** A device's live-state key and the reading to apply to it. */
type LiveEntry = readonly [key: string, reading: Reading];

/** Entries by live-state bucket, keyed by the bucket's hash tag (the key's `{...}`). */
function byBucket(entries: LiveEntry[]): Map<string, LiveEntry[]> {
  const buckets = new Map<string, LiveEntry[]>();
  for (const entry of entries) {
    const tag = entry[0].slice(0, entry[0].indexOf('}') + 1);
    const bucket = buckets.get(tag);
    if (bucket) bucket.push(entry);
    else buckets.set(tag, [entry]);
  }
  return buckets;
}

export class LiveStateStore {
  private readonly redis: RedisWithScript;
  private readonly cluster: boolean;
  /** Per bucket (its hash tag), on a cluster: until when (epoch ms) it is not waited for. */
  private readonly restingUntil = new Map<string, number>();

  constructor(
    redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {
    redis.defineCommand('setLiveIfNewer', { lua: SET_IF_NEWER });
    redis.defineCommand('deleteLiveIfOlder', { lua: DELETE_IF_OLDER });
    this.redis = redis as RedisWithScript;
    this.cluster = isCluster(redis);
  }

  /**
   * Applies readings newer than the stored state; returns how many states moved. Rejects when a
   * call waited for fails or outlives `deadlineMs`. Of a device's readings only its newest is sent
   * (the first of equal timestamps, the one the script would keep): a gateway's hour of backfill is
   * one entry per device, not sixty. On a cluster, one script call per live-state bucket present (a
   * call may only touch keys of one slot), a resting bucket's not waited for (BUCKET_REST_MS); on a
   * single Redis the buckets do not matter, and a batch takes one call per KEYS_PER_CALL devices.
   */
  async applyReadings(
    readings: Reading[],
    receivedAt: number,
    deadlineMs: number,
  ): Promise<number> {
    const now = Date.now();
    const newest = this.newestPerDevice(readings);
    const calls: Promise<number>[] = [];
    for (const [tag, group] of this.cluster ? byBucket(newest) : [['', newest] as const]) {
      for (let start = 0; start < group.length; start += KEYS_PER_CALL) {
        const call = this.applyToBucket(group.slice(start, start + KEYS_PER_CALL), receivedAt);
        if ((this.restingUntil.get(tag) ?? 0) > now) {
          call.catch(() => undefined); // sent, not waited for: its master is failing over
          continue;
        }
        calls.push(
          withTimeout(call, deadlineMs, 'live state').catch((err: unknown) => {
            if (this.cluster) this.restingUntil.set(tag, Date.now() + BUCKET_REST_MS);
            throw err;
          }),
        );
      }
    }
    // Every call settled before answering: each bucket that failed is resting by then.
    const settled = await Promise.allSettled(calls);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.reduce((sum, r) => sum + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  /** Each device's newest reading (the first of equal timestamps), with its live-state key. */
  private newestPerDevice(readings: Reading[]): LiveEntry[] {
    // Found by type and id: cheaper to look up than the key, which is made once per device.
    const at = new Map<string, Map<string, number>>();
    const entries: LiveEntry[] = [];
    for (const reading of readings) {
      let ofType = at.get(reading.type);
      if (!ofType) at.set(reading.type, (ofType = new Map()));
      const i = ofType.get(reading.id);
      if (i === undefined) {
        ofType.set(reading.id, entries.length);
        entries.push([this.keys.liveState(reading.type, reading.id), reading]);
      } else if (reading.ts > entries[i][1].ts) entries[i] = [entries[i][0], reading];
    }
    return entries;
  }

  private applyToBucket(entries: LiveEntry[], receivedAt: number): Promise<number> {
    let json = '[';
    for (const [, reading] of entries) {
      if (json.length > 1) json += ',';
      json += entriesJson(reading, receivedAt);
    }
    return this.redis.setLiveIfNewer(entries.length, ...entries.map(([key]) => key), `${json}]`);
  }

  /**
   * Forgets the states of these devices older than `beforeMs` (retention dropped their readings);
   * a state a newer reading moved meanwhile stays. One call per device: on a cluster, devices'
   * keys sit in different slots. Returns how many were forgotten.
   */
  async forgetOlderThan(type: DeviceType, ids: string[], beforeMs: number): Promise<number> {
    const before = paddedTs(beforeMs);
    let forgotten = 0;
    for (let start = 0; start < ids.length; start += KEYS_PER_CALL) {
      const deleted = await Promise.all(
        ids
          .slice(start, start + KEYS_PER_CALL)
          .map((id) => this.redis.deleteLiveIfOlder(1, this.keys.liveState(type, id), before)),
      );
      forgotten += deleted.reduce((sum, n) => sum + n, 0);
    }
    return forgotten;
  }

  async get(type: DeviceType, id: string): Promise<LiveState | null> {
    const state = await this.redis.get(this.keys.liveState(type, id));
    return state === null ? null : parseState(type, id, state);
  }
}
