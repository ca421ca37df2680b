/** The analytics responses: schemas the API document publishes, and their TypeScript types. */
import { Type, type Static } from '@sinclair/typebox';
import { SessionSummary } from '../sessions/session-schemas';
import {
  CacheState,
  EnergyMode,
  Instant,
  Nullable,
  NullableNumber,
  Window,
} from '../schema/primitives';

export const MeterPeriod = Type.Object(
  {
    meterId: Type.String(),
    from: Instant,
    to: Instant,
    energyReadings: { ...EnergyMode, description: "the meter's own energy semantics" },
  },
  { additionalProperties: false },
);

export const ReadingCounts = Type.Object(
  { vehicleReadings: Type.Integer(), meterReadings: Type.Integer() },
  { additionalProperties: false },
);

export const HourlyPoint = Type.Object(
  {
    hour: Instant,
    acConsumedKwh: NullableNumber,
    dcDeliveredKwh: NullableNumber,
    efficiency: NullableNumber,
    avgTempC: NullableNumber,
    socEnd: NullableNumber,
  },
  { additionalProperties: false },
);

export const PerformanceReport = Type.Object(
  {
    vehicleId: Type.String(),
    window: Window,
    meters: Type.Array(MeterPeriod, {
      description:
        'the meters the vehicle was mapped to, each clipped to the part of the window it held',
    }),
    energy: Type.Object(
      {
        acConsumedKwh: NullableNumber,
        dcDeliveredKwh: NullableNumber,
        efficiency: Nullable(
          Type.Number({
            description:
              'DC / AC, 4 decimals; null when AC is 0 or unknown, or DC is 0 (the vehicle did not charge)',
          }),
        ),
        threshold: Type.Number(),
        alert: Nullable(Type.Boolean({ description: 'efficiency below threshold' })),
        mode: {
          ...EnergyMode,
          description: "the vehicle's energy semantics (each meter's: meters)",
        },
      },
      { additionalProperties: false },
    ),
    battery: Type.Object(
      {
        avgTempC: NullableNumber,
        minTempC: NullableNumber,
        maxTempC: NullableNumber,
        socStart: NullableNumber,
        socEnd: NullableNumber,
        socMin: NullableNumber,
        socMax: NullableNumber,
      },
      { additionalProperties: false },
    ),
    counts: ReadingCounts,
    warnings: Type.Array(Type.String()),
    sessions: { ...SessionSummary, description: "the window's charging sessions" },
    series: Type.Optional(
      Type.Array(HourlyPoint, {
        description:
          'with bucket=hour: one entry per hour of the window (the first and last may be partial)',
      }),
    ),
    cache: CacheState,
  },
  { $id: 'PerformanceReport', additionalProperties: false },
);

export const WorstSession = Type.Object(
  {
    id: Type.String(),
    efficiency: Type.Number(),
    threshold: Type.Number(),
    alert: Nullable(Type.Boolean()),
    drift: Nullable(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const FleetVehicle = Type.Object(
  {
    vehicleId: Type.String(),
    meters: Type.Array(MeterPeriod),
    acConsumedKwh: NullableNumber,
    dcDeliveredKwh: NullableNumber,
    efficiency: NullableNumber,
    alert: Nullable(Type.Boolean()),
    counts: ReadingCounts,
    worstSession: Type.Optional(
      Nullable({
        ...WorstSession,
        description: "with rank=session: the vehicle's least efficient session in the window",
      }),
    ),
  },
  { additionalProperties: false },
);

export const FleetReport = Type.Object(
  {
    window: Window,
    mode: {
      ...EnergyMode,
      description: 'ENERGY_READINGS: the semantics of devices without their own',
    },
    below: Type.Number({ description: 'efficiency below this raises an alert' }),
    totals: Type.Object(
      {
        vehiclesChecked: Type.Integer(),
        vehiclesFlagged: Type.Integer(),
        withoutMapping: Type.Integer(),
        withoutMeterData: Type.Integer(),
      },
      { additionalProperties: false },
    ),
    vehicles: Type.Array(FleetVehicle, {
      description:
        'worst efficiency first; undefined efficiency (AC 0, no vehicle readings, or no DC: idle) last',
    }),
    withoutMapping: Type.Array(Type.String(), {
      description: 'vehicles with readings but no meter mapping in the window',
    }),
    withoutMeterData: Type.Array(Type.String(), {
      description: 'vehicles whose mapped meters sent nothing in the window',
    }),
    sharedMeters: Type.Array(
      Type.Object(
        { meterId: Type.String(), vehicles: Type.Array(Type.String()) },
        { additionalProperties: false },
      ),
      {
        description:
          "meters mapped to two or more of the vehicles at once in the window: the meter's whole AC counts for each of them",
      },
    ),
    warnings: Type.Array(Type.String(), {
      description:
        'what makes the whole report doubtful: a window starting before what history keeps (RETENTION_DAYS), whose vehicles may then be listed without meter data',
    }),
    nextCursor: Nullable(
      Type.String({ description: 'pass as cursor for the next page; null on the last' }),
    ),
    cache: CacheState,
  },
  { $id: 'FleetReport', additionalProperties: false },
);

export type PerformanceReport = Static<typeof PerformanceReport>;
export type HourlyPoint = Static<typeof HourlyPoint>;
export type FleetVehicle = Static<typeof FleetVehicle>;
export type FleetReport = Static<typeof FleetReport>;
export type WorstSession = Static<typeof WorstSession>;
