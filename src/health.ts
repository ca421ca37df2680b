import { Router, type RequestHandler } from 'express';
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

/**
 * `/health/live`: the process is up. `/health/ready`: its dependencies answer.
 * `/health/ready/<part>`: only the checks that part needs (`parts`), e.g. the API's ingest needs
 * Redis only, so a load balancer in front of ingest keeps it in rotation while PostgreSQL is down.
 */
export function createHealthRouter({
  checks,
  parts = {},
  isShuttingDown = () => false,
}: {
  checks: ReadinessChecks;
  parts?: Record<string, string[]>;
  isShuttingDown?: () => boolean;
}): Router {
  const router = Router();
  router.get('/health/live', (_req, res) => {
    res.json({ status: 'live' });
  });
  const readiness =
    (selected: ReadinessChecks): RequestHandler =>
    async (_req, res) => {
      if (isShuttingDown()) {
        res.status(503).json({ status: 'not_ready', reason: 'shutting down', checks: {} });
        return;
      }
      const { ready, checks: report } = await runReadinessChecks(selected);
      const failing = Object.keys(report).filter((name) => report[name] !== 'ok');
      res.status(ready ? 200 : 503).json({
        status: ready ? 'ready' : 'not_ready',
        ...(ready ? {} : { reason: `${failing.join(' and ')} not available` }),
        checks: report,
      });
    };
  router.get('/health/ready', readiness(checks));
  for (const [part, names] of Object.entries(parts)) {
    const selected = Object.fromEntries(names.map((name) => [name, checks[name]]));
    router.get(`/health/ready/${part}`, readiness(selected));
  }
  return router;
}
