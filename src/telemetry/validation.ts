import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { ErrorDetail } from '../errors';
import type { Reading } from './readings';
import { mappingRequestSchema, meterReadingSchema, vehicleReadingSchema } from './schemas';

/** Why one reading (or one request body) was refused, in the API's error shape. */
export interface ValidationFailure {
  error: string;
  message: string;
  details: ErrorDetail[];
}

export type Validated<T> = { ok: true; value: T } | { ok: false; failure: ValidationFailure };

/** Earliest timestamp accepted: nothing in an EV fleet's history predates it. */
const MIN_TIMESTAMP_MS = Date.UTC(1970, 0, 1);

export function createAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, coerceTypes: false, useDefaults: false });
  addFormats(ajv, ['date-time']);
  return ajv;
}

const FRIENDLY_MESSAGES: Record<string, (e: ErrorObject) => string> = {
  required: () => 'is required',
  additionalProperties: () => 'is not an accepted field',
  format: () => 'must be an RFC 3339 date-time with a zone offset, e.g. 2024-03-20T10:00:00Z',
  pattern: () => 'must be 1-64 characters from A-Z a-z 0-9 . _ : -',
  type: (e) => `must be a ${String(e.params.type)}`,
};

/** Turns ajv's errors into one detail per offending field, named by JSON pointer. */
export function toDetails(errors: ErrorObject[] | null | undefined): ErrorDetail[] {
  const details = (errors ?? []).map((e) => {
    let path = e.instancePath;
    if (e.keyword === 'required') path += `/${String(e.params.missingProperty)}`;
    if (e.keyword === 'additionalProperties') path += `/${String(e.params.additionalProperty)}`;
    const friendly = FRIENDLY_MESSAGES[e.keyword];
    return { path: path || '/', message: friendly ? friendly(e) : (e.message ?? 'is invalid') };
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

function failure(error: string, message: string, details: ErrorDetail[] = []): Validated<never> {
  return { ok: false, failure: { error, message, details } };
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const hasOwn = (obj: object, key: string) => Object.prototype.hasOwnProperty.call(obj, key);

interface MeterInput {
  meterId: string;
  kwhConsumedAc: number;
  voltage: number;
  timestamp: string;
}

interface VehicleInput {
  vehicleId: string;
  soc: number;
  kwhDeliveredDc: number;
  batteryTemp: number;
  timestamp: string;
}

export interface ReadingValidator {
  validateReading(input: unknown): Validated<Reading>;
  /** Parses an RFC 3339 timestamp already checked by the schema, and checks its range. */
  checkTimestamp(value: string, path: string): Validated<number>;
}

export function createReadingValidator({
  ajv = createAjv(),
  maxClockSkewS,
  now = Date.now,
}: {
  ajv?: Ajv;
  maxClockSkewS: number;
  now?: () => number;
}): ReadingValidator {
  const validateMeter = ajv.compile<MeterInput>(meterReadingSchema);
  const validateVehicle = ajv.compile<VehicleInput>(vehicleReadingSchema);

  function checkTimestamp(value: string, path: string): Validated<number> {
    const ms = Date.parse(value);
    if (!Number.isFinite(ms)) {
      return failure('invalid_reading', `${path} is not a real instant`, [
        {
          path,
          message: 'must be a real date and time (no leap second or day 31 of a 30-day month)',
        },
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

  function schemaFailure(kind: string, validate: ValidateFunction): Validated<never> {
    const details = toDetails(validate.errors);
    return failure(
      'invalid_reading',
      `Invalid ${kind} reading: ${describeDetails(details)}`,
      details,
    );
  }

  function validateReading(input: unknown): Validated<Reading> {
    if (!isPlainObject(input)) {
      return failure('invalid_reading', 'A reading must be a JSON object', [
        { path: '/', message: 'must be an object' },
      ]);
    }
    const isMeter = hasOwn(input, 'meterId');
    const isVehicle = hasOwn(input, 'vehicleId');
    if (isMeter === isVehicle) {
      return failure(
        'unrecognised_reading',
        isMeter
          ? 'A reading carries either meterId (meter) or vehicleId (vehicle), not both'
          : 'A reading must carry meterId (meter reading) or vehicleId (vehicle reading)',
        [
          {
            path: '/',
            message: isMeter
              ? 'has both meterId and vehicleId'
              : 'has neither meterId nor vehicleId',
          },
        ],
      );
    }
    if (isMeter) {
      if (!validateMeter(input)) return schemaFailure('meter', validateMeter);
      const ts = checkTimestamp(input.timestamp, '/timestamp');
      if (!ts.ok) return ts;
      return {
        ok: true,
        value: {
          type: 'meter',
          id: input.meterId,
          ts: ts.value,
          kwhConsumedAc: input.kwhConsumedAc,
          voltage: input.voltage,
        },
      };
    }
    if (!validateVehicle(input)) return schemaFailure('vehicle', validateVehicle);
    const ts = checkTimestamp(input.timestamp, '/timestamp');
    if (!ts.ok) return ts;
    return {
      ok: true,
      value: {
        type: 'vehicle',
        id: input.vehicleId,
        ts: ts.value,
        soc: input.soc,
        kwhDeliveredDc: input.kwhDeliveredDc,
        batteryTemp: input.batteryTemp,
      },
    };
  }

  return { validateReading, checkTimestamp };
}

export interface MappingRequest {
  vehicleId: string;
  meterId: string;
  since?: string;
}

export function createMappingValidator(ajv: Ajv = createAjv()) {
  const validate = ajv.compile<MappingRequest>(mappingRequestSchema);
  return (input: unknown): Validated<MappingRequest> => {
    if (!isPlainObject(input)) {
      return failure('invalid_mapping', 'The mapping must be a JSON object', [
        { path: '/', message: 'must be an object' },
      ]);
    }
    if (!validate(input)) {
      const details = toDetails(validate.errors);
      return failure('invalid_mapping', `Invalid mapping: ${describeDetails(details)}`, details);
    }
    return {
      ok: true,
      value: { vehicleId: input.vehicleId, meterId: input.meterId, since: input.since },
    };
  };
}
