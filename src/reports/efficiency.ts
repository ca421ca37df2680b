/**
 * Efficiency, DC delivered over AC consumed: the figure every report judges. Sessions, windows and
 * hours compute it here, so each says the same of the same energy.
 */

/** DC out per AC in; null when either is unknown, or without AC. */
export const efficiencyOf = (ac: number | null, dc: number | null): number | null =>
  ac !== null && dc !== null && ac > 0 ? dc / ac : null;

/**
 * What a report or a session says when DC delivered is above AC consumed: no charger does that, so
 * a meter is mapped to the wrong vehicle or counted in the wrong energy mode.
 */
const DC_EXCEEDS_AC =
  'DC delivered exceeds AC consumed: check the meter mapping and the energy mode';

/** The warnings an efficiency calls for: DC_EXCEEDS_AC above 1, else none. */
export const efficiencyWarnings = (efficiency: number | null): string[] =>
  efficiency !== null && efficiency > 1 ? [DC_EXCEEDS_AC] : [];

/**
 * A vehicle's efficiency over a window or an hour: as efficiencyOf, and null when it took no DC
 * energy. It did not charge then (a session is a run of DC energy), and its meter's AC is standby:
 * an idle vehicle was flagged at 0 %, the worst of the fleet.
 */
export const windowEfficiency = (ac: number | null, dc: number | null): number | null =>
  dc === 0 ? null : efficiencyOf(ac, dc);
