import { Type } from '@sinclair/typebox';
import { EFFICIENCY_BOUNDS } from '../config';
import { defineRoute, reply, type AnyRoute } from '../http/route-contract';
import { DeviceId, ErrorBody } from '../schema/primitives';
import {
  decodeCursor,
  filterOfPage,
  limitOfPage,
  REPORT_PAGE_DEFAULT,
  REPORT_PAGE_MAX,
  windowOfPage,
} from '../reports/paging';
import type { FleetScope, FleetService } from './fleet-service';
import type { PerformanceService } from './performance-service';
import { FleetReport, PerformanceReport } from './report-schemas';
import { MAX_WINDOW_HOURS, WindowQuery, nowAlignS, parseWindow } from '../reports/window-params';
import { FreshQuery } from '../reports/report-cache';

/** The fleet report's filters and page size, as its query declares them and its cursors must hold them. */
const Below = Type.Number({
  ...EFFICIENCY_BOUNDS,
  description: 'alert threshold; default EFFICIENCY_THRESHOLD',
});
const Limit = Type.Integer({
  minimum: 1,
  maximum: REPORT_PAGE_MAX,
  description: `vehicles per page; default ${REPORT_PAGE_DEFAULT}, or the cursor's page's`,
});
const Rank = Type.Union([Type.Literal('efficiency'), Type.Literal('session')], {
  description:
    "efficiency (default): by the window's efficiency; session: by each vehicle's worst charging session (adds worstSession)",
});

export function analyticsRoutes({
  performance,
  fleet,
  config,
  now = Date.now,
}: {
  performance: PerformanceService;
  fleet: FleetService;
  config: { analyticsCacheTtlS: number; efficiencyThreshold: number };
  now?: () => number;
}): AnyRoute[] {
  return [
    defineRoute({
      method: 'get',
      path: '/v1/analytics/performance/{vehicleId}',
      operationId: 'getVehiclePerformance',
      summary: 'AC consumed, DC delivered, efficiency and battery behaviour over a window',
      scope: 'read',
      database: true,
      params: Type.Object({ vehicleId: DeviceId }),
      query: Type.Object({
        ...WindowQuery,
        ...FreshQuery,
        bucket: Type.Optional(
          Type.Literal('hour', {
            description: 'hour: add `series`, one entry per hour, for charts',
          }),
        ),
      }),
      responses: {
        200: { description: 'the report', schema: PerformanceReport },
        404: { description: 'no readings and no mapping', schema: ErrorBody },
      },
      handler: async ({ params, query }) => {
        const window = parseWindow(query, {
          now: now(),
          alignS: nowAlignS(config.analyticsCacheTtlS),
        });
        return reply(
          200,
          await performance.report(params.vehicleId, window.from, window.to, {
            bucket: query.bucket,
            fresh: query.fresh,
          }),
        );
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/analytics/fleet',
      operationId: 'getFleetReport',
      summary: 'Every vehicle mapped or active in the window, worst efficiency first, paged',
      description:
        'A window ending now (no `to`) ends at the last whole hour: the fleet reads hourly rollups only. `window` in the answer states the bounds.',
      scope: 'read',
      database: true,
      query: Type.Object({
        ...WindowQuery,
        below: Type.Optional(Below),
        limit: Type.Optional(Limit),
        cursor: Type.Optional(Type.String({ description: 'nextCursor of the previous page' })),
        rank: Type.Optional(Rank),
      }),
      responses: { 200: { description: 'the fleet report', schema: FleetReport } },
      handler: async ({ query }) => {
        // A window ending "now" ends at the last whole hour here: the fleet then reads rollups
        // only (no partial hours), which is what keeps 10,000 vehicles well under a second.
        const asked = () => parseWindow(query, { now: now(), alignS: 3600 });
        const page = query.cursor ? decodeCursor(query.cursor) : null;
        const scope: FleetScope = page
          ? {
              ...windowOfPage(page, query, asked, MAX_WINDOW_HOURS),
              below: filterOfPage(page, 'below', query.below, Below),
              rank: filterOfPage(page, 'rank', query.rank, Rank),
            }
          : {
              ...asked(),
              below: query.below ?? config.efficiencyThreshold,
              rank: query.rank ?? 'efficiency',
            };
        const limit = limitOfPage(page, query.limit, Limit, REPORT_PAGE_DEFAULT);
        return reply(200, await fleet.report(scope, { limit, offset: page?.offset ?? 0 }));
      },
    }),
  ];
}
