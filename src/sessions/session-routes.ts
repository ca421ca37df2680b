import { Type } from '@sinclair/typebox';
import {
  decodeCursor,
  encodeCursor,
  filterOfPage,
  limitOfPage,
  REPORT_PAGE_DEFAULT,
  REPORT_PAGE_MAX,
  windowOfPage,
} from '../reports/paging';
import {
  DEFAULT_HOURS,
  DST_HOUR,
  MAX_WINDOW_HOURS,
  nowAlignS,
  parseWindow,
} from '../reports/window-params';
import { FreshQuery } from '../reports/report-cache';
import { retentionWarnings } from '../reports/retention-warning';
import { defineRoute, reply, type AnyRoute } from '../http/route-contract';
import { DeviceId, ErrorBody, Timestamp } from '../schema/primitives';
import { FleetSessions, SessionDetail, VehicleSessions } from './session-schemas';
import type { SessionService } from './session-service';
import { DETECTED_SESSION_ID, TRANSACTION_SESSION_ID } from './session-store';

const VEHICLE_DEFAULT_HOURS = 7 * 24;
/** A quarter in local time (92 days, and the hour leaving summer time adds). */
const VEHICLE_MAX_HOURS = 92 * 24 + DST_HOUR;
/** The fleet's sessions take a report's window: a day by default, a month at most. */
const FLEET_DEFAULT_HOURS = DEFAULT_HOURS;
const FLEET_MAX_HOURS = MAX_WINDOW_HOURS;

const windowQuery = (defaultHours: number, maxHours: number) => ({
  from: Type.Optional({
    ...Timestamp,
    description: `window start (inclusive); default ${defaultHours} hours before to; given alone (without to or hours), the window runs until now`,
  }),
  to: Type.Optional({
    ...Timestamp,
    description: `window end (exclusive); default now; at most ${maxHours} hours after from`,
  }),
  hours: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: maxHours,
      description: `window length, with at most one of from/to (as the reports take it): ending now or at to, or starting at from`,
    }),
  ),
});

/** The fleet sessions list's filter, as its query declares it and its cursors must hold it. */
const Limit = Type.Integer({
  minimum: 1,
  maximum: REPORT_PAGE_MAX,
  description: `default ${REPORT_PAGE_DEFAULT}, or the cursor's page's`,
});
const Flagged = Type.Boolean({ description: 'true: only sessions with an alert or drift' });

/** `/v1/vehicles/{vehicleId}/sessions[/{sessionId}]` and `/v1/analytics/sessions`. */
export function sessionRoutes({
  sessions,
  config,
  now = Date.now,
}: {
  sessions: SessionService;
  config: { analyticsCacheTtlS: number; retentionDays: number };
  now?: () => number;
}): AnyRoute[] {
  const alignS = nowAlignS(config.analyticsCacheTtlS);
  return [
    defineRoute({
      method: 'get',
      path: '/v1/vehicles/{vehicleId}/sessions',
      operationId: 'listVehicleSessions',
      summary: "A vehicle's charging sessions overlapping the window, newest first",
      scope: 'read',
      database: true,
      params: Type.Object({ vehicleId: DeviceId }),
      query: Type.Object({
        ...windowQuery(VEHICLE_DEFAULT_HOURS, VEHICLE_MAX_HOURS),
        ...FreshQuery,
      }),
      responses: {
        200: { description: 'the sessions', schema: VehicleSessions },
        404: { description: 'no readings and no mapping', schema: ErrorBody },
      },
      handler: async ({ params, query }) => {
        const window = parseWindow(query, {
          now: now(),
          alignS,
          defaultHours: VEHICLE_DEFAULT_HOURS,
          maxWindowHours: VEHICLE_MAX_HOURS,
          fromAloneEndsNow: true,
        });
        const found = await sessions.ofVehicle(params.vehicleId, window.from, window.to, {
          fresh: query.fresh,
        });
        return reply(200, {
          vehicleId: params.vehicleId,
          window: { from: window.from.toISOString(), to: window.to.toISOString() },
          sessions: found.sessions,
          warnings: retentionWarnings(window.from, config.retentionDays, now()),
          cache: found.cache,
        });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/vehicles/{vehicleId}/sessions/{sessionId}',
      operationId: 'getVehicleSession',
      summary:
        'One charging session with its per-minute series (AC and DC power, SoC, temperature)',
      scope: 'read',
      database: true,
      params: Type.Object({
        vehicleId: DeviceId,
        sessionId: Type.String({
          pattern: `${TRANSACTION_SESSION_ID.source}|${DETECTED_SESSION_ID.source}`,
          description:
            'a session id as the sessions list gives it: tx-<transaction id> or d-<start, epoch ms>; a d- id whose session has since started earlier (a late reading) answers the session now holding that instant, under its current id',
        }),
      }),
      responses: {
        200: { description: 'the session', schema: SessionDetail },
        404: { description: 'no such session', schema: ErrorBody },
      },
      handler: async ({ params }) =>
        reply(200, await sessions.detail(params.vehicleId, params.sessionId)),
    }),
    defineRoute({
      method: 'get',
      path: '/v1/analytics/sessions',
      operationId: 'listFleetSessions',
      summary:
        'Charging sessions of the whole fleet overlapping the window, worst efficiency first, paged',
      scope: 'read',
      database: true,
      query: Type.Object({
        ...windowQuery(FLEET_DEFAULT_HOURS, FLEET_MAX_HOURS),
        flagged: Type.Optional(Flagged),
        limit: Type.Optional(Limit),
        cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page' })),
      }),
      responses: { 200: { description: 'the sessions', schema: FleetSessions } },
      handler: async ({ query }) => {
        const asked = () =>
          parseWindow(query, {
            now: now(),
            alignS,
            defaultHours: FLEET_DEFAULT_HOURS,
            maxWindowHours: FLEET_MAX_HOURS,
            fromAloneEndsNow: true,
          });
        const page = query.cursor ? decodeCursor(query.cursor) : null;
        const window = page ? windowOfPage(page, query, asked, FLEET_MAX_HOURS) : asked();
        const flagged = page
          ? filterOfPage(page, 'flagged', query.flagged, Flagged)
          : (query.flagged ?? false);
        const found = await sessions.ofFleet(window.from, window.to);
        const listed = flagged
          ? found.sessions.filter((s) => s.alert === true || s.drift === true)
          : found.sessions;
        const offset = page?.offset ?? 0;
        const limit = limitOfPage(page, query.limit, Limit, REPORT_PAGE_DEFAULT);
        const next = offset + limit;
        const scope = { from: window.from.toISOString(), to: window.to.toISOString(), flagged };
        return reply(200, {
          window: { from: scope.from, to: scope.to },
          totals: {
            sessions: found.sessions.length,
            flagged: found.sessions.filter((s) => s.alert === true || s.drift === true).length,
            drifting: found.sessions.filter((s) => s.drift === true).length,
          },
          sessions: listed.slice(offset, next),
          warnings: retentionWarnings(window.from, config.retentionDays, now()),
          nextCursor: next < listed.length ? encodeCursor(next, scope, limit) : null,
          cache: found.cache,
        });
      },
    }),
  ];
}
