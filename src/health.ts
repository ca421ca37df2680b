import { Router } from 'express';
import { withTimeout } from './with-timeout';

/** A readiness check resolves when its dependency works and rejects (with a reason) when not. */
export type ReadinessChecks = Record<string, () => Promise<unknown>>;

const CHECK_TIMEOUT_MS = 1000;

export async function runReadinessChecks(
  checks: ReadinessChecks,
): Promise<{ ready: boolean; checks: Record<string, string> }> {
  const names = Object.keys(checks);
  const outcomes = await Promise.allSettled(
    names.map((n) => withTimeout(checks[n](), CHECK_TIMEOUT_MS, 'check')),
  );
  const report: Record<string, string> = {};
  outcomes.forEach((outcome, i) => {
    report[names[i]] =
      outcome.status === 'fulfilled'
        ? 'ok'
        : `failing: ${(outcome.reason as Error)?.message || 'unknown error'}`;
  });
  return { ready: outcomes.every((o) => o.status === 'fulfilled'), checks: report };
}

/** `/health/live`: the process is up. `/health/ready`: its dependencies answer. */
export function createHealthRouter({
  checks,
  isShuttingDown = () => false,
}: {
  checks: ReadinessChecks;
  isShuttingDown?: () => boolean;
}): Router {
  const router = Router();
  router.get('/health/live', (_req, res) => {
    res.json({ status: 'live' });
  });
  router.get('/health/ready', async (_req, res) => {
    if (isShuttingDown()) {
      res.status(503).json({ status: 'not_ready', reason: 'shutting down', checks: {} });
      return;
    }
    const { ready, checks: report } = await runReadinessChecks(checks);
    const failing = Object.keys(report).filter((name) => report[name] !== 'ok');
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'not_ready',
      ...(ready ? {} : { reason: `${failing.join(' and ')} not available` }),
      checks: report,
    });
  });
  return router;
}
