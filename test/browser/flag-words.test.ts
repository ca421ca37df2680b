import { vehicleFlagOf } from '../../web/src/views/flag';

describe("the dashboard's word on a vehicle's efficiency", () => {
  const status = (
    acConsumedKwh: number | null,
    dcDeliveredKwh: number | null,
    alert: boolean | null,
  ) => vehicleFlagOf({ acConsumedKwh, dcDeliveredKwh, alert }, 0.85, []).text;

  test('when a figure is there, then OK, unless DC exceeds AC, which is wrong data to check', () => {
    expect(status(10, 9, false)).toBe('OK');
    expect(status(10, 12.9, false)).toBe(
      "Check: more DC than AC (the meter's mapping or energy semantics)",
    );
  });

  test('when there is no figure, then the reason is the one that applies', () => {
    expect(status(null, 5, null)).toBe('No efficiency: AC energy unknown');
    expect(status(5, null, null)).toBe('No efficiency: no vehicle readings');
    expect(status(0, 5, null)).toBe('No efficiency: no AC energy drawn');
    expect(status(6, 0, null)).toBe('No efficiency: no DC energy delivered');
  });
});
