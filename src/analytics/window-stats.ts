import type { EnergyReadingsMode } from '../config';
import type { HourlyRollup, RawPoint } from './analytics-store';

/** What one device did inside one time range. */
export interface WindowStats {
  readings: number;
  /** kWh in the range under the configured energy mode; null when the device sent nothing. */
  energyKwh: number | null;
  tempSum: number;
  tempCount: number;
  tempMin: number | null;
  tempMax: number | null;
  socStart: number | null;
  socEnd: number | null;
  socMin: number | null;
  socMax: number | null;
}

/** A stretch of readings in time order: a single raw reading, or a whole rolled-up hour. */
interface Piece {
  readings: number;
  energySum: number;
  firstEnergy: number;
  lastEnergy: number;
  registerIncrease: number;
  tempSum: number;
  tempCount: number;
  tempMin: number | null;
  tempMax: number | null;
  firstSoc: number | null;
  lastSoc: number | null;
  socMin: number | null;
  socMax: number | null;
}

/** The increase between consecutive register readings; a drop means the register was reset. */
export const registerStep = (previous: number, current: number) =>
  current >= previous ? current - previous : current;

const fromPoint = (p: RawPoint): Piece => ({
  readings: 1,
  energySum: p.energy,
  firstEnergy: p.energy,
  lastEnergy: p.energy,
  registerIncrease: 0,
  tempSum: p.batteryTemp ?? 0,
  tempCount: p.batteryTemp === null ? 0 : 1,
  tempMin: p.batteryTemp,
  tempMax: p.batteryTemp,
  firstSoc: p.soc,
  lastSoc: p.soc,
  socMin: p.soc,
  socMax: p.soc,
});

const fromRollup = (r: HourlyRollup): Piece => ({
  readings: r.readings,
  energySum: r.energySum,
  firstEnergy: r.firstEnergy,
  lastEnergy: r.lastEnergy,
  registerIncrease: r.registerIncrease ?? 0,
  tempSum: r.tempSum ?? 0,
  tempCount: r.tempSum === null ? 0 : r.readings,
  tempMin: r.tempMin,
  tempMax: r.tempMax,
  firstSoc: r.firstSoc,
  lastSoc: r.lastSoc,
  socMin: r.socMin,
  socMax: r.socMax,
});

const minOf = (a: number | null, b: number | null) =>
  a === null ? b : b === null ? a : Math.min(a, b);
const maxOf = (a: number | null, b: number | null) =>
  a === null ? b : b === null ? a : Math.max(a, b);

/**
 * Folds a range's raw points and rollups (already in time order, not overlapping) into its stats.
 * Interval mode sums the readings; cumulative mode sums register increases between consecutive
 * readings, starting from `priorEnergy`, the last reading before the range (if any).
 */
export function summarizeWindow(
  points: (RawPoint | HourlyRollup)[],
  mode: EnergyReadingsMode,
  priorEnergy: number | null,
): WindowStats {
  const stats: WindowStats = {
    readings: 0,
    energyKwh: null,
    tempSum: 0,
    tempCount: 0,
    tempMin: null,
    tempMax: null,
    socStart: null,
    socEnd: null,
    socMin: null,
    socMax: null,
  };
  let energy = 0;
  let previousEnergy = priorEnergy;
  for (const item of points) {
    const piece = 'hour' in item ? fromRollup(item) : fromPoint(item);
    stats.readings += piece.readings;
    if (mode === 'interval') {
      energy += piece.energySum;
    } else {
      if (previousEnergy !== null) energy += registerStep(previousEnergy, piece.firstEnergy);
      energy += piece.registerIncrease;
      previousEnergy = piece.lastEnergy;
    }
    stats.tempSum += piece.tempSum;
    stats.tempCount += piece.tempCount;
    stats.tempMin = minOf(stats.tempMin, piece.tempMin);
    stats.tempMax = maxOf(stats.tempMax, piece.tempMax);
    stats.socStart ??= piece.firstSoc;
    stats.socEnd = piece.lastSoc ?? stats.socEnd;
    stats.socMin = minOf(stats.socMin, piece.socMin);
    stats.socMax = maxOf(stats.socMax, piece.socMax);
  }
  stats.energyKwh = stats.readings > 0 ? energy : null;
  return stats;
}

const HOUR_MS = 3_600_000;

/** The hour (epoch ms of its start) a raw point or rollup belongs to. */
const hourOf = (item: RawPoint | HourlyRollup) =>
  'hour' in item ? item.hour.getTime() : Math.floor(item.ts.getTime() / HOUR_MS) * HOUR_MS;

const lastEnergyOf = (item: RawPoint | HourlyRollup) =>
  'hour' in item ? item.lastEnergy : item.energy;

/**
 * The same stats per hour, for charts. In cumulative mode the increase from the previous reading
 * (in an earlier hour, or `priorEnergy`) counts in the hour of the later reading, so the hours
 * add up to the whole window.
 */
export function summarizeByHour(
  points: (RawPoint | HourlyRollup)[],
  mode: EnergyReadingsMode,
  priorEnergy: number | null,
): Map<number, WindowStats> {
  const byHour = new Map<number, WindowStats>();
  let carry = priorEnergy;
  let start = 0;
  while (start < points.length) {
    const hour = hourOf(points[start]);
    let end = start;
    while (end < points.length && hourOf(points[end]) === hour) end += 1;
    const group = points.slice(start, end);
    byHour.set(hour, summarizeWindow(group, mode, carry));
    carry = lastEnergyOf(group[group.length - 1]);
    start = end;
  }
  return byHour;
}
