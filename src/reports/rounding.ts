/**
 * Rounds a reported figure. Sums of the same readings in a different order (JavaScript for one
 * vehicle, PostgreSQL for the fleet) can differ in the last bits; settling them at 9 decimals
 * first makes both reports round to the same published value.
 */
export function roundFigure(value: number | null, digits: number): number | null {
  if (value === null) return null;
  const settled = Math.round(value * 1e9) / 1e9;
  return Math.round(settled * 10 ** digits) / 10 ** digits;
}
