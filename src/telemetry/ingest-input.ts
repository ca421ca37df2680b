/**
 * From bytes to IngestInput, the same for every intake (HTTP bodies, MQTT payloads): strict UTF-8,
 * then one JSON value, a JSON array, or NDJSON. Failures are 400 AppErrors whose codes
 * (`invalid_encoding`, `invalid_json`, `empty_body`, `empty_batch`) name what was wrong.
 */
import { AppError, badRequest } from '../errors';
import type { IngestInput } from './ingest-service';

/** `auto` (MQTT, which has no content type): JSON when the whole text parses, else NDJSON lines. */
export type IngestFormat = 'json' | 'ndjson' | 'auto';

/** What carried the text, as messages name it: an HTTP request's body or an MQTT message's payload. */
export type Carrier = 'body' | 'payload';

/** Bytes that start as gzip does (1f 8b): how an MQTT payload, which has no header, says so. */
export const isGzip = (bytes: Uint8Array) =>
  bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;

/** Decodes UTF-8 strictly (a malformed byte is an error, never U+FFFD) and drops a leading BOM. */
export function decodeUtf8(bytes: Uint8Array, carrier: Carrier = 'body'): string {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  } catch {
    throw badRequest('invalid_encoding', `The ${carrier} is not valid UTF-8`);
  }
}

export function parseJson(text: string, carrier: Carrier = 'body'): unknown {
  if (text.trim() === '') throw badRequest('empty_body', `The ${carrier} is empty`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest('invalid_json', `The ${carrier} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * More readings in one request or message than MAX_BATCH_READINGS: refused whole, with a code of
 * its own (`payload_too_large` is a body or payload over its size in bytes).
 */
export class TooManyReadings extends AppError {
  constructor(
    /** How many readings it holds (the MQTT rejects list counts them all as rejected). */
    readonly count: number,
    max: number,
  ) {
    super(
      413,
      'too_many_readings',
      `It holds ${count} readings; at most ${max} (MAX_BATCH_READINGS) are accepted in one request or MQTT message`,
    );
  }
}

export const tooManyReadings = (count: number, max: number) => new TooManyReadings(count, max);

/** One NDJSON line: its parsed value, or why it could not be parsed. */
export type NdjsonItem = { value: unknown } | { parseError: string };

/**
 * The lines are counted before any is parsed: a line that does not parse costs JSON.parse an
 * exception (about 5 µs), so 2 million bad lines (a 4 MB body, 4 KB gzipped) held the event loop
 * for 10 s on their way to being refused for their number.
 */
export function parseNdjson(
  text: string,
  maxReadings: number,
  carrier: Carrier = 'body',
): NdjsonItem[] {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  if (lines.length === 0) throw badRequest('empty_body', `The ${carrier} has no NDJSON lines`);
  if (lines.length > maxReadings) throw tooManyReadings(lines.length, maxReadings);
  return lines.map((line) => {
    try {
      return { value: JSON.parse(line) };
    } catch (err) {
      return { parseError: (err as Error).message };
    }
  });
}

/**
 * An array of more readings than accepted is refused as it is read, before anything walks its
 * items (an MQTT device topic rewrote 1.4 million of them first: 3 times as slow to refuse).
 */
function fromJsonValue(body: unknown, maxReadings: number): IngestInput {
  if (Array.isArray(body)) {
    if (body.length === 0) throw badRequest('empty_batch', 'The array holds no readings');
    if (body.length > maxReadings) throw tooManyReadings(body.length, maxReadings);
    return { kind: 'batch', items: body.map((value: unknown) => ({ value })) };
  }
  return { kind: 'single', value: body };
}

/**
 * A JSON body that holds one value per line is NDJSON sent with the wrong content type: the
 * parser's "after JSON at position 72" alone does not say so.
 */
function parseJsonOrSayNdjson(text: string): unknown {
  try {
    return parseJson(text);
  } catch (err) {
    // Its first line tells (a body may hold a million lines): a whole JSON object, and the body
    // did not parse, so more follows it.
    const body = text.trimStart();
    const firstLine = body.slice(0, Math.max(0, body.indexOf('\n')));
    if (firstLine.trimEnd().endsWith('}') && isJsonValue(firstLine)) {
      throw badRequest(
        'invalid_json',
        'The body is one JSON value per line (NDJSON), sent as application/json: send it with Content-Type: application/x-ndjson, or as a JSON array',
      );
    }
    throw err;
  }
}

const isJsonValue = (line: string) => {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
};

/** Readings are objects of numbers and strings, in an array at most: 2 deep. */
const MAX_NESTING = 32;

/** Whether the text holds more than `max` of `{` and `[` (counted with indexOf, in strings too). */
function moreStructuresThan(text: string, max: number): boolean {
  let count = 0;
  for (const opener of ['{', '[']) {
    for (let i = text.indexOf(opener); i !== -1; i = text.indexOf(opener, i + 1)) {
      if (++count > max) return true;
    }
  }
  return false;
}

/** Where the text's arrays and objects first nest deeper than `max` (outside strings), or -1. */
function deeperThan(text: string, max: number): number {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: on to its closing quote, past escaped characters.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

/**
 * JSON.parse spends about 0.7 µs on each level of nesting: a 4 MB body of arrays nested 2 million
 * deep held the event loop for 1.4 s (40 of them, for a minute). Such a text is refused before it
 * is parsed. Only a text with more arrays and objects than `maxReadings` readings hold (one each,
 * in one array) is scanned for its depth: counting them costs a 1,000-reading body about 30 µs,
 * the scan ten times that, and fewer cannot nest deep enough to cost much.
 */
function refuseDeepNesting(text: string, maxReadings: number, carrier: Carrier): void {
  if (!moreStructuresThan(text, maxReadings + 1)) return;
  const at = deeperThan(text, MAX_NESTING);
  if (at === -1) return;
  throw badRequest(
    'nested_too_deep',
    `The ${carrier} nests arrays and objects more than ${MAX_NESTING} deep (at character ${at}): readings are objects of numbers and strings, in one array at most`,
  );
}

/** Text (already decoded) to what ingest takes: one reading, or a list whose items may be unparseable. */
export function parseIngestText(
  text: string,
  format: IngestFormat,
  maxReadings: number,
  carrier: Carrier = 'body',
): IngestInput {
  refuseDeepNesting(text, maxReadings, carrier);
  if (format === 'ndjson') return { kind: 'batch', items: parseNdjson(text, maxReadings, carrier) };
  if (format === 'json') return fromJsonValue(parseJsonOrSayNdjson(text), maxReadings);
  let value: unknown;
  try {
    value = parseJson(text, carrier);
  } catch (err) {
    // Several lines of which at least one parses: NDJSON, with its bad lines reported one by one.
    // Otherwise the JSON error (a single broken document, e.g. pretty-printed) says more.
    if (text.trim().includes('\n')) {
      const items = parseNdjson(text, maxReadings, carrier);
      if (items.some((item) => 'value' in item)) return { kind: 'batch', items };
    }
    throw err;
  }
  return fromJsonValue(value, maxReadings);
}
