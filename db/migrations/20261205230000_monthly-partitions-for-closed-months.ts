import type { Knex } from 'knex';

/**
 * History written for a closed month the engine did not run through (a backfill, a device whose
 * clock was years off) goes into one partition for the month, not one per day. Every statement
 * over history on a generic plan locks each partition and its indexes, and planning and locking
 * grow with their number: a year of days made each report 6 ms slower, and one request of 3,000
 * readings a day apart (3,000 partitions) made every report fail with the lock table full. A month
 * that already has daily partitions (the engine ran then, or it was made before this) keeps
 * getting days; days ahead and recent days stay daily, as retention drops them a day at a time.
 *
 * Monthly partitions are named telemetry_history_mYYYYMM; retention drops one once its month is
 * past the cutoff and deletes the rows before the cutoff from the one it falls in.
 */

/** The partition named for `day`, daily or monthly, if it exists (read fresh, not cached). */
const PARTITION_COVERING = `
    CREATE OR REPLACE FUNCTION history_partition_covering(day date) RETURNS text
    LANGUAGE sql STABLE AS $$
      SELECT c.relname::text
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'telemetry_history'::regclass
        AND c.relname IN ('telemetry_history_p' || to_char(day::timestamp, 'YYYYMMDD'),
                          'telemetry_history_m' || to_char(day::timestamp, 'YYYYMM'))
      LIMIT 1
    $$`;

/**
 * The day's own partition, unless a monthly one covers it. Decided under the advisory lock from
 * the catalog itself: to_regclass's cache does not see a table another session has just created
 * (an advisory lock does not refresh it). Names and bounds come from the date as a timestamp
 * without time zone: through the session's zone a date can turn into another day.
 */
const ENSURE_DAILY = `
    CREATE OR REPLACE FUNCTION ensure_history_partition(day date) RETURNS text
    LANGUAGE plpgsql AS $$
    DECLARE
      daily text := 'telemetry_history_p' || to_char(day::timestamp, 'YYYYMMDD');
      existing text;
    BEGIN
      IF to_regclass(daily) IS NOT NULL THEN RETURN daily; END IF;
      PERFORM pg_advisory_xact_lock(hashtext('telemetry_history_partitions'));
      existing := history_partition_covering(day);
      IF existing IS NOT NULL THEN RETURN existing; END IF;
      BEGIN
        EXECUTE format(
          'CREATE TABLE %I PARTITION OF telemetry_history FOR VALUES FROM (%L) TO (%L)',
          daily, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
      EXCEPTION
        WHEN duplicate_table THEN
          NULL; -- created by a concurrent flusher a moment ago
        WHEN invalid_object_definition THEN
          -- Overlaps the day's month, created a moment ago (seen now: the failed CREATE locked
          -- history, which refreshed the catalog cache; a REPEATABLE READ snapshot would not).
          existing := 'telemetry_history_m' || to_char(day::timestamp, 'YYYYMM');
          IF to_regclass(existing) IS NULL THEN RAISE; END IF;
          RETURN existing;
      END;
      RETURN daily;
    END $$`;

/**
 * The partition a reading of `day` goes into, made if missing: its month's when the month ended
 * before yesterday (UTC; the maintainer makes days from yesterday on) and has no daily partition,
 * else its day's.
 */
export const ENSURE_FOR = `
    CREATE OR REPLACE FUNCTION ensure_history_partition_for(day date) RETURNS text
    LANGUAGE plpgsql AS $$
    DECLARE
      month_start timestamp := date_trunc('month', day::timestamp);
      month_end timestamp := date_trunc('month', day::timestamp) + interval '1 month';
      daily text := 'telemetry_history_p' || to_char(day::timestamp, 'YYYYMMDD');
      monthly text := 'telemetry_history_m' || to_char(day::timestamp, 'YYYYMM');
      existing text;
    BEGIN
      IF to_regclass(daily) IS NOT NULL THEN RETURN daily; END IF;
      IF to_regclass(monthly) IS NOT NULL THEN RETURN monthly; END IF;
      IF month_end > (now() AT TIME ZONE 'UTC')::date - 1 THEN
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

/** Counts a day as created only when no partition covered it. */
const ENSURE_RANGE = `
    CREATE OR REPLACE FUNCTION ensure_history_partitions(first_day date, last_day date)
    RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
      day date := first_day;
      created integer := 0;
    BEGIN
      WHILE day <= last_day LOOP
        IF to_regclass('telemetry_history_p' || to_char(day::timestamp, 'YYYYMMDD')) IS NULL
           AND to_regclass('telemetry_history_m' || to_char(day::timestamp, 'YYYYMM')) IS NULL THEN
          PERFORM ensure_history_partition(day);
          created := created + 1;
        END IF;
        day := day + 1;
      END LOOP;
      RETURN created;
    END $$`;

/** A partition of history: its name, and the first day after it (from its name). */
const PARTITIONS_WITH_ENDS = `
        SELECT c.relname::text AS relname,
               CASE WHEN c.relname ~ '^telemetry_history_p[0-9]{8}$'
                    THEN to_date(substring(c.relname from 20), 'YYYYMMDD') + 1
                    ELSE (to_date(substring(c.relname from 20), 'YYYYMM') + interval '1 month')::date
               END AS ends
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'telemetry_history'::regclass
          AND c.relname ~ '^telemetry_history_(p[0-9]{8}|m[0-9]{6})$'`;

/** Retention: drops whole partitions that end on or before cutoff_day. Returns their names. */
const DROP_BEFORE = `
    CREATE OR REPLACE FUNCTION drop_history_partitions_before(cutoff_day date)
    RETURNS SETOF text LANGUAGE plpgsql AS $$
    DECLARE
      part record;
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtext('telemetry_history_partitions'));
      FOR part IN
        SELECT relname FROM (${PARTITIONS_WITH_ENDS}) p
        WHERE p.ends <= cutoff_day
        ORDER BY relname
      LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        RETURN NEXT part.relname;
      END LOOP;
    END $$`;

/**
 * Retention inside the monthly partition the cutoff falls in: deletes at most `max_rows` of its
 * rows before the cutoff, so that each call stays well inside the statement timeout however much
 * a backfill put there; called until it returns nothing. Returns the partitions it deleted from.
 */
const TRIM_BEFORE = `
    CREATE OR REPLACE FUNCTION trim_history_partitions_before(cutoff_day date, max_rows integer)
    RETURNS SETOF text LANGUAGE plpgsql AS $$
    DECLARE
      part record;
      deleted bigint;
    BEGIN
      FOR part IN
        SELECT relname FROM (${PARTITIONS_WITH_ENDS}) p
        WHERE p.relname LIKE 'telemetry_history_m%'
          AND p.ends > cutoff_day
          AND to_date(substring(p.relname from 20), 'YYYYMM') < cutoff_day
      LOOP
        EXECUTE format(
          'DELETE FROM %I WHERE ctid IN (SELECT ctid FROM %I WHERE ts < %L LIMIT %s)',
          part.relname, part.relname, (cutoff_day::timestamp AT TIME ZONE 'UTC'), max_rows);
        GET DIAGNOSTICS deleted = ROW_COUNT;
        IF deleted > 0 THEN RETURN NEXT part.relname; END IF;
      END LOOP;
    END $$`;

export async function up(knex: Knex): Promise<void> {
  for (const statement of [
    PARTITION_COVERING,
    ENSURE_DAILY,
    ENSURE_FOR,
    ENSURE_RANGE,
    DROP_BEFORE,
    TRIM_BEFORE,
  ])
    await knex.raw(statement);
}

/**
 * Back to making daily partitions only. The functions that find, make and drop partitions keep
 * knowing monthly ones: those already made stay (their rows with them), and a day they cover must
 * not be made again (it would overlap them).
 */
export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP FUNCTION IF EXISTS trim_history_partitions_before(date, integer)');
  await knex.raw('DROP FUNCTION IF EXISTS ensure_history_partition_for(date)');
}
