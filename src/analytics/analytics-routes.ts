import { Router } from 'express';
import { badRequest } from '../errors';
import { DEVICE_ID_PATTERN } from '../telemetry/schemas';
import type { PerformanceService } from './performance-service';
import { parseWindow } from './window-params';

const DEVICE_ID = new RegExp(DEVICE_ID_PATTERN);

export function createAnalyticsRouter({
  performance,
  config,
  now = Date.now,
}: {
  performance: PerformanceService;
  config: { analyticsCacheTtlS: number };
  now?: () => number;
}): Router {
  const router = Router();

  router.get('/v1/analytics/performance/:vehicleId', async (req, res) => {
    const { vehicleId } = req.params;
    if (!DEVICE_ID.test(vehicleId)) {
      throw badRequest(
        'invalid_device_id',
        'vehicleId must be 1-64 characters from A-Z a-z 0-9 . _ : -',
        [{ path: '/vehicleId', message: 'must be 1-64 characters from A-Z a-z 0-9 . _ : -' }],
      );
    }
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
