import { unlessRouteMissing, type ApiClient, type Query } from './api-client';
import type {
  ChargePoint,
  ChargePointList,
  FleetReport,
  FleetSessions,
  MappingHistory,
  PerformanceReport,
  SessionDetail,
  VehicleSessions,
  VehicleStatus,
} from './types';

/** One function per engine endpoint the dashboard reads. */
const id = encodeURIComponent;

export const fetchFleet = (api: ApiClient, query: Query) =>
  api.get<FleetReport>('/v1/analytics/fleet', query);

export const fetchHourlyPerformance = (api: ApiClient, vehicleId: string, query: Query) =>
  api.get<PerformanceReport>(`/v1/analytics/performance/${id(vehicleId)}`, {
    ...query,
    bucket: 'hour',
  });

export const fetchVehicleStatus = (api: ApiClient, vehicleId: string) =>
  api.get<VehicleStatus>(`/v1/vehicles/${id(vehicleId)}/status`);

export const fetchMappingHistory = (api: ApiClient, vehicleId: string) =>
  api.get<MappingHistory>(`/v1/telemetry/map/${id(vehicleId)}`);

/** null: this engine has no sessions endpoint. */
export const fetchSessions = (api: ApiClient, vehicleId: string, query: Query) =>
  unlessRouteMissing(api.get<VehicleSessions>(`/v1/vehicles/${id(vehicleId)}/sessions`, query));

/** The engine's largest page of fleet sessions: flagged ones are few, one page holds them. */
const FLAGGED_SESSIONS_PAGE = 10_000;

/** The fleet's sessions with an alert or drift in the window; null: no sessions endpoint. */
export const fetchFlaggedSessions = (api: ApiClient, window: { from: string; to: string }) =>
  unlessRouteMissing(
    api.get<FleetSessions>('/v1/analytics/sessions', {
      ...window,
      flagged: 'true',
      limit: FLAGGED_SESSIONS_PAGE,
    }),
  );

export const fetchSession = (api: ApiClient, vehicleId: string, sessionId: string) =>
  api.get<SessionDetail>(`/v1/vehicles/${id(vehicleId)}/sessions/${id(sessionId)}`);

/** null: this engine has no charge points endpoint. */
export const fetchChargePoints = (api: ApiClient) =>
  unlessRouteMissing(api.get<ChargePointList>('/v1/charge-points'));

export const fetchChargePoint = (api: ApiClient, chargePointId: string) =>
  api.get<ChargePoint>(`/v1/charge-points/${id(chargePointId)}`);
