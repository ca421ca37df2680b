/**
 * The simulator's chargers as OCPP 1.6J charge points (`npm run simulate -- --ocpp`). Charger n is
 * charge point `{prefix}CP-{n}` with one connector, whose meter is `{prefix}CP-{n}:1`. Each one
 * boots, reports its connector's status, starts a transaction with its vehicle's idTag when the
 * vehicle plugs in, stops it when the session ends, and sends its register (Wh) and voltage every
 * tick otherwise. The transactions are what map vehicles to meters: nothing is mapped by hand.
 * A charge point's messages go out in order, each kept until it gets its .conf.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { connectorMeterId } from '../src/ocpp/charge-point-state';
import { registerWh, type Charger, type Fleet, type FleetStep, type Vehicle } from './fleet-model';
import { asksToWait, waitAsAsked } from './retry-after';
import {
  MessageRefused,
  SimulatedChargePoint,
  meterValue,
  meterValuesReq,
  type MeterValueElement,
} from './ocpp-charge-point';

/** The one connector of every simulated charge point. */
export const CONNECTOR_ID = 1;

export const chargePointIdOf = (prefix: string, n: number) => `${prefix}CP-${n}`;

/** Charger n's meter: its charge point's connector. */
export const ocppMeterIdOf = (prefix: string) => (n: number) =>
  connectorMeterId(chargePointIdOf(prefix, n), CONNECTOR_ID);

const ID_TAG = /^[A-Za-z0-9._:+=@-]{1,20}$/;

/** Samples queued behind each other go out as one MeterValues, up to this many. */
const SAMPLES_PER_MESSAGE = 60;

/** The idTag on a vehicle's card: its id when that fits OCPP's 20 characters, else a digest. */
export function idTagOf(vehicleId: string): string {
  if (ID_TAG.test(vehicleId)) return vehicleId;
  return `V${createHash('sha256').update(vehicleId).digest('hex').slice(0, 19)}`;
}

interface Outgoing {
  action: string;
  /** Built when it is sent (a stop needs the start's transaction id); null: nothing to send. */
  params: () => object | null;
  onConf?: (conf: Record<string, unknown>) => void;
}

/** A register sample: consecutive ones are sent together, as a charger catching up sends them. */
interface Sample {
  sample: MeterValueElement;
}

/** One charge point's messages, sent one after another, each until answered. */
class Outbox {
  private readonly queue: (Outgoing | Sample)[] = [];
  private running: Promise<void> | null = null;
  transactionId: number | null = null;

  constructor(
    readonly chargePoint: SimulatedChargePoint,
    private readonly onRefused: (err: MessageRefused) => void,
    private readonly onFailure: (err: unknown) => void,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  push(...messages: (Outgoing | Sample)[]): void {
    this.queue.push(...messages);
    if (!this.running) this.running = this.run().catch(this.onFailure);
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    await Promise.resolve(); // push() records this run before it can end
    try {
      while (this.queue.length > 0) {
        const { message, taken } = this.next();
        const params = message.params();
        if (params) {
          try {
            const conf = await this.chargePoint.call(message.action, params);
            message.onConf?.(conf);
          } catch (err) {
            if (!(err instanceof MessageRefused)) throw err;
            this.onRefused(err);
          }
        }
        this.queue.splice(0, taken);
      }
    } finally {
      this.running = null;
    }
  }

  /** The first queued message, with the samples queued right behind it when it is a sample. */
  private next(): { message: Outgoing; taken: number } {
    const first = this.queue[0];
    if (!('sample' in first)) return { message: first, taken: 1 };
    const samples: MeterValueElement[] = [];
    for (const m of this.queue) {
      if (!('sample' in m) || samples.length === SAMPLES_PER_MESSAGE) break;
      samples.push(m.sample);
    }
    const message = {
      action: 'MeterValues',
      params: () => meterValuesReq(CONNECTOR_ID, samples, this.transactionId ?? undefined),
    };
    return { message, taken: samples.length };
  }
}

export interface OcppFleetOptions {
  /** The engine, `http://HOST:PORT`; charge points connect to `ws://HOST:PORT/ocpp/{id}`. */
  url: string;
  prefix: string;
  /** Each charge point's key (Basic auth password), when the engine requires one. */
  chargePointKeys: ReadonlyMap<string, string>;
  /** Key with the admin scope, for registering the vehicles' idTags. */
  adminKey: string | null;
  /** Messages waiting across all charge points above which `room()` waits. */
  maxQueued?: number;
  retryDelayMs?: number;
}

/** Runs `work` over `items` with at most `width` at a time. */
async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<void>) {
  const queue = items.slice();
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

export class OcppFleet {
  private readonly boxes = new Map<Charger, Outbox>();
  /** The vehicle that charges at each charger (one each). */
  private readonly driverOf = new Map<Charger, Vehicle>();
  private failure: unknown = null;
  /** StartTransactions whose idTag the engine did not accept. */
  idTagsNotAccepted = 0;
  /** Messages the engine refused for good, with why. */
  readonly refusals: string[] = [];

  constructor(
    private readonly fleet: Fleet,
    private readonly options: OcppFleetOptions,
  ) {
    const endpoint = `${options.url.replace(/^http/, 'ws')}/ocpp`;
    fleet.chargers.forEach((charger, i) => {
      const id = chargePointIdOf(options.prefix, i + 1);
      const chargePoint = new SimulatedChargePoint({
        endpoint,
        id,
        password: options.chargePointKeys.get(id) ?? null,
        retryDelayMs: options.retryDelayMs,
      });
      this.boxes.set(
        charger,
        new Outbox(
          chargePoint,
          (err) => this.refusals.push(`${id}: ${err.message}`),
          (err) => (this.failure ??= err),
        ),
      );
    });
    for (const v of fleet.vehicles) this.driverOf.set(v.meter, v);
  }

  private headers() {
    return {
      'content-type': 'application/json',
      ...(this.options.adminKey ? { authorization: `Bearer ${this.options.adminKey}` } : {}),
    };
  }

  /** Registers each vehicle's idTag (PUT /v1/id-tags/{idTag}), honouring 503 and 429's Retry-After. */
  async registerIdTags(): Promise<void> {
    await inParallel(this.fleet.vehicles, 8, async (v) => {
      for (;;) {
        const res = await fetch(`${this.options.url}/v1/id-tags/${idTagOf(v.id)}`, {
          method: 'PUT',
          headers: this.headers(),
          body: JSON.stringify({ vehicleId: v.id }),
        });
        if (asksToWait(res)) {
          await waitAsAsked(res);
          continue;
        }
        await res.arrayBuffer();
        if (res.status !== 200)
          throw new Error(`registering ${v.id}'s idTag answered ${res.status}`);
        return;
      }
    });
  }

  /**
   * Connects and boots every charge point, reports its connector available at `atMs`, and starts
   * a transaction there for each vehicle already plugged in.
   */
  async boot(atMs: number): Promise<void> {
    const timestamp = new Date(atMs).toISOString();
    await inParallel([...this.boxes.values()], 100, (box) => box.chargePoint.connect());
    for (const [charger, box] of this.boxes) {
      // The model names the charger's power class, as a real charge point's model does.
      const chargePointModel = `AC-${charger.ratedKw}kW`;
      box.push(
        {
          action: 'BootNotification',
          params: () => ({ chargePointVendor: 'EIE Simulator', chargePointModel }),
        },
        status('Available', timestamp),
      );
      const vehicle = this.driverOf.get(charger);
      if (vehicle?.charging) box.push(...this.startMessages(box, charger, vehicle, timestamp));
    }
    await this.drained();
  }

  /** Queues what each charge point sends for this tick of the fleet. */
  onStep(step: FleetStep): void {
    const timestamp = new Date(step.atMs).toISOString();
    const started = new Set(step.started.map((v) => v.meter));
    const stopped = new Set(step.stopped.map((v) => v.meter));
    const voltages = new Map(step.meters.map((m) => [m.meterId, m.voltage]));
    for (const [charger, box] of this.boxes) {
      const vehicle = this.driverOf.get(charger);
      if (vehicle && started.has(charger))
        box.push(...this.startMessages(box, charger, vehicle, timestamp));
      else if (vehicle && stopped.has(charger))
        box.push(...this.stopMessages(box, charger, vehicle, timestamp));
      else {
        box.push({ sample: meterValue(timestamp, registerWh(charger), voltages.get(charger.id)) });
      }
    }
  }

  // The register at a transaction's start and stop travels in the transaction message itself.
  private startMessages(box: Outbox, charger: Charger, v: Vehicle, timestamp: string) {
    const meterStart = registerWh(charger);
    const start: Outgoing = {
      action: 'StartTransaction',
      params: () => ({ connectorId: CONNECTOR_ID, idTag: idTagOf(v.id), meterStart, timestamp }),
      onConf: (conf) => {
        box.transactionId = conf.transactionId as number;
        if ((conf.idTagInfo as { status: string }).status !== 'Accepted') this.idTagsNotAccepted++;
      },
    };
    return [start, status('Charging', timestamp)];
  }

  private stopMessages(box: Outbox, charger: Charger, v: Vehicle, timestamp: string) {
    const meterStop = registerWh(charger);
    const stop: Outgoing = {
      action: 'StopTransaction',
      params: () =>
        box.transactionId === null
          ? null // its start was refused: there is nothing to stop
          : {
              transactionId: box.transactionId,
              idTag: idTagOf(v.id),
              meterStop,
              timestamp,
              reason: 'EVDisconnected',
            },
      onConf: () => (box.transactionId = null),
    };
    return [stop, status('Available', timestamp)];
  }

  queued(): number {
    let n = 0;
    for (const box of this.boxes.values()) n += box.size;
    return n;
  }

  /** Waits while more than `maxQueued` messages wait to be sent (a backfill outrunning them). */
  async room(): Promise<void> {
    const limit = this.options.maxQueued ?? 20_000;
    while (this.queued() > limit) {
      this.throwFailure();
      await sleep(20);
    }
    this.throwFailure();
  }

  /** Resolves once every queued message has been answered. */
  async drained(): Promise<void> {
    await Promise.all([...this.boxes.values()].map((box) => box.idle()));
    this.throwFailure();
  }

  private throwFailure(): void {
    if (this.failure) throw this.failure;
  }

  progress(): string {
    const totals = { connected: 0, answered: 0, resent: 0, refused: 0 };
    for (const { chargePoint } of this.boxes.values()) {
      totals.connected += chargePoint.connected ? 1 : 0;
      totals.answered += chargePoint.counters.answered;
      totals.resent += chargePoint.counters.resent;
      totals.refused += chargePoint.counters.refused;
    }
    const n = (x: number) => x.toLocaleString('en-US');
    return `OCPP ${n(totals.connected)}/${n(this.boxes.size)} connected, ${n(totals.answered)} .conf, ${n(totals.resent)} resent, ${n(totals.refused)} refused, ${n(this.queued())} queued`;
  }

  async close(): Promise<void> {
    await Promise.all([...this.boxes.values()].map((box) => box.chargePoint.close()));
  }
}

function status(status: 'Available' | 'Charging', timestamp: string): Outgoing {
  return {
    action: 'StatusNotification',
    params: () => ({ connectorId: CONNECTOR_ID, errorCode: 'NoError', status, timestamp }),
  };
}
