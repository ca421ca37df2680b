import { EnergyReportStore, type WindowRow } from '../src/analytics/energy-report-store';
import type { Reading } from '../src/devices/device-kinds';
import { HistoryStore } from '../src/stores/history-store';
import { RollupStore } from '../src/stores/rollup-store';
import { createTestContext, type TestContext } from './helpers/test-env';
import { meterReading, vehicleReading } from './helpers/readings';

/**
 * The energy arithmetic (stores/energy-fold.ts) against hand-computed figures, read the ways a
 * report can find an hour: pending (raw readings), in progress (some quarters rolled up), rolled
 * up, and rolled up but marked again by a late reading.
 */
let ctx: TestContext;
let history: HistoryStore;
let rollups: RollupStore;
let reports: EnergyReportStore;

const at = (hhmm: string) => Date.parse(`2024-05-20T${hhmm}:00Z`);
const meter = (hhmm: string, kwh: number) => meterReading('M-f', at(hhmm), kwh);
const vehicle = (hhmm: string, kwh: number) => vehicleReading('V-f', at(hhmm), 50, kwh);
const insert = (readings: Reading[]) => history.insert(readings, Date.now());

const FROM = new Date(at('10:30'));
const TO = new Date(at('12:00'));

/**
 * Energy of each device window, whole and per hour: { 'dc': 18.9, 'ac@10': 5, ... }. The report
 * without hours (no chart asked for) must give exactly the whole rows of the one with hours.
 */
async function energies(mode: 'interval' | 'cumulative'): Promise<Record<string, number | null>> {
  const rows = await reports.vehicleWindows('V-f', FROM, TO, mode, { hours: true });
  const whole = await reports.vehicleWindows('V-f', FROM, TO, mode, { hours: false });
  expect(whole).toEqual(rows.filter((r) => r.hour === null));
  const round = (v: number | null) => (v === null ? null : Math.round(v * 1e6) / 1e6);
  return Object.fromEntries(
    rows.map((r: WindowRow) => [
      r.hour ? `${r.role}@${r.hour.getUTCHours()}` : r.role,
      round(r.energy),
    ]),
  );
}

interface RollupRow {
  device_id: string;
  readings: number;
  energy_sum: number;
  register_increase: number;
}

async function rollupRows(): Promise<RollupRow[]> {
  return (
    await ctx.db.raw(`
      SELECT device_type, device_id, hour, readings, round(energy_sum::numeric, 6)::float8 AS energy_sum,
             round(register_increase::numeric, 6)::float8 AS register_increase, first_energy, last_energy
      FROM telemetry_hourly ORDER BY 1, 2, 3`)
  ).rows;
}

beforeAll(async () => {
  ctx = await createTestContext();
  history = new HistoryStore(ctx.db);
  rollups = new RollupStore(ctx.db);
  reports = new EnergyReportStore(ctx.db);
  await ctx.db.raw(`SELECT ensure_history_partition('2024-05-20')`);
  await ctx.db.raw(
    `INSERT INTO vehicle_meter_map (vehicle_id, meter_id, valid_from) VALUES ('V-f', 'M-f', '2024-05-01')`,
  );
  // Register values; the meter's register resets between 11:05 and 11:20.
  await insert([
    meter('10:10', 100),
    meter('10:40', 105),
    meter('11:05', 112),
    meter('11:20', 3),
    meter('11:50', 10),
    meter('12:10', 15),
    vehicle('10:15', 1000),
    vehicle('10:45', 1004),
    vehicle('11:10', 1009),
    vehicle('11:40', 1018.9),
    vehicle('12:05', 1020),
  ]);
});
afterAll(() => ctx.cleanup());

// Window [10:30, 12:00). Register: the meter steps from 100 (10:10, before the window) to 105
// (+5), 112 (+7), 3 (a reset: +3), 10 (+7); the vehicle from 1000 to 1004 (+4), 1009 (+5),
// 1018.9 (+9.9). Each increase counts in the hour of its later reading.
const REGISTER = { dc: 18.9, 'dc@10': 4, 'dc@11': 14.9, ac: 22, 'ac@10': 5, 'ac@11': 17 };
// Interval: the readings inside the window, summed.
const INTERVAL = {
  dc: 3031.9,
  'dc@10': 1004,
  'dc@11': 2027.9,
  ac: 230,
  'ac@10': 105,
  'ac@11': 125,
};

describe('the energy fold', () => {
  test('when every hour is still pending, then raw readings give the hand-computed energies', async () => {
    expect(await energies('cumulative')).toEqual(REGISTER);
    expect(await energies('interval')).toEqual(INTERVAL);
  });

  test('when the hours are rolled up quarter by quarter, then the rollups hold the hour figures and the reports do not change', async () => {
    // Up to 11:30: hour 11 is in progress, its closed quarters rolled up, its hour row partial.
    expect(await rollups.rollUpPending(new Date(at('11:30')), 1000)).toEqual({
      quarters: 7,
      hours: 4,
    });
    expect(await energies('cumulative')).toEqual(REGISTER);
    expect(await energies('interval')).toEqual(INTERVAL);
    expect(await rollups.rollUpPending(new Date(at('13:00')), 1000)).toEqual({
      quarters: 4,
      hours: 4,
    });
    const meterHours = (await rollupRows()).filter((r) => r.device_id === 'M-f');
    expect(meterHours.map((r) => [r.readings, r.energy_sum, r.register_increase])).toEqual([
      [2, 205, 5], // 100 -> 105
      [3, 125, 10], // 112 -> 3 (reset: +3) -> 10 (+7)
      [1, 15, 0],
    ]);
    expect(await energies('cumulative')).toEqual(REGISTER);
    expect(await energies('interval')).toEqual(INTERVAL);
  });

  test('when a late reading lands in a rolled-up hour, then the hour is read raw until rolled up again, and both agree with a rebuild', async () => {
    await insert([meter('11:30', 1)]); // 3 -> 1 is another reset (+1), then 1 -> 10 (+9)
    const expected = { ...REGISTER, ac: 25, 'ac@11': 20 };
    expect(await energies('cumulative')).toEqual(expected);
    expect(await rollups.rollUpPending(new Date(at('13:00')), 1000)).toEqual({
      quarters: 1,
      hours: 1,
    });
    expect(await energies('cumulative')).toEqual(expected);
    const rolled = await rollupRows();
    await rollups.rebuild(new Date(at('00:00')), new Date(at('23:00')));
    expect(await rollupRows()).toEqual(rolled);
  });

  test('when a duplicate arrives, then nothing is marked and nothing changes', async () => {
    expect(await insert([meter('11:30', 1), vehicle('11:10', 1009)])).toBe(0);
    expect(Number((await ctx.db('rollup_pending').count({ n: '*' }))[0].n)).toBe(0);
  });
});
