import type { ChargingSession, FleetVehicle } from '../api/types';
import { h } from '../dom/h';
import { formatCount, formatRatio } from '../format/numbers';

/** Why something is flagged: efficiency under a threshold, or drift from its own usual. */
export type FlagReason = 'threshold' | 'drift';

export interface Flag {
  flagged: boolean;
  reasons: FlagReason[];
  /** Why, in words (or, unflagged, why there is no figure). */
  text: string;
}

const flag = (parts: { reason: FlagReason; text: string }[], unflagged: string): Flag => ({
  flagged: parts.length > 0,
  reasons: [...new Set(parts.map((p) => p.reason))],
  text: parts.length > 0 ? parts.map((p) => p.text).join('; ') : unflagged,
});

const sessionsText = (n: number) => `${formatCount(n)} session${n === 1 ? '' : 's'}`;

/** What the engine says of a vehicle's (or a session's) energy over a window. */
type Measured = Pick<FleetVehicle, 'alert' | 'acConsumedKwh' | 'dcDeliveredKwh'>;

function noFigure(item: Measured) {
  const { acConsumedKwh: ac, dcDeliveredKwh: dc } = item;
  if (item.alert === false) {
    // Above 100 %: not efficient but wrong data (a meter mapped to another vehicle, a register
    // read as intervals), which no threshold flags.
    return ac !== null && dc !== null && dc > ac
      ? "Check: more DC than AC (the meter's mapping or energy semantics)"
      : 'OK';
  }
  if (ac === null) return 'No efficiency: AC energy unknown';
  if (dc === null) return 'No efficiency: no vehicle readings';
  if (ac === 0) return 'No efficiency: no AC energy drawn';
  return 'No efficiency: no DC energy delivered';
}

/** The drift sentence of a session: its efficiency against its usual on that meter. */
const driftText = (s: ChargingSession) =>
  s.efficiency !== null && s.baseline
    ? `Drift: ${formatRatio(s.efficiency)} against its usual ${formatRatio(s.baseline.medianEfficiency)}`
    : 'Drift: below its usual efficiency';

/** A session: below its power class's threshold, drifting from the vehicle's usual, or both. */
export function sessionFlagOf(s: ChargingSession): Flag {
  return flag(
    [
      ...(s.alert === true
        ? [
            {
              reason: 'threshold' as const,
              text: `Below its ${formatRatio(s.threshold)} threshold`,
            },
          ]
        : []),
      ...(s.drift === true ? [{ reason: 'drift' as const, text: driftText(s) }] : []),
    ],
    noFigure(s),
  );
}

/**
 * A vehicle over a window: its efficiency under the threshold, and the flagged sessions the engine
 * found for it in the same window (GET /v1/analytics/sessions?flagged=true).
 */
export function vehicleFlagOf(
  v: Measured,
  below: number,
  flaggedSessions: readonly ChargingSession[],
): Flag {
  const underThreshold = flaggedSessions.filter((s) => s.alert === true).length;
  const drifting = flaggedSessions.filter((s) => s.drift === true);
  return flag(
    [
      ...(v.alert === true
        ? [
            {
              reason: 'threshold' as const,
              text: `Below the ${formatRatio(below)} efficiency threshold`,
            },
          ]
        : []),
      ...(underThreshold > 0
        ? [
            {
              reason: 'threshold' as const,
              text: `${sessionsText(underThreshold)} below ${underThreshold === 1 ? 'its' : 'their'} threshold`,
            },
          ]
        : []),
      ...(drifting.length > 0
        ? [
            {
              reason: 'drift' as const,
              text:
                drifting.length === 1
                  ? driftText(drifting[0])
                  : `Drift: ${sessionsText(drifting.length)} below their usual efficiency`,
            },
          ]
        : []),
    ],
    noFigure(v),
  );
}

/**
 * A vehicle's flag with the flagged sessions of its window counted in, where only their number is
 * known (the performance report's session summary).
 */
export function withFlaggedSessions(vehicle: Flag, flaggedSessions: number): Flag {
  if (flaggedSessions === 0) return vehicle;
  const text = `${sessionsText(flaggedSessions)} flagged (below a threshold or drifting): see Charging sessions`;
  return {
    flagged: true,
    reasons: vehicle.reasons,
    text: vehicle.flagged ? `${vehicle.text}; ${text}` : text,
  };
}

/** The status cell: a visible "Flagged" badge (not colour alone) followed by the reason. */
export function flagBadge(flag: Flag): HTMLElement {
  return h(
    'span',
    { class: flag.flagged ? 'flag flag-on' : 'flag' },
    flag.flagged ? h('strong', { class: 'badge badge-alert' }, 'Flagged') : null,
    flag.flagged ? ' ' : null,
    h('span', { class: 'flag-reason' }, flag.text),
  );
}
