/**
 * A simulated EV fleet: vehicles charging from metered chargers. While a vehicle charges, its SoC
 * rises and its battery warms; its meter draws AC = DC / (the charger's efficiency) plus standby.
 * Most chargers are 0.88-0.95 efficient; a `faulty` share loses more (0.70-0.84).
 */
export type EnergyMode = 'interval' | 'cumulative';

export interface FleetOptions {
  meters: number;
  vehicles: number;
  faultyShare: number;
  mode: EnergyMode;
  seed: number;
  /** Id prefix, so several simulations can share one engine. */
  prefix: string;
  /** The meter id of charger n (1-based); default `{prefix}M-{n}`. */
  meterId?: (n: number) => string;
}

export interface Charger {
  id: string;
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

const CHARGER_KW = 11; // DC power while charging
const STANDBY_KWH_PER_HOUR = 0.002;
const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

export class Fleet {
  readonly chargers: Charger[];
  readonly vehicles: Vehicle[];
  private readonly rand: () => number;

  constructor(private readonly options: FleetOptions) {
    this.rand = random(options.seed);
    const faultyCount = Math.round(options.meters * options.faultyShare);
    this.chargers = Array.from({ length: options.meters }, (_, i) => ({
      id: options.meterId?.(i + 1) ?? `${options.prefix}M-${i + 1}`,
      efficiency: i < faultyCount ? 0.7 + this.rand() * 0.14 : 0.88 + this.rand() * 0.07,
      register: 1000 + Math.floor(this.rand() * 5000),
    }));
    // Shuffle which chargers are faulty, so they are not simply the first ones.
    for (let i = this.chargers.length - 1; i > 0; i--) {
      const j = Math.floor(this.rand() * (i + 1));
      [this.chargers[i].efficiency, this.chargers[j].efficiency] = [
        this.chargers[j].efficiency,
        this.chargers[i].efficiency,
      ];
    }
    this.vehicles = Array.from({ length: options.vehicles }, (_, i) => ({
      id: `${options.prefix}V-${i + 1}`,
      meter: this.chargers[i % options.meters],
      capacityKwh: 50 + Math.floor(this.rand() * 4) * 10,
      soc: 20 + this.rand() * 60,
      temp: 22 + this.rand() * 5,
      charging: true, // every vehicle starts a session, so even a short run measures every charger
      targetSoc: 80 + this.rand() * 15,
      register: Math.floor(this.rand() * 20000),
    }));
  }

  /** Vehicles whose charger is below the threshold, worst first. */
  faulty(threshold = 0.85): { vehicleId: string; meterId: string; efficiency: number }[] {
    return this.vehicles
      .filter((v) => v.meter.efficiency < threshold)
      .map((v) => ({
        vehicleId: v.id,
        meterId: v.meter.id,
        efficiency: round(v.meter.efficiency, 4),
      }))
      .sort((a, b) => a.efficiency - b.efficiency);
  }

  /** Advances the fleet by `intervalS` seconds and returns every device's reading at `atMs`. */
  tick(atMs: number, intervalS: number): (MeterReadingBody | VehicleReadingBody)[] {
    const step = this.step(atMs, intervalS);
    return [...step.vehicles, ...step.meters];
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
        dc = Math.min(CHARGER_KW * hours, ((100 - v.soc) / 100) * v.capacityKwh);
        v.soc = Math.min(100, v.soc + (dc / v.capacityKwh) * 100);
        v.temp += (38 - v.temp) * Math.min(1, hours * 2);
        acByCharger.set(v.meter, (acByCharger.get(v.meter) ?? 0) + dc / v.meter.efficiency);
        if (v.soc >= v.targetSoc) {
          v.charging = false;
          step.stopped.push(v);
        }
      } else {
        v.soc = Math.max(5, v.soc - this.rand() * 8 * hours); // driving
        v.temp += (24 - v.temp) * Math.min(1, hours);
        if (v.soc < 30 || this.rand() < 0.05 * hours) {
          v.charging = true;
          v.targetSoc = 80 + this.rand() * 15;
          step.started.push(v);
        }
      }
      v.register += dc;
      step.vehicles.push({
        vehicleId: v.id,
        soc: round(v.soc, 2),
        kwhDeliveredDc: round(this.options.mode === 'interval' ? dc : v.register, 6),
        batteryTemp: round(v.temp, 2),
        timestamp,
      });
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
    return step;
  }
}
