/** The engine's response bodies, as src/http/response-schemas.ts describes them. */
export interface MeterPeriod {
  meterId: string;
  from: string;
  to: string;
}

export interface ReadingCounts {
  vehicleReadings: number;
  meterReadings: number;
}

export interface FleetVehicle {
  vehicleId: string;
  meters: MeterPeriod[];
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
  efficiency: number | null;
  alert: boolean | null;
  counts: ReadingCounts;
  /** Announced, not served yet: why a vehicle is flagged, once sessions exist. */
  reason?: string | null;
  drift?: boolean | null;
}

export interface FleetReport {
  window: { from: string; to: string };
  mode: 'interval' | 'cumulative';
  below: number;
  totals: {
    vehiclesChecked: number;
    vehiclesFlagged: number;
    withoutMapping: number;
    withoutMeterData: number;
  };
  vehicles: FleetVehicle[];
  withoutMapping: string[];
  withoutMeterData: string[];
  nextCursor: string | null;
}

export interface HourlyPoint {
  hour: string;
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
  efficiency: number | null;
  avgTempC: number | null;
  socEnd: number | null;
}

export interface PerformanceReport {
  vehicleId: string;
  window: { from: string; to: string };
  meters: MeterPeriod[];
  energy: {
    acConsumedKwh: number | null;
    dcDeliveredKwh: number | null;
    efficiency: number | null;
    threshold: number;
    alert: boolean | null;
    mode: 'interval' | 'cumulative';
  };
  battery: {
    avgTempC: number | null;
    minTempC: number | null;
    maxTempC: number | null;
    socStart: number | null;
    socEnd: number | null;
    socMin: number | null;
    socMax: number | null;
  };
  counts: ReadingCounts;
  warnings: string[];
  series?: HourlyPoint[];
}

export interface VehicleStatus {
  vehicleId: string;
  timestamp: string;
  soc: number;
  kwhDeliveredDc: number;
  batteryTemp: number;
  source: 'live' | 'database';
}

export interface MappingHistory {
  vehicleId: string;
  current: { meterId: string; from: string; to: string | null } | null;
  history: { meterId: string; from: string; to: string | null }[];
}

/** Announced (GET /v1/vehicles/:id/sessions), not served yet. */
export interface ChargingSession {
  id: string;
  source: 'ocpp' | 'detected';
  transactionId?: string | number | null;
  start: string;
  end: string | null;
  open: boolean;
  meters?: unknown[];
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
  efficiency: number | null;
  threshold: number;
  alert: boolean | null;
  drift?: boolean | null;
  reason?: string | null;
  socStart: number | null;
  socEnd: number | null;
  meanAcPowerKw: number | null;
  peakAcPowerKw: number | null;
}

export interface SessionList {
  vehicleId: string;
  window: { from: string; to: string };
  sessions: ChargingSession[];
}

export interface SessionMinute {
  minute: string;
  acPowerKw: number | null;
  dcPowerKw: number | null;
  soc: number | null;
  batteryTempC: number | null;
}

export interface SessionDetail extends ChargingSession {
  series: SessionMinute[];
}

/** Announced (GET /v1/charge-points), not served yet. */
export interface Connector {
  connectorId: number | string;
  meterId: string | null;
  status: string | null;
  errorCode: string | null;
  registerKwh: number | null;
  openTransaction: unknown;
}

export interface ChargePoint {
  id: string;
  connected: boolean;
  lastBootAt: string | null;
  connectors: Connector[];
}

export interface ChargePointList {
  chargePoints: ChargePoint[];
}

export interface ErrorBody {
  error: string;
  message: string;
}
