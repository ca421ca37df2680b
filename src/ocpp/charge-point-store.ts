import type { Knex } from 'knex';
import { connectorOfMeterId } from './charge-point-state';

/** What a charge point said about itself at its last BootNotification (null: never booted). */
export interface ChargePointRecord {
  id: string;
  vendor: string | null;
  model: string | null;
  serialNumber: string | null;
  firmwareVersion: string | null;
  lastBootAt: Date | null;
}

/** What a BootNotification says of its charge point. */
export type BootRecord = ChargePointRecord & { lastBootAt: Date };

interface ChargePointRow {
  id: string;
  vendor: string | null;
  model: string | null;
  serial_number: string | null;
  firmware_version: string | null;
  last_boot_at: Date | null;
}

const toRecord = (r: ChargePointRow): ChargePointRecord => ({
  id: r.id,
  vendor: r.vendor,
  model: r.model,
  serialNumber: r.serial_number,
  firmwareVersion: r.firmware_version,
  lastBootAt: r.last_boot_at,
});

/** Charge points that have connected at least once, with their last boot (charge_points). */
export class ChargePointStore {
  constructor(private readonly db: Knex) {}

  /** A charge point connected: recorded if new, its boot record (if any) kept. */
  async recordConnected(id: string): Promise<void> {
    await this.db('charge_points').insert({ id }).onConflict('id').ignore();
  }

  async recordBoot(record: BootRecord): Promise<void> {
    const row = {
      id: record.id,
      vendor: record.vendor,
      model: record.model,
      serial_number: record.serialNumber,
      firmware_version: record.firmwareVersion,
      last_boot_at: record.lastBootAt,
    };
    // An older boot (one a replica could not write during an outage) never replaces a newer one.
    await this.db('charge_points')
      .insert(row)
      .onConflict('id')
      .merge()
      .where((q) =>
        q
          .whereNull('charge_points.last_boot_at')
          .orWhere('charge_points.last_boot_at', '<=', record.lastBootAt),
      );
  }

  async get(id: string): Promise<ChargePointRecord | null> {
    const row = await this.db<ChargePointRow>('charge_points').where({ id }).first();
    return row ? toRecord(row) : null;
  }

  /**
   * The charge point a meter id is a connector's meter of (see connectorOfMeterId), if that
   * charge point has connected or run a transaction here; else null.
   */
  async connectorOf(meterId: string): Promise<string | null> {
    const id = connectorOfMeterId(meterId)?.chargePointId ?? null;
    if (id === null) return null;
    const found = await this.db
      .select(
        this.db.raw(
          `EXISTS (SELECT 1 FROM charge_points WHERE id = ?)
           OR EXISTS (SELECT 1 FROM ocpp_transactions WHERE charge_point_id = ?) AS known`,
          [id, id],
        ),
      )
      .first();
    return (found as { known: boolean }).known ? id : null;
  }

  /** A page of the ids of charge points, in id order, after `afterId`. */
  async ids(limit: number, afterId: string | null): Promise<string[]> {
    const query = this.db('charge_points').orderBy('id').limit(limit).pluck('id');
    if (afterId !== null) query.where('id', '>', afterId);
    return query;
  }

  /** A page of charge points in id order, after `afterId`. */
  async list(limit: number, afterId: string | null): Promise<ChargePointRecord[]> {
    const query = this.db<ChargePointRow>('charge_points').orderBy('id').limit(limit);
    if (afterId !== null) query.where('id', '>', afterId);
    return (await query).map(toRecord);
  }
}
