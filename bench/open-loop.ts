/**
 * An open-loop load generator: request i is sent at start + i / rate whatever the server is doing,
 * and its latency is measured from that scheduled time, so a server that stalls is charged for
 * every request that should have gone out during the stall (no coordinated omission). Connections
 * are kept alive and reused; when all are busy another one opens rather than the send waiting, up
 * to `maxConnections`: beyond it a request waits for a free connection, its latency still counted
 * from its scheduled time (so an overloaded server is not also buried under new connections).
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface OpenLoopRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface OpenLoopOptions {
  /** Origin, e.g. http://127.0.0.1:3000. */
  url: string;
  ratePerS: number;
  durationS: number;
  /** The i-th request (0-based). */
  request: (i: number) => OpenLoopRequest;
  /** A request unanswered this long counts as an error (its latency is not recorded). */
  timeoutMs?: number;
  /** Connections open at most; default no limit. */
  maxConnections?: number;
}

export interface OpenLoopResult {
  ratePerS: number;
  durationS: number;
  /** Requests sent (all scheduled ones). */
  sent: number;
  /** Answered with 2xx; the latency figures are of these. */
  ok: number;
  /** Non-2xx answers, connection errors and timeouts. */
  errors: number;
  statuses: Record<string, number>;
  /** Answered requests per second, from the first scheduled send to the last answer. */
  achievedPerS: number;
  /** How late the generator itself sent, at most (a busy generator shows here). */
  maxSendLagMs: number;
  /** Connections opened. */
  connections: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** The q-quantile of ascending `sorted` (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

interface Outcome {
  status: number | 'error';
  scheduledAt: number;
  doneAt: number;
}

function send(
  agent: http.Agent,
  origin: URL,
  spec: OpenLoopRequest,
  scheduledAt: number,
  timeoutMs: number,
  sockets: Set<unknown>,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const finish = (status: Outcome['status']) =>
      resolve({ status, scheduledAt, doneAt: performance.now() });
    const headers: Record<string, string | number> = { ...spec.headers };
    if (spec.body !== undefined) headers['content-length'] = Buffer.byteLength(spec.body);
    const req = http.request(
      {
        agent,
        host: origin.hostname,
        port: origin.port,
        method: spec.method,
        path: spec.path,
        headers,
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        res.on('end', () => finish(res.statusCode ?? 0));
        res.on('error', () => finish('error'));
      },
    );
    req.on('socket', (socket) => sockets.add(socket));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => finish('error'));
    req.end(spec.body);
  });
}

export async function openLoop({
  url,
  ratePerS,
  durationS,
  request,
  timeoutMs = 10_000,
  maxConnections = Infinity,
}: OpenLoopOptions): Promise<OpenLoopResult> {
  const origin = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxConnections });
  const sockets = new Set<unknown>();
  const total = Math.round(ratePerS * durationS);
  const intervalMs = 1000 / ratePerS;
  const pending: Promise<Outcome>[] = [];
  let maxSendLagMs = 0;
  const start = performance.now() + 5;
  await new Promise<void>((resolve) => {
    let i = 0;
    const tick = () => {
      const now = performance.now();
      for (; i < total && start + i * intervalMs <= now; i++) {
        const scheduledAt = start + i * intervalMs;
        maxSendLagMs = Math.max(maxSendLagMs, now - scheduledAt);
        pending.push(send(agent, origin, request(i), scheduledAt, timeoutMs, sockets));
      }
      if (i >= total) return resolve();
      setTimeout(tick, Math.max(0, start + i * intervalMs - performance.now()));
    };
    setTimeout(tick, 5);
  });
  const outcomes = await Promise.all(pending);
  agent.destroy();
  return summarise(outcomes, {
    ratePerS,
    durationS,
    start,
    maxSendLagMs,
    connections: sockets.size,
  });
}

function summarise(
  outcomes: Outcome[],
  run: {
    ratePerS: number;
    durationS: number;
    start: number;
    maxSendLagMs: number;
    connections: number;
  },
): OpenLoopResult {
  const statuses: Record<string, number> = {};
  const latencies: number[] = [];
  let lastDone = run.start;
  for (const o of outcomes) {
    statuses[o.status] = (statuses[o.status] ?? 0) + 1;
    lastDone = Math.max(lastDone, o.doneAt);
    if (o.status !== 'error' && o.status >= 200 && o.status < 300)
      latencies.push(o.doneAt - o.scheduledAt);
  }
  const sorted = Float64Array.from(latencies).sort();
  return {
    ratePerS: run.ratePerS,
    durationS: run.durationS,
    sent: outcomes.length,
    ok: latencies.length,
    errors: outcomes.length - latencies.length,
    statuses,
    achievedPerS: latencies.length / ((lastDone - run.start) / 1000),
    maxSendLagMs: run.maxSendLagMs,
    connections: run.connections,
    p50Ms: quantile(sorted, 0.5),
    p95Ms: quantile(sorted, 0.95),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}
