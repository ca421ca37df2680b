/** Numbers in the browser's locale, always with their unit (joined by a no-break space). */
const formatters = new Map<number, Intl.NumberFormat>();
function fixed(digits: number): Intl.NumberFormat {
  let f = formatters.get(digits);
  if (!f) {
    f = new Intl.NumberFormat(undefined, {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    formatters.set(digits, f);
  }
  return f;
}

const withUnit = (value: number, digits: number, unit: string) =>
  `${fixed(digits).format(value)}\u00a0${unit}`;

/** Significant digits of a figure too small for its unit's decimals. */
const SMALL_FIGURE_DIGITS = 3;
const significant = new Intl.NumberFormat(undefined, {
  maximumSignificantDigits: SMALL_FIGURE_DIGITS,
});

/**
 * A figure in kilo-units with `digits` decimals; one below a unit of the last decimal (0.01 kWh,
 * which would show as 0.00 or 0.01 kWh) in the base unit with 3 significant digits ("4 Wh",
 * "0.576 Wh"): an efficiency resting on tiny energies shows that it does, not "50.00 %" of
 * "0.00 kWh".
 */
function kilo(value: number, digits: number, unit: string): string {
  if (value === 0 || Math.abs(value) >= 10 ** -digits) return withUnit(value, digits, `k${unit}`);
  return `${significant.format(value * 1000)}\u00a0${unit}`;
}

/**
 * The engine gives energies to 4 decimals of kWh (0.1 Wh), and a smaller one as 0, but computes
 * efficiency before rounding: a 0 beside an efficiency that shows energy was there is below half
 * of that step.
 */
const ROUNDED_AWAY = `<\u00a0${significant.format(0.05)}\u00a0Wh`;

/**
 * Energy: 2 decimals of kWh (12.34 kWh); below 0.01 kWh in Wh (5.2 Wh, 0.002 Wh). `drawn`: its
 * efficiency shows there was some (any efficiency for AC, one above 0 for DC), so a 0 is a figure
 * the engine rounded away ("< 0.05 Wh").
 */
export const formatKwh = (kwh: number, drawn = false) =>
  kwh === 0 && drawn ? ROUNDED_AWAY : kilo(kwh, 2, 'Wh');
/** AC energy beside its efficiency: any efficiency shows AC was there. */
export const formatAcKwh = (kwh: number, efficiency: number | null | undefined) =>
  formatKwh(kwh, efficiency !== null && efficiency !== undefined);
/** DC energy beside its efficiency: one above 0 shows DC was there. */
export const formatDcKwh = (kwh: number, efficiency: number | null | undefined) =>
  formatKwh(kwh, !!efficiency);
/** Power: 1 decimal of kW (11.0 kW); below 0.1 kW in W (52 W, 0.12 W). */
export const formatKw = (kw: number) => kilo(kw, 1, 'W');
/**
 * The engine gives ratios (efficiency, thresholds) to 4 decimals, so a percentage with 2 shows
 * exactly its figure (0.9005 as 90.05 %), never rounded a second time.
 */
const RATIO_PERCENT_DIGITS = 2;
/** A ratio (0.8712) as a percentage (87.12 %). */
export const formatRatio = (ratio: number) => withUnit(ratio * 100, RATIO_PERCENT_DIGITS, '%');
/** A ratio already scaled to percent (a chart's efficiency line): as formatRatio shows it. */
export const formatRatioPercent = (percent: number) => withUnit(percent, RATIO_PERCENT_DIGITS, '%');
/** A value already in percent (state of charge). */
export const formatPercent = (percent: number) => withUnit(percent, 1, '%');
export const formatVolts = (volts: number) => withUnit(volts, 1, 'V');
export const formatCelsius = (celsius: number) => withUnit(celsius, 1, '°C');
export const formatCount = (n: number) => fixed(0).format(n);
