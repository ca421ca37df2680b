import type { Knex } from 'knex';
import { MARK_OCPP_SESSIONS } from './20261204070000_ocpp-sessions-billed';

/**
 * A stopped OCPP transaction with a sample below half its register, after which the register came
 * back in one step (a glitch, kWh sent as Wh), bills meterStop - meterStart again instead of
 * folding that sample as a reset: the sessions kept before are marked, from their start, for the
 * session builder to build again (as 20261206030000 did when resets were first folded).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(MARK_OCPP_SESSIONS);
}

export async function down(): Promise<void> {
  // Marks only: building the sessions again is harmless either way.
}
