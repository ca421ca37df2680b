import { holdToTransactionRegister } from '../../src/ocpp/transaction-register';

const sample = (kwh: number, atMs: number | null, phased = false) => ({
  reading: { kwh, phased, atMs },
  atMs,
});
const start = { kwh: 100, atMs: 1_000 };
const keptValues = (result: { kept: { kwh: number }[] }) => result.kept.map((r) => r.kwh);

describe('holding register samples to their transaction', () => {
  test('when samples come in any order, then each is held to the newest register before its instant', () => {
    const result = holdToTransactionRegister(
      [sample(101, 4_000), sample(102, 3_000), sample(101.5, 2_000)],
      start,
      [],
    );
    // In time order: 101.5, 102, then 101 below 102.
    expect(keptValues(result)).toEqual([102, 101.5]);
    expect(result.leftOut).toEqual(['below an earlier register of its transaction']);
  });

  test('when the stored register is inside the transaction, then the samples after it are held to it, those before it to meterStart', () => {
    const stored = { kwh: 103, atMs: 3_000 };
    const result = holdToTransactionRegister(
      [sample(102, 4_000), sample(101, 2_000), sample(99, 1_500)],
      start,
      [stored],
    );
    expect(keptValues(result)).toEqual([101]);
    expect(result.leftOut.sort()).toEqual([
      'below an earlier register of its transaction',
      "below its transaction's meterStart",
    ]);
  });

  test('when the stored register predates the transaction, then it is not a floor', () => {
    const result = holdToTransactionRegister([sample(100.5, 2_000)], start, [
      { kwh: 500, atMs: 500 },
    ]);
    expect(keptValues(result)).toEqual([100.5]);
  });

  test('when a sample comes after a newer one was stored, then it is held to the register stored just before it, not to meterStart', () => {
    // Stored: 115 at 4,000 (the newest) and 112.4 at 2,000; the late sample 112 at 3,000 is
    // 112.4 rounded down. Held to meterStart (100) alone, it would be kept.
    const result = holdToTransactionRegister([sample(112, 3_000)], start, [
      { kwh: 115, atMs: 4_000 },
      { kwh: 112.4, atMs: 2_000 },
    ]);
    expect(keptValues(result)).toEqual([]);
    expect(result.leftOut).toEqual(['below an earlier register of its transaction']);
    // A register at or after the sample is no floor of it.
    const later = holdToTransactionRegister([sample(112, 3_000)], start, [
      { kwh: 115, atMs: 4_000 },
    ]);
    expect(keptValues(later)).toEqual([112]);
  });

  test('when a sample is before the start or has no readable instant, then it is kept as it is', () => {
    const result = holdToTransactionRegister([sample(90, 500), sample(95, null)], start, []);
    expect(keptValues(result)).toEqual([90, 95]);
    expect(result.leftOut).toEqual([]);
  });

  test('when a sample is 0, some phases, or a reset, then it is named so or kept as the new register', () => {
    const result = holdToTransactionRegister(
      [sample(0, 2_000), sample(60, 3_000, true), sample(10, 4_000), sample(12, 5_000)],
      start,
      [],
    );
    expect(keptValues(result)).toEqual([10, 12]);
    expect(result.leftOut).toEqual(['zero register in a transaction', 'incomplete phases']);
  });
});
