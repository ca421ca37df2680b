import type { Knex } from 'knex';
import { ENSURE_FOR } from './20261205230000_monthly-partitions-for-closed-months';

/**
 * With RETENTION_DAYS=0 nothing is ever dropped, so a partition a day only adds up: every report
 * statement on a generic plan locks and initialises each partition (a year of days made each
 * report about 6 ms slower, and some years of them fill the lock table under a few concurrent
 * reports). Kept for good, history gets a partition a month instead: `whole_months` makes the
 * month's partition for any day of a month that has no daily partition yet, current and ahead
 * included. A month with days (made before, or under retention) keeps getting days, so nothing
 * already stored moves.
 */

/** The partition a reading of `day` goes into, made if missing; see the comment above. */
const ENSURE_FOR_MONTHS = `
    CREATE OR REPLACE FUNCTION ensure_history_partition_for(day date, whole_months boolean)
    RETURNS text LANGUAGE plpgsql AS $$
    DECLARE
      month_start timestamp := date_trunc('month', day::timestamp);
      month_end timestamp := date_trunc('month', day::timestamp) + interval '1 month';
      daily text := 'telemetry_history_p' || to_char(day::timestamp, 'YYYYMMDD');
      monthly text := 'telemetry_history_m' || to_char(day::timestamp, 'YYYYMM');
      existing text;
    BEGIN
      IF to_regclass(daily) IS NOT NULL THEN RETURN daily; END IF;
      IF to_regclass(monthly) IS NOT NULL THEN RETURN monthly; END IF;
      IF NOT whole_months AND month_end > (now() AT TIME ZONE 'UTC')::date - 1 THEN
        RETURN ensure_history_partition(day);
      END IF;
      PERFORM pg_advisory_xact_lock(hashtext('telemetry_history_partitions'));
      existing := history_partition_covering(day);
      IF existing IS NOT NULL THEN RETURN existing; END IF;
      IF EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'telemetry_history'::regclass
          AND c.relname LIKE 'telemetry_history_p' || to_char(day::timestamp, 'YYYYMM') || '%'
      ) THEN
        RETURN ensure_history_partition(day);
      END IF;
      BEGIN
        EXECUTE format(
          'CREATE TABLE %I PARTITION OF telemetry_history FOR VALUES FROM (%L) TO (%L)',
          monthly, (month_start AT TIME ZONE 'UTC'), (month_end AT TIME ZONE 'UTC'));
      EXCEPTION
        WHEN duplicate_table THEN
          NULL; -- created by a concurrent flusher a moment ago
        WHEN invalid_object_definition THEN
          -- A day of the month was made a moment ago (see ensure_history_partition): days, then.
          RETURN ensure_history_partition(day);
      END;
      RETURN monthly;
    END $$`;

/** Without whole months: a closed month's partition for a backfill, else the day's own. */
const ENSURE_FOR_DAYS = `
    CREATE OR REPLACE FUNCTION ensure_history_partition_for(day date) RETURNS text
    LANGUAGE sql AS $$ SELECT ensure_history_partition_for(day, false) $$`;

/** The maintainer's days ahead, by the same rule; counts the partitions it made. */
const ENSURE_RANGE_MONTHS = `
    CREATE OR REPLACE FUNCTION ensure_history_partitions(first_day date, last_day date, whole_months boolean)
    RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
      day date := first_day;
      created integer := 0;
    BEGIN
      WHILE day <= last_day LOOP
        IF history_partition_covering(day) IS NULL THEN
          PERFORM ensure_history_partition_for(day, whole_months);
          created := created + 1;
        END IF;
        day := day + 1;
      END LOOP;
      RETURN created;
    END $$`;

/**
 * Yesterday's month's and later months' daily partitions, when all of a month's are empty: those
 * the initial schema made (yesterday to a few days ahead) on a fresh database, which would have
 * kept those months daily. History is locked before they are found empty, so that no row written
 * meanwhile goes with them; first, as the drop needs it anyway and every reader and writer locks
 * history before its partitions (locking the days first deadlocked with a report).
 */
const DROP_EMPTY_DAYS_AHEAD = `
    DO $$
    DECLARE
      first_month text := to_char((now() AT TIME ZONE 'UTC')::date - 1, 'YYYYMM');
      months text[];
      month text;
      days text[];
      day text;
      found boolean;
      has_rows boolean;
    BEGIN
      -- Under the lock that every partition function takes: no day is made meanwhile.
      PERFORM pg_advisory_xact_lock(hashtext('telemetry_history_partitions'));
      SELECT array_agg(DISTINCT substring(c.relname from 20 for 6)) INTO months
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'telemetry_history'::regclass
        AND c.relname ~ '^telemetry_history_p[0-9]{8}$'
        AND substring(c.relname from 20 for 6) >= first_month;
      IF months IS NULL THEN RETURN; END IF;
      LOCK TABLE telemetry_history IN ACCESS EXCLUSIVE MODE;
      FOREACH month IN ARRAY months LOOP
        SELECT array_agg(c.relname::text ORDER BY c.relname) INTO days
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'telemetry_history'::regclass
          AND c.relname ~ ('^telemetry_history_p' || month || '[0-9]{2}$');
        has_rows := false;
        FOREACH day IN ARRAY days LOOP
          EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', day) INTO found;
          has_rows := has_rows OR found;
        END LOOP;
        IF NOT has_rows THEN
          FOREACH day IN ARRAY days LOOP
            EXECUTE format('DROP TABLE %I', day);
          END LOOP;
        END IF;
      END LOOP;
    END $$`;

export async function up(knex: Knex): Promise<void> {
  for (const statement of [
    ENSURE_FOR_MONTHS,
    ENSURE_FOR_DAYS,
    ENSURE_RANGE_MONTHS,
    DROP_EMPTY_DAYS_AHEAD,
  ])
    await knex.raw(statement);
}

/** Back to the previous rule; partitions made a month at a time stay, with their rows. */
export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP FUNCTION IF EXISTS ensure_history_partitions(date, date, boolean)');
  await knex.raw(ENSURE_FOR);
  await knex.raw('DROP FUNCTION IF EXISTS ensure_history_partition_for(date, boolean)');
}
