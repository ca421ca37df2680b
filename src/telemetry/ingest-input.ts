/**
 * From bytes to IngestInput, the same for every intake (HTTP bodies, MQTT payloads): strict UTF-8,
 * then one JSON value, a JSON array, or NDJSON. Failures are 400 AppErrors whose codes
 * (`invalid_encoding`, `invalid_json`, `nested_too_deep`, `too_many_structures`, `empty_body`,
 * `empty_batch`) name what was wrong.
 */
import { AppError, badRequest } from '../errors';
import type { ValidationFailure } from '../schema/validator';
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

/** One NDJSON line: its parsed value, why it could not be parsed, or why it was not. */
export type NdjsonItem =
  { value: unknown } | { parseError: string } | { invalid: ValidationFailure };

/** Whether text[start, end) is blank as `trim()` sees it (ASCII checked here, the rest by trim). */
function isBlank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return text.slice(start, end).trim() === '';
    if (c !== 0x20 && (c < 0x09 || c > 0x0d)) return false;
  }
  return true;
}

/**
 * The text's lines that are not blank, at most `max`; past that, only how many there are. Found
 * with indexOf, so a body of 2 million short lines is counted without making 2 million strings
 * (split and filter held the event loop for 0.4 s a body).
 */
function nonBlankLines(text: string, max: number): { lines: string[]; count: number } {
  const lines: string[] = [];
  let count = 0;
  for (let start = 0; start <= text.length;) {
    const newline = text.indexOf('\n', start);
    const end = newline === -1 ? text.length : newline;
    if (!isBlank(text, start, end) && ++count <= max) lines.push(text.slice(start, end));
    start = end + 1;
  }
  return { lines, count };
}

/**
 * The lines are counted before any is parsed: a line that does not parse costs JSON.parse an
 * exception (about 5 µs), so 2 million bad lines (a 4 MB body, 4 KB gzipped) held the event loop
 * for 10 s on their way to being refused for their number.
 */
export const parseNdjson = (text: string, maxReadings: number, carrier: Carrier = 'body') =>
  parseLines(nonBlankLines(text, maxReadings), maxReadings, carrier);

function parseLines(
  { lines, count }: { lines: string[]; count: number },
  maxReadings: number,
  carrier: Carrier,
): NdjsonItem[] {
  if (count === 0) throw badRequest('empty_body', `The ${carrier} has no NDJSON lines`);
  if (count > maxReadings) throw tooManyReadings(count, maxReadings);
  return lines.map((line) => {
    const shape = shapeOf(line, LINE_STRUCTURES, LINE_STRUCTURES);
    if (shape) return { invalid: { ...tooCostly('Line', shape, LINE_STRUCTURES), details: [] } };
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

/**
 * The arrays and objects a text may hold per reading it may carry: a reading holds one (an object),
 * so this leaves room for a stray nested value, which validation names, while `JSON.parse` of
 * 4 MB of small arrays (3.6 million of them: half a second, and gigabytes of garbage for MQTT) is
 * refused by their count.
 */
const STRUCTURES_PER_READING = 4;

/** An NDJSON line with more arrays and objects than this is scanned (it holds one reading). */
const LINE_STRUCTURES = 64;

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

/** What makes a text too costly to parse: its arrays and objects nest too deep, or are too many. */
interface ShapeProblem {
  problem: 'deep' | 'many';
  /** The character where it first shows. */
  at: number;
}

/**
 * Where the text's arrays and objects first nest deeper than `maxDepth` or number more than
 * `maxCount`, or null. A string ends at its closing quote or at a control character (a line
 * break: none is valid in a JSON string), so an unterminated one on a line does not hide the next
 * line; a closer too many does not count.
 */
function shapeProblem(text: string, maxDepth: number, maxCount: number): ShapeProblem | null {
  let depth = 0;
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x22 || d < 0x20) break;
        if (d === 0x5c && text.charCodeAt(i + 1) >= 0x20) i++;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return { problem: 'deep', at: i };
      if (++count > maxCount) return { problem: 'many', at: i };
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return null;
}

/**
 * JSON.parse spends about 0.7 µs on each level of nesting: a 4 MB body of arrays nested 2 million
 * deep held the event loop for 1.4 s (40 of them, for a minute), and about 0.15 µs on each array
 * or object. What makes a text too costly, or null; only a text with more than `structures`
 * arrays and objects is scanned (counting them costs a 1,000-reading body about 30 µs, the scan
 * ten times that), as fewer cannot cost much.
 */
const shapeOf = (text: string, structures: number, maxCount: number) =>
  moreStructuresThan(text, structures) ? shapeProblem(text, MAX_NESTING, maxCount) : null;

const tooCostly = (what: string, { problem, at }: ShapeProblem, maxCount: number) =>
  problem === 'deep'
    ? {
        error: 'nested_too_deep',
        message: `${what} nests arrays and objects more than ${MAX_NESTING} deep (at character ${at}), and was not parsed: a reading is an object of numbers and strings`,
      }
    : {
        error: 'too_many_structures',
        message: `${what} holds more than ${maxCount} arrays and objects (at character ${at}), and was not parsed: a reading is an object of numbers and strings`,
      };

/** Text (already decoded) to what ingest takes: one reading, or a list whose items may be unparseable. */
export function parseIngestText(
  text: string,
  format: IngestFormat,
  maxReadings: number,
  carrier: Carrier = 'body',
): IngestInput {
  if (format === 'ndjson') return { kind: 'batch', items: parseNdjson(text, maxReadings, carrier) };
  // Parsed whole only when not too costly: a batch's readings hold one object each.
  const maxCount = maxReadings * STRUCTURES_PER_READING + 1;
  const shape = shapeOf(text, maxReadings + 1, maxCount);
  if (shape) {
    // Auto (MQTT): a text too deep to be one document may still be NDJSON, each line held alone;
    // with more lines than readings it is not, but one document (pretty-printed) too deep.
    if (format === 'auto' && shape.problem === 'deep') {
      const found = nonBlankLines(text, maxReadings);
      if (found.count > 1 && found.count <= maxReadings) {
        return { kind: 'batch', items: parseLines(found, maxReadings, carrier) };
      }
    }
    const { error, message } = tooCostly(`The ${carrier}`, shape, maxCount);
    throw badRequest(error, message);
  }
  if (format === 'json') return fromJsonValue(parseJsonOrSayNdjson(text), maxReadings);
  let value: unknown;
  try {
    value = parseJson(text, carrier);
  } catch (err) {
    // Several lines of which at least one parses: NDJSON, with its bad lines reported one by one.
    // Otherwise the JSON error (a single broken document, e.g. pretty-printed) says more.
    const found = nonBlankLines(text, maxReadings);
    if (found.count > 1) {
      const items = parseLines(found, maxReadings, carrier);
      if (items.some((item) => 'value' in item)) return { kind: 'batch', items };
    }
    throw err;
  }
  return fromJsonValue(value, maxReadings);
}
