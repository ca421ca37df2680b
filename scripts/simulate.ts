/**
 * `npm run simulate -- --meters N --vehicles N [--backfill 24h | --duration 10m] [options]`
 * (`--help` lists the options and their defaults).
 *
 * Maps every vehicle to a meter through the API, then sends the fleet's readings through batch
 * ingest: live (simulated time --speed times faster than the clock, for --duration, ending at the
 * clock; one tick every interval/speed seconds) or, with --backfill, a past span as fast as the
 * engine accepts it. Honours 503 + Retry-After and shows a progress line.
 * Chargers come in power classes (--chargers); a --faulty share is below its class's threshold and
 * a --drifting share degrades. At the end it judges the sessions it sent with the engine's settings
 * (read from the same environment, as the engine reads them) and prints the vehicles flagged by an
 * alert and by drift, so the engine's flags can be checked against them.
 *
 * With --ocpp the chargers are OCPP 1.6J charge points instead (scripts/ocpp-fleet.ts): their
 * registers go over OCPP MeterValues and their transactions map the vehicles; the vehicles' own
 * readings still go through batch ingest.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, warnOfMisspelledSettings } from '../src/config';
import { CHARGE_POINT_ID_PATTERN } from '../src/ocpp/charge-point-id';
import { readChargePointKeys } from './charge-point-keys';
import { DECIMAL } from '../src/schema/validator';
import { exitOnUsageError, numberOption, parseCommandLine, UsageError } from './cli';
import {
  Fleet,
  parseChargerMix,
  type ChargerShare,
  type EnergyMode,
  type FleetStep,
  type MeterReadingBody,
  type VehicleReadingBody,
} from './fleet-model';
import type { JudgedSession, JudgingSettings } from './fleet-sessions';
import { OcppFleet, chargePointIdOf, ocppMeterIdOf } from './ocpp-fleet';
import { asksToWait, waitAsAsked } from './retry-after';
import { DAY_MS, HOUR_MS } from '../src/time-units';

type Reading = MeterReadingBody | VehicleReadingBody;

/** A number as a setting's is written (`1.5`, `.5`), then its unit (seconds if none). */
const DURATION = new RegExp(`^(${DECIMAL})(ms|s|m|h|d)?$`);

function parseDuration(name: string, text: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new UsageError(`--${name}: not a duration: ${text} (use e.g. 90s, 10m, 24h)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: HOUR_MS, d: DAY_MS }[match[2] ?? 's'] ?? 1000;
  const ms = Number(match[1]) * unit;
  // 0 is no span: --backfill 0h ran live without end, --duration 0 sent nothing.
  if (ms < 1) throw new UsageError(`--${name} must be at least 1ms: ${text}`);
  return ms;
}

export interface SimulateOptions {
  url: string;
  meters: number;
  vehicles: number;
  intervalS: number;
  speed: number;
  durationMs: number;
  mode: EnergyMode;
  faulty: number;
  /** Share of the chargers that degrade over the run (wallboxes and faster). */
  drifting: number;
  chargers: ChargerShare[];
  /** The engine's settings its sessions are judged by. */
  judging: JudgingSettings;
  backfillMs: number;
  seed: number;
  prefix: string;
  batchSize: number;
  quiet: boolean;
  /** API key (Authorization: Bearer), when the engine requires one: scopes ingest and admin. */
  key: string | null;
  /** Chargers are OCPP charge points; their transactions map the vehicles. */
  ocpp: boolean;
  /** With --ocpp and AUTH=on: each charge point's key (`chargePointId key` lines). */
  cpKeyFile: string | null;
}

const command = {
  usage: 'npm run simulate -- --meters N --vehicles N [options]',
  options: {
    meters: { type: 'string', value: 'N', default: '10', help: 'meters in the fleet' },
    vehicles: {
      type: 'string',
      value: 'N',
      default: '10',
      help: 'vehicles, one meter each (at most --meters)',
    },
    interval: { type: 'string', value: 'S', default: '60', help: 'seconds between readings' },
    speed: {
      type: 'string',
      value: 'X',
      default: '1',
      help: 'live: simulated time runs this many times faster than the clock (above 1 needs --duration; not with --backfill)',
    },
    duration: {
      type: 'string',
      value: 'D',
      help: 'run live this long, e.g. 10m (default: until Ctrl-C; not with --backfill)',
    },
    url: {
      type: 'string',
      value: 'URL',
      // The engine this shell would start: its PORT, as the API reads it.
      default: `http://127.0.0.1:${process.env.PORT || 3000}`,
      help: 'the engine (default: its PORT on this machine)',
    },
    mode: {
      type: 'string',
      value: 'M',
      default: 'interval',
      help: "interval or cumulative, as the engine's ENERGY_READINGS",
    },
    faulty: {
      type: 'string',
      value: 'F',
      default: '0.05',
      help: "share of faulty chargers (below their power class's threshold)",
    },
    drifting: {
      type: 'string',
      value: 'F',
      default: '0',
      help: 'share of chargers degrading from 0.93 towards 0.87 over the run (11 kW and up)',
    },
    chargers: {
      type: 'string',
      value: 'MIX',
      default: '11:1',
      help: 'ratings kW:share, shares adding up to 1, e.g. 2.3:0.2,11:0.6,22:0.2 (household socket, wallbox, 22 kW)',
    },
    backfill: {
      type: 'string',
      value: 'D',
      help: 'load this past span as fast as accepted, e.g. 24h',
    },
    seed: { type: 'string', value: 'S', default: '42', help: 'random seed' },
    prefix: { type: 'string', value: 'P', default: 'SIM-', help: 'device id prefix' },
    batch: { type: 'string', value: 'N', default: '5000', help: 'readings per ingest request' },
    quiet: { type: 'boolean', help: 'no progress line' },
    key: {
      type: 'string',
      value: 'K',
      help: 'API key with the ingest and admin scopes, if required',
    },
    ocpp: {
      type: 'boolean',
      help: 'chargers are OCPP 1.6J charge points {prefix}CP-{n}',
    },
    'cp-key-file': {
      type: 'string',
      value: 'FILE',
      help: 'with --ocpp and AUTH=on: lines "chargePointId key" (charge-point scoped keys)',
    },
  },
} as const;

/** The settings the engine judges sessions by, from the environment the engine reads. */
export function judgingSettings(env: NodeJS.ProcessEnv = process.env): JudgingSettings {
  const { efficiencyThreshold, efficiencyThresholds, efficiencyDrift, sessionGapS } =
    loadConfig(env);
  return { efficiencyThreshold, efficiencyThresholds, efficiencyDrift, sessionGapS };
}

/** The same, a bad setting told as a usage error: the simulator reads the engine's environment. */
function judgingOf(env: NodeJS.ProcessEnv): JudgingSettings {
  try {
    return judgingSettings(env);
  } catch (err) {
    throw new UsageError(`judging sessions by the engine's settings: ${(err as Error).message}`);
  }
}

/** The most meters, and vehicles, one simulator run models. */
const MAX_FLEET_DEVICES = 100_000;

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): SimulateOptions {
  const { values, given } = parseCommandLine(argv, command);
  // Each option's range: a value outside it is refused, not quietly made one inside it. A fleet
  // is held in memory: 1e9 meters ran out of heap before the first request.
  const ranges = {
    meters: { min: 1, max: MAX_FLEET_DEVICES, integer: true },
    vehicles: { min: 1, max: MAX_FLEET_DEVICES, integer: true },
    interval: { min: 1 },
    speed: { min: 0.001 },
    faulty: { min: 0, max: 1 },
    drifting: { min: 0, max: 1 },
    seed: { integer: true },
    batch: { min: 1, integer: true },
  };
  const num = (name: keyof typeof ranges) => numberOption(`--${name}`, values[name], ranges[name]);
  let chargers: ChargerShare[];
  try {
    chargers = parseChargerMix(values.chargers);
  } catch (err) {
    throw new UsageError(`--chargers: ${(err as Error).message}`);
  }
  const mode = values.mode;
  if (mode !== 'interval' && mode !== 'cumulative')
    throw new UsageError('--mode must be interval or cumulative');
  const ocpp = values.ocpp ?? false;
  // Vehicles sharing a meter at the same time would each be billed all of its energy.
  if (num('vehicles') > num('meters'))
    throw new UsageError(
      `each vehicle charges from a meter (charge point) of its own: --meters must be at least --vehicles`,
    );
  if (ocpp) checkOcppFleet(values.prefix, num('meters'));
  if (values['cp-key-file'] !== undefined && !ocpp)
    throw new UsageError('--cp-key-file is for --ocpp charge points');
  const backfillMs = values.backfill !== undefined ? parseDuration('backfill', values.backfill) : 0;
  // A backfill sends its span as fast as the engine accepts it: a live run's pace and length were
  // silently ignored.
  const live = ['speed', 'duration'].find((name) => given.has(name));
  if (backfillMs > 0 && live)
    throw new UsageError(
      `--${live} is for a live run: --backfill sends its span as fast as the engine accepts it`,
    );
  // Simulated time faster than the clock has to start in the past, by an amount the run's length sets.
  if (num('speed') > 1 && values.duration === undefined)
    throw new UsageError(
      '--speed above 1 needs --duration: simulated time starts that much earlier, to reach the clock as the run ends (readings ahead of the clock are refused)',
    );
  if (!isHttpUrl(values.url))
    throw new UsageError(
      `--url must be the engine's http:// or https:// address, not ${values.url}`,
    );
  return {
    url: values.url.replace(/\/$/, ''),
    meters: num('meters'),
    vehicles: num('vehicles'),
    intervalS: num('interval'),
    speed: num('speed'),
    durationMs:
      values.duration !== undefined ? parseDuration('duration', values.duration) : Infinity,
    mode,
    faulty: num('faulty'),
    drifting: num('drifting'),
    chargers,
    judging: judgingOf(env),
    backfillMs,
    seed: num('seed'),
    prefix: values.prefix,
    batchSize: num('batch'),
    quiet: values.quiet ?? false,
    key: values.key ?? null,
    ocpp,
    cpKeyFile: values['cp-key-file'] ?? null,
  };
}

/** One connector per charge point, ids OCPP accepts. */
function checkOcppFleet(prefix: string, meters: number): void {
  const longest = chargePointIdOf(prefix, meters);
  if (!new RegExp(CHARGE_POINT_ID_PATTERN).test(longest))
    throw new UsageError(
      `--ocpp: charge point id ${longest} is not 1-48 characters from A-Z a-z 0-9 . _ - (shorten --prefix)`,
    );
}

/**
 * How long a run rides out an engine it has reached before and now cannot (an API restarting,
 * replicas replaced one at a time), trying again with a growing pause of up to 2 s.
 */
const UNREACHABLE_LIMIT_MS = 60_000;
/** An engine that takes a connection but never answers is given up on after this. */
const REQUEST_TIMEOUT_MS = 30_000;

/** Whether `text` is an http:// or https:// address (what --url must be). */
function isHttpUrl(text: string): boolean {
  try {
    return /^https?:$/.test(new URL(text).protocol);
  } catch {
    return false;
  }
}

/**
 * A request to the engine, with a deadline; a failure to reach it names the URL and why (fetch
 * alone says "fetch failed"), and a refused key says which option gives one.
 */
async function engineRequest(url: string, init: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new Error(
      `the engine at ${new URL(url).origin} did not answer (${why}); is it running? (--url)`,
    );
  }
  if (res.status === 401 || res.status === 403) {
    throw new KeyRefused(
      `${new URL(url).pathname} answered ${res.status}: the engine needs a key with the ingest and admin scopes (--key, see npm run key)`,
    );
  }
  return res;
}

/** Sending again would not help. */
class KeyRefused extends Error {}

const headersFor = (options: SimulateOptions) => ({
  'content-type': 'application/json',
  ...(options.key ? { authorization: `Bearer ${options.key}` } : {}),
});

class Sender {
  sent = 0;
  rejected = 0;
  retries = 0;
  private readonly started = Date.now();

  constructor(private readonly options: SimulateOptions) {}

  /**
   * Sends one batch; on 503 or 429 waits Retry-After and tries again, and so after a lost connection (a
   * kept-alive socket the server closed as it was reused) or while the engine cannot be reached, up
   * to UNREACHABLE_LIMIT_MS: readings are stored once however often they are sent.
   */
  async send(batch: Reading[]): Promise<void> {
    let unreachableSince: number | undefined;
    for (let lost = 0; ;) {
      let res: Response;
      try {
        res = await engineRequest(`${this.options.url}/v1/telemetry/ingest`, {
          method: 'POST',
          headers: headersFor(this.options),
          body: JSON.stringify(batch),
        });
      } catch (err) {
        unreachableSince ??= Date.now();
        if (err instanceof KeyRefused || Date.now() - unreachableSince > UNREACHABLE_LIMIT_MS) {
          throw err;
        }
        this.retries += 1;
        await sleep(Math.min(250 * ++lost, 2000));
        continue;
      }
      if (asksToWait(res)) {
        this.retries += 1;
        await waitAsAsked(res);
        continue;
      }
      const body = (await res.json()) as { accepted?: number; rejected?: number; message?: string };
      if (res.status >= 400)
        throw new Error(`ingest answered ${res.status}: ${body.message ?? ''}`);
      this.sent += body.accepted ?? 0;
      this.rejected += body.rejected ?? 0;
      return;
    }
  }

  async progress(): Promise<string> {
    let backlog = '?';
    try {
      const text = await (await fetch(`${this.options.url}/metrics`)).text();
      backlog = /^energy_queue_readings_waiting(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? '?';
    } catch {
      // metrics unavailable: show what we know
    }
    const rate = this.sent / Math.max(0.001, (Date.now() - this.started) / 1000);
    return `sent ${this.sent.toLocaleString('en-US')} readings, ${Math.round(rate).toLocaleString('en-US')}/s, rejected ${this.rejected}, 503/429 retries ${this.retries}, server backlog ${backlog}`;
  }
}

async function mapFleet(fleet: Fleet, options: SimulateOptions, sinceMs: number): Promise<void> {
  const since = new Date(sinceMs).toISOString();
  const queue = fleet.vehicles.slice();
  const worker = async () => {
    for (let v = queue.shift(); v; v = queue.shift()) {
      let res: Response;
      for (;;) {
        res = await engineRequest(`${options.url}/v1/telemetry/map`, {
          method: 'POST',
          headers: headersFor(options),
          body: JSON.stringify({ vehicleId: v.id, meterId: v.meter.id, since }),
        });
        if (!asksToWait(res)) break;
        await waitAsAsked(res);
      }
      // 409: already mapped from an earlier run; the existing mapping stays.
      if (res.status !== 200 && res.status !== 409)
        throw new Error(`mapping ${v.id} answered ${res.status}: ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

export async function simulate(
  options: SimulateOptions,
  log: (line: string) => void = console.log,
): Promise<Fleet> {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const stepMs = options.intervalS * 1000;
  const firstTick = options.backfillMs > 0 ? now - options.backfillMs : now - liveLead(options);
  const fleet = new Fleet({
    meters: options.meters,
    vehicles: options.vehicles,
    faultyShare: options.faulty,
    driftingShare: options.drifting,
    chargers: options.chargers,
    mode: options.mode,
    seed: options.seed,
    prefix: options.prefix,
    judging: options.judging,
    span: { fromMs: firstTick, toMs: spanEnd(options, firstTick, now) },
    ...(options.ocpp ? { meterId: ocppMeterIdOf(options.prefix), ocppMeters: true } : {}),
  });
  const sender = new Sender(options);
  const chargePoints = options.ocpp
    ? new OcppFleet(fleet, {
        url: options.url,
        prefix: options.prefix,
        chargePointKeys: options.cpKeyFile ? readChargePointKeys(options.cpKeyFile) : new Map(),
        adminKey: options.key,
      })
    : null;
  if (chargePoints) {
    await chargePoints.registerIdTags();
    await chargePoints.boot(firstTick - stepMs);
  } else {
    await mapFleet(fleet, options, firstTick - stepMs);
  }

  const progress = async () =>
    [await sender.progress(), ...(chargePoints ? [chargePoints.progress()] : [])].join('; ');
  const timer = options.quiet
    ? null
    : setInterval(() => void progress().then((line) => process.stdout.write(`\r${line}   `)), 1000);
  /** The tick's readings for batch ingest; with --ocpp the chargers' go to their charge points. */
  const readingsOf = async (step: FleetStep): Promise<Reading[]> => {
    if (!chargePoints) return [...step.vehicles, ...step.meters];
    chargePoints.onStep(step);
    await chargePoints.room();
    return step.vehicles;
  };
  try {
    // One reading of every device before the first tick (a charge point's is its meterStart).
    const baseline = fleet.baseline(firstTick - stepMs);
    await sender.send(
      chargePoints ? baseline.vehicles : [...baseline.vehicles, ...baseline.meters],
    );
    if (options.backfillMs > 0) {
      // As fast as accepted: a few batches in flight, each readings of whole ticks.
      let pending: Reading[] = [];
      const inFlight = new Set<Promise<void>>();
      const flush = async (batch: Reading[]) => {
        const p = sender.send(batch).finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 4) await Promise.race(inFlight);
      };
      for (let t = firstTick; t <= now; t += stepMs) {
        pending.push(...(await readingsOf(fleet.step(t, options.intervalS))));
        while (pending.length >= options.batchSize) {
          await flush(pending.slice(0, options.batchSize));
          pending = pending.slice(options.batchSize);
        }
      }
      if (pending.length > 0) await flush(pending);
      await Promise.all(inFlight);
    } else {
      // Simulated time runs --speed times faster than the clock from firstTick, which is far
      // enough back to reach the clock as the run ends. Every tick is stamped with its simulated
      // time and carries one interval of energy: the power its readings imply is the charger's at
      // any speed. A tick is never sent before the clock reaches its time (the engine refuses
      // readings ahead of the clock); one that would be due after the end is not sent.
      const startedAt = Date.now();
      const endAt = startedAt + options.durationMs;
      for (let t = firstTick; ; t += stepMs) {
        const dueAt = Math.max(startedAt + (t - firstTick) / options.speed, t);
        if (t > firstTick && dueAt >= endAt) {
          // Not past the end: --duration 5s with a 60 s interval ends after 5 s, not 60.
          await sleep(Math.max(0, endAt - Date.now()));
          break;
        }
        await sleep(Math.max(0, dueAt - Date.now()));
        const readings = await readingsOf(fleet.step(t, options.intervalS));
        for (let i = 0; i < readings.length; i += options.batchSize)
          await sender.send(readings.slice(i, i + options.batchSize));
      }
    }
    await chargePoints?.drained();
  } finally {
    if (timer) clearInterval(timer);
    await chargePoints?.close();
  }
  if (!options.quiet) log(`\n${await progress()}`);
  for (const refusal of chargePoints?.refusals ?? []) log(`refused: ${refusal}`);
  if (chargePoints?.idTagsNotAccepted)
    log(
      `${chargePoints.idTagsNotAccepted} transactions started with an idTag the engine did not accept`,
    );
  for (const line of flaggedReport(fleet, options.judging)) log(line);
  const from = new Date(firstTick - stepMs).toISOString();
  const auth = options.key ? ` -H "authorization: Bearer $KEY"` : '';
  log(`\nCheck: curl${auth} '${options.url}/v1/analytics/sessions?flagged=true&from=${from}'`);
  return fleet;
}

/**
 * How far before the clock a live run's simulated time starts: with --speed X above 1 a run of
 * --duration D covers X * D of simulated time, ending at the clock, so it starts (X - 1) * D back
 * (whole seconds, rounded up). At 1 or below it starts at the clock and never overtakes it.
 */
function liveLead(options: Pick<SimulateOptions, 'speed' | 'durationMs'>): number {
  if (options.speed <= 1) return 0;
  const leadMs = options.durationMs * (options.speed - 1);
  if (!Number.isFinite(leadMs))
    throw new Error('--speed above 1 needs a --duration (simulated time would overtake the clock)');
  return Math.ceil(leadMs / 1000) * 1000;
}

/** Where drifting chargers have degraded fully: the run's end (a live run without one: 3 days). */
function spanEnd(options: SimulateOptions, firstTick: number, now: number): number {
  if (options.backfillMs > 0) return now;
  const simulatedMs = options.durationMs * options.speed;
  return Number.isFinite(simulatedMs) ? firstTick + simulatedMs : now + 3 * 86_400_000;
}

const figure = (value: number | null, digits: number) =>
  value === null ? 'n/a' : String(Math.round(value * 10 ** digits) / 10 ** digits);

/**
 * The vehicles with a session flagged by an alert, then by drift, as the engine will flag them,
 * with the settings used: what `GET /v1/analytics/sessions?flagged=true` should list.
 */
export function flaggedReport(fleet: Fleet, judging: JudgingSettings): string[] {
  const sessions = fleet.sessions.judged();
  const lines = [
    `\n${sessions.length} charging sessions, judged with EFFICIENCY_THRESHOLD=${judging.efficiencyThreshold}` +
      ` EFFICIENCY_THRESHOLDS=${judging.efficiencyThresholds || '(unset)'}` +
      ` EFFICIENCY_DRIFT=${judging.efficiencyDrift} SESSION_GAP_S=${judging.sessionGapS}`,
  ];
  const total = fleet.vehicles.length;
  for (const [flag, heading] of [
    ['alert', 'a session below its threshold (alert)'],
    ['drift', 'a session flagged drift (below its own median)'],
  ] as const) {
    const byVehicle = new Map<string, JudgedSession[]>();
    for (const s of sessions.filter((x) => x[flag] === true))
      byVehicle.set(s.vehicleId, [...(byVehicle.get(s.vehicleId) ?? []), s]);
    lines.push(`${byVehicle.size} of ${total} vehicles have ${heading}:`);
    for (const v of fleet.vehicles) {
      const flagged = byVehicle.get(v.id);
      if (!flagged) continue;
      const worst = flagged.reduce((a, b) => ((a.efficiency ?? 0) <= (b.efficiency ?? 0) ? a : b));
      const all = sessions.filter((s) => s.vehicleId === v.id).length;
      lines.push(
        `  ${v.id} on ${v.meter.id} (${v.meter.ratedKw} kW, ${v.meter.condition}): ${flagged.length} of ${all} sessions,` +
          ` worst ${figure(worst.efficiency, 4)} at ${figure(worst.meanAcPowerKw, 2)} kW (threshold ${worst.threshold})`,
      );
    }
  }
  return lines;
}

if (require.main === module) {
  // It judges sessions by the engine's settings, read from the same environment.
  warnOfMisspelledSettings(process.env, {
    warn: (message) => console.error(`warning: ${message}`),
  });
  let options: SimulateOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    exitOnUsageError(err);
  }
  process.on('SIGINT', () => process.exit(0));
  simulate(options).catch((err: unknown) => {
    console.error(`\nsimulation stopped: ${(err as Error).message}`);
    process.exit(1);
  });
}
