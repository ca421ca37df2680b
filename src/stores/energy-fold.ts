/**
 * The energy arithmetic, defined once. Every consumer — the rollups (and their rebuild),
 * the per-vehicle report and the fleet report — folds "pieces" of a device's readings with these
 * expressions, so they cannot disagree.
 *
 * A piece is a stretch of one device's readings in time order: a single raw reading, or a
 * rolled-up hour or quarter hour. Its columns: ts, readings, energy_sum, first_energy,
 * last_energy, increase (the register increase inside it), temp_sum, temp_count, temp_min,
 * temp_max, first_soc, last_soc, soc_min, soc_max.
 *
 * - interval semantics: each reading is the energy since the previous one, so a span's energy is
 *   the sum of its readings;
 * - register (cumulative) semantics: readings are a counter, so a span's energy is the sum of the
 *   increases between consecutive readings, starting from the last reading before the span; a
 *   drop below half of the previous reading means the register was reset and counts the new
 *   value, a smaller one is a rounding and counts nothing (`register_step`, a SQL function; see
 *   the register-drops migration).
 */
import { historyRoleSql } from '../devices/device-kinds';

const raw = historyRoleSql('t');

/** A raw history row (alias `t`) as a piece. */
export const RAW_PIECE = `t.ts, 1 AS readings,
  ${raw.energy} AS energy_sum, ${raw.energy} AS first_energy, ${raw.energy} AS last_energy,
  0::float8 AS increase,
  ${raw.temperature} AS temp_sum, (${raw.temperature} IS NOT NULL)::int AS temp_count,
  ${raw.temperature} AS temp_min, ${raw.temperature} AS temp_max,
  ${raw.soc} AS first_soc, ${raw.soc} AS last_soc, ${raw.soc} AS soc_min, ${raw.soc} AS soc_max`;

/**
 * A rollup row as a piece: `bucket` is its time column (`hour` in telemetry_hourly, `quarter` in
 * telemetry_15min, the quarter-hour rollups of the same shape).
 */
export const rollupPiece = (r: string, bucket: string) => `${r}.${bucket} AS ts, ${r}.readings,
  ${r}.energy_sum, ${r}.first_energy, ${r}.last_energy,
  ${r}.register_increase AS increase,
  ${r}.temp_sum, CASE WHEN ${r}.temp_sum IS NULL THEN 0 ELSE ${r}.readings END AS temp_count,
  ${r}.temp_min, ${r}.temp_max,
  ${r}.first_soc, ${r}.last_soc, ${r}.soc_min, ${r}.soc_max`;

/** A rolled-up hour (alias `r`, a telemetry_hourly row) as a piece. */
export const ROLLUP_PIECE = rollupPiece('r', 'hour');

/**
 * The last energy before each piece of a series, in time order; the series' first piece steps
 * from `prior` (the last reading before the series, or NULL: no step).
 */
export const previousEnergy = (series: string, prior = 'NULL::float8') =>
  `coalesce(lag(last_energy) OVER (PARTITION BY ${series} ORDER BY ts), ${prior})`;

/** What one piece adds to its series' energy, per semantics (it needs `previous_energy`). */
export const PIECE_ENERGY = {
  interval: 'energy_sum',
  register: 'increase + register_step(previous_energy, first_energy)',
};

/** A piece's energy by its device's semantics (`mode`: an SQL expression). */
export const pieceEnergy = (mode: string) =>
  energyByMode(mode, PIECE_ENERGY.interval, PIECE_ENERGY.register);

/** Aggregates over pieces that carry `previous_energy`: a span's energy is its pieces' sum. */
export const FOLD = {
  readings: 'sum(readings)::int',
  intervalEnergy: `sum(${PIECE_ENERGY.interval})`,
  registerEnergy: `sum(${PIECE_ENERGY.register})`,
  tempSum: 'sum(temp_sum)',
  tempCount: 'sum(temp_count)::int',
  tempMin: 'min(temp_min)',
  tempMax: 'max(temp_max)',
  socMin: 'min(soc_min)',
  socMax: 'max(soc_max)',
};

/** A span's energy by its device's semantics (`mode`: an SQL expression, 'interval' or 'cumulative'). */
export const energyByMode = (mode: string, intervalEnergy: string, registerEnergy: string) =>
  `CASE WHEN ${mode} = 'interval' THEN ${intervalEnergy} ELSE ${registerEnergy} END`;
