/**
 * Register samples inside a transaction are held to the transaction's register so far: the
 * newest register known before each sample's instant, whether meterStart, a sample stored
 * before (the connector's live state) or an earlier sample of the same message. Within a
 * transaction the register only rises, or resets to small values. A sample below it and not a
 * reset (which falls below half, as the reports' fold reads one) is the charger's, not the
 * meter's: 0 while its meter restarts, the register rounded down to kWh (101 after 101.456), or
 * a sum of some phases only. Read as what they look like, they made the window reports count
 * more than the transaction billed: each dip counted nothing and the rise after it counted again
 * (4.16 kWh for 3.25), and a reset counted the next sample whole (50,000 kWh for 20).
 */

/** A register reading: its value (kWh) and instant (epoch ms). */
export interface KnownRegister {
  kwh: number;
  atMs: number;
}

export type LeftOutReason =
  | 'zero register in a transaction'
  | 'incomplete phases'
  | "below its transaction's meterStart"
  | 'below an earlier register of its transaction';

interface Floor extends KnownRegister {
  isStart: boolean;
}

/** Why a sample is not the register, below `floor`; null when it may be (at or above, a reset). */
function belowFloor(sample: { kwh: number; phased: boolean }, floor: Floor): LeftOutReason | null {
  if (sample.kwh >= floor.kwh) return null;
  if (sample.kwh === 0) return 'zero register in a transaction';
  if (sample.phased) return 'incomplete phases';
  if (sample.kwh < floor.kwh / 2) return null;
  return floor.isStart
    ? "below its transaction's meterStart"
    : 'below an earlier register of its transaction';
}

/**
 * Splits a message's register samples into those kept and those left out (with why). `atMs` is
 * a sample's instant, null if unreadable (kept: ingest refuses it by name). A sample dated
 * before the start (a charger's queue delivered late) is the register then, which may well be
 * lower, and is kept. `stored`: registers of the connector stored before this message (its
 * newest, and for samples delivered late those stored before them), in any order; those inside
 * the transaction are each the floor of the samples dated at or after it.
 */
export function holdToTransactionRegister<R extends { kwh: number; phased: boolean }>(
  samples: { reading: R; atMs: number | null }[],
  start: KnownRegister,
  stored: readonly KnownRegister[],
): { kept: R[]; leftOut: LeftOutReason[] } {
  const inside = samples
    .map((s, index) => ({ ...s, index }))
    .filter((s): s is { reading: R; atMs: number; index: number } => s.atMs !== null)
    .filter((s) => s.atMs >= start.atMs)
    .sort((a, b) => a.atMs - b.atMs);
  const known = stored.filter((r) => r.atMs > start.atMs).sort((a, b) => a.atMs - b.atMs);
  let next = 0;
  let floor: Floor = { ...start, isStart: true };
  const leftOut = new Map<number, LeftOutReason>();
  for (const { reading, atMs, index } of inside) {
    // The newest register known before the sample: stored, or a sample of this message kept.
    for (; next < known.length && known[next].atMs <= atMs; next++) {
      if (known[next].atMs > floor.atMs) floor = { ...known[next], isStart: false };
    }
    const reason = belowFloor(reading, floor);
    if (reason) leftOut.set(index, reason);
    else floor = { kwh: reading.kwh, atMs, isStart: false };
  }
  return {
    kept: samples.filter((_, index) => !leftOut.has(index)).map((s) => s.reading),
    leftOut: [...leftOut.values()],
  };
}
