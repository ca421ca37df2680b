import type { Knex } from 'knex';

/**
 * OCPP compares idTags case-insensitively (CiString20, printable ASCII): they are kept and looked
 * up upper-case, ASCII letters only. toUpperCase() would fold other letters into ASCII ('ſ' into
 * 'S', 'ﬀ' into 'FF'), and a token no card carries would pass as a registered one.
 */
export const normalizeIdTag = (idTag: string) =>
  idTag.replace(/[a-z]+/g, (letters) => letters.toUpperCase());

/** An empty or blank idTag identifies no one. */
export const isBlankIdTag = (idTag: string) => idTag.trim() === '';

export interface IdTag {
  idTag: string;
  vehicleId: string;
  updatedAt: Date;
}

interface IdTagRow {
  id_tag: string;
  vehicle_id: string;
  updated_at: Date;
}

const toIdTag = (row: IdTagRow): IdTag => ({
  idTag: row.id_tag,
  vehicleId: row.vehicle_id,
  updatedAt: row.updated_at,
});

/** Which vehicle an idTag (RFID card, app token) identifies. */
export class IdTagStore {
  constructor(private readonly db: Knex) {}

  async get(idTag: string): Promise<IdTag | null> {
    const row = await this.db<IdTagRow>('id_tags')
      .where({ id_tag: normalizeIdTag(idTag) })
      .first();
    return row ? toIdTag(row) : null;
  }

  /** A page of registered idTags in their (upper-case) order, after `afterIdTag`. */
  async list(limit: number, afterIdTag: string | null): Promise<IdTag[]> {
    const query = this.db<IdTagRow>('id_tags').orderBy('id_tag').limit(limit);
    if (afterIdTag !== null) query.where('id_tag', '>', normalizeIdTag(afterIdTag));
    return (await query).map(toIdTag);
  }

  async set(idTag: string, vehicleId: string): Promise<IdTag> {
    const [row] = await this.db<IdTagRow>('id_tags')
      .insert({ id_tag: normalizeIdTag(idTag), vehicle_id: vehicleId })
      .onConflict('id_tag')
      .merge({ vehicle_id: vehicleId, updated_at: this.db.fn.now() })
      .returning(['id_tag', 'vehicle_id', 'updated_at']);
    return toIdTag(row);
  }

  /** Returns whether the idTag was known. */
  async delete(idTag: string): Promise<boolean> {
    return (
      (await this.db<IdTagRow>('id_tags')
        .where({ id_tag: normalizeIdTag(idTag) })
        .del()) > 0
    );
  }
}
