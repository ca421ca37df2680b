/**
 * One way to validate anything a client sends, whatever the way in (HTTP, MQTT, OCPP): ajv compiles
 * the TypeBox schemas once, and its errors become the API's details, one per offending field.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { Static, TSchema } from '@sinclair/typebox';
import type { ErrorDetail } from '../errors';
import { TIMESTAMP_RULE } from './primitives';

/** Why one value (a reading, a request body, a parameter) was refused, in the API's error shape. */
export interface ValidationFailure {
  error: string;
  message: string;
  details: ErrorDetail[];
}

export type Validated<T> = { ok: true; value: T } | { ok: false; failure: ValidationFailure };

export const failure = (
  error: string,
  message: string,
  details: ErrorDetail[] = [],
): Validated<never> => ({ ok: false, failure: { error, message, details } });

/** Keywords our schemas carry for the API document only. */
const ANNOTATIONS = ['x-unit'];

/**
 * `coerce`: query strings and path segments arrive as text, so numbers are coerced there; bodies
 * are JSON and are never coerced.
 */
export function createAjv({ coerce = false }: { coerce?: boolean } = {}): Ajv {
  // verbose: errors carry their schema, so a message can state a parameter's range.
  const ajv = new Ajv({
    allErrors: true,
    strict: true,
    verbose: true,
    coerceTypes: coerce,
    useDefaults: false,
  });
  addFormats(ajv, ['date-time']);
  const dateTime = ajv.formats['date-time'] as { validate: (value: string) => boolean };
  ajv.addFormat('date-time', { ...dateTime, validate: rememberLast(dateTime.validate) });
  ajv.addVocabulary(ANNOTATIONS);
  ajv.addKeyword({
    keyword: 'x-smallest',
    type: 'number',
    schemaType: 'number',
    validate: (smallest: number, value: number) => value === 0 || Math.abs(value) >= smallest,
  });
  return ajv;
}

/**
 * A function of a string that answers at once for the string it was last given: the readings of
 * a batch mostly share their timestamp, and the full RFC 3339 check cost a third of validating
 * one, its parse another tenth. `compute` must depend on its argument only.
 */
export function rememberLast<T>(compute: (value: string) => T): (value: string) => T {
  let last: { value: string; result: T } | undefined;
  return (value) => {
    if (last?.value !== value) last = { value, result: compute(value) };
    return last.result;
  };
}

/** Compiles a schema once per ajv instance (a schema with `$id` may only be added once). */
export function compile<T extends TSchema>(ajv: Ajv, schema: T): ValidateFunction<Static<T>> {
  const id = (schema as { $id?: string }).$id;
  const known = id ? ajv.getSchema<Static<T>>(id) : undefined;
  return known ?? ajv.compile<Static<T>>(schema);
}

/** A JSON Schema of a number: its `type`, `minimum` and `maximum` are read. */
type NumberSchema = Record<string, unknown>;

/** A plain decimal, with or without a leading zero (`0.5`, `.5`), as a RegExp's source. */
export const DECIMAL = '(?:\\d+(?:\\.\\d+)?|\\.\\d+)';
const DECIMAL_TEXT = new RegExp(`^-?${DECIMAL}$`);
/** An integer in digits alone. */
const INTEGER_TEXT = /^-?\d+$/;

/**
 * Whether a number given as text (a query parameter, an environment variable, a command-line
 * option) is written as its schema's kind is. ajv's coercion alone also takes "Infinity", "0x10"
 * and "0b11"; an exponent (`5e-1`, `PORT=1e3`) is more likely a slip than meant.
 */
export const isNumberText = ({ type }: NumberSchema, text: string): boolean =>
  (type === 'integer' ? INTEGER_TEXT : DECIMAL_TEXT).test(text);

/**
 * Said after a number's rule when its text is a number written otherwise (`5e-1`, `0x10`, `1e3`):
 * the rule alone ("a number from 0.1 to 0.99") reads as if 0.5 were out of range.
 */
export function notationNote(text: string): string {
  const trimmed = text.trim();
  const otherwise =
    trimmed !== '' && !DECIMAL_TEXT.test(trimmed) && Number.isFinite(Number(trimmed));
  return otherwise ? ` written in plain digits (${trimmed} is not)` : '';
}

/** What a number parameter or field accepts: "must be a whole number from 1 to 168". */
export function numberRule({ type, minimum, maximum }: NumberSchema): string {
  const kind = type === 'integer' ? 'a whole number' : 'a number';
  if (typeof minimum !== 'number' || typeof maximum !== 'number') return `must be ${kind}`;
  return `must be ${kind} from ${minimum} to ${maximum}`;
}

const range = (e: ErrorObject) => {
  const schema = (e.parentSchema ?? {}) as NumberSchema;
  return typeof schema.minimum === 'number' && typeof schema.maximum === 'number'
    ? numberRule(schema)
    : null;
};

/** A field's whole rule, where its schema describes it (e.g. DeviceId: "1-64 characters from ..."). */
const describedRule = (e: ErrorObject) => {
  const description = (e.parentSchema as { description?: unknown } | undefined)?.description;
  return typeof description === 'string' ? `must be ${description}` : null;
};

/**
 * A length out of bounds states its limit: as the field's whole rule where its description names
 * the limit (DeviceId: "1-64 characters from ..."), else alone (a timestamp's description, or a
 * parameter's "window start (inclusive)", is no length rule).
 */
const lengthRule = (e: ErrorObject) => {
  const limit = Number(e.params.limit);
  const rule = describedRule(e);
  if (rule?.includes('characters') && new RegExp(`(^|\\D)${limit}(\\D|$)`).test(rule)) return rule;
  const chars = `${limit} character${limit === 1 ? '' : 's'}`;
  return e.keyword === 'maxLength' ? `must be at most ${chars}` : `must be at least ${chars}`;
};

/** A pattern's rule is its schema's description, else the pattern itself. */
const patternRule = (e: ErrorObject) =>
  describedRule(e) ?? `must match ${String(e.params.pattern)}`;

/** The values a schema of constants accepts (a const, null, or a union of them), else null. */
function constantsOf(schema: unknown): unknown[] | null {
  if (!isPlainObject(schema)) return null;
  if ('const' in schema) return [schema.const];
  if (schema.type === 'null') return [null];
  if (!Array.isArray(schema.anyOf)) return null;
  const values = schema.anyOf.map(constantsOf);
  return values.every((v) => v !== null) ? values.flat() : null;
}

/** A union of constants (e.g. `"interval" | "cumulative" | null`) says what it accepts. */
const allowedValues = (e: ErrorObject) => {
  const values = constantsOf({ anyOf: e.schema });
  return values && `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
};

/** What an unknown field is told. */
const NOT_ACCEPTED = 'is not an accepted field';

const FRIENDLY_MESSAGES: Record<string, (e: ErrorObject) => string | null> = {
  required: () => 'is required',
  maxLength: lengthRule,
  minLength: lengthRule,
  additionalProperties: () => NOT_ACCEPTED,
  format: () => TIMESTAMP_RULE,
  pattern: patternRule,
  // A bound states the whole range where there is one: "hours must be >= 1" left out the 168.
  minimum: range,
  maximum: range,
  type: (e) =>
    range(e) ??
    (e.params.type === 'boolean' ? 'must be true or false' : `must be a ${String(e.params.type)}`),
  const: (e) => `must be ${JSON.stringify(e.params.allowedValue)}`,
  'x-smallest': (e) =>
    `must be 0 or at least ${String(e.schema)} in size (a smaller value is below any instrument's resolution)`,
  anyOf: allowedValues,
};

/**
 * An unknown key as a pointer segment (RFC 6901), cut to its first KEY_SHOWN characters: a body of
 * a few keys of 200,000 characters each (4 KB gzipped) was answered with 12 MB naming them whole.
 */
const KEY_SHOWN = 64;
const shownKey = (key: unknown) => {
  const text = String(key);
  const cut = text.length > KEY_SHOWN ? `${text.slice(0, KEY_SHOWN)}…` : text;
  return cut.replace(/~/g, '~0').replace(/\//g, '~1');
};

/** Problems listed per value; the rest are counted. */
export const MAX_DETAILS = 10;

/** Turns ajv's errors into one detail per offending field, named by JSON pointer. */
export function toDetails(errors: ErrorObject[] | null | undefined): ErrorDetail[] {
  const all = errors ?? [];
  // A union of constants says once what it accepts; its branches' own errors would say it piecemeal.
  const unions = all.filter((e) => e.keyword === 'anyOf' && allowedValues(e) !== null);
  const inUnion = (e: ErrorObject) =>
    unions.some((u) => e.schemaPath.startsWith(`${u.schemaPath}/`));
  const details = all
    .filter((e) => !inUnion(e))
    .map((e) => {
      let path = e.instancePath;
      if (e.keyword === 'required') path += `/${String(e.params.missingProperty)}`;
      if (e.keyword === 'additionalProperties') path += `/${shownKey(e.params.additionalProperty)}`;
      const friendly = FRIENDLY_MESSAGES[e.keyword]?.(e);
      return { path: path || '/', message: friendly ?? e.message ?? 'is invalid' };
    });
  // ajv may report a field twice (minLength and pattern); one line per field and message is enough.
  const seen = new Set<string>();
  const unique = details.filter((d) => {
    const key = `${d.path} ${d.message}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
  if (unique.length <= MAX_DETAILS) return unique;
  // An object with thousands of unknown fields must not get an answer thousands of times its size;
  // the problems of the fields it needs are listed first, so that a cut never hides them.
  const listed = [
    ...unique.filter((d) => d.message !== NOT_ACCEPTED),
    ...unique.filter((d) => d.message === NOT_ACCEPTED),
  ];
  const rest = unique.length - MAX_DETAILS;
  return [
    ...listed.slice(0, MAX_DETAILS),
    { path: '/', message: `has ${rest} more problem${rest === 1 ? '' : 's'} not listed` },
  ];
}

export const describeDetails = (details: ErrorDetail[]) =>
  details.map((d) => `${d.path} ${d.message}`).join('; ');

export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Validates a JSON object against a schema: the value, or a failure coded `invalid_<name>`
 * ("Invalid mapping: /since must be ...").
 */
export function objectValidator<T extends TSchema>(ajv: Ajv, schema: T, name: string) {
  const validate = compile(ajv, schema);
  return (input: unknown): Validated<Static<T>> => {
    const code = `invalid_${name.replace(/ /g, '_')}`;
    if (!isPlainObject(input)) {
      return failure(code, `The ${name} must be a JSON object`, [
        { path: '/', message: 'must be an object' },
      ]);
    }
    if (!validate(input)) {
      const details = toDetails(validate.errors);
      return failure(code, `Invalid ${name}: ${describeDetails(details)}`, details);
    }
    return { ok: true, value: input };
  };
}
