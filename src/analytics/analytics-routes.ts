import { Router } from 'express';
import type { Authorize } from '../auth/authorize';
import { badRequest } from '../errors';
import { deviceIdParam } from '../http/device-id-param';
import { decodeCursor, type FleetService } from './fleet-service';
import type { PerformanceService } from './performance-service';
import { parseWindow } from './window-params';

function numberParam(
  query: Record<string, unknown>,
  name: string,
  fallback: number,
  { min, max, integer }: { min: number; max: number; integer: boolean },
): number {
  const text = query[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (
    typeof text !== 'string' ||
    text === '' ||
    !Number.isFinite(value) ||
    value < min ||
    value > max ||
    (integer && !Number.isInteger(value))
  ) {
    const kind = integer ? 'a whole number' : 'a number';
    throw badRequest('invalid_parameter', `${name} must be ${kind} from ${min} to ${max}`, [
      { path: `/${name}`, message: `must be ${kind} from ${min} to ${max}` },
    ]);
  }
  return value;
}

export function createAnalyticsRouter({
  performance,
  fleet,
  config,
  authorize,
  now = Date.now,
}: {
  authorize: Authorize;
  performance: PerformanceService;
  fleet: FleetService;
  config: { analyticsCacheTtlS: number; efficiencyThreshold: number };
  now?: () => number;
}): Router {
  const router = Router();

  router.get('/v1/analytics/fleet', authorize('read'), async (req, res) => {
    const query = req.query as Record<string, unknown>;
    // A window ending "now" ends at the last whole hour here: the fleet then reads rollups only
    // (no partial hours), which is what keeps 10,000 vehicles well under a second.
    const window = parseWindow(query, {
      now: now(),
      alignS: 3600,
      allowed: ['from', 'to', 'hours', 'below', 'limit', 'cursor'],
    });
    const below = numberParam(query, 'below', config.efficiencyThreshold, {
      min: 0,
      max: 10,
      integer: false,
    });
    const limit = numberParam(query, 'limit', 100, { min: 1, max: 10_000, integer: true });
    const cursor = query.cursor;
    if (cursor !== undefined && typeof cursor !== 'string') {
      throw badRequest('invalid_parameter', 'cursor must be given once', [
        { path: '/cursor', message: 'must be given once' },
      ]);
    }
    const offset = cursor ? decodeCursor(cursor) : 0;
    res.json(await fleet.report(window.from, window.to, { below, limit, offset }));
  });

  router.get('/v1/analytics/performance/:vehicleId', authorize('read'), async (req, res) => {
    const vehicleId = deviceIdParam(req, 'vehicleId');
    const window = parseWindow(req.query as Record<string, unknown>, {
      now: now(),
      alignS: Math.min(config.analyticsCacheTtlS, 60),
      allowed: ['from', 'to', 'hours', 'bucket'],
    });
    const { bucket } = req.query;
    if (bucket !== undefined && bucket !== 'hour') {
      throw badRequest('invalid_parameter', 'bucket must be hour', [
        { path: '/bucket', message: 'must be hour' },
      ]);
    }
    res.json(await performance.report(vehicleId, window.from, window.to, { bucket }));
  });

  return router;
}
