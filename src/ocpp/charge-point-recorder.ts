import type { Logger } from '../logger';
import type { BootRecord, ChargePointStore } from './charge-point-store';

/** A record PostgreSQL has not taken yet: the newest boot, or (null) the connection alone. */
interface Unrecorded {
  boot: BootRecord | null;
  /** Not tried again before this (epoch ms): a charge point's every call must not retry it. */
  retryAt: number;
  writing: boolean;
}

/** How often a charge point's calls try its record again while PostgreSQL refuses it. */
export const RECORD_RETRY_MS = 5000;

/**
 * Writes what a charge point said of itself (that it connected, its boot) to PostgreSQL, off the
 * connection's path: a charge point is served while PostgreSQL is away. A write PostgreSQL did not
 * take is kept and tried again on the charge point's next call, at most every RECORD_RETRY_MS, so
 * one that connected or booted during an outage is listed, with its vendor and model, once
 * PostgreSQL is back (it reconnects without booting again). One write per charge point at a time,
 * so an older boot never lands after a newer one.
 */
export class ChargePointRecorder {
  private readonly unrecorded = new Map<string, Unrecorded>();

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
    if (entry && !entry.writing && this.now() >= entry.retryAt) {
      void this.attempt(chargePointId, entry);
    }
  }

  /** Charge points whose record PostgreSQL has not taken yet. */
  get pending(): number {
    return this.unrecorded.size;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Writes the record now, or after the write in flight (which then picks the newest up). */
  private async write(chargePointId: string, boot: BootRecord | null): Promise<void> {
    const entry = this.unrecorded.get(chargePointId) ?? { boot: null, retryAt: 0, writing: false };
    // A boot written covers the connection; a reconnection keeps the boot not written yet.
    entry.boot = boot ?? entry.boot;
    this.unrecorded.set(chargePointId, entry);
    if (!entry.writing) await this.attempt(chargePointId, entry);
  }

  private async attempt(chargePointId: string, entry: Unrecorded): Promise<void> {
    const { store, logger } = this.deps;
    const boot = entry.boot;
    entry.writing = true;
    entry.retryAt = this.now() + RECORD_RETRY_MS;
    try {
      await (boot ? store.recordBoot(boot) : store.recordConnected(chargePointId));
    } catch (err) {
      logger.warn(
        { err, chargePointId },
        `charge point ${boot ? 'boot' : 'connection'} not recorded: tried again on its next call`,
      );
      return;
    } finally {
      entry.writing = false;
    }
    // A newer boot came while this was written: it is written now.
    if (entry.boot !== boot) await this.attempt(chargePointId, entry);
    else this.unrecorded.delete(chargePointId);
  }
}
