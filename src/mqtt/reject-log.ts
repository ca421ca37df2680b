/**
 * MQTT has no reply a publisher could read (the 0x99 PUBACK goes to the broker only), so what the
 * engine refuses is kept where an operator can look: the Redis list `{REDIS_PREFIX}:mqtt:rejects`,
 * newest first, capped at the newest 10,000 entries (`LRANGE key 0 9` shows the last ten).
 */
import { isUtf8 } from 'node:buffer';
import type { RedisClient } from '../redis';
import type { ItemError } from '../telemetry/ingest-service';

export const MAX_REJECTS = 10_000;
/** Of the payload, enough to recognise it. */
const PAYLOAD_PREVIEW_BYTES = 2048;
const MAX_ERRORS = 20;
/** Of the topic and the message (a topic may be 64 KB): enough to recognise them. */
const MAX_TEXT_CHARS = 512;
/** An entry is at most this long, its errors cut to fit: the list stays under ~60 MB at its cap. */
const MAX_ENTRY_CHARS = 6 * 1024;

const clip = (text: string) =>
  text.length > MAX_TEXT_CHARS ? `${text.slice(0, MAX_TEXT_CHARS)}...` : text;

export interface RejectEntry {
  /** ISO time the engine refused it. */
  at: string;
  topic: string;
  /** `invalid_json`, `unknown_topic`, `no_valid_readings`, ... or `some_readings_invalid` when the rest was stored. */
  reason: string;
  message: string;
  /** Readings of the message that were stored (0 when the whole message was refused). */
  accepted: number;
  /** Readings refused; the first 20 are described in `errors` (fewer if they are long). */
  rejected: number;
  errors: ItemError[];
  /** The payload's first bytes (after gunzip when it was gzip and inflated): UTF-8 text, else base64. */
  payload: string;
  payloadEncoding: 'utf8' | 'base64';
  payloadBytes: number;
  truncated: boolean;
  /** The payload was gzip (its bytes start 1f 8b), whether or not it inflated. */
  gzip: boolean;
}

export type NewRejectEntry = Omit<
  RejectEntry,
  'at' | 'payload' | 'payloadEncoding' | 'payloadBytes' | 'truncated'
> & { payload: Buffer };

function preview(bytes: Buffer) {
  const head = bytes.subarray(0, PAYLOAD_PREVIEW_BYTES);
  const truncated = bytes.length > head.length;
  if (isUtf8(bytes)) {
    // A cut through a multi-byte character decodes to U+FFFD at the end: drop it.
    const text = head.toString('utf8');
    return {
      payload: truncated ? text.replace(/\uFFFD+$/, '') : text,
      payloadEncoding: 'utf8' as const,
      truncated,
    };
  }
  return { payload: head.toString('base64'), payloadEncoding: 'base64' as const, truncated };
}

export class RejectLog {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
  ) {}

  /** Resolves once the entry is in Redis (a 0x99 PUBACK must not be sent before). */
  async add(entry: NewRejectEntry): Promise<void> {
    const record: RejectEntry = {
      at: new Date().toISOString(),
      ...entry,
      topic: clip(entry.topic),
      message: clip(entry.message),
      errors: entry.errors.slice(0, MAX_ERRORS),
      payloadBytes: entry.payload.length,
      ...preview(entry.payload),
    };
    let text = JSON.stringify(record);
    // Errors echo field names, which a payload may make as long as it likes.
    while (text.length > MAX_ENTRY_CHARS && record.errors.length > 0) {
      record.errors.pop();
      text = JSON.stringify(record);
    }
    const results = await this.redis
      .multi()
      .lpush(this.key, text)
      .ltrim(this.key, 0, MAX_REJECTS - 1)
      .exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('reject list write aborted');
  }

  async latest(count: number): Promise<RejectEntry[]> {
    const raw = await this.redis.lrange(this.key, 0, count - 1);
    return raw.map((line) => JSON.parse(line) as RejectEntry);
  }
}
