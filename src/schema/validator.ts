/**
 * One way to validate anything a client sends, whatever the way in (HTTP, MQTT, OCPP): ajv compiles
 * the TypeBox schemas once, and its errors become the API's details, one per offending field.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { Static, TSchema } from '@sinclair/typebox';
import type { ErrorDetail } from '../errors';
import { DEVICE_ID_RULE, TIMESTAMP_RULE } from './primitives';

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

const range = (e: ErrorObject) => {
  const { minimum, maximum, type } = e.parentSchema ?? {};
  if (typeof minimum !== 'number' || typeof maximum !== 'number') return null;
  return `must be ${type === 'integer' ? 'a whole number' : 'a number'} from ${minimum} to ${maximum}`;
};

const FRIENDLY_MESSAGES: Record<string, (e: ErrorObject) => string | null> = {
  required: () => 'is required',
  additionalProperties: () => 'is not an accepted field',
  format: () => TIMESTAMP_RULE,
  pattern: () => DEVICE_ID_RULE,
  type: (e) => range(e) ?? `must be a ${String(e.params.type)}`,
};

/** Turns ajv's errors into one detail per offending field, named by JSON pointer. */
export function toDetails(errors: ErrorObject[] | null | undefined): ErrorDetail[] {
  const details = (errors ?? []).map((e) => {
    let path = e.instancePath;
    if (e.keyword === 'required') path += `/${String(e.params.missingProperty)}`;
    if (e.keyword === 'additionalProperties') path += `/${String(e.params.additionalProperty)}`;
    const friendly = FRIENDLY_MESSAGES[e.keyword]?.(e);
    return { path: path || '/', message: friendly ?? e.message ?? 'is invalid' };
  });
  // ajv may report a field twice (minLength and pattern); one line per field and message is enough.
  const seen = new Set<string>();
  return details.filter((d) => {
    const key = `${d.path} ${d.message}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
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
