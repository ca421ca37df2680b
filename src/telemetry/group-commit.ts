import type { Reading } from '../devices/device-kinds';

interface Waiter {
  readings: Reading[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Stores batches of readings durably (one queue job per batch); resolves once all are stored. */
export type StoreBatches = (batches: Reading[][]) => Promise<void>;

/**
 * Group commit: concurrent requests share queue jobs. While `maxStoresInFlight` stores are in
 * flight, arriving readings wait for the next one, so an idle server stores at once and a busy one
 * makes big jobs. Each caller's promise settles when the job(s) holding its readings are stored,
 * or failed.
 */
export class GroupCommitBuffer {
  private waiting: Waiter[] = [];
  private waitingReadings = 0;
  /** Readings of the stores in flight: taken, not yet stored (or failed). */
  private storingReadings = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** Store loops running; each leaves (synchronously) as soon as it finds nothing waiting. */
  private loops = 0;

  constructor(
    private readonly store: StoreBatches,
    private readonly options: {
      batchSize: number;
      maxBatchesPerStore: number;
      /**
       * More than one lets requests parsed while a store is in flight be stored at once, so the
       * process works while Redis does instead of taking turns with it. Default 1.
       */
      maxStoresInFlight?: number;
    },
    private readonly onStored: (readings: number, batches: number) => void = () => undefined,
  ) {}

  /** Readings accepted by this process and not yet stored: waiting, or in a store in flight. */
  get pendingReadings(): number {
    return this.waitingReadings + this.storingReadings;
  }

  add(readings: Reading[]): Promise<void> {
    if (readings.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ readings, resolve, reject });
      this.waitingReadings += readings.length;
      if (this.loops < (this.options.maxStoresInFlight ?? 1)) this.startLoop();
    });
  }

  /** Resolves when everything added so far has been stored (or failed). */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  private startLoop(): void {
    this.loops += 1;
    const loop: Promise<void> = this.storeLoop().finally(() => this.inFlight.delete(loop));
    this.inFlight.add(loop);
  }

  private async storeLoop(): Promise<void> {
    // Let requests that arrive in the same tick join the first store.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.waiting.length > 0) {
      const group = this.takeGroup();
      const readings = group.flatMap((w) => w.readings);
      const batches = chunk(readings, this.options.batchSize);
      this.storingReadings += readings.length;
      const failure = await this.store(batches).then(
        () => null,
        (err: unknown) => ({ err }),
      );
      this.storingReadings -= readings.length;
      if (failure) {
        group.forEach((w) => w.reject(failure.err));
        continue;
      }
      // In the same turn as they leave the pending ones: counted as one or the other, always.
      this.onStored(readings.length, batches.length);
      group.forEach((w) => w.resolve());
    }
    this.loops -= 1;
  }

  /** Takes whole requests until the group would pass the per-store cap (always at least one). */
  private takeGroup(): Waiter[] {
    const cap = this.options.batchSize * this.options.maxBatchesPerStore;
    let taken = 0;
    let count = 0;
    while (
      count < this.waiting.length &&
      (count === 0 || taken + this.waiting[count].readings.length <= cap)
    ) {
      taken += this.waiting[count].readings.length;
      count += 1;
    }
    this.waitingReadings -= taken;
    return this.waiting.splice(0, count);
  }
}

export function chunk<T>(items: T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}
