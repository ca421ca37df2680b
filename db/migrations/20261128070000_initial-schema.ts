import type { Knex } from 'knex';

/**
 * History, live-status tables, the vehicle-to-meter mapping, and the partition functions the
 * flusher calls. Raw SQL: partitioning, fillfactor and PL/pgSQL are beyond knex's schema builder.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE telemetry_history (
      device_type      text             NOT NULL CHECK (device_type IN ('meter', 'vehicle')),
      device_id        text             NOT NULL CHECK (length(device_id) BETWEEN 1 AND 64),
      ts               timestamptz      NOT NULL,
      kwh_consumed_ac  double precision CHECK (kwh_consumed_ac >= 0),
      voltage          double precision CHECK (voltage BETWEEN 0 AND 1000),
      soc              double precision CHECK (soc BETWEEN 0 AND 100),
      kwh_delivered_dc double precision CHECK (kwh_delivered_dc >= 0),
      battery_temp     double precision CHECK (battery_temp BETWEEN -50 AND 100),
      received_at      timestamptz      NOT NULL,
      PRIMARY KEY (device_type, device_id, ts),
      CHECK (
        (device_type = 'meter' AND kwh_consumed_ac IS NOT NULL AND voltage IS NOT NULL
          AND soc IS NULL AND kwh_delivered_dc IS NULL AND battery_temp IS NULL)
        OR
        (device_type = 'vehicle' AND soc IS NOT NULL AND kwh_delivered_dc IS NOT NULL
          AND battery_temp IS NOT NULL AND kwh_consumed_ac IS NULL AND voltage IS NULL)
      )
    ) PARTITION BY RANGE (ts)
  `);

  // One partition per UTC day, named telemetry_history_pYYYYMMDD. The advisory lock makes
  // concurrent callers (several flushers meeting the same new day) wait instead of failing.
  await knex.raw(`
    CREATE OR REPLACE FUNCTION ensure_history_partition(day date) RETURNS text
    LANGUAGE plpgsql AS $$
    DECLARE
      partition_name text := 'telemetry_history_p' || to_char(day, 'YYYYMMDD');
    BEGIN
      IF to_regclass(partition_name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('telemetry_history_partitions'));
        IF to_regclass(partition_name) IS NULL THEN
          EXECUTE format(
            'CREATE TABLE %I PARTITION OF telemetry_history FOR VALUES FROM (%L) TO (%L)',
            partition_name,
            (day::timestamp AT TIME ZONE 'UTC'),
            ((day + 1)::timestamp AT TIME ZONE 'UTC'));
        END IF;
      END IF;
      RETURN partition_name;
    END $$
  `);

  await knex.raw(`
    CREATE OR REPLACE FUNCTION ensure_history_partitions(first_day date, last_day date)
    RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
      day date := first_day;
      created integer := 0;
    BEGIN
      WHILE day <= last_day LOOP
        IF to_regclass('telemetry_history_p' || to_char(day, 'YYYYMMDD')) IS NULL THEN
          PERFORM ensure_history_partition(day);
          created := created + 1;
        END IF;
        day := day + 1;
      END LOOP;
      RETURN created;
    END $$
  `);

  // Retention: drops whole day partitions that end on or before cutoff_day. Returns their names.
  await knex.raw(`
    CREATE OR REPLACE FUNCTION drop_history_partitions_before(cutoff_day date)
    RETURNS SETOF text LANGUAGE plpgsql AS $$
    DECLARE
      part record;
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtext('telemetry_history_partitions'));
      FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'telemetry_history'::regclass
          AND c.relname ~ '^telemetry_history_p[0-9]{8}$'
          AND to_date(substring(c.relname from 20), 'YYYYMMDD') < cutoff_day
        ORDER BY c.relname
      LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        RETURN NEXT part.relname;
      END LOOP;
    END $$
  `);

  await knex.raw(`SELECT ensure_history_partitions(current_date - 1, current_date + 3)`);

  // Status tables are updated in place all day long: fillfactor 50 leaves room on each page so
  // updates stay HOT (no index churn) and the tables do not bloat.
  await knex.raw(`
    CREATE TABLE meter_status (
      meter_id        text             PRIMARY KEY,
      ts              timestamptz      NOT NULL,
      kwh_consumed_ac double precision NOT NULL,
      voltage         double precision NOT NULL,
      updated_at      timestamptz      NOT NULL DEFAULT now()
    ) WITH (fillfactor = 50)
  `);
  await knex.raw(`
    CREATE TABLE vehicle_status (
      vehicle_id       text             PRIMARY KEY,
      ts               timestamptz      NOT NULL,
      soc              double precision NOT NULL,
      kwh_delivered_dc double precision NOT NULL,
      battery_temp     double precision NOT NULL,
      updated_at       timestamptz      NOT NULL DEFAULT now()
    ) WITH (fillfactor = 50)
  `);

  // Mapping history: one row per period; valid_to NULL marks the current mapping. Periods of a
  // vehicle never overlap (enforced by the mapping store, which locks the vehicle's rows).
  await knex.raw(`
    CREATE TABLE vehicle_meter_map (
      id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      vehicle_id text        NOT NULL,
      meter_id   text        NOT NULL,
      valid_from timestamptz NOT NULL,
      valid_to   timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      CHECK (valid_to IS NULL OR valid_to > valid_from)
    )
  `);
  await knex.raw(
    `CREATE UNIQUE INDEX vehicle_meter_map_current ON vehicle_meter_map (vehicle_id) WHERE valid_to IS NULL`,
  );
  await knex.raw(
    `CREATE INDEX vehicle_meter_map_vehicle_from ON vehicle_meter_map (vehicle_id, valid_from)`,
  );
  await knex.raw(`CREATE INDEX vehicle_meter_map_meter ON vehicle_meter_map (meter_id)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS vehicle_meter_map');
  await knex.raw('DROP TABLE IF EXISTS vehicle_status');
  await knex.raw('DROP TABLE IF EXISTS meter_status');
  await knex.raw('DROP FUNCTION IF EXISTS drop_history_partitions_before(date)');
  await knex.raw('DROP FUNCTION IF EXISTS ensure_history_partitions(date, date)');
  await knex.raw('DROP FUNCTION IF EXISTS ensure_history_partition(date)');
  await knex.raw('DROP TABLE IF EXISTS telemetry_history');
}
