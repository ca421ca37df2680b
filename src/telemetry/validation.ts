import type Ajv from 'ajv';
import type { ErrorDetail } from '../errors';
import { DEVICE_KINDS, type DeviceKind, type Reading } from '../devices/device-kinds';
import { instantMs, REAL_INSTANT_RULE } from '../schema/primitives';
import { retainedFrom } from '../stores/retention';
import {
  compile,
  createAjv,
  describeDetails,
  failure,
  isPlainObject,
  rememberLast,
  toDetails,
  type Validated,
} from '../schema/validator';

/** Earliest timestamp accepted: nothing in an EV fleet's history predates it. */
export const MIN_TIMESTAMP_MS = Date.UTC(1970, 0, 1);

const hasOwn = (obj: object, key: string) => Object.prototype.hasOwnProperty.call(obj, key);

export interface ReadingValidator {
  /** A reading of any kind, recognised by its id field. */
  validateReading(input: unknown): Validated<Reading>;
  /** Parses an RFC 3339 timestamp already checked by the schema, and checks its range. */
  checkTimestamp(value: string, path: string): Validated<number>;
}

const idFields = DEVICE_KINDS.map((k) => k.idField);

function unrecognised(found: string[]): Validated<never> {
  const described = DEVICE_KINDS.map((k) => `${k.idField} (${k.type} reading)`).join(' or ');
  return found.length > 1
    ? failure(
        'unrecognised_reading',
        `A reading carries one of ${idFields.join(', ')}, not ${found.join(' and ')}`,
        [{ path: '/', message: `has both ${found.join(' and ')}` }],
      )
    : failure('unrecognised_reading', `A reading must carry ${described}`, [
        { path: '/', message: `has neither ${idFields.join(' nor ')}` },
      ]);
}

/**
 * A reading with many more keys than its kind declares is refused before the schema runs: the
 * schema reports every key it does not accept, which for an object of 150,000 keys held the event
 * loop for 450 ms (30 ms now, listing its keys; for a reading of a few keys, no measurable cost).
 */
const hasMoreKeysThan = (input: Record<string, unknown>, max: number) =>
  Object.keys(input).length > max;

/**
 * Unknown keys the schema still names one by one (the answer lists the first few and counts the
 * rest); a reading with more is refused by its count.
 */
const MAX_UNKNOWN_KEYS = 100;

/** Builds the engine's reading: type, id and timestamp, and exactly the kind's declared fields. */
function toReading(kind: DeviceKind, input: Record<string, unknown>, ts: number): Reading {
  const reading: Record<string, unknown> = { type: kind.type, id: input[kind.idField], ts };
  for (const name of kind.fieldNames) reading[name] = input[name];
  return reading as Reading;
}

/**
 * An optional field sent as null: its rule alone ("must be a number from 0 to 1000") does not say
 * that leaving it out is how a reading says it has no such value.
 */
function sayOptional(
  kind: DeviceKind,
  input: Record<string, unknown>,
  detail: ErrorDetail,
): ErrorDetail {
  const field = detail.path.slice(1);
  const { properties, required = [] } = kind.readingSchema as {
    properties: Record<string, unknown>;
    required?: string[];
  };
  if (input[field] !== null || !hasOwn(properties, field) || required.includes(field)) {
    return detail;
  }
  return { ...detail, message: `${detail.message}, or be left out (null is not a value)` };
}

export function createReadingValidator({
  ajv = createAjv(),
  maxClockSkewS,
  retentionDays = 0,
  now = Date.now,
}: {
  ajv?: Ajv;
  maxClockSkewS: number;
  /** RETENTION_DAYS: a reading older than what history keeps is refused, not stored and dropped. */
  retentionDays?: number;
  now?: () => number;
}): ReadingValidator {
  const kinds = DEVICE_KINDS.map((kind) => ({
    kind,
    validate: compile(ajv, kind.readingSchema),
    accepted: Object.keys(kind.readingSchema.properties),
  }));

  /** The one kind whose id field the input carries, or undefined (none, or several). */
  function kindOf(input: Record<string, unknown>): (typeof kinds)[number] | undefined {
    let found: (typeof kinds)[number] | undefined;
    for (const entry of kinds) {
      if (!hasOwn(input, entry.kind.idField)) continue;
      if (found) return undefined;
      found = entry;
    }
    return found;
  }

  const parseInstant = rememberLast(instantMs);

  function checkTimestamp(value: string, path: string): Validated<number> {
    const ms = parseInstant(value);
    if (!Number.isFinite(ms)) {
      return failure('invalid_reading', `${path} is not a real instant`, [
        { path, message: REAL_INSTANT_RULE },
      ]);
    }
    if (ms < MIN_TIMESTAMP_MS) {
      return failure('invalid_reading', `${path} is before 1970`, [
        { path, message: 'must not be before 1970-01-01T00:00:00Z' },
      ]);
    }
    if (ms > now() + maxClockSkewS * 1000) {
      return failure(
        'timestamp_in_future',
        `${path} is more than ${maxClockSkewS} s in the future`,
        [
          {
            path,
            message: `must not be more than ${maxClockSkewS} seconds ahead of the server clock`,
          },
        ],
      );
    }
    return { ok: true, value: ms };
  }

  /** A reading's instant within what history keeps (a mapping's `since` may be older). */
  function checkRetained(ms: number, path: string): Validated<number> {
    const keptFrom = retainedFrom(now(), retentionDays);
    if (keptFrom === null || ms >= keptFrom) return { ok: true, value: ms };
    const day = new Date(keptFrom).toISOString();
    return failure(
      'timestamp_before_retention',
      `${path} is before ${day}, the oldest day history keeps (RETENTION_DAYS=${retentionDays})`,
      [{ path, message: `must not be before ${day} (RETENTION_DAYS=${retentionDays})` }],
    );
  }

  function validateReading(input: unknown): Validated<Reading> {
    if (!isPlainObject(input)) {
      return failure('invalid_reading', 'A reading must be a JSON object', [
        { path: '/', message: 'must be an object' },
      ]);
    }
    const match = kindOf(input);
    if (!match) {
      return unrecognised(
        kinds.filter(({ kind }) => hasOwn(input, kind.idField)).map(({ kind }) => kind.idField),
      );
    }
    const { kind, validate, accepted } = match;
    const most = accepted.length + MAX_UNKNOWN_KEYS;
    if (hasMoreKeysThan(input, most)) {
      return failure(
        'invalid_reading',
        `Invalid ${kind.type} reading: it has more than ${most} fields, and a ${kind.type} reading has at most ${accepted.length} (${accepted.join(', ')})`,
        [{ path: '/', message: `must have at most ${accepted.length} properties` }],
      );
    }
    if (!validate(input)) {
      const details = toDetails(validate.errors).map((d) => sayOptional(kind, input, d));
      return failure(
        'invalid_reading',
        `Invalid ${kind.type} reading: ${describeDetails(details)}`,
        details,
      );
    }
    const ts = checkTimestamp(input.timestamp, '/timestamp');
    if (!ts.ok) return ts;
    const retained = checkRetained(ts.value, '/timestamp');
    if (!retained.ok) return retained;
    return { ok: true, value: toReading(kind, input, ts.value) };
  }

  return { validateReading, checkTimestamp };
}
