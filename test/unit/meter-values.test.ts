import {
  readMeterValues,
  parseReading,
  summariseRejects,
  LISTED_REJECTS,
  type MeterValue,
  type SampledValue,
} from '../../src/ocpp/meter-values';

const T1 = '2024-03-20T10:00:00Z';
const T2 = '2024-03-20T10:00:06Z';
const T3 = '2024-03-20T10:00:12Z';
const el = (timestamp: string, ...sampledValue: SampledValue[]): MeterValue => ({
  timestamp,
  sampledValue,
});
const reg = (value: string, extra: Partial<SampledValue> = {}): SampledValue => ({
  value,
  measurand: 'Energy.Active.Import.Register',
  ...extra,
});
const volt = (value: string, extra: Partial<SampledValue> = {}): SampledValue => ({
  value,
  measurand: 'Voltage',
  ...extra,
});

describe('energy register', () => {
  it('reads Wh (the default unit) as kWh', () => {
    const r = readMeterValues([el(T1, reg('150500', { unit: 'Wh' })), el(T2, reg('150600'))]);
    expect(r.readings).toEqual([
      { timestamp: T1, kwh: 150.5, voltage: undefined, phased: false },
      { timestamp: T2, kwh: 150.6, voltage: undefined, phased: false },
    ]);
    expect(r.rejects).toEqual([]);
  });

  it('reads kWh as is', () => {
    expect(readMeterValues([el(T1, reg('150.5', { unit: 'kWh' }))]).readings).toEqual([
      { timestamp: T1, kwh: 150.5, voltage: undefined, phased: false },
    ]);
  });

  it('takes a sample without measurand as the active import register', () => {
    const r = readMeterValues([el(T1, { value: '1234', context: 'Sample.Periodic' })]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 1.234, voltage: undefined, phased: false }]);
  });

  it('sums phased values when no unphased one is sent', () => {
    const r = readMeterValues([
      el(
        T1,
        reg('1000', { phase: 'L1' }),
        reg('2000', { phase: 'L2' }),
        reg('3.5', { phase: 'L3', unit: 'kWh' }),
      ),
      el(T2, reg('1100', { phase: 'L1-N' }), reg('2200', { phase: 'L2-N' })),
    ]);
    expect(r.readings.map((x) => x.kwh)).toEqual([6.5, 3.3]); // 3.3, not 3.3000000000000003
    expect(r.readings.map((x) => x.phased)).toEqual([true, true]);
  });

  it("takes the outlet's register (the connector's own) and leaves another location's out", () => {
    const r = readMeterValues([
      el(T1, reg('5101000', { location: 'Inlet' }), reg('5000500', { location: 'Outlet' })),
      el(T2, reg('5101500', { location: 'Inlet' }), reg('5001500')),
    ]);
    expect(r.readings.map((x) => x.kwh)).toEqual([5000.5, 5001.5]);
    expect(r.ignored).toEqual({ 'Energy.Active.Import.Register (location Inlet)': 2 });
  });

  it("leaves another location's register out even when it is the element's only one (the vehicle's, the inlet's)", () => {
    const r = readMeterValues([
      el(T1, reg('40000', { location: 'EV' })),
      el(T2, reg('7000', { location: 'Inlet' })),
    ]);
    expect(r.readings).toEqual([]);
    expect(r.ignored).toEqual({
      'Energy.Active.Import.Register (location EV)': 1,
      'Energy.Active.Import.Register (location Inlet)': 1,
    });
  });

  it('prefers the unphased total over the phases (they would count twice)', () => {
    const r = readMeterValues([
      el(T1, reg('1000', { phase: 'L1' }), reg('5000'), reg('2000', { phase: 'L2' })),
    ]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 5, voltage: undefined, phased: false }]);
  });

  it('yields no reading when one phase of a phased-only register is rejected (a partial sum is a false drop)', () => {
    const r = readMeterValues([
      el(
        T1,
        reg('1000', { phase: 'L1' }),
        reg('-5', { phase: 'L2' }),
        reg('1000', { phase: 'L3' }),
      ),
    ]);
    expect(r.readings).toEqual([]);
    expect(r.rejects).toEqual([
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'negative value' },
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'incomplete phases' },
    ]);
    expect(r.elementsWithoutRegister).toBe(1);
  });
});

describe('a phase sent twice', () => {
  it('counts a line once when it is repeated with the same value, L1 and L1-N alike', () => {
    const r = readMeterValues([
      el(T1, reg('150', { phase: 'L1' }), reg('150', { phase: 'L1' }), reg('200', { phase: 'L2' })),
      el(
        T2,
        reg('150', { phase: 'L1' }),
        reg('150', { phase: 'L1-N' }),
        volt('230', { phase: 'L1' }),
        volt('230', { phase: 'L1-N' }),
        volt('232', { phase: 'L2' }),
      ),
    ]);
    expect(r.readings).toEqual([
      { timestamp: T1, kwh: 0.35, voltage: undefined, phased: true },
      { timestamp: T2, kwh: 0.15, voltage: 231, phased: true },
    ]);
    expect(r.rejects).toEqual([]);
    expect(r.ignored).toEqual({
      'Energy.Active.Import.Register (phase L1 repeated)': 2,
      'Voltage (phase L1 repeated)': 1,
    });
  });

  it("yields no register when a line comes with two values (which one is the meter's is not known), and leaves such a voltage out", () => {
    const r = readMeterValues([
      el(
        T1,
        reg('150', { phase: 'L1' }),
        reg('160', { phase: 'L1-N' }),
        reg('200', { phase: 'L2' }),
      ),
      el(T2, reg('5000'), volt('230', { phase: 'L1' }), volt('240', { phase: 'L1' })),
    ]);
    expect(r.readings).toEqual([{ timestamp: T2, kwh: 5, voltage: 230, phased: false }]);
    expect(r.rejects).toEqual([
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'phase sent twice' },
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'incomplete phases' },
      { timestamp: T2, measurand: 'Voltage', reason: 'phase sent twice' },
    ]);
  });
});

describe('a total sent twice', () => {
  it('counts a total repeated with the same value, or at another precision, once; of two different totals neither is the register, nor are the phases', () => {
    const r = readMeterValues([
      el(T1, reg('13500'), reg('13500'), reg('13.4995', { unit: 'kWh' })),
      el(T2, reg('13500'), reg('99', { unit: 'kWh' })),
      el(
        T3,
        reg('13500'),
        reg('15000'),
        reg('7000', { phase: 'L1' }),
        reg('7000', { phase: 'L2' }),
        volt('230'),
        volt('400'),
        volt('231', { phase: 'L1' }),
      ),
    ]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 13.5, voltage: undefined, phased: false }]);
    expect(r.rejects).toEqual([
      { timestamp: T2, measurand: 'Energy.Active.Import.Register', reason: 'total sent twice' },
      { timestamp: T3, measurand: 'Energy.Active.Import.Register', reason: 'total sent twice' },
      { timestamp: T3, measurand: 'Voltage', reason: 'total sent twice' },
    ]);
    expect(r.ignored).toEqual({ 'Energy.Active.Import.Register (total repeated)': 2 });
    expect(r.elementsWithoutRegister).toBe(2);
  });
});

describe('rejected samples', () => {
  it('rejects an unknown unit and keeps the rest of the message', () => {
    const r = readMeterValues([
      el(T1, reg('7', { unit: 'kW' }), volt('230')),
      el(T2, reg('8000'), volt('0.23', { unit: 'kV' })),
    ]);
    expect(r.rejects).toEqual([
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'unknown unit' },
      { timestamp: T2, measurand: 'Voltage', reason: 'unknown unit' },
    ]);
    expect(r.readings).toEqual([{ timestamp: T2, kwh: 8, voltage: undefined, phased: false }]);
    expect(r.elementsWithoutRegister).toBe(1); // T1: voltage only once its register is rejected
  });

  it('rejects a negative value', () => {
    const r = readMeterValues([el(T1, reg('-1')), el(T2, reg('10'), volt('-230'))]);
    expect(r.rejects).toEqual([
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'negative value' },
      { timestamp: T2, measurand: 'Voltage', reason: 'negative value' },
    ]);
    expect(r.readings).toEqual([{ timestamp: T2, kwh: 0.01, voltage: undefined, phased: false }]);
  });

  it.each(['', ' ', 'abc', '12kWh', '0x10', 'Infinity', 'NaN', '1,5', '1e999'])(
    'rejects non-numeric %p',
    (value) => {
      const r = readMeterValues([el(T1, reg(value))]);
      expect(r.readings).toEqual([]);
      expect(r.rejects).toEqual([
        { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'non-numeric value' },
      ]);
    },
  );

  it('accepts plain decimals, exponents and zero', () => {
    expect(['0', '-0', '12', '12.5', '.5', '1e3', ' 42 '].map(parseReading)).toEqual([
      0, 0, 12, 12.5, 0.5, 1000, 42,
    ]);
  });

  it('rejects SignedData', () => {
    const r = readMeterValues([
      el(T1, reg('AbCd==', { format: 'SignedData' }), reg('5000', { format: 'Raw' })),
    ]);
    expect(r.rejects).toEqual([
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'signed data' },
    ]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 5, voltage: undefined, phased: false }]);
  });
});

describe('limits and the neutral phase', () => {
  it('rejects a voltage above the reading limit and keeps the register of the element', () => {
    const r = readMeterValues([el(T1, reg('7000'), volt('1200'))]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 7, voltage: undefined, phased: false }]);
    expect(r.rejects).toEqual([{ timestamp: T1, measurand: 'Voltage', reason: 'out of range' }]);
  });

  it('rejects a register above MAX_KWH', () => {
    const r = readMeterValues([el(T1, reg('1e13'))]);
    expect(r.readings).toEqual([]);
    expect(r.rejects).toEqual([
      { timestamp: T1, measurand: 'Energy.Active.Import.Register', reason: 'out of range' },
    ]);
  });

  it('leaves the neutral phase out of the register and the voltage, counted as ignored', () => {
    const r = readMeterValues([
      el(
        T1,
        reg('1000', { phase: 'L1' }),
        reg('1000', { phase: 'L2' }),
        reg('1000', { phase: 'L3' }),
        reg('100', { phase: 'N' }),
        volt('231', { phase: 'L1-N' }),
        volt('229', { phase: 'L2-N' }),
        volt('3', { phase: 'N' }),
      ),
    ]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 3, voltage: 230, phased: true }]);
    expect(r.ignored).toEqual({
      'Energy.Active.Import.Register (phase N)': 1,
      'Voltage (phase N)': 1,
    });
  });

  it('leaves line-to-line samples out of the voltage (400 V beside 230 V), counted as ignored', () => {
    const r = readMeterValues([
      el(
        T1,
        reg('9000'),
        volt('230', { phase: 'L1-N' }),
        volt('400', { phase: 'L1-L2' }),
        volt('401', { phase: 'L2-L3' }),
        volt('399', { phase: 'L3-L1' }),
      ),
    ]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 9, voltage: 230, phased: false }]);
    expect(r.ignored).toEqual({
      'Voltage (phase L1-L2)': 1,
      'Voltage (phase L2-L3)': 1,
      'Voltage (phase L3-L1)': 1,
    });
  });
});

describe('voltage', () => {
  it('is the mean of the phases sent', () => {
    const r = readMeterValues([
      el(
        T1,
        reg('1000'),
        volt('230', { phase: 'L1-N' }),
        volt('232', { phase: 'L2-N' }),
        volt('228.5', { phase: 'L3-N' }),
      ),
      el(T2, reg('1001'), volt('229', { phase: 'L1' }), volt('231', { phase: 'L2', unit: 'V' })),
    ]);
    expect(r.readings).toEqual([
      { timestamp: T1, kwh: 1, voltage: 230.166667, phased: false },
      { timestamp: T2, kwh: 1.001, voltage: 230, phased: false },
    ]);
  });

  it('is the unphased value when sent (V is the default unit)', () => {
    expect(readMeterValues([el(T1, reg('1'), volt('231.2'))]).readings[0].voltage).toBe(231.2);
  });

  it('averages only the phases that were not rejected', () => {
    const r = readMeterValues([
      el(
        T1,
        reg('1'),
        volt('230', { phase: 'L1' }),
        volt('x', { phase: 'L2' }),
        volt('232', { phase: 'L3' }),
      ),
    ]);
    expect(r.readings[0].voltage).toBe(231);
    expect(r.rejects).toEqual([
      { timestamp: T1, measurand: 'Voltage', reason: 'non-numeric value' },
    ]);
  });

  it('an element with only voltage yields no reading but is counted', () => {
    const r = readMeterValues([el(T1, volt('230')), el(T2, reg('2000'), volt('231'))]);
    expect(r.readings).toEqual([{ timestamp: T2, kwh: 2, voltage: 231, phased: false }]);
    expect(r.elementsWithoutRegister).toBe(1);
    expect(r.ignored).toEqual({ 'Voltage (no register)': 1 });
    expect(r.rejects).toEqual([]);
  });
});

describe('mixed measurands', () => {
  it("counts other measurands by name and otherwise ignores them (Temperature is the charger's)", () => {
    const r = readMeterValues([
      el(
        T1,
        reg('12000'),
        { value: '35.5', measurand: 'Temperature', unit: 'Celsius', location: 'Body' },
        { value: '-3', measurand: 'Temperature', unit: 'Celsius' }, // never read, so never rejected
        { value: '7.2', measurand: 'Power.Active.Import', unit: 'kW' },
        { value: '80', measurand: 'SoC', unit: 'Percent', location: 'EV' },
        volt('230'),
      ),
      el(
        T2,
        { value: '16', measurand: 'Current.Import', unit: 'A', phase: 'L1' },
        { value: '34', measurand: 'Temperature' },
      ),
    ]);
    expect(r.readings).toEqual([{ timestamp: T1, kwh: 12, voltage: 230, phased: false }]);
    expect(r.ignored).toEqual({
      Temperature: 3,
      'Power.Active.Import': 1,
      SoC: 1,
      'Current.Import': 1,
    });
    expect(r.elementsWithoutRegister).toBe(1);
    expect(r.rejects).toEqual([]);
  });

  it('returns nothing for an empty array', () => {
    expect(readMeterValues([])).toEqual({
      readings: [],
      rejects: [],
      ignored: {},
      elementsWithoutRegister: 0,
    });
  });
});

describe('rejected samples in a log line', () => {
  it('counts them by reason and lists the first few, however many a message holds', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => el(T1, reg(i % 2 === 0 ? 'x' : '-1')));
    const { rejects } = readMeterValues([...many, el(T2, reg('5', { unit: 'kW' }))]);
    const summary = summariseRejects(rejects);
    expect(summary.rejected).toBe(10_001);
    expect(summary.byReason).toEqual({
      'non-numeric value': 5_000,
      'negative value': 5_000,
      'unknown unit': 1,
    });
    expect(summary.first).toHaveLength(LISTED_REJECTS);
    expect(summary.first[0]).toEqual({
      timestamp: T1,
      measurand: 'Energy.Active.Import.Register',
      reason: 'non-numeric value',
    });
  });
});
