import type { Knex } from 'knex';

/**
 * OCPP charge points and per-device energy semantics:
 * - device_settings: a device's own energy semantics (interval or cumulative register); devices
 *   without a row follow ENERGY_READINGS. OCPP connectors are registers.
 * - id_tags: which vehicle an idTag (RFID card, app token) identifies; stored upper-case, since
 *   OCPP compares idTags case-insensitively.
 * - charge_points: what each charge point said at its last boot.
 * - ocpp_transactions: charging transactions; a retransmitted StartTransaction finds its row by
 *   the natural key and gets the same transaction id.
 * - A meter may leave voltage out (a charger's register rarely carries it): the column becomes
 *   nullable, and the check that mirrored the API's "all fields present" rule is dropped (the
 *   API validates each kind's fields on the way in; the per-column range checks stay).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE device_settings (
      device_type     text        NOT NULL,
      device_id       text        NOT NULL,
      energy_readings text        NOT NULL CHECK (energy_readings IN ('interval', 'cumulative')),
      updated_at      timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (device_type, device_id)
    )
  `);
  await knex.raw(`
    CREATE TABLE id_tags (
      id_tag     text        PRIMARY KEY CHECK (id_tag = upper(id_tag)),
      vehicle_id text        NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    )
  `);
  await knex.raw(`
    CREATE TABLE charge_points (
      id               text        PRIMARY KEY,
      vendor           text        NOT NULL,
      model            text        NOT NULL,
      serial_number    text,
      firmware_version text,
      last_boot_at     timestamptz NOT NULL,
      created_at       timestamptz NOT NULL DEFAULT now()
    )
  `);
  await knex.raw(`
    CREATE TABLE ocpp_transactions (
      id              integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      charge_point_id text        NOT NULL,
      connector_id    integer     NOT NULL,
      id_tag          text        NOT NULL,
      id_tag_status   text        NOT NULL,
      vehicle_id      text,
      meter_start_wh  bigint      NOT NULL,
      started_at      timestamptz NOT NULL,
      meter_stop_wh   bigint,
      stopped_at      timestamptz,
      stop_reason     text,
      created_at      timestamptz NOT NULL DEFAULT now(),
      UNIQUE (charge_point_id, connector_id, id_tag, started_at, meter_start_wh)
    )
  `);
  await knex.raw(
    `CREATE INDEX ocpp_transactions_open ON ocpp_transactions (charge_point_id, connector_id) WHERE stopped_at IS NULL`,
  );
  await knex.raw(
    `CREATE INDEX ocpp_transactions_vehicle ON ocpp_transactions (vehicle_id, started_at)`,
  );
  await knex.raw('ALTER TABLE meter_status ALTER COLUMN voltage DROP NOT NULL');
  await knex.raw('ALTER TABLE telemetry_history DROP CONSTRAINT IF EXISTS telemetry_history_check');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE telemetry_history ADD CONSTRAINT telemetry_history_check CHECK (
      (device_type = 'meter' AND kwh_consumed_ac IS NOT NULL AND voltage IS NOT NULL
        AND soc IS NULL AND kwh_delivered_dc IS NULL AND battery_temp IS NULL)
      OR
      (device_type = 'vehicle' AND soc IS NOT NULL AND kwh_delivered_dc IS NOT NULL
        AND battery_temp IS NOT NULL AND kwh_consumed_ac IS NULL AND voltage IS NULL))
  `);
  await knex.raw('ALTER TABLE meter_status ALTER COLUMN voltage SET NOT NULL');
  await knex.raw('DROP TABLE IF EXISTS ocpp_transactions');
  await knex.raw('DROP TABLE IF EXISTS charge_points');
  await knex.raw('DROP TABLE IF EXISTS id_tags');
  await knex.raw('DROP TABLE IF EXISTS device_settings');
}
