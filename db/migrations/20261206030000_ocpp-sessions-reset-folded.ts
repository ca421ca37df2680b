import type { Knex } from 'knex';
import { MARK_OCPP_SESSIONS } from './20261204070000_ocpp-sessions-billed';

/**
 * A stopped OCPP transaction whose register was reset during it now folds its samples instead of
 * counting meterStop - meterStart: the sessions kept before are marked, from their start, for the
 * session builder to build again (as 20261204070000 did when the bill became the AC).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(MARK_OCPP_SESSIONS);
}

export async function down(): Promise<void> {
  // Marks only: building the sessions again is harmless either way.
}
