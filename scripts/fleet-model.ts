/**
 * A simulated EV fleet: vehicles charging in sessions from metered chargers of several power
 * classes. While a vehicle charges, its SoC rises and its battery warms; its charger draws close to
 * its rating from the grid and the battery stores that times the charger's efficiency; its meter
 * shows the draw plus standby. Between sessions the vehicle drives and its SoC falls.
 *
 * Healthy efficiency depends on the power class, as measured by the ADAC (charging-loss test,
 * September 2022): 13-24 % losses on a 2.3 kW household socket, 6-10 % on an 11 kW wallbox. A
 * `faulty` share of chargers is below its class's threshold (as the engine will judge it); a
 * `drifting` share of wallboxes degrades from 0.93 towards 0.87 over the simulated span, still
 * above its threshold, which only the engine's drift rule catches.
 */
import { DECIMAL } from '../src/schema/validator';
import { parseThresholdClasses, thresholdFor } from '../src/sessions/thresholds';
import { SessionLedger, type JudgingSettings } from './fleet-sessions';

export type EnergyMode = 'interval' | 'cumulative';

/** A share of the fleet's chargers of one rating. */
export interface ChargerShare {
  ratedKw: number;
  share: number;
}

export interface FleetOptions {
  meters: number;
  vehicles: number;
  faultyShare: number;
  /** Share of the chargers (wallboxes and faster) that degrade over the span. */
  driftingShare?: number;
  /** Ratings of the chargers; default all 11 kW wallboxes. */
  chargers?: ChargerShare[];
  mode: EnergyMode;
  seed: number;
  /** Id prefix, so several simulations can share one engine. */
  prefix: string;
  /** The meter id of charger n (1-based); default `{prefix}M-{n}`. */
  meterId?: (n: number) => string;
  /** The meters are OCPP connectors: their registers go out in whole Wh. */
  ocppMeters?: boolean;
  /** The engine's thresholds, so a faulty charger is placed below its own class's. */
  judging: JudgingSettings;
  /** The simulated span, over which drifting chargers degrade; default 3 days from now. */
  span?: { fromMs: number; toMs: number };
}

export type ChargerCondition = 'healthy' | 'faulty' | 'drifting';

export interface Charger {
  id: string;
  /** Nameplate rating, kW: what the charger is sold as (2.3, 11, 22). */
  ratedKw: number;
  /** What it draws from the grid while charging, kW: a little under its rating. */
  drawKw: number;
  condition: ChargerCondition;
  /** Its efficiency (DC stored / AC drawn); a drifting one's at the start of the span. */
  efficiency: number;
  /** Energy drawn since it was installed, kWh: what its meter's register shows. */
  register: number;
}

export interface Vehicle {
  id: string;
  meter: Charger;
  capacityKwh: number;
  soc: number;
  temp: number;
  charging: boolean;
  targetSoc: number;
  /** It plugs in again once its SoC falls below this. */
  plugInBelow: number;
  register: number;
}

export interface MeterReadingBody {
  meterId: string;
  kwhConsumedAc: number;
  voltage: number;
  timestamp: string;
}

export interface VehicleReadingBody {
  vehicleId: string;
  soc: number;
  kwhDeliveredDc: number;
  batteryTemp: number;
  timestamp: string;
}

/** What one tick of the fleet produced. */
export interface FleetStep {
  atMs: number;
  vehicles: VehicleReadingBody[];
  meters: MeterReadingBody[];
  /** Vehicles that plugged in at this tick: their energy flows from the next tick on. */
  started: Vehicle[];
  /** Vehicles whose session ended with this tick's energy. */
  stopped: Vehicle[];
}

/** Healthy efficiency by rating (the class's upper bound, kW); see the header for the figures. */
const HEALTHY_EFFICIENCY = [
  { upToKw: 3.7, min: 0.76, max: 0.87 }, // household socket: 13-24 % losses (ADAC)
  { upToKw: 11, min: 0.9, max: 0.94 }, // wallbox: 6-10 % losses (ADAC)
  // 22 kW AC: no measured figure at hand; taken as an 11 kW wallbox's, one point better.
  { upToKw: Infinity, min: 0.91, max: 0.95 },
];
/** A drifting charger's efficiency: this for the first half of the span, then down to DRIFT_TO. */
const DRIFT_FROM = 0.93;
const DRIFT_TO = 0.87;
/** A faulty charger is this far below its class's threshold. */
const FAULTY_BELOW = { min: 0.03, max: 0.12 };
/** A charger draws this share of its rating (mains voltage, phases, the car's on-board charger). */
const DRAW_OF_RATING = { min: 0.9, max: 0.97 };
const STANDBY_KWH_PER_HOUR = 0.002;
/** SoC a driving vehicle uses per hour, at most (uniform from 0). */
const DRIVING_SOC_PER_HOUR = 30;
/** A vehicle plugs in again once its SoC is this many points below its last target. */
const PLUG_IN_DROP = { min: 15, max: 40 };
const DEFAULT_SPAN_MS = 3 * 86_400_000;
const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

/** OCPP registers are integer Wh; the same rounding everywhere, so a start and a sample agree. */
export const registerWh = (charger: Charger) => Math.round(charger.register * 1000);

const CHARGER_SHARE = new RegExp(`^\\s*(${DECIMAL}):(${DECIMAL})\\s*$`);

/**
 * `2.3:0.2,11:0.6,22:0.2`: ratings (kW) and their shares of the chargers, adding up to 1. Shares
 * that do not are refused rather than scaled: 11:0.5 alone meant all chargers, not half.
 */
export function parseChargerMix(text: string): ChargerShare[] {
  const mix = text.split(',').map((entry) => {
    const match = CHARGER_SHARE.exec(entry);
    if (!match || Number(match[1]) <= 0)
      throw new Error(`not kW:share (e.g. 2.3:0.2,11:0.6,22:0.2): ${entry}`);
    return { ratedKw: Number(match[1]), share: Number(match[2]) };
  });
  const total = mix.reduce((sum, c) => sum + c.share, 0);
  // Within rounding: 0.34 + 0.33 + 0.33 is 1.0000000000000002.
  if (Math.abs(total - 1) > 1e-9)
    throw new Error(`the shares add up to ${round(total, 9)}, not 1 (e.g. 2.3:0.2,11:0.6,22:0.2)`);
  return mix;
}

function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** `n` items split by shares, the rounding remainders given to the largest fractions. */
function apportion<T>(n: number, shares: { item: T; share: number }[]): T[] {
  const exact = shares.map((s) => s.share * n);
  const counts = exact.map(Math.floor);
  const order = exact
    .map((_, i) => i)
    .sort((a, b) => exact[b] - counts[b] - (exact[a] - counts[a]));
  for (let k = 0; counts.reduce((a, b) => a + b, 0) < n; k++) counts[order[k % order.length]] += 1;
  return shares.flatMap((s, i) => Array.from({ length: counts[i] }, () => s.item));
}

export class Fleet {
  readonly chargers: Charger[];
  readonly vehicles: Vehicle[];
  /** The sessions as sent, judged as the engine judges them. */
  readonly sessions: SessionLedger;
  private readonly rand: () => number;
  private readonly span: { fromMs: number; toMs: number };

  constructor(private readonly options: FleetOptions) {
    this.rand = random(options.seed);
    this.span = options.span ?? { fromMs: Date.now(), toMs: Date.now() + DEFAULT_SPAN_MS };
    const uniform = (r: { min: number; max: number }) => r.min + this.rand() * (r.max - r.min);
    const ratings = this.shuffled(
      apportion(
        options.meters,
        (options.chargers ?? [{ ratedKw: 11, share: 1 }]).map((c) => ({
          item: c.ratedKw,
          share: c.share,
        })),
      ),
    );
    this.chargers = ratings.map((ratedKw, i) => {
      const healthy = HEALTHY_EFFICIENCY.find((h) => ratedKw <= h.upToKw) ?? HEALTHY_EFFICIENCY[0];
      return {
        id: options.meterId?.(i + 1) ?? `${options.prefix}M-${i + 1}`,
        ratedKw,
        drawKw: round(ratedKw * uniform(DRAW_OF_RATING), 3),
        condition: 'healthy',
        efficiency: uniform(healthy),
        register: 1000 + Math.floor(this.rand() * 5000),
      };
    });
    this.placeFaults();
    this.vehicles = Array.from({ length: options.vehicles }, (_, i) => {
      const targetSoc = 80 + this.rand() * 15;
      return {
        id: `${options.prefix}V-${i + 1}`,
        meter: this.chargers[i % options.meters],
        capacityKwh: 50 + Math.floor(this.rand() * 4) * 10,
        soc: 20 + this.rand() * 50,
        temp: 22 + this.rand() * 5,
        charging: true, // every vehicle starts a session, so even a short run measures every charger
        targetSoc,
        plugInBelow: targetSoc - uniform(PLUG_IN_DROP),
        register: Math.floor(this.rand() * 20000),
      };
    });
    this.sessions = new SessionLedger(options.judging, {
      vehicles: options.mode,
      meters: options.ocppMeters ? 'register-wh' : options.mode,
    });
  }

  /** Tells the ledger what this tick sent (an OCPP connector sends its register in Wh). */
  private record(step: FleetStep): FleetStep {
    this.sessions.observe(
      step.atMs,
      step.meters.map((m, i) => ({
        meterId: m.meterId,
        value: this.options.ocppMeters ? registerWh(this.chargers[i]) : m.kwhConsumedAc,
      })),
      step.vehicles.map((v, i) => ({
        vehicleId: v.vehicleId,
        meterId: this.vehicles[i].meter.id,
        value: v.kwhDeliveredDc,
      })),
    );
    return step;
  }

  private shuffled<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /**
   * Makes a share of the chargers faulty (below the threshold of their class: the engine's
   * threshold for a session at their draw) and a share of the others drifting (those for which
   * DRIFT_FROM is healthy).
   */
  private placeFaults(): void {
    const { judging, faultyShare, driftingShare = 0, meters } = this.options;
    const classes = parseThresholdClasses(judging.efficiencyThresholds);
    const order = this.shuffled(this.chargers.slice());
    const faulty = order.slice(0, Math.round(meters * faultyShare));
    for (const c of faulty) {
      const threshold = thresholdFor(classes, c.drawKw, judging.efficiencyThreshold);
      c.condition = 'faulty';
      c.efficiency =
        threshold - FAULTY_BELOW.min - this.rand() * (FAULTY_BELOW.max - FAULTY_BELOW.min);
    }
    const canDrift = (c: Charger) => {
      const healthy = HEALTHY_EFFICIENCY.find((h) => c.ratedKw <= h.upToKw);
      return healthy !== undefined && healthy.min <= DRIFT_FROM && DRIFT_FROM <= healthy.max;
    };
    const drifting = order
      .slice(faulty.length)
      .filter(canDrift)
      .slice(0, Math.round(meters * driftingShare));
    for (const c of drifting) {
      c.condition = 'drifting';
      c.efficiency = DRIFT_FROM;
    }
  }

  /** A charger's efficiency at a time: a drifting one's falls over the second half of the span. */
  efficiencyAt(charger: Charger, atMs: number): number {
    if (charger.condition !== 'drifting') return charger.efficiency;
    const { fromMs, toMs } = this.span;
    const progress = (atMs - fromMs) / Math.max(1, toMs - fromMs);
    const decline = Math.min(1, Math.max(0, (progress - 0.5) / 0.5));
    return DRIFT_FROM - (DRIFT_FROM - DRIFT_TO) * decline;
  }

  /** Vehicles charging from a charger of this condition, worst first. */
  withCharger(
    condition: ChargerCondition,
  ): { vehicleId: string; meterId: string; ratedKw: number; efficiency: number }[] {
    return this.vehicles
      .filter((v) => v.meter.condition === condition)
      .map((v) => ({
        vehicleId: v.id,
        meterId: v.meter.id,
        ratedKw: v.meter.ratedKw,
        efficiency: round(v.meter.efficiency, 4),
      }))
      .sort((a, b) => a.efficiency - b.efficiency);
  }

  /** Vehicles whose charger was made faulty, worst first. */
  faulty() {
    return this.withCharger('faulty');
  }

  /**
   * Every device's reading at `atMs` without advancing (no energy): sent one interval before the
   * first tick, so the first charging reading has its interval, as every later one does.
   */
  baseline(atMs: number): FleetStep {
    const timestamp = new Date(atMs).toISOString();
    const interval = this.options.mode === 'interval';
    return this.record({
      atMs,
      vehicles: this.vehicles.map((v) => this.vehicleReading(v, 0, timestamp)),
      meters: this.chargers.map((c) => ({
        meterId: c.id,
        kwhConsumedAc: interval ? 0 : round(c.register, 6),
        voltage: 230,
        timestamp,
      })),
      started: [],
      stopped: [],
    });
  }

  private vehicleReading(v: Vehicle, dc: number, timestamp: string): VehicleReadingBody {
    return {
      vehicleId: v.id,
      soc: round(v.soc, 2),
      kwhDeliveredDc: round(this.options.mode === 'interval' ? dc : v.register, 6),
      batteryTemp: round(v.temp, 2),
      timestamp,
    };
  }

  /** The same, with the charging sessions that began and ended at this tick. */
  step(atMs: number, intervalS: number): FleetStep {
    const hours = intervalS / 3600;
    const timestamp = new Date(atMs).toISOString();
    const acByCharger = new Map<Charger, number>(
      this.chargers.map((c) => [c, STANDBY_KWH_PER_HOUR * hours]),
    );
    const step: FleetStep = { atMs, vehicles: [], meters: [], started: [], stopped: [] };

    for (const v of this.vehicles) {
      let dc = 0;
      if (v.charging) {
        const efficiency = this.efficiencyAt(v.meter, atMs);
        dc = Math.min(v.meter.drawKw * efficiency * hours, ((100 - v.soc) / 100) * v.capacityKwh);
        v.soc = Math.min(100, v.soc + (dc / v.capacityKwh) * 100);
        v.temp += (38 - v.temp) * Math.min(1, hours * 2);
        acByCharger.set(v.meter, (acByCharger.get(v.meter) ?? 0) + dc / efficiency);
        if (v.soc >= v.targetSoc) {
          v.charging = false;
          v.plugInBelow =
            v.targetSoc - PLUG_IN_DROP.min - this.rand() * (PLUG_IN_DROP.max - PLUG_IN_DROP.min);
          step.stopped.push(v);
        }
      } else {
        v.soc = Math.max(5, v.soc - this.rand() * DRIVING_SOC_PER_HOUR * hours);
        v.temp += (24 - v.temp) * Math.min(1, hours);
        if (v.soc < v.plugInBelow) {
          v.charging = true;
          v.targetSoc = 80 + this.rand() * 15;
          step.started.push(v);
        }
      }
      v.register += dc;
      step.vehicles.push(this.vehicleReading(v, dc, timestamp));
    }
    for (const c of this.chargers) {
      const ac = acByCharger.get(c) ?? 0;
      c.register += ac;
      step.meters.push({
        meterId: c.id,
        kwhConsumedAc: round(this.options.mode === 'interval' ? ac : c.register, 6),
        voltage: round(228 + this.rand() * 6, 1),
        timestamp,
      });
    }
    return this.record(step);
  }
}
