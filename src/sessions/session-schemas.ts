/** The sessions responses: schemas the API document publishes, and their TypeScript types. */
import { Type, type Static } from '@sinclair/typebox';
import { CacheState, Instant, Nullable, NullableNumber, Window } from '../schema/primitives';

export const Session = Type.Object(
  {
    id: Type.String({ description: 'tx-<transactionId> (OCPP) or d-<start in ms> (detected)' }),
    vehicleId: Type.String(),
    source: Type.Union([Type.Literal('ocpp'), Type.Literal('detected')]),
    transactionId: Nullable(Type.Integer()),
    start: Instant,
    end: Instant,
    durationS: Type.Number(),
    open: Type.Boolean({ description: 'the session may still be going on' }),
    meters: Type.Array(Type.String(), { description: 'the meters it charged from' }),
    acConsumedKwh: NullableNumber,
    dcDeliveredKwh: NullableNumber,
    efficiency: Nullable(Type.Number({ description: 'DC / AC, 4 decimals' })),
    meanAcPowerKw: NullableNumber,
    peakAcPowerKw: NullableNumber,
    socStart: NullableNumber,
    socEnd: NullableNumber,
    batteryTempMeanC: NullableNumber,
    batteryTempMaxC: NullableNumber,
    threshold: Type.Number({
      description: 'the threshold applied: its power class (EFFICIENCY_THRESHOLDS) or the default',
    }),
    alert: Nullable(Type.Boolean({ description: 'efficiency below its threshold' })),
    drift: Nullable(
      Type.Boolean({
        description:
          "efficiency more than EFFICIENCY_DRIFT below the median of the vehicle's sessions on the same meter over the 30 days before (null: fewer than 5)",
      }),
    ),
    baseline: Nullable(
      Type.Object(
        { medianEfficiency: Type.Number(), sessions: Type.Integer() },
        { additionalProperties: false },
      ),
    ),
    counts: Type.Object(
      { vehicleReadings: Type.Integer(), meterReadings: Type.Integer() },
      { additionalProperties: false },
    ),
    warnings: Type.Array(Type.String(), {
      description:
        'what makes its figures doubtful, as the performance report says it: DC above AC (a meter mapped to the wrong vehicle, or the wrong energy mode), or why it has no efficiency (no meter mapped, no readings, no AC)',
    }),
  },
  { $id: 'Session', additionalProperties: false },
);

const WindowWarnings = Type.Array(Type.String(), {
  description:
    'what makes the list doubtful: a window starting before what history keeps (RETENTION_DAYS), whose sessions before it are gone',
});

export const VehicleSessions = Type.Object(
  {
    vehicleId: Type.String(),
    window: Window,
    sessions: Type.Array(Session, { description: 'newest first; overlapping the window, whole' }),
    warnings: WindowWarnings,
    cache: CacheState,
  },
  { $id: 'VehicleSessions', additionalProperties: false },
);

export const SessionMinute = Type.Object(
  {
    minute: Instant,
    acPowerKw: NullableNumber,
    dcPowerKw: NullableNumber,
    soc: NullableNumber,
    batteryTempC: NullableNumber,
  },
  { additionalProperties: false },
);

export const SessionDetail = Type.Object(
  { ...Session.properties, series: Type.Array(SessionMinute) },
  { $id: 'SessionDetail', additionalProperties: false },
);

export const FleetSessions = Type.Object(
  {
    window: Window,
    totals: Type.Object(
      { sessions: Type.Integer(), flagged: Type.Integer(), drifting: Type.Integer() },
      { additionalProperties: false },
    ),
    sessions: Type.Array(Session, { description: 'worst efficiency first' }),
    warnings: WindowWarnings,
    nextCursor: Nullable(Type.String()),
    cache: CacheState,
  },
  { $id: 'FleetSessions', additionalProperties: false },
);

/** The per-vehicle report's view of its sessions. */
export const SessionSummary = Type.Object(
  {
    count: Type.Integer(),
    flagged: Type.Integer({ description: 'sessions with an alert or drift' }),
    worst: Nullable(Session),
  },
  { additionalProperties: false },
);

export type Session = Static<typeof Session>;
export type SessionMinute = Static<typeof SessionMinute>;
export type SessionSummary = Static<typeof SessionSummary>;
