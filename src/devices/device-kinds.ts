/**
 * THE declaration of every kind of device the engine hears from: its id field, its reading fields
 * with their limits and units, and where they are stored. Validation, live state, status rows,
 * history columns, analytics and the API document are all derived from here, so adding a field
 * to a kind touches this file and a migration (see README, "Adding a field").
 */
import {
  Type,
  type Static,
  type TNumber,
  type TObject,
  type TOptional,
  type TString,
} from '@sinclair/typebox';
import { DeviceId, Measure, ReadingTimestamp } from '../schema/primitives';

/** One reading field: its schema (limits, unit, description) and its column. */
export interface FieldDeclaration {
  schema: TNumber;
  /** Column in telemetry_history and in the kind's status table (nullable when optional). */
  column: string;
  /** A device may leave it out (e.g. a charger's register without voltage). */
  optional?: true;
}

interface KindDeclaration<
  T extends string,
  I extends string,
  F extends Record<string, FieldDeclaration>,
> {
  type: T;
  /** The reading's id field, e.g. meterId; also the status endpoint's path parameter. */
  idField: I;
  /** Path segment of the kind's endpoints: `/v1/{plural}/{id}/status`. */
  plural: string;
  /** Name of its schemas in the API document: `{Name}Reading`, `{Name}Status`. */
  name: string;
  description: string;
  statusTable: string;
  statusIdColumn: string;
  fields: F;
  /** The fields analytics reads: the energy counter, and for a battery its SoC and temperature. */
  energy: keyof F & string;
  soc?: keyof F & string;
  temperature?: keyof F & string;
}

type FieldSchemas<F extends Record<string, FieldDeclaration>> = {
  [N in keyof F]: F[N]['optional'] extends true ? TOptional<F[N]['schema']> : F[N]['schema'];
};

type ReadingSchema<I extends string, F extends Record<string, FieldDeclaration>> = TObject<
  { [K in I]: TString } & FieldSchemas<F> & { timestamp: TString }
>;

const fieldSchemas = <F extends Record<string, FieldDeclaration>>(fields: F) =>
  Object.fromEntries(
    Object.entries(fields).map(([name, field]) => [
      name,
      field.optional ? Type.Optional(field.schema) : field.schema,
    ]),
  ) as FieldSchemas<F>;

function declareKind<
  const T extends string,
  const I extends string,
  const F extends Record<string, FieldDeclaration>,
>(declaration: KindDeclaration<T, I, F>) {
  const readingSchema = Type.Object(
    {
      [declaration.idField]: DeviceId,
      ...fieldSchemas(declaration.fields),
      timestamp: ReadingTimestamp,
    } as { [K in I]: TString } & FieldSchemas<F> & { timestamp: TString },
    {
      $id: `${declaration.name}Reading`,
      description: declaration.description,
      additionalProperties: false,
    },
  ) as ReadingSchema<I, F>;
  return {
    ...declaration,
    fieldNames: Object.keys(declaration.fields) as (keyof F & string)[],
    readingSchema,
  };
}

/**
 * The largest energy a reading may hold, either semantics: no meter or battery counts a terawatt
 * hour. It keeps every sum and power analytics compute from energy far inside float8; readings near
 * float8's limit overflowed them (a 500 on every report of the window, and the roller stuck on that
 * quarter for the whole fleet).
 */
export const MAX_KWH = 1e9;

export const meterKind = declareKind({
  type: 'meter',
  idField: 'meterId',
  plural: 'meters',
  name: 'Meter',
  description: 'A smart meter (grid side, AC) heartbeat.',
  statusTable: 'meter_status',
  statusIdColumn: 'meter_id',
  fields: {
    kwhConsumedAc: {
      schema: Measure({
        minimum: 0,
        maximum: MAX_KWH,
        unit: 'kWh',
        description: 'kWh drawn from the grid (see ENERGY_READINGS)',
      }),
      column: 'kwh_consumed_ac',
    },
    voltage: {
      schema: Measure({
        minimum: 0,
        maximum: 1000,
        unit: 'V',
        description: 'volts, when the meter measures them',
      }),
      column: 'voltage',
      optional: true,
    },
  },
  energy: 'kwhConsumedAc',
});

export const vehicleKind = declareKind({
  type: 'vehicle',
  idField: 'vehicleId',
  plural: 'vehicles',
  name: 'Vehicle',
  description: 'An electric vehicle (DC side) heartbeat.',
  statusTable: 'vehicle_status',
  statusIdColumn: 'vehicle_id',
  fields: {
    soc: {
      schema: Measure({
        minimum: 0,
        maximum: 100,
        unit: '%',
        description: 'state of charge, percent',
      }),
      column: 'soc',
    },
    kwhDeliveredDc: {
      schema: Measure({
        minimum: 0,
        maximum: MAX_KWH,
        unit: 'kWh',
        description: 'kWh stored in the battery (see ENERGY_READINGS)',
      }),
      column: 'kwh_delivered_dc',
    },
    batteryTemp: {
      schema: Measure({ minimum: -50, maximum: 100, unit: '°C', description: 'degrees Celsius' }),
      column: 'battery_temp',
    },
  },
  energy: 'kwhDeliveredDc',
  soc: 'soc',
  temperature: 'batteryTemp',
});

/** Every kind, in the history key's order (meters before vehicles). */
export const DEVICE_KINDS = [meterKind, vehicleKind] as const;

export type DeviceKind = (typeof DEVICE_KINDS)[number];
export type DeviceType = DeviceKind['type'];

type KindOf<T extends DeviceType> = Extract<DeviceKind, { type: T }>;

/** A validated reading as the engine carries it: built field by field, never from the raw body. */
export type ReadingOf<T extends DeviceType> = {
  type: T;
  id: string;
  /** Epoch milliseconds (readings are stored with millisecond precision). */
  ts: number;
} & Omit<Static<KindOf<T>['readingSchema']>, KindOf<T>['idField'] | 'timestamp'>;

export type Reading = { [T in DeviceType]: ReadingOf<T> }[DeviceType];

export const DEVICE_TYPES = DEVICE_KINDS.map((k) => k.type) as DeviceType[];

export function kindOf<T extends DeviceType>(type: T): KindOf<T> {
  return DEVICE_KINDS.find((k) => k.type === type) as KindOf<T>;
}

/** A reading's field values by field name (the generic view the stores and live state use). */
export const valuesOf = (reading: Reading): Record<string, number | undefined> =>
  reading as unknown as Record<string, number | undefined>;

/** Every history column a reading field is stored in, once, in declaration order. */
export const HISTORY_COLUMNS: { column: string; valueOf: (r: Reading) => number | null }[] =
  DEVICE_KINDS.flatMap((kind) =>
    Object.entries(kind.fields).map(([name, field]) => ({
      column: field.column,
      valueOf: (r: Reading) => (r.type === kind.type ? (valuesOf(r)[name] ?? null) : null),
    })),
  );

/**
 * SQL for the value analytics reads from a history row, by role: each kind's energy column, and
 * SoC and temperature of the kinds that have them (NULL for the others).
 */
function roleSql(role: 'energy' | 'soc' | 'temperature', alias: string): string {
  const columns = DEVICE_KINDS.flatMap((kind) => {
    const field = (kind as { [r in typeof role]?: string })[role];
    return field
      ? [`${alias}${(kind.fields as Record<string, FieldDeclaration>)[field].column}`]
      : [];
  });
  if (columns.length === 0) return 'NULL::float8';
  return columns.length === 1 ? columns[0] : `coalesce(${columns.join(', ')})`;
}

export const historyRoleSql = (alias = '') => {
  const prefix = alias ? `${alias}.` : '';
  return {
    energy: roleSql('energy', prefix),
    soc: roleSql('soc', prefix),
    temperature: roleSql('temperature', prefix),
  };
};
