/**
 * The schema atoms every contract is built from (TypeBox: each is a JSON Schema and a TypeScript
 * type at once). Requests, responses, device readings and the API document all use these.
 */
import { Type, type TSchema } from '@sinclair/typebox';
import { DAY_MS } from '../time-units';

/** Not dots alone: `.` and `..` are no path segment a URL can carry (browsers resolve them). */
export const DEVICE_ID_PATTERN = '^(?!\\.+$)[A-Za-z0-9._:-]{1,64}$';

export const DeviceId = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: DEVICE_ID_PATTERN,
  description: '1-64 characters from A-Z a-z 0-9 . _ : -, not dots alone',
});

export const TIMESTAMP_RULE =
  'must be an RFC 3339 date-time with a zone offset, e.g. 2024-03-20T10:00:00Z';

/** Why a timestamp the format accepts is still refused: its date or second does not exist. */
export const REAL_INSTANT_RULE =
  'must be a real date and time (no day 31 of a 30-day month; second 60 only as the leap second at the end of a UTC day)';

/** An offset of hours alone (`+05`): the format takes it, Date.parse does not without `:00`. */
const HOURS_OFFSET = /[+-]\d\d$/;

/** Second 60 and its fraction: RFC 3339 allows it for a leap second, Date.parse does not. */
const LEAP_SECOND = /^(.{10}[Tt ]\d\d:\d\d:)60(\.\d+)?/;

/**
 * Epoch ms of a timestamp the format accepted, NaN if it does not exist. One parse for readings,
 * mappings and report windows: `+05` was refused as "not a real instant" where `+0500` passed.
 * A leap second (23:59:60 UTC, in any offset) is the last millisecond of its day: epoch time
 * has no place for it, and a device's GPS clock may send it.
 */
export function instantMs(text: string): number {
  const zoned = HOURS_OFFSET.test(text) ? `${text}:00` : text;
  const parsed = Date.parse(zoned);
  // Only a text Date.parse refuses may be a leap second: the usual one costs no more.
  const leap = Number.isNaN(parsed) ? LEAP_SECOND.exec(zoned) : null;
  if (!leap) return parsed;
  const ms = Date.parse(zoned.replace(LEAP_SECOND, `${leap[1]}59.999`));
  return (ms + 1) % DAY_MS === 0 ? ms : NaN;
}

/** An instant a client sends: RFC 3339 with a zone offset, and how far ahead it may be. */
const timestamp = (ahead: string) =>
  Type.String({
    format: 'date-time',
    maxLength: 64,
    description: `RFC 3339 with a zone offset, e.g. 2024-03-20T10:00:00Z; ${ahead}`,
  });

export const Timestamp = timestamp('from 1970 on, at most MAX_CLOCK_SKEW_S in the future');

/** A reading's instant: history keeps no older one than RETENTION_DAYS says. */
export const ReadingTimestamp = timestamp(
  'from 1970 on, at most MAX_CLOCK_SKEW_S in the future; with RETENTION_DAYS set, no older than the whole UTC days history keeps (timestamp_before_retention)',
);

/** An instant that may not be ahead of the clock at all (the end of a mapping). */
export const PastTimestamp = timestamp('not in the future');

/** An instant the engine answers with (always UTC, milliseconds). */
export const Instant = Type.String({ format: 'date-time' });

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const NullableNumber = Nullable(Type.Number());

/** `{ from, to }` of a report: the half-open window [from, to). */
export const Window = Type.Object({ from: Instant, to: Instant }, { additionalProperties: false });

/**
 * The smallest magnitude a reading's number may have besides 0: a millionth of a Wh, °C, V or %
 * is below any instrument's resolution. Far smaller ones (5e-324) made PostgreSQL's float8
 * arithmetic fail with an underflow (a register's half, a mean, a power), which answered 500 on
 * every report of the window and left the quarter hour unrolled.
 */
export const SMALLEST_MEASURE = 1e-9;

/**
 * A reading's number: ajv's `number` excludes Infinity and NaN (JSON.parse makes 1e400 Infinity).
 * `unit` is published in the API document as `x-unit`; `x-smallest` is SMALLEST_MEASURE.
 */
export const Measure = (options: {
  minimum: number;
  maximum?: number;
  unit: string;
  description: string;
}) =>
  Type.Number({
    minimum: options.minimum,
    ...(options.maximum === undefined ? {} : { maximum: options.maximum }),
    description: options.description,
    'x-unit': options.unit,
    'x-smallest': SMALLEST_MEASURE,
  });

/** A device's energy semantics: each reading the energy since the previous one, or a register. */
export const EnergyMode = Type.Union([Type.Literal('interval'), Type.Literal('cumulative')]);

export const CacheState = Type.Union([
  Type.Literal('hit'),
  Type.Literal('miss'),
  Type.Literal('off'),
]);

export const ErrorDetail = Type.Object(
  {
    path: Type.String({
      description: 'JSON pointer of the offending field ("/" for the whole value)',
    }),
    message: Type.String(),
  },
  { additionalProperties: false },
);

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'a stable machine-readable code, e.g. invalid_reading' }),
    message: Type.String({ description: 'a sentence a person understands' }),
    details: Type.Array(ErrorDetail),
  },
  { $id: 'Error' },
);
