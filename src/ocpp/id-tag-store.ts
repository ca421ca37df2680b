import type { Knex } from 'knex';

/** OCPP compares idTags case-insensitively (CiString20): they are kept and looked up upper-case. */
export const normalizeIdTag = (idTag: string) => idTag.toUpperCase();

/** An empty or blank idTag identifies no one. */
export const isBlankIdTag = (idTag: string) => idTag.trim() === '';

export interface IdTag {
  idTag: string;
  vehicleId: string;
  updatedAt: Date;
}

/** Which vehicle an idTag (RFID card, app token) identifies. */
export class IdTagStore {
  constructor(private readonly db: Knex) {}

  async get(idTag: string): Promise<IdTag | null> {
    const row = await this.db('id_tags')
      .where({ id_tag: normalizeIdTag(idTag) })
      .first();
    return row ? { idTag: row.id_tag, vehicleId: row.vehicle_id, updatedAt: row.updated_at } : null;
  }

  /** A page of registered idTags in their (upper-case) order, after `afterIdTag`. */
  async list(limit: number, afterIdTag: string | null): Promise<IdTag[]> {
    const query = this.db('id_tags').orderBy('id_tag').limit(limit);
    if (afterIdTag !== null) query.where('id_tag', '>', normalizeIdTag(afterIdTag));
    return (await query).map((row) => ({
      idTag: row.id_tag,
      vehicleId: row.vehicle_id,
      updatedAt: row.updated_at,
    }));
  }

  async set(idTag: string, vehicleId: string): Promise<IdTag> {
    const [row] = await this.db('id_tags')
      .insert({ id_tag: normalizeIdTag(idTag), vehicle_id: vehicleId })
      .onConflict('id_tag')
      .merge({ vehicle_id: vehicleId, updated_at: this.db.fn.now() })
      .returning(['id_tag', 'vehicle_id', 'updated_at']);
    return { idTag: row.id_tag, vehicleId: row.vehicle_id, updatedAt: row.updated_at };
  }

  /** Returns whether the idTag was known. */
  async delete(idTag: string): Promise<boolean> {
    return (
      (await this.db('id_tags')
        .where({ id_tag: normalizeIdTag(idTag) })
        .del()) > 0
    );
  }
}
