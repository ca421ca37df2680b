/**
 * The engine's response bodies. Where the engine exports a route's response schema, the type is
 * that schema's TypeBox `Static<>` (imported type-only: nothing of src/ reaches the bundle). The
 * status, device list, mapping and charge point schemas live inside their route files, so those
 * are declared here, and test/browser/api-types.test.ts holds them equal to the API document.
 */
import type { Static } from '@sinclair/typebox';
import type {
  FleetReport as FleetReportSchema,
  FleetVehicle as FleetVehicleSchema,
  HourlyPoint as HourlyPointSchema,
  PerformanceReport as PerformanceReportSchema,
} from '../../../src/analytics/report-schemas';
import type {
  FleetSessions as FleetSessionsSchema,
  Session as SessionSchema,
  SessionDetail as SessionDetailSchema,
  SessionMinute as SessionMinuteSchema,
  VehicleSessions as VehicleSessionsSchema,
} from '../../../src/sessions/session-schemas';
import type { ErrorBody as ErrorBodySchema } from '../../../src/schema/primitives';

export type FleetReport = Static<typeof FleetReportSchema>;
export type FleetVehicle = Static<typeof FleetVehicleSchema>;
export type HourlyPoint = Static<typeof HourlyPointSchema>;
export type PerformanceReport = Static<typeof PerformanceReportSchema>;
export type ChargingSession = Static<typeof SessionSchema>;
export type SessionMinute = Static<typeof SessionMinuteSchema>;
export type SessionDetail = Static<typeof SessionDetailSchema>;
export type VehicleSessions = Static<typeof VehicleSessionsSchema>;
export type FleetSessions = Static<typeof FleetSessionsSchema>;
export type ErrorBody = Static<typeof ErrorBodySchema>;

/**
 * How a device's energy is read: `interval`, each reading's value is the energy since the reading
 * before; `cumulative`, its register's running total.
 */
export type EnergyReadings = 'interval' | 'cumulative';

/** `VehicleStatus` of the API document (GET /v1/vehicles/{vehicleId}/status). */
export interface VehicleStatus {
  vehicleId: string;
  timestamp: string;
  soc: number;
  kwhDeliveredDc: number;
  batteryTemp: number;
  energyReadings: EnergyReadings | null;
  source: 'live' | 'database';
}

export interface MappingPeriod {
  meterId: string;
  from: string;
  to: string | null;
}

/** `MappingHistory` of the API document (GET /v1/telemetry/map/{vehicleId}). */
export interface MappingHistory {
  vehicleId: string;
  current: MappingPeriod | null;
  history: MappingPeriod[];
}

export interface OpenTransaction {
  transactionId: number;
  idTag: string;
  vehicleId: string | null;
  startedAt: string;
  meterStartKwh: number;
}

export interface Connector {
  connectorId: number;
  meterId: string;
  status: string | null;
  errorCode: string | null;
  info: string | null;
  vendorErrorCode: string | null;
  statusAt: string | null;
  registerKwh: number | null;
  registerAt: string | null;
  openTransaction: OpenTransaction | null;
}

/** `ChargePoint` of the API document (GET /v1/charge-points/{chargePointId}). */
export interface ChargePoint {
  id: string;
  connected: boolean;
  connectedAt: string | null;
  lastSeenAt: string | null;
  lastBootAt: string | null;
  vendor: string | null;
  model: string | null;
  firmwareVersion: string | null;
  connectors: Connector[];
}

/** `ChargePointList` of the API document (GET /v1/charge-points). */
export interface ChargePointList {
  chargePoints: ChargePoint[];
  nextCursor: string | null;
}

/** A meter's latest stored reading, in `MeterList` of the API document (GET /v1/meters). */
export interface MeterListing {
  meterId: string;
  timestamp: string;
  kwhConsumedAc: number;
  /** null: the reading had no voltage (a charger's register without one). */
  voltage: number | null;
  /** How kwhConsumedAc reads. */
  energyReadings: EnergyReadings;
}

/** `MeterList` of the API document (GET /v1/meters). */
export interface MeterList {
  meters: MeterListing[];
  nextCursor: string | null;
}

/** A vehicle's latest stored reading, in `VehicleList` of the API document (GET /v1/vehicles). */
export interface VehicleListing {
  vehicleId: string;
  timestamp: string;
  soc: number;
  kwhDeliveredDc: number;
  batteryTemp: number;
  /** How kwhDeliveredDc reads. */
  energyReadings: EnergyReadings;
}

/** `VehicleList` of the API document (GET /v1/vehicles). */
export interface VehicleList {
  vehicles: VehicleListing[];
  nextCursor: string | null;
}
