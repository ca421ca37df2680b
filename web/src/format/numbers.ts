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

export const formatKwh = (kwh: number) => withUnit(kwh, 2, 'kWh');
export const formatKw = (kw: number) => withUnit(kw, 1, 'kW');
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
