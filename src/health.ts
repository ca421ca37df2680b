import { Type } from '@sinclair/typebox';
import { defineRoute, reply, type AnyRoute } from './http/route-contract';
import { withTimeout } from './with-timeout';

/** A readiness check resolves when its dependency works and rejects (with a reason) when not. */
export type ReadinessChecks = Record<string, () => Promise<unknown>>;

const CHECK_TIMEOUT_MS = 1000;

const Health = Type.Object(
  {
    status: Type.Union([Type.Literal('live'), Type.Literal('ready'), Type.Literal('not_ready')]),
    reason: Type.Optional(Type.String()),
    checks: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { $id: 'Health', additionalProperties: false },
);

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
export function healthRoutes({
  checks,
  parts = {},
  isShuttingDown = () => false,
}: {
  checks: ReadinessChecks;
  parts?: Record<string, { checks: string[]; summary: string }>;
  isShuttingDown?: () => boolean;
}): AnyRoute[] {
  const readiness = (
    path: string,
    operationId: string,
    summary: string,
    selected: ReadinessChecks,
  ) =>
    defineRoute({
      method: 'get',
      path,
      operationId,
      summary,
      ignoresQuery: true,
      responses: {
        200: { description: 'ready', schema: Health },
        503: { description: 'not ready; names the failing part', schema: Health },
      },
      handler: async () => {
        if (isShuttingDown()) {
          return reply(503, { status: 'not_ready' as const, reason: 'shutting down', checks: {} });
        }
        const { ready, checks: report } = await runReadinessChecks(selected);
        const failing = Object.keys(report).filter((name) => report[name] !== 'ok');
        return ready
          ? reply(200, { status: 'ready' as const, checks: report })
          : reply(503, {
              status: 'not_ready' as const,
              reason: `${failing.join(' and ')} not available`,
              checks: report,
            });
      },
    });
  return [
    defineRoute({
      method: 'get',
      path: '/health/live',
      operationId: 'getLiveness',
      summary: 'The process is up',
      ignoresQuery: true,
      responses: { 200: { description: 'live', schema: Health } },
      handler: () => reply(200, { status: 'live' as const }),
    }),
    readiness(
      '/health/ready',
      'getReadiness',
      `${Object.keys(checks).join(' and ')} answer`,
      checks,
    ),
    ...Object.entries(parts).map(([part, { checks: names, summary }]) =>
      readiness(
        `/health/ready/${part}`,
        `get${part.charAt(0).toUpperCase()}${part.slice(1)}Readiness`,
        summary,
        Object.fromEntries(names.map((name) => [name, checks[name]])),
      ),
    ),
  ];
}
