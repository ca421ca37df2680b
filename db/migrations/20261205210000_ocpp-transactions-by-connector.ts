import type { Knex } from 'knex';

/**
 * A connector's transactions in start order: every StartTransaction looks up the connector's next
 * one (a start delivered late ends there) and its transactions across it; without this index each
 * lookup read every transaction the connector ever had.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'CREATE INDEX IF NOT EXISTS ocpp_transactions_connector_started ON ocpp_transactions (charge_point_id, connector_id, started_at, id)',
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS ocpp_transactions_connector_started');
}
