import type { Knex } from 'knex';

/**
 * Two flushers creating the same day's partition at once: the second waited on the advisory lock,
 * but its catalog cache still missed the table the first one had just created (an advisory lock
 * does not refresh it), so CREATE failed with duplicate_table and the job was retried. Now the
 * loser of that race takes the existing partition.
 */
const body = (onDuplicate: string) => `
    CREATE OR REPLACE FUNCTION ensure_history_partition(day date) RETURNS text
    LANGUAGE plpgsql AS $$
    DECLARE
      partition_name text := 'telemetry_history_p' || to_char(day, 'YYYYMMDD');
    BEGIN
      IF to_regclass(partition_name) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('telemetry_history_partitions'));
        IF to_regclass(partition_name) IS NULL THEN
          ${onDuplicate}
        END IF;
      END IF;
      RETURN partition_name;
    END $$`;

const create = `EXECUTE format(
            'CREATE TABLE %I PARTITION OF telemetry_history FOR VALUES FROM (%L) TO (%L)',
            partition_name,
            (day::timestamp AT TIME ZONE 'UTC'),
            ((day + 1)::timestamp AT TIME ZONE 'UTC'));`;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    body(`BEGIN
            ${create}
          EXCEPTION WHEN duplicate_table THEN
            NULL; -- created by a concurrent flusher a moment ago
          END;`),
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(body(create));
}
