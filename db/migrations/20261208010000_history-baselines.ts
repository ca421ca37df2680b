import type { Knex } from 'knex';

/**
 * `history_baseline`: each device's last reading before what RETENTION_DAYS keeps, taken by the
 * partition maintainer before it drops (or trims) history. A register device's first kept reading
 * counts its increase from the reading before it, and a session's first reading its interval:
 * dropped with its day, the first kept day of every register device lost that increase, and its
 * reports over kept days changed a day after they were made. `history_before` falls back to it.
 *
 * The reading is kept whole as JSON, so that a column added to history later needs nothing here
 * (read back with jsonb_populate_record, a baseline taken before it has the column NULL).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE IF NOT EXISTS history_baseline (
      device_type text        NOT NULL,
      device_id   text        NOT NULL,
      ts          timestamptz NOT NULL,
      reading     jsonb       NOT NULL,
      PRIMARY KEY (device_type, device_id)
    )`);
  await knex.raw(historyBefore(true));
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(historyBefore(false));
  await knex.raw('DROP TABLE IF EXISTS history_baseline');
}

/** `history_before` (see its own migration), with or without the baseline as its last resort. */
const historyBefore = (withBaseline: boolean) => `
    CREATE OR REPLACE FUNCTION history_before(p_device_type text, p_device_id text, p_ts timestamptz)
    RETURNS SETOF telemetry_history LANGUAGE plpgsql STABLE AS $$
    BEGIN
      RETURN QUERY
        SELECT * FROM telemetry_history h
        WHERE h.device_type = p_device_type AND h.device_id = p_device_id
          AND h.ts < p_ts AND h.ts >= p_ts - interval '1 day'
        ORDER BY h.ts DESC LIMIT 1;
      IF NOT FOUND THEN
        RETURN QUERY
          SELECT * FROM telemetry_history h
          WHERE h.device_type = p_device_type AND h.device_id = p_device_id
            AND h.ts < p_ts - interval '1 day'
          ORDER BY h.ts DESC LIMIT 1;
      END IF;${
        withBaseline
          ? `
      IF NOT FOUND THEN
        RETURN QUERY
          SELECT (jsonb_populate_record(NULL::telemetry_history, b.reading)).*
          FROM history_baseline b
          WHERE b.device_type = p_device_type AND b.device_id = p_device_id AND b.ts < p_ts;
      END IF;`
          : ''
      }
    END $$`;
