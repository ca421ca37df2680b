import type { Knex } from 'knex';

/**
 * A StartTransaction is known again by the timestamp its charge point reported, where the engine
 * started it at another instant (taken as of now: a clock ahead, or a clock lost at a reboot): a
 * resend of such a start, later, would otherwise make a second transaction and bill the same
 * charge twice. `reported_started_at` is that timestamp, NULL where it is `started_at`, so rows
 * already kept need no rewrite, and the old key stays: a replica not yet upgraded still inserts
 * by it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE ocpp_transactions ADD COLUMN reported_started_at timestamptz');
  await knex.raw(
    `CREATE UNIQUE INDEX ocpp_transactions_reported_start ON ocpp_transactions
       (charge_point_id, connector_id, id_tag, (coalesce(reported_started_at, started_at)), meter_start_wh)`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX ocpp_transactions_reported_start');
  await knex.raw('ALTER TABLE ocpp_transactions DROP COLUMN reported_started_at');
}
