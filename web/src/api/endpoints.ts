import { unlessRouteMissing, type ApiClient, type Query } from './api-client';
import type {
  ChargePoint,
  ChargePointList,
  FleetReport,
  FleetSessions,
  MappingHistory,
  MeterList,
  PerformanceReport,
  SessionDetail,
  VehicleList,
  VehicleSessions,
  VehicleStatus,
} from './types';

/**
 * An id as one path segment. `.` and `..` would be read by the browser as dot segments, also
 * percent-encoded, and the request would go to another endpoint (`/v1/vehicles/../status` is
 * `/v1/status`): they are sent as `...`, which the engine refuses with the same words (an id is
 * not dots alone).
 */
export const id = (value: string): string =>
  value === '.' || value === '..' ? '...' : encodeURIComponent(value);

/** One function per engine endpoint the dashboard reads. */

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

/** The engine's largest page of fleet sessions: one usually holds the flagged ones. */
const FLAGGED_SESSIONS_PAGE = 10_000;

/** Pages of flagged sessions read at most: a million sessions, far past any fleet's. */
const FLAGGED_SESSIONS_MAX_PAGES = 100;

/**
 * The fleet's sessions with an alert or drift in the window, every page of them (worst first:
 * a page cut short would leave out the drifting ones, whose efficiency is above the threshold);
 * null: no sessions endpoint. Reading stops once `wanted` says the view moved on (a refresh or a
 * navigation asks again), and at a cursor given twice.
 */
export async function fetchFlaggedSessions(
  api: ApiClient,
  window: { from: string; to: string },
  wanted: () => boolean = () => true,
): Promise<FleetSessions | null> {
  const pageAfter = (cursor?: string) =>
    api.get<FleetSessions>('/v1/analytics/sessions', {
      ...window,
      flagged: 'true',
      limit: FLAGGED_SESSIONS_PAGE,
      ...(cursor ? { cursor } : {}),
    });
  const first = await unlessRouteMissing(pageAfter());
  if (!first) return null;
  const sessions = [...first.sessions];
  let cursor = first.nextCursor;
  for (let page = 1; cursor && page < FLAGGED_SESSIONS_MAX_PAGES && wanted(); page++) {
    const next = await pageAfter(cursor);
    sessions.push(...next.sessions);
    cursor = next.nextCursor === cursor ? null : next.nextCursor;
  }
  return { ...first, sessions, nextCursor: null };
}

export const fetchSession = (api: ApiClient, vehicleId: string, sessionId: string) =>
  api.get<SessionDetail>(`/v1/vehicles/${id(vehicleId)}/sessions/${id(sessionId)}`);

/** The engine's largest page of charge points (GET /v1/charge-points `limit`). */
export const CHARGE_POINTS_MAX_PAGE = 1000;

/**
 * One page of charge points in the engine's order, after `cursor` (a previous page's nextCursor;
 * none: from the first), of `limit` (1 to CHARGE_POINTS_MAX_PAGE; none: the engine's default, 100).
 * null: this engine has no charge points endpoint.
 */
export const fetchChargePoints = (api: ApiClient, page: { limit?: number; cursor?: string } = {}) =>
  unlessRouteMissing(api.get<ChargePointList>('/v1/charge-points', page));

export const fetchChargePoint = (api: ApiClient, chargePointId: string) =>
  api.get<ChargePoint>(`/v1/charge-points/${id(chargePointId)}`);

/**
 * One page of devices with a stored reading, in id order, with their latest stored reading:
 * `limit` (1 to 1000; none: the engine's 100), after `cursor` (a previous page's nextCursor),
 * `silentSince` (RFC 3339: only those whose latest reading is older). null: no such endpoint.
 */
type DevicePage = { limit?: number; cursor?: string; silentSince?: string };

export const fetchMeters = (api: ApiClient, page: DevicePage) =>
  unlessRouteMissing(api.get<MeterList>('/v1/meters', page));

export const fetchVehicles = (api: ApiClient, page: DevicePage) =>
  unlessRouteMissing(api.get<VehicleList>('/v1/vehicles', page));
