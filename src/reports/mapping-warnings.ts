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

/**
 * A meter another vehicle held too for a stretch (of the report's window, or of the session): its
 * AC counts for both vehicles.
 */
export function sharedMeterWarning(
  meterId: string,
  other: Stretch & { vehicleId: string },
  within: 'reports' | 'sessions',
): string {
  const stretch = `${other.from.toISOString()} and ${other.to.toISOString()}`;
  return within === 'reports'
    ? `Meter ${meterId} was mapped to vehicle ${other.vehicleId} too between ${stretch}: its AC energy counts in each of their reports`
    : `Meter ${meterId} was mapped to vehicle ${other.vehicleId} too, between ${stretch} of this session: its AC energy counts for both vehicles`;
}
