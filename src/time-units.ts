/** Lengths of time in milliseconds. The quarter hour is the rollups' finest grain. */
export const QUARTER_MS = 900_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
