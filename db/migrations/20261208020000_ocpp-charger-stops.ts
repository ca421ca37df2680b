import type { Knex } from 'knex';

/**
 * The charge point's own stop of a transaction the engine had stopped (a start superseded it),
 * first received, where it did not replace the engine's: its meterStop, the instant it reported
 * and the instant taken. A second StopTransaction with other values is then told apart from this
 * one sent again: it replaces nothing, and its readings are not stored (they landed on the
 * connector's register as if measured).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE ocpp_transactions
      ADD COLUMN IF NOT EXISTS charger_stop_wh bigint,
      ADD COLUMN IF NOT EXISTS charger_stop_reported_at timestamptz,
      ADD COLUMN IF NOT EXISTS charger_stopped_at timestamptz`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE ocpp_transactions
      DROP COLUMN IF EXISTS charger_stop_wh,
      DROP COLUMN IF EXISTS charger_stop_reported_at,
      DROP COLUMN IF EXISTS charger_stopped_at`);
}
