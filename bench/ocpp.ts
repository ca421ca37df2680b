/**
 * The OCPP phase of `npm run bench`: many charge points connected at once to a real API process,
 * each sending MeterValues every few seconds. The charge points run in client processes of their
 * own (bench/ocpp-clients.ts), so they do not share the API's event loop; they measure CALL to
 * .conf. The API process runs with bench/memory-probe.ts preloaded, so its memory is read after a
 * full garbage collection: before any charge point, with all of them connected, and after the
 * traffic.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { SimulatedChargePoint, meterValue, meterValuesReq } from '../scripts/ocpp-charge-point';
import {
  cpuSeconds,
  freePort,
  histogramDelta,
  sleep,
  startNode,
  waitForHttp,
  type Proc,
} from './bench-helpers';
import type { ClientsPlan, ClientsReport } from './ocpp-clients';
import { quantile } from './open-loop';

export interface OcppBenchPlan {
  /** The API's environment (database, Redis, prefix, auth); the port is its own. */
  env: Record<string, string>;
  chargePoints: number;
  clientProcesses: number;
  intervalS: number;
  trafficS: number;
}

interface Memory {
  rssMb: number;
  heapUsedMb: number;
}

export interface OcppBenchResults {
  chargePointsPlanned: number;
  clientProcesses: number;
  /** The API process's open-file limit, which bounds the connections it can hold. */
  apiOpenFileLimit: number | null;
  connect: { connected: number; refused: number; seconds: number };
  /** Charge points the API counted as connected at the end of the traffic. */
  connectionsHeld: number;
  traffic: {
    intervalS: number;
    seconds: number;
    calls: number;
    answered: number;
    callErrors: number;
    failed: number;
    answeredPerS: number;
    p50Ms: number | null;
    p99Ms: number | null;
    maxMs: number | null;
    /**
     * Each charge point's first MeterValues of the traffic (its open transaction read and its
     * connector recorded, a statement shared by those waiting), and the later ones: how the
     * latency splits between warming up and the steady state.
     */
    firstOfEach: { p50Ms: number | null; p99Ms: number | null };
    later: {
      p50Ms: number | null;
      p99Ms: number | null;
      /** Whole seconds of the traffic whose later MeterValues' p99 was above the goal. */
      secondsOverGoal: number;
      seconds: number;
    };
    /**
     * Inside the API, from the CALL read to the .conf written (its OCPP histogram); `atLeast`:
     * the p99 is in the histogram's open last bucket, so it is only known to be above p99Ms.
     */
    server: { p50Ms: number | null; p99Ms: number | null; atLeast: boolean };
    /** The API's event-loop delay p99 over the traffic: time its work waited for the CPU. */
    apiEventLoopLagP99Ms: number | null;
    /** CPU the API process used over the traffic: per answered message, and in cores. */
    apiCpuMsPerMessage: number | null;
    apiCores: number | null;
    /** CPU the client processes used over the traffic, in cores. */
    clientCores: number | null;
  };
  memory: {
    baseline: Memory;
    connected: Memory;
    afterTraffic: Memory;
    /** (RSS, heap) growth from the baseline per connection, all connected and after traffic. */
    idleKbPerConnection: { rss: number; heap: number };
    loadedKbPerConnection: { rss: number; heap: number };
    apiPeakRssMb: number;
  };
  goals: { p99Ms: number; kbPerConnection: number };
  /** The machine's 1-minute load average when the traffic began and ended (other jobs included). */
  loadAverage: { start: number; end: number };
  /** Why the figures may read worse than the engine alone would do. */
  note: string;
}

const GOALS = { p99Ms: 50, kbPerConnection: 30 };
/** The largest finite bucket of energy_ocpp_call_duration_seconds (src/metrics.ts), in ms. */
const DURATION_TOP_BUCKET_MS = 2500;
const ID_PREFIX = 'BENCH-CP-';
const MB = 1024 * 1024;

/** The next IPC message of `type` from a child, or an error after `timeoutMs`. */
function nextMessage<T extends { type: string }>(
  child: ChildProcess,
  type: T['type'],
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error(`no '${type}' from process ${child.pid} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: T) => {
      if (message.type !== type) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(message);
    };
    child.on('message', onMessage);
  });
}

/** The API's memory after a full GC, from the preloaded probe. */
async function apiMemory(api: Proc): Promise<Memory> {
  const reply = nextMessage<{ type: 'memory'; rss: number; heapUsed: number }>(
    api.child,
    'memory',
    30_000,
  );
  api.child.send({ type: 'memory' });
  const { rss, heapUsed } = await reply;
  return { rssMb: rss / MB, heapUsedMb: heapUsed / MB };
}

function openFileLimit(pid: number | undefined): number | null {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    return Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? NaN) || null;
  } catch {
    return null;
  }
}

/** A few charge points through every code path once, so JIT and lazy set-up stay out of the deltas. */
async function warmUp(endpoint: string): Promise<void> {
  const warm = Array.from(
    { length: 20 },
    (_, i) => new SimulatedChargePoint({ endpoint, id: `BENCH-WARM-${i}` }),
  );
  await Promise.all(
    warm.map(async (cp, i) => {
      for (let k = 0; k < 5; k++)
        await cp.call(
          'MeterValues',
          meterValuesReq(1, [meterValue(new Date().toISOString(), 1000 + i + k)]),
        );
    }),
  );
  await Promise.all(warm.map((cp) => cp.close({ force: true })));
  await sleep(500);
}

const scrape = async (apiUrl: string) => (await fetch(`${apiUrl}/metrics`)).text();

/** A gauge of prom-client's default metrics (e.g. nodejs_eventloop_lag_p99_seconds). */
const gauge = (metrics: string, name: string) => {
  const value = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1];
  return value === undefined ? null : Number(value);
};

const connectionsHeld = (metrics: string) =>
  Number(/^energy_ocpp_connected_charge_points\{[^}]*\} (\S+)$/m.exec(metrics)?.[1] ?? 0);

const perConnectionKb = (from: Memory, to: Memory, connections: number) => ({
  rss: ((to.rssMb - from.rssMb) * 1024) / Math.max(1, connections),
  heap: ((to.heapUsedMb - from.heapUsedMb) * 1024) / Math.max(1, connections),
});

export async function benchOcpp(plan: OcppBenchPlan): Promise<OcppBenchResults> {
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const endpoint = `ws://127.0.0.1:${port}/ocpp`;
  const api = startNode('ocpp-api', 'src/server.js', [], { ...plan.env, PORT: String(port) }, [
    '--expose-gc',
    '--require',
    require.resolve('./memory-probe'),
  ]);
  const clients: Proc[] = [];
  try {
    await waitForHttp(`${apiUrl}/health/ready`);
    // Node raises its soft open-file limit to the hard one; each connection takes one descriptor.
    const apiOpenFileLimit = openFileLimit(api.child.pid);
    const chargePoints =
      apiOpenFileLimit === null
        ? plan.chargePoints
        : Math.min(plan.chargePoints, apiOpenFileLimit - 1000);
    if (chargePoints < plan.chargePoints)
      console.log(
        `OCPP: the API may open ${apiOpenFileLimit} files (ulimit -Hn): ${chargePoints} charge points instead of ${plan.chargePoints}`,
      );
    await warmUp(endpoint);
    const baseline = await apiMemory(api);

    const share = Math.ceil(chargePoints / plan.clientProcesses);
    for (let p = 0; p < plan.clientProcesses; p++) {
      const clientsPlan: ClientsPlan = {
        endpoint,
        prefix: ID_PREFIX,
        from: p * share,
        to: Math.min(chargePoints, (p + 1) * share),
        intervalMs: plan.intervalS * 1000,
        trafficMs: plan.trafficS * 1000,
        connectWidth: 100,
      };
      clients.push(
        startNode(`ocpp-clients-${p}`, 'bench/ocpp-clients.js', [JSON.stringify(clientsPlan)], {}),
      );
    }
    const connectReports = await Promise.all(
      clients.map((c) =>
        nextMessage<Extract<ClientsReport, { type: 'connected' }>>(c.child, 'connected', 300_000),
      ),
    );
    const connect = {
      connected: sum(connectReports.map((r) => r.connected)),
      refused: sum(connectReports.map((r) => r.refused)),
      seconds: Math.max(...connectReports.map((r) => r.seconds)),
    };
    console.log(
      `OCPP: ${connect.connected} charge points connected in ${connect.seconds.toFixed(1)} s`,
    );
    await sleep(2000);
    const connected = await apiMemory(api);

    const done = clients.map((c) =>
      nextMessage<Extract<ClientsReport, { type: 'done' }>>(
        c.child,
        'done',
        plan.trafficS * 1000 + 120_000,
      ),
    );
    const metricsBefore = await scrape(apiUrl);
    const loadAtStart = os.loadavg()[0];
    const cpuAtStart = cpuSeconds(api.child.pid);
    const clientCpuAtStart = clients.map((c) => cpuSeconds(c.child.pid));
    for (const c of clients) c.child.send({ type: 'traffic' });
    const peakDuringTraffic = setInterval(() => api.peakRssMb(), 1000);
    const reports = await Promise.all(done);
    clearInterval(peakDuringTraffic);
    const loadAtEnd = os.loadavg()[0];
    const cpuAtEnd = cpuSeconds(api.child.pid);
    const clientCpuS = sum(
      clients.map((c, i) => (cpuSeconds(c.child.pid) ?? NaN) - (clientCpuAtStart[i] ?? NaN)),
    );
    const metricsAfter = await scrape(apiUrl);
    const held = connectionsHeld(metricsAfter);
    const server = histogramDelta(
      metricsBefore,
      metricsAfter,
      'energy_ocpp_call_duration_seconds',
      'action="MeterValues"',
    );
    const afterTraffic = await apiMemory(api);

    const latencies = reports.flatMap((r) => r.latenciesMs).sort((a, b) => a - b);
    const seconds = Math.max(...reports.map((r) => r.seconds));
    const answered = sum(reports.map((r) => r.answered));
    const apiCpuS = cpuAtStart === null || cpuAtEnd === null ? null : cpuAtEnd - cpuAtStart;
    return {
      chargePointsPlanned: plan.chargePoints,
      clientProcesses: plan.clientProcesses,
      apiOpenFileLimit,
      connect,
      connectionsHeld: held,
      traffic: {
        intervalS: plan.intervalS,
        seconds,
        calls: sum(reports.map((r) => r.calls)),
        answered,
        callErrors: sum(reports.map((r) => r.callErrors)),
        failed: sum(reports.map((r) => r.failed)),
        answeredPerS: answered / seconds,
        ...p50p99(latencies),
        maxMs: latencies.length ? latencies[latencies.length - 1] : null,
        ...warmAndSteady(reports, GOALS.p99Ms),
        server: {
          p50Ms: server.p50Ms,
          p99Ms: server.p99Ms,
          atLeast: (server.p99Ms ?? 0) >= DURATION_TOP_BUCKET_MS,
        },
        // prom-client resets its event-loop histogram at each scrape: this spans the traffic.
        apiEventLoopLagP99Ms:
          (gauge(metricsAfter, 'nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000,
        apiCpuMsPerMessage: apiCpuS === null ? null : (apiCpuS * 1000) / Math.max(1, answered),
        apiCores: apiCpuS === null ? null : apiCpuS / seconds,
        clientCores: Number.isFinite(clientCpuS) ? clientCpuS / seconds : null,
      },
      memory: {
        baseline,
        connected,
        afterTraffic,
        idleKbPerConnection: perConnectionKb(baseline, connected, connect.connected),
        loadedKbPerConnection: perConnectionKb(baseline, afterTraffic, held),
        apiPeakRssMb: api.peakRssMb(),
      },
      goals: GOALS,
      loadAverage: { start: loadAtStart, end: loadAtEnd },
      note: `the ${plan.clientProcesses} client processes share this machine's ${os.cpus().length} cores with the API, the flusher, Redis and PostgreSQL (load average ${loadAtStart.toFixed(1)} at the start of the traffic, ${loadAtEnd.toFixed(1)} at its end), so the latencies include their competition for CPU`,
    };
  } finally {
    for (const c of clients) if (c.child.connected) c.child.send({ type: 'exit' });
    await Promise.all(clients.map((c) => c.stop()));
    await api.stop();
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const ascending = (xs: number[]) => xs.sort((a, b) => a - b);
const p50p99 = (sorted: number[]) => ({
  p50Ms: sorted.length ? quantile(sorted, 0.5) : null,
  p99Ms: sorted.length ? quantile(sorted, 0.99) : null,
});

/** The latencies of each charge point's first MeterValues apart from the later ones, per second. */
function warmAndSteady(
  reports: Extract<ClientsReport, { type: 'done' }>[],
  goalMs: number,
): Pick<OcppBenchResults['traffic'], 'firstOfEach' | 'later'> {
  const first: number[] = [];
  const bySecond = new Map<number, number[]>();
  for (const r of reports) {
    r.latenciesMs.forEach((ms, i) => {
      if (r.first[i] === 1) return void first.push(ms);
      const second = Math.floor(r.sentAtMs[i] / 1000);
      const list = bySecond.get(second);
      if (list) list.push(ms);
      else bySecond.set(second, [ms]);
    });
  }
  const perSecond = [...bySecond.values()].map(ascending);
  return {
    firstOfEach: p50p99(ascending(first)),
    later: {
      ...p50p99(ascending(perSecond.flat())),
      // Each second has at least one latency: its p99 is a number.
      secondsOverGoal: perSecond.filter((s) => quantile(s, 0.99) > goalMs).length,
      seconds: perSecond.length,
    },
  };
}
