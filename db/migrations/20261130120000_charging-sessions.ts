import type { Knex } from 'knex';

/**
 * Charging sessions, computed from history by the flusher once hours close
 * (workers/session-builder.ts) and kept here, so a month of one vehicle or a day of the whole
 * fleet is an index range scan; reports add the sessions of the hours not built yet.
 * - charging_sessions: one row per session (an OCPP transaction naming the vehicle, or a run of
 *   charging readings); `key` is stable for a session: `tx-<transactionId>` or `d-<start ms>`.
 * - session_dirty: vehicles whose sessions must be computed again from `since` on; `version`
 *   grows with every new mark, so the builder removes only the mark it has handled.
 * - session_built: how far each vehicle's sessions are built, and the start of the session that
 *   was still going on there.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE charging_sessions (
      vehicle_id      text             NOT NULL,
      key             text             NOT NULL,
      source          text             NOT NULL CHECK (source IN ('ocpp', 'detected')),
      transaction_id  integer,
      start_ts        timestamptz      NOT NULL,
      end_ts          timestamptz      NOT NULL,
      meter_ids       text[]           NOT NULL,
      ac_kwh          double precision,
      dc_kwh          double precision,
      vehicle_readings integer         NOT NULL,
      meter_readings  integer          NOT NULL,
      peak_ac_kw      double precision,
      soc_start       double precision,
      soc_end         double precision,
      temp_mean       double precision,
      temp_max        double precision,
      PRIMARY KEY (vehicle_id, key)
    )
  `);
  await knex.raw(
    'CREATE INDEX charging_sessions_vehicle_time ON charging_sessions (vehicle_id, start_ts)',
  );
  await knex.raw('CREATE INDEX charging_sessions_time ON charging_sessions (end_ts, start_ts)');
  await knex.raw(`
    CREATE TABLE session_dirty (
      vehicle_id text        PRIMARY KEY,
      since      timestamptz NOT NULL,
      version    bigint      NOT NULL DEFAULT 1
    )
  `);
  await knex.raw(`
    CREATE TABLE session_built (
      vehicle_id text        PRIMARY KEY,
      built_to   timestamptz NOT NULL,
      open_since timestamptz
    )
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS session_built');
  await knex.raw('DROP TABLE IF EXISTS session_dirty');
  await knex.raw('DROP TABLE IF EXISTS charging_sessions');
}
