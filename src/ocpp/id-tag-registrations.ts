import type { Knex } from 'knex';
import { takeTurns } from '../stores/advisory-lock';
import { lockVehicle, MappingStore } from '../stores/mapping-store';
import { connectorMeterId } from './charge-point-state';
import { IdTagStore, normalizeIdTag, type IdTag } from './id-tag-store';
import { justAfter, TransactionStore, type Transaction } from './transaction-store';

/**
 * Registering an idTag gives its vehicle the open transactions started with it while it was
 * unknown (and accepted): each is the vehicle's from its start, as if the tag had been known then.
 * A registration and a StartTransaction of the same tag take turns on a lock, and each gives what
 * it finds after the other has committed, so neither misses a transaction. The gift (its vehicle,
 * its mapping period, the marks of its sessions) commits at once, or not at all for a retry to
 * find; a StopTransaction meanwhile waits for it, so it ends the period it gave.
 */
export class IdTagRegistrations {
  constructor(private readonly db: Knex) {}

  /** `PUT /v1/id-tags/{idTag}`: the tag as stored, and the transactions now its vehicle's. */
  register(idTag: string, vehicleId: string): Promise<{ tag: IdTag; given: GivenTransaction[] }> {
    return this.db.transaction(async (trx) => {
      await lockIdTag(trx, idTag);
      const tag = await new IdTagStore(trx).set(idTag, vehicleId);
      return { tag, given: await giveOpen(trx, tag) };
    });
  }

  /** After a StartTransaction with an unknown tag: a registration that came in meanwhile. */
  giveIfRegistered(idTag: string): Promise<GivenTransaction[]> {
    return this.db.transaction(async (trx) => {
      await lockIdTag(trx, idTag);
      const tag = await new IdTagStore(trx).get(idTag);
      return tag ? giveOpen(trx, tag) : [];
    });
  }
}

const lockIdTag = (trx: Knex.Transaction, idTag: string) =>
  takeTurns(trx, `id_tags:${normalizeIdTag(idTag)}`);

/** An open transaction of a registered tag, its vehicle's now. */
export interface GivenTransaction {
  transaction: Transaction;
  /** By this registration (not by an earlier one, or the tag known at its start). */
  newlyGiven: boolean;
  /** Its mapping period made (false: the vehicle has a mapping made later, which is kept). */
  mapped: boolean;
}

/** Gives the tag's open transactions to its vehicle, each mapped from its start, in start order. */
async function giveOpen(trx: Knex.Transaction, tag: IdTag): Promise<GivenTransaction[]> {
  // First, as every change of the vehicle's mapping does: its marks are locked after it.
  await lockVehicle(trx, tag.vehicleId);
  const open = await new TransactionStore(trx).giveOpenToVehicle(tag.idTag, tag.vehicleId);
  const mapping = new MappingStore(trx);
  const given: GivenTransaction[] = [];
  for (const { transaction, newlyGiven } of open) {
    const meterId = connectorMeterId(transaction.chargePointId, transaction.connectorId);
    const since = justAfter(transaction.startedAt);
    const mapped = await mapping.assignUnlessLater(tag.vehicleId, meterId, since);
    given.push({ transaction, newlyGiven, mapped });
  }
  return given;
}
