/**
 * Efficiency, DC delivered over AC consumed: the figure every report judges. Sessions, windows and
 * hours compute it here, so each says the same of the same energy.
 */

/** DC out per AC in; null when either is unknown, or without AC. */
export const efficiencyOf = (ac: number | null, dc: number | null): number | null =>
  ac !== null && dc !== null && ac > 0 ? dc / ac : null;

/**
 * A vehicle's efficiency over a window or an hour: as efficiencyOf, and null when it took no DC
 * energy. It did not charge then (a session is a run of DC energy), and its meter's AC is standby:
 * an idle vehicle was flagged at 0 %, the worst of the fleet.
 */
export const windowEfficiency = (ac: number | null, dc: number | null): number | null =>
  dc === 0 ? null : efficiencyOf(ac, dc);
