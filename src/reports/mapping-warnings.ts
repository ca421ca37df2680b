/** What a vehicle's mapping periods leave out of its AC energy, as reports and sessions say it. */

interface Stretch {
  from: Date;
  to: Date;
}

/**
 * The stretches of [from, to) that none of the meter periods covers (none when no period is: that
 * is said on its own): before the vehicle's first mapping, after a mapping ended, and between and
 * after an OCPP charge point's transactions (each maps the vehicle for its own span).
 */
export function unmappedStretches(from: Date, to: Date, periods: readonly Stretch[]): Stretch[] {
  if (periods.length === 0) return [];
  const stretches: Stretch[] = [];
  let coveredTo = from.getTime();
  for (const p of [...periods].sort((a, b) => a.from.getTime() - b.from.getTime())) {
    if (p.from.getTime() > coveredTo) stretches.push({ from: new Date(coveredTo), to: p.from });
    coveredTo = Math.max(coveredTo, p.to.getTime());
  }
  if (coveredTo < to.getTime()) stretches.push({ from: new Date(coveredTo), to });
  return stretches;
}

/** A meter another vehicle held too for a stretch: its AC counts for both vehicles. */
export const sharedMeterWarning = (
  meterId: string,
  other: Stretch & { vehicleId: string },
  countsIn: 'reports' | 'sessions',
): string =>
  `Meter ${meterId} was mapped to vehicle ${other.vehicleId} too between ${other.from.toISOString()} and ${other.to.toISOString()}: its AC energy counts in each of their ${countsIn}`;
