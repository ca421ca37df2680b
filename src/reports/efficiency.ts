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

/**
 * Below this no charger works: the worst losses measured (a 2.3 kW household socket, about a
 * quarter) leave 0.75, so a twentieth means a mistake, most often a meter that sends its running
 * total (its register) read as intervals, each reading counted whole.
 */
const LOWEST_PLAUSIBLE_EFFICIENCY = 0.05;

/**
 * ...drawn at a mean AC power above this: a meter's standby against a vehicle's top-up (a week of
 * 15 W against 0.1 kWh of DC) is a twentieth as well, at a few watts.
 */
const MISREAD_MEAN_AC_KW = 50;

const AC_FAR_ABOVE_DC = `AC consumed is over ${1 / LOWEST_PLAUSIBLE_EFFICIENCY} times DC delivered at over ${MISREAD_MEAN_AC_KW} kW on average, which no charger loses: check the energy mode (a meter that sends its running total must be set to cumulative, PUT /v1/meters/{meterId}/settings), a cumulative meter's readings (one that drops below half its register and rises again counts as a reset: its whole new value is added) and the meter mapping`;

/** Whether AC was drawn at a charger's power on average, not at a meter's standby. */
export const atChargerPower = (meanAcKw: number | null): boolean =>
  meanAcKw !== null && meanAcKw > MISREAD_MEAN_AC_KW;

/** An efficiency no charger has, with AC drawn at a charger's power: the AC is misread. */
export const looksMisread = (efficiency: number | null, drawnAtChargerPower: boolean): boolean =>
  efficiency !== null && efficiency < LOWEST_PLAUSIBLE_EFFICIENCY && drawnAtChargerPower;

/**
 * The warnings an efficiency calls for: DC_EXCEEDS_AC above 1, AC_FAR_ABOVE_DC far below with the
 * AC drawn at a charger's power (a session's mean AC power; for a window, its own mean, or a
 * session in it that looks misread: a charge of minutes averages little over a day's window).
 */
export function efficiencyWarnings(
  efficiency: number | null,
  drawnAtChargerPower: boolean,
): string[] {
  if (efficiency === null) return [];
  if (efficiency > 1) return [DC_EXCEEDS_AC];
  return looksMisread(efficiency, drawnAtChargerPower) ? [AC_FAR_ABOVE_DC] : [];
}

/**
 * Why a charging session has no efficiency, so that a null is never left unexplained: what was
 * missing, AC (no meter mapped, or its meters silent, or 0 kWh) or DC. None when it has one.
 */
export function missingEfficiencyReasons(session: {
  acKwh: number | null;
  dcKwh: number | null;
  meterIds: string[];
}): string[] {
  const { acKwh: ac, dcKwh: dc, meterIds } = session;
  const reasons: string[] = [];
  if (ac === null && meterIds.length === 0) {
    reasons.push('No meter was mapped to the vehicle during this session, so AC energy is unknown');
  } else if (ac === null) {
    reasons.push(
      `Meter ${meterIds.join(', ')} sent no readings during this session, so AC energy is unknown`,
    );
  } else if (ac <= 0) {
    reasons.push('AC energy in this session is 0, so efficiency is undefined');
  }
  if (dc === null) {
    reasons.push('The vehicle sent no readings during this session, so DC energy is unknown');
  }
  return reasons;
}

/**
 * A vehicle's efficiency over a window or an hour: as efficiencyOf, and null when it took no DC
 * energy. It did not charge then (a session is a run of DC energy), and its meter's AC is standby:
 * an idle vehicle was flagged at 0 %, the worst of the fleet.
 */
export const windowEfficiency = (ac: number | null, dc: number | null): number | null =>
  dc === 0 ? null : efficiencyOf(ac, dc);
