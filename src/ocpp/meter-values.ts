/**
 * OCPP 1.6 MeterValues.req `meterValue` / StopTransaction.req `transactionData` -> the connector
 * meter's register readings. Pure: no I/O, no clock, no library types.
 */
import { MAX_KWH, meterKind } from '../devices/device-kinds';

/** One SampledValue as in the OCPP 1.6 JSON schema (all fields but `value` optional). */
export interface SampledValue {
  value: string;
  context?: string;
  format?: string;
  measurand?: string;
  phase?: string;
  location?: string;
  unit?: string;
}

/** One element of `meterValue` / `transactionData`. */
export interface MeterValue {
  timestamp: string;
  sampledValue: readonly SampledValue[];
}

/** What one meterValue element tells about the meter (energy register in kWh). */
export interface MeterReading {
  timestamp: string;
  kwh: number;
  voltage: number | undefined;
  /** The register is a sum of phases (no total was sent): a phase missing makes it fall short. */
  phased: boolean;
}

export type RejectReason =
  | 'unknown unit'
  | 'non-numeric value'
  | 'negative value'
  | 'out of range'
  | 'signed data'
  | 'incomplete phases'
  | 'phase sent twice'
  | 'total sent twice';

export interface SampleReject {
  timestamp: string;
  measurand: string;
  reason: RejectReason;
}

export interface MeterValuesResult {
  /** one per meterValue element that yields an energy register, in input order */
  readings: MeterReading[];
  rejects: SampleReject[];
  /** samples of measurands we do not read (e.g. Temperature: the charger's, never a battery's) */
  ignored: Record<string, number>;
  /** elements that yielded no reading (e.g. voltage only, or every register sample rejected) */
  elementsWithoutRegister: number;
}

/** Rejected samples a log line lists one by one; the rest are counted by reason. */
export const LISTED_REJECTS = 5;

/**
 * Rejected samples as one log line says them: how many, how many for each reason, and the first
 * few. A message may hold hundreds of thousands of samples: a line per sample flooded the log.
 */
export function summariseRejects(rejects: readonly SampleReject[]) {
  const byReason = Object.fromEntries(countBy(rejects.map((r) => r.reason)));
  return { rejected: rejects.length, byReason, first: rejects.slice(0, LISTED_REJECTS) };
}

/** How often each value occurs, in order of first occurrence. */
export function countBy<T>(values: readonly T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

export const ENERGY_REGISTER = 'Energy.Active.Import.Register';
const VOLTAGE = 'Voltage';

/** OCPP 1.6 §7.31: a SampledValue without measurand is the active import register. */
function measurandOf(sample: SampledValue): string {
  return sample.measurand ?? ENERGY_REGISTER;
}

/** Factor from the sample's unit to kWh; undefined = not an energy unit we accept. Default Wh. */
function kwhPerUnit(unit: string | undefined): number | undefined {
  if (unit === undefined || unit === 'Wh') return 0.001;
  if (unit === 'kWh') return 1;
  return undefined;
}

/** Voltage samples must be in V (the default when absent). */
function isVoltUnit(unit: string | undefined): boolean {
  return unit === undefined || unit === 'V';
}

// A plain decimal, as meters print it. Number() alone would take '', ' ', '0x10', 'Infinity'.
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Parses a sample value: a finite, non-negative decimal, or the reason it is not one. */
export function parseReading(value: string): number | 'non-numeric value' | 'negative value' {
  if (typeof value !== 'string' || !DECIMAL.test(value.trim())) return 'non-numeric value';
  const n = Number(value.trim());
  if (!Number.isFinite(n)) return 'non-numeric value';
  if (n < 0) return 'negative value';
  return n === 0 ? 0 : n; // -0 -> 0
}

/** The largest voltage a meter reading holds (MAX_KWH: the largest register). */
const MAX_VOLTS = meterKind.fields.voltage.schema.maximum ?? Infinity;

/** Checks one sample we read (register or voltage); returns its value in kWh / V, or why not. */
function readSample(sample: SampledValue): number | RejectReason {
  // SignedData carries an opaque signed blob, not a number we may use as is.
  if (sample.format === 'SignedData') return 'signed data';
  const isRegister = measurandOf(sample) === ENERGY_REGISTER;
  const factor = isRegister ? kwhPerUnit(sample.unit) : isVoltUnit(sample.unit) ? 1 : undefined;
  if (factor === undefined) return 'unknown unit';
  const n = parseReading(sample.value);
  if (typeof n !== 'number') return n;
  // Refused here, sample by sample: a voltage out of range must not cost the element its register.
  return n * factor > (isRegister ? MAX_KWH : MAX_VOLTS) ? 'out of range' : n * factor;
}

/**
 * The neutral conductor's own sample (phase "N") is not part of the total: the register is the
 * sum of the line phases (L1, L2, L3 or L1-N, L2-N, L3-N), and N's voltage is not a line voltage.
 */
const NEUTRAL = 'N';

/**
 * Line-to-line samples are left out too: a register is per line, and a voltage between two lines
 * is √3 times a line's (400 V beside 230 V), which the mean of the phases would mix in.
 */
const LINE_TO_LINE = new Set(['L1-L2', 'L2-L3', 'L3-L1']);

/** Where an element's unphased value (its total) is kept beside its lines' values. */
const TOTAL = 'total';

/** The line a phased sample is of: `L1-N` (line to neutral) is line L1's, as `L1` is. */
const lineOf = (phase: string) => phase.replace(/-N$/, '');

// Readings are kept to the mWh / mV: enough for any meter, and it hides float noise (0.1 + 0.2).
function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

interface Read {
  value: number;
  phased: boolean;
}

/**
 * OCPP 1.6 §7.32: a sample without location is the connector's outlet, the connector's own
 * register and voltage. Another location's is not: the inlet's beside it made the register jump
 * between the two (history keeps an instant's first reading, whichever element held it), the
 * vehicle's (`EV`) stored as the connector's counted 41.5 kWh where 1.5 were billed, and the
 * vehicle's battery voltage (398 V, unphased) was stored as the outlet's in place of its 231 V.
 */
const OUTLET = 'Outlet';

/**
 * The register of one element: the unphased value if sent (it is the total; the phases would
 * count twice), else the sum of the phased values. A phase that was rejected makes the sum
 * a partial total, which a cumulative register would read as a drop (a false reset): no reading.
 */
export function registerKwh(reads: readonly Read[], phasedRejected: boolean): number | undefined {
  const total = reads.find((r) => !r.phased);
  if (total) return round6(total.value);
  if (reads.length === 0 || phasedRejected) return undefined;
  return round6(reads.reduce((sum, r) => sum + r.value, 0));
}

/** The element's voltage: the unphased value if sent, else the mean of the phases sent. */
function voltageOf(reads: readonly Read[]): number | undefined {
  const total = reads.find((r) => !r.phased);
  if (total) return round6(total.value);
  if (reads.length === 0) return undefined;
  return round6(reads.reduce((sum, r) => sum + r.value, 0) / reads.length);
}

/** The context of a sample taken at a transaction's end (OCPP 1.6 ReadingContext). */
const TRANSACTION_END = 'Transaction.End';

/**
 * Turns a `meterValue` array into readings; bad samples are rejected, the rest is kept. With
 * `ignoreTransactionEnd` (a MeterValues message), samples of a transaction's end are ignored:
 * StopTransaction's meterStop is the register there, exact, where such a sample is often rounded
 * to kWh, and history keeps the first reading of an instant, which the sample would be.
 */
export function readMeterValues(
  meterValue: readonly MeterValue[],
  { ignoreTransactionEnd = false } = {},
): MeterValuesResult {
  const result: MeterValuesResult = {
    readings: [],
    rejects: [],
    ignored: {},
    elementsWithoutRegister: 0,
  };

  const ignore = (what: string) => (result.ignored[what] = (result.ignored[what] ?? 0) + 1);

  for (const element of meterValue) {
    let registers: Read[] = [];
    let volts: Read[] = [];
    let phasedRegisterRejected = false;
    /** Measurands sent with two different unphased values (totals) in this element. */
    const ambiguousTotals = new Set<string>();
    /**
     * Per measurand, each line's value so far (and the total's, as TOTAL): a line sent twice would
     * count twice in the sum, and of two totals the first is no likelier the meter's.
     */
    const lines = {
      [ENERGY_REGISTER]: new Map<string, number>(),
      [VOLTAGE]: new Map<string, number>(),
    };

    for (const sample of element.sampledValue) {
      const measurand = measurandOf(sample);
      if (ignoreTransactionEnd && sample.context === TRANSACTION_END) {
        ignore(`${measurand} (${TRANSACTION_END})`);
        continue;
      }
      if (sample.phase === NEUTRAL || LINE_TO_LINE.has(sample.phase ?? '')) {
        ignore(`${measurand} (phase ${sample.phase})`);
        continue;
      }
      if (measurand !== ENERGY_REGISTER && measurand !== VOLTAGE) {
        ignore(measurand);
        continue;
      }
      const location = sample.location ?? OUTLET;
      if (location !== OUTLET) {
        ignore(`${measurand} (location ${location})`);
        continue;
      }
      const read = readSample(sample);
      const phased = sample.phase !== undefined;
      if (typeof read === 'string') {
        result.rejects.push({ timestamp: element.timestamp, measurand, reason: read });
        if (measurand === ENERGY_REGISTER && phased) phasedRegisterRejected = true;
        continue;
      }
      const seen = lines[measurand];
      const line = phased ? lineOf(sample.phase as string) : TOTAL;
      const before = seen.get(line);
      // Two totals apart by less than a unit are one reading at two precisions (1235 Wh, 1.2345 kWh).
      if (before === read || (!phased && before !== undefined && Math.abs(before - read) < 1)) {
        ignore(`${measurand} (${phased ? `phase ${line}` : TOTAL} repeated)`);
        continue;
      }
      if (before !== undefined) {
        // Two values for one line, or two totals: which is the meter's is unknown.
        result.rejects.push({
          timestamp: element.timestamp,
          measurand,
          reason: phased ? 'phase sent twice' : 'total sent twice',
        });
        if (!phased) ambiguousTotals.add(measurand);
        else if (measurand === ENERGY_REGISTER) phasedRegisterRejected = true;
        continue;
      }
      seen.set(line, read);
      (measurand === ENERGY_REGISTER ? registers : volts).push({ value: read, phased });
    }
    // Of two totals neither is the meter's, and the phases sent may not be all of them: none.
    if (ambiguousTotals.has(ENERGY_REGISTER)) registers = [];
    if (ambiguousTotals.has(VOLTAGE)) volts = [];

    const kwh = registerKwh(registers, phasedRegisterRejected);
    if (kwh === undefined) {
      if (phasedRegisterRejected && registers.length > 0) {
        // the good phases are dropped too: say so, or the loss would be silent
        result.rejects.push({
          timestamp: element.timestamp,
          measurand: ENERGY_REGISTER,
          reason: 'incomplete phases',
        });
      }
      result.elementsWithoutRegister++;
      // A meter's reading holds its register: volts alone are not one (counted, not silent).
      volts.forEach(() => ignore(`${VOLTAGE} (no register)`));
      continue;
    }
    result.readings.push({
      timestamp: element.timestamp,
      kwh,
      voltage: voltageOf(volts),
      phased: registers.every((r) => r.phased),
    });
  }
  return result;
}
