import type { Logger } from '../logger';
import type { BootRecord, ChargePointStore } from './charge-point-store';

/** A record PostgreSQL has not taken yet: the newest boot, or (null) the connection alone. */
interface Unrecorded {
  boot: BootRecord | null;
  /** The write under way (and those it chains to), or null. */
  writing: Promise<void> | null;
  failures: number;
}

/** After a write PostgreSQL refused, no record is tried again for this long (by any charge point). */
export const RECORD_RETRY_MS = 5000;

/**
 * Charge points whose record is kept to be tried again, at most: an outage as long as a
 * deployment's charge points all reconnecting to one replica twice over. Past it the oldest is
 * given up (it is written anyway when it connects or boots again).
 */
export const MAX_UNRECORDED = 50_000;

/**
 * Writes what a charge point said of itself (that it connected, its boot) to PostgreSQL: a charge
 * point is served while PostgreSQL is away. A write PostgreSQL did not take is kept and tried
 * again on the charge point's next call once RECORD_RETRY_MS have passed since the last refusal
 * (one backoff for all, so an outage costs PostgreSQL one try per interval, not one per charge
 * point), so one that connected or booted during an outage is listed, with its vendor and model,
 * once PostgreSQL is back (it reconnects without booting again). One write per charge point at a
 * time, so an older boot never follows a newer one from this process (the store refuses an older
 * boot from another replica).
 */
export class ChargePointRecorder {
  private readonly unrecorded = new Map<string, Unrecorded>();
  private retryAt = 0;

  constructor(
    private readonly deps: { store: ChargePointStore; logger: Logger; now?: () => number },
  ) {}

  /** A charge point connected (it is listed from now on, booted or not). */
  connected(chargePointId: string): void {
    void this.write(chargePointId, null);
  }

  /** Resolves once the boot is written, or kept to be written later: it never rejects. */
  booted(record: BootRecord): Promise<void> {
    return this.write(record.id, record);
  }

  /** A call from the charge point: a record PostgreSQL did not take is tried again when due. */
  heardFrom(chargePointId: string): void {
    const entry = this.unrecorded.get(chargePointId);
    if (entry && !entry.writing && this.now() >= this.retryAt) this.start(chargePointId, entry);
  }

  /** Charge points whose record PostgreSQL has not taken yet. */
  get pending(): number {
    return this.unrecorded.size;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /**
   * Writes the record now, or waits for the write under way, which then writes the newest; within
   * RECORD_RETRY_MS of a refusal, keeps it for a later call (heardFrom).
   */
  private write(chargePointId: string, boot: BootRecord | null): Promise<void> {
    let entry = this.unrecorded.get(chargePointId);
    if (!entry) {
      entry = { boot: null, writing: null, failures: 0 };
      this.unrecorded.set(chargePointId, entry);
      this.giveUpOldest();
    }
    // A boot written covers the connection; a reconnection keeps the boot not written yet.
    entry.boot = boot ?? entry.boot;
    if (entry.writing) return entry.writing;
    // Within the backoff after a refusal it waits, as every record does, for a later call.
    return this.now() < this.retryAt ? Promise.resolve() : this.start(chargePointId, entry);
  }

  private start(chargePointId: string, entry: Unrecorded): Promise<void> {
    entry.writing = this.attempt(chargePointId, entry).finally(() => (entry.writing = null));
    return entry.writing;
  }

  private async attempt(chargePointId: string, entry: Unrecorded): Promise<void> {
    const { store, logger } = this.deps;
    const boot = entry.boot;
    try {
      await (boot ? store.recordBoot(boot) : store.recordConnected(chargePointId));
    } catch (err) {
      this.retryAt = this.now() + RECORD_RETRY_MS;
      entry.failures += 1;
      // Said once per charge point: during an outage every call would say it again.
      logger[entry.failures === 1 ? 'warn' : 'debug'](
        { err, chargePointId, failures: entry.failures },
        `charge point ${boot ? 'boot' : 'connection'} not recorded: tried again on a later call`,
      );
      return;
    }
    // A newer boot came while this was written: it is written now.
    if (entry.boot !== boot) await this.attempt(chargePointId, entry);
    else this.unrecorded.delete(chargePointId);
  }

  private giveUpOldest(): void {
    if (this.unrecorded.size <= MAX_UNRECORDED) return;
    const [oldest] = this.unrecorded.keys();
    this.unrecorded.delete(oldest);
    this.deps.logger.warn(
      { chargePointId: oldest },
      'charge point record given up (too many unrecorded): written when it connects again',
    );
  }
}
