/**
 * A session's efficiency threshold by its mean AC power: slow AC charging loses more on healthy
 * hardware (13-24 % on a 2.3 kW household socket against 6-10 % on an 11 kW wallbox), so one
 * threshold for all either flags healthy slow chargers or misses degrading fast ones.
 */
import { isAtMost } from '../reports/rounding';

/**
 * Drift: a session's baseline is the median efficiency of the same vehicle's sessions on the same
 * meter over this many days before it, when there are at least DRIFT_MIN_SESSIONS of them.
 */
export const DRIFT_BASELINE_DAYS = 30;
export const DRIFT_MIN_SESSIONS = 5;

export interface ThresholdClass {
  /** Sessions whose mean AC power is at most this (kW) use `threshold`; Infinity for `*`. */
  upToKw: number;
  threshold: number;
}

/** EFFICIENCY_THRESHOLDS (`3.7:0.75,11:0.82,*:0.88`, already checked by its pattern) as classes. */
export function parseThresholdClasses(text: string): ThresholdClass[] {
  if (text.trim() === '') return [];
  return text
    .split(',')
    .map((entry) => {
      const [kw, threshold] = entry.split(':');
      return { upToKw: kw === '*' ? Infinity : Number(kw), threshold: Number(threshold) };
    })
    .sort((a, b) => a.upToKw - b.upToKw);
}

/**
 * What is wrong with classes each well written: a power limit given twice (which threshold would
 * hold?), a threshold outside `bounds` (those of the single EFFICIENCY_THRESHOLD).
 */
export function thresholdClassProblems(
  classes: ThresholdClass[],
  bounds: { minimum: number; maximum: number },
): string[] {
  const problems: string[] = [];
  const limits = classes.map((c) => c.upToKw);
  for (const limit of new Set(limits.filter((l, i) => limits.indexOf(l) !== i))) {
    problems.push(`${limit === Infinity ? '*' : `${limit} kW`} is given more than once`);
  }
  for (const { threshold } of classes) {
    if (threshold < bounds.minimum || threshold > bounds.maximum) {
      problems.push(
        `threshold ${threshold} is outside ${bounds.minimum} to ${bounds.maximum} (EFFICIENCY_THRESHOLD's range)`,
      );
    }
  }
  return problems;
}

/** The threshold for a session of this mean AC power: its class, else the single default. */
export function thresholdFor(
  classes: ThresholdClass[],
  meanAcPowerKw: number | null,
  fallback: number,
): number {
  if (meanAcPowerKw === null) return fallback;
  return classes.find((c) => isAtMost(meanAcPowerKw, c.upToKw))?.threshold ?? fallback;
}
