/**
 * Rounds a reported figure. Sums of the same readings in a different order (JavaScript for one
 * vehicle, PostgreSQL for the fleet) can differ in the last bits; settling them at 9 decimals
 * first makes both reports round to the same published value.
 */
export function roundFigure(value: number | null, digits: number): number | null {
  if (value === null) return null;
  return Math.round(settle(value) * 10 ** digits) / 10 ** digits;
}

const settle = (value: number) => Math.round(value * 1e9) / 1e9;

/**
 * Whether a figure is below a limit (an efficiency below its threshold: an alert), both settled
 * at 9 decimals: 17 kWh of DC summed from 1.7s is 16.999999999999996, and 17 / 20 is not below
 * 0.85; 0.84996 is.
 */
export function isBelow(value: number, limit: number): boolean {
  return settle(value) < settle(limit);
}

/**
 * Whether a figure is at most a limit, both settled at 9 decimals: 3.3 kWh summed from 1.1s over
 * 18 minutes is 11.000000000000002 kW, and that is at most 11 kW.
 */
export function isAtMost(value: number, limit: number): boolean {
  return settle(value) <= settle(limit);
}
