/**
 * A share of the OCPP benchmark's charge points, in a process of its own (bench/ocpp.ts starts
 * one or two), so the clients do not run on the API's event loop. Driven over IPC:
 *
 *   argv[2] = JSON ClientsPlan; connects every charge point, then sends {type:'connected'};
 *   {type:'traffic'} -> each charge point sends MeterValues every intervalMs, at its own offset,
 *                       for trafficMs; then {type:'done'} with the CALL-to-.conf latencies;
 *   {type:'exit'}    -> closes every connection and exits.
 */
import { SimulatedChargePoint, meterValue, meterValuesReq } from '../scripts/ocpp-charge-point';

export interface ClientsPlan {
  endpoint: string;
  /** Charge point ids are `{prefix}{n}` for n in [from, to). */
  prefix: string;
  from: number;
  to: number;
  intervalMs: number;
  trafficMs: number;
  /** Connections opened at once while connecting. */
  connectWidth: number;
}

export type ClientsReport =
  | { type: 'connected'; connected: number; refused: number; seconds: number }
  | {
      type: 'done';
      /** CALLs begun during the traffic window, and those answered with a .conf. */
      calls: number;
      answered: number;
      /** CALLs answered with a CALLERROR, or with nothing (timed out, disconnected). */
      callErrors: number;
      failed: number;
      /** CALL to .conf, ms, of every answered CALL. */
      latenciesMs: number[];
      /** Per latency: when its CALL was sent, ms since the traffic began. */
      sentAtMs: number[];
      /** Per latency: 1 for a charge point's first MeterValues of the traffic, else 0. */
      first: number[];
      /** Connections still open at the end of the traffic. */
      open: number;
      seconds: number;
    };

const report = (message: ClientsReport) => process.send?.(message);

async function connectAll(chargePoints: SimulatedChargePoint[], width: number) {
  const started = Date.now();
  let refused = 0;
  const queue = chargePoints.slice();
  const worker = async () => {
    for (let cp = queue.shift(); cp; cp = queue.shift()) {
      await cp.connect().catch(() => refused++);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  report({
    type: 'connected',
    connected: chargePoints.filter((cp) => cp.connected).length,
    refused,
    seconds: (Date.now() - started) / 1000,
  });
}

/** Each charge point's MeterValues every intervalMs, starting at a random offset within it. */
async function traffic(chargePoints: SimulatedChargePoint[], plan: ClientsPlan) {
  const latenciesMs: number[] = [];
  const sentAtMs: number[] = [];
  const firstFlags: number[] = [];
  const tally = { calls: 0, answered: 0, callErrors: 0, failed: 0 };
  const inFlight = new Set<Promise<void>>();
  const started = Date.now();
  const endAt = started + plan.trafficMs;
  const timers: NodeJS.Timeout[] = [];
  const sendFrom = (cp: SimulatedChargePoint, registerWh: { value: number }, isFirst: boolean) => {
    if (Date.now() >= endAt) return;
    registerWh.value += 18; // 11 kW for 6 s
    const begun = performance.now();
    const sentAt = Date.now() - started;
    tally.calls++;
    const call = cp
      .callOnce(
        'MeterValues',
        meterValuesReq(1, [meterValue(new Date().toISOString(), registerWh.value, 230)]),
      )
      .then(
        () => {
          tally.answered++;
          latenciesMs.push(performance.now() - begun);
          sentAtMs.push(sentAt);
          firstFlags.push(isFirst ? 1 : 0);
        },
        (err: { rpcErrorCode?: string }) => {
          if (err.rpcErrorCode) tally.callErrors++;
          else tally.failed++;
        },
      )
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  };
  chargePoints.forEach((cp, i) => {
    const registerWh = { value: 1_000_000 + i };
    const first = setTimeout(() => {
      sendFrom(cp, registerWh, true);
      timers.push(setInterval(() => sendFrom(cp, registerWh, false), plan.intervalMs));
    }, Math.random() * plan.intervalMs);
    timers.push(first);
  });
  await new Promise((r) => setTimeout(r, plan.trafficMs));
  timers.forEach((t) => clearTimeout(t));
  await Promise.all(inFlight);
  report({
    type: 'done',
    ...tally,
    latenciesMs,
    sentAtMs,
    first: firstFlags,
    open: chargePoints.filter((cp) => cp.connected).length,
    seconds: (Date.now() - started) / 1000,
  });
}

function main(): void {
  const plan = JSON.parse(process.argv[2]) as ClientsPlan;
  const chargePoints = Array.from(
    { length: plan.to - plan.from },
    (_, i) =>
      new SimulatedChargePoint({
        endpoint: plan.endpoint,
        id: `${plan.prefix}${plan.from + i}`,
        pingIntervalMs: 0, // the engine pings every 30 s; the clients add only MeterValues
        // The engine validates every message either way; the clients leave that CPU to the API.
        strict: false,
        retryDelayMs: 500,
      }),
  );
  process.on('message', (message: { type: string }) => {
    if (message.type === 'traffic') void traffic(chargePoints, plan);
    if (message.type === 'exit')
      void Promise.all(chargePoints.map((cp) => cp.close({ force: true }))).then(() =>
        process.exit(0),
      );
  });
  void connectAll(chargePoints, plan.connectWidth);
}

main();
