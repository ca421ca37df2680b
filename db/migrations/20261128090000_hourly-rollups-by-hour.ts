import type { Knex } from 'knex';

/** The fleet report finds every device active in a window: rollups by hour, then device. */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    'CREATE INDEX IF NOT EXISTS telemetry_hourly_hour ON telemetry_hourly (device_type, hour, device_id)',
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS telemetry_hourly_hour');
}
