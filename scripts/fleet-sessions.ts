/**
 * The simulator's own account of the charging sessions it sent, judged with the engine's settings,
 * so its printed lists of faulty and drifting vehicles can be held against the engine's flags.
 *
 * It follows what the engine reads (src/sessions/session-sql.ts) from the values as sent: a
 * vehicle reading is charging when it adds energy; a session is a run of charging readings at most
 * SESSION_GAP_S apart, spanning (first charging reading - its interval to the previous reading,
 * capped at the gap, last charging reading]; DC is the vehicle's energy and AC its meter's over
 * that span. An OCPP transaction spans the same ticks (plugged in, last energy), so one account
 * serves both modes (a transaction still running ends where the engine asks, not at its last
 * reading: its mean power reads a little lower there). The threshold classes, the drift baseline's
 * span and size and the rounding are the engine's own declarations.
 */
import type { Config } from '../src/config';
import { roundFigure } from '../src/reports/rounding';
import {
  DRIFT_BASELINE_DAYS,
  DRIFT_MIN_SESSIONS,
  parseThresholdClasses,
  thresholdFor,
} from '../src/sessions/thresholds';

/** The engine settings that decide which sessions are flagged. */
export type JudgingSettings = Pick<
  Config,
  'efficiencyThreshold' | 'efficiencyThresholds' | 'efficiencyDrift' | 'sessionGapS'
>;

/**
 * How a device's energy value reads: `interval` (energy since the previous reading), `cumulative`
 * (a register), or `register-wh` (an OCPP connector's register, sent in whole Wh).
 */
export type EnergySemantics = 'interval' | 'cumulative' | 'register-wh';

export interface JudgedSession {
  vehicleId: string;
  meterId: string;
  startMs: number;
  endMs: number;
  acKwh: number;
  dcKwh: number;
  efficiency: number | null;
  meanAcPowerKw: number | null;
  threshold: number;
  alert: boolean | null;
  drift: boolean | null;
}

const DRIFT_LOOKBACK_MS = DRIFT_BASELINE_DAYS * 86_400_000;

/** Energy of each reading of one device, by its semantics, from the values as sent. */
class EnergySteps {
  private previous: number | null = null;

  constructor(private readonly semantics: EnergySemantics) {}

  /** The reading's energy (kWh) and whether it added any (a register that rose). */
  next(value: number): { energy: number; added: boolean } {
    const previous = this.previous;
    this.previous = value;
    if (this.semantics === 'interval') return { energy: value, added: value > 0 };
    const kwh = this.semantics === 'register-wh' ? value / 1000 : value;
    const previousKwh =
      previous === null ? null : this.semantics === 'register-wh' ? previous / 1000 : previous;
    if (previousKwh === null) return { energy: 0, added: false };
    // A drop is a reset: the new value is the increase.
    return { energy: kwh >= previousKwh ? kwh - previousKwh : kwh, added: kwh > previousKwh };
  }
}

interface Run {
  meterId: string;
  startMs: number;
  lastChargingMs: number;
  ac: number;
  dc: number;
  /** Energy after the last charging reading: it joins the run only if charging resumes. */
  pendingAc: number;
  pendingDc: number;
}

/** A session before it is judged: who, where, when and how much energy. */
type SessionSpan = Omit<
  JudgedSession,
  'efficiency' | 'meanAcPowerKw' | 'threshold' | 'alert' | 'drift'
>;

/** A run of charging readings (closed, or still going on) as the session it makes. */
const spanOf = (vehicleId: string, run: Run): SessionSpan => ({
  vehicleId,
  meterId: run.meterId,
  startMs: run.startMs,
  endMs: run.lastChargingMs,
  acKwh: run.ac,
  dcKwh: run.dc,
});

/** Collects every vehicle's sessions from the readings as they are sent, then judges them. */
export class SessionLedger {
  private readonly vehicleSteps = new Map<string, EnergySteps>();
  private readonly meterSteps = new Map<string, EnergySteps>();
  private readonly lastReadingMs = new Map<string, number>();
  private readonly runs = new Map<string, Run>();
  private readonly closed: SessionSpan[] = [];

  constructor(
    private readonly settings: JudgingSettings,
    private readonly semantics: { vehicles: EnergySemantics; meters: EnergySemantics },
  ) {}

  /** One tick: every meter's value, then every vehicle's value with the meter it charges from. */
  observe(
    atMs: number,
    meters: { meterId: string; value: number }[],
    vehicles: { vehicleId: string; meterId: string; value: number }[],
  ): void {
    const meterEnergy = new Map<string, number>();
    for (const m of meters)
      meterEnergy.set(m.meterId, this.meterStepsOf(m.meterId).next(m.value).energy);
    for (const v of vehicles) {
      const { energy, added } = this.vehicleStepsOf(v.vehicleId).next(v.value);
      const ac = meterEnergy.get(v.meterId) ?? 0;
      this.onVehicleReading(v.vehicleId, v.meterId, atMs, energy, added, ac);
    }
  }

  private vehicleStepsOf(id: string): EnergySteps {
    let steps = this.vehicleSteps.get(id);
    if (!steps) this.vehicleSteps.set(id, (steps = new EnergySteps(this.semantics.vehicles)));
    return steps;
  }

  private meterStepsOf(id: string): EnergySteps {
    let steps = this.meterSteps.get(id);
    if (!steps) this.meterSteps.set(id, (steps = new EnergySteps(this.semantics.meters)));
    return steps;
  }

  private onVehicleReading(
    vehicleId: string,
    meterId: string,
    atMs: number,
    dc: number,
    charging: boolean,
    ac: number,
  ): void {
    const gapMs = this.settings.sessionGapS * 1000;
    const previousMs = this.lastReadingMs.get(vehicleId);
    this.lastReadingMs.set(vehicleId, atMs);
    const run = this.runs.get(vehicleId);
    if (run && atMs - run.lastChargingMs > gapMs) this.close(vehicleId, run);
    const open = this.runs.get(vehicleId);
    if (!charging) {
      if (open) {
        open.pendingAc += ac;
        open.pendingDc += dc;
      }
      return;
    }
    if (open) {
      open.ac += open.pendingAc + ac;
      open.dc += open.pendingDc + dc;
      open.pendingAc = open.pendingDc = 0;
      open.lastChargingMs = atMs;
      return;
    }
    const lead = Math.min(previousMs === undefined ? gapMs : atMs - previousMs, gapMs);
    this.runs.set(vehicleId, {
      meterId,
      startMs: atMs - lead,
      lastChargingMs: atMs,
      ac,
      dc,
      pendingAc: 0,
      pendingDc: 0,
    });
  }

  private close(vehicleId: string, run: Run): void {
    this.runs.delete(vehicleId);
    this.closed.push(spanOf(vehicleId, run));
  }

  /** Every session so far (the ones still going on included), judged as the engine judges them. */
  judged(): JudgedSession[] {
    const sessions = [
      ...this.closed,
      ...[...this.runs].map(([vehicleId, run]) => spanOf(vehicleId, run)),
    ].sort((a, b) => a.startMs - b.startMs);
    const classes = parseThresholdClasses(this.settings.efficiencyThresholds);
    const earlier = new Map<string, { startMs: number; efficiency: number }[]>();
    return sessions.map((s) => {
      const hours = (s.endMs - s.startMs) / 3_600_000;
      const efficiency = s.acKwh > 0 ? s.dcKwh / s.acKwh : null;
      const meanAcPowerKw = hours > 0 ? s.acKwh / hours : null;
      const threshold = thresholdFor(classes, meanAcPowerKw, this.settings.efficiencyThreshold);
      const key = `${s.vehicleId}\n${s.meterId}`;
      const before = (earlier.get(key) ?? []).filter(
        (e) => e.startMs >= s.startMs - DRIFT_LOOKBACK_MS,
      );
      const median =
        before.length >= DRIFT_MIN_SESSIONS ? medianOf(before.map((e) => e.efficiency)) : null;
      if (efficiency !== null) earlier.set(key, [...before, { startMs: s.startMs, efficiency }]);
      return {
        ...s,
        efficiency,
        meanAcPowerKw,
        threshold,
        alert: efficiency === null ? null : efficiency < threshold,
        drift:
          efficiency === null || median === null
            ? null
            : efficiency < (roundFigure(median, 4) as number) - this.settings.efficiencyDrift,
      };
    });
  }
}

/** PostgreSQL's percentile_cont(0.5): the middle value, or the mean of the two middle ones. */
function medianOf(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = (sorted.length - 1) / 2;
  return (sorted[Math.floor(mid)] + sorted[Math.ceil(mid)]) / 2;
}
