import type { Knex } from 'knex';

/**
 * A StartTransaction is known again by the timestamp its charge point reported, not by the instant
 * the engine started it at. The two differ when the engine takes a start as of now (a clock ahead,
 * or a clock lost at a reboot): a resend of such a start, later, would otherwise make a second
 * transaction and bill the same charge twice. Rows already kept reported the instant they have.
 */
const OLD_KEY = 'ocpp_transactions_charge_point_id_connector_id_id_tag_start_key';
const NEW_KEY = 'ocpp_transactions_reported_start_key';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE ocpp_transactions ADD COLUMN reported_started_at timestamptz');
  await knex.raw('UPDATE ocpp_transactions SET reported_started_at = started_at');
  await knex.raw('ALTER TABLE ocpp_transactions ALTER COLUMN reported_started_at SET NOT NULL');
  await knex.raw(`ALTER TABLE ocpp_transactions DROP CONSTRAINT ${OLD_KEY}`);
  await knex.raw(
    `ALTER TABLE ocpp_transactions ADD CONSTRAINT ${NEW_KEY}
       UNIQUE (charge_point_id, connector_id, id_tag, reported_started_at, meter_start_wh)`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE ocpp_transactions DROP CONSTRAINT ${NEW_KEY}`);
  await knex.raw(
    `ALTER TABLE ocpp_transactions ADD CONSTRAINT ${OLD_KEY}
       UNIQUE (charge_point_id, connector_id, id_tag, started_at, meter_start_wh)`,
  );
  await knex.raw('ALTER TABLE ocpp_transactions DROP COLUMN reported_started_at');
}
