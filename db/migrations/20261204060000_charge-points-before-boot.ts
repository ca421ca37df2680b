import type { Knex } from 'knex';

/**
 * A charge point is recorded when it first connects, not only when it boots: one that reconnects
 * after a network drop (or was moved from another central system) sends no BootNotification, and
 * the charge-point list would never show it. Until it boots, its boot record is empty.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE charge_points
      ALTER COLUMN vendor DROP NOT NULL,
      ALTER COLUMN model DROP NOT NULL,
      ALTER COLUMN last_boot_at DROP NOT NULL
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DELETE FROM charge_points WHERE last_boot_at IS NULL');
  await knex.raw(`
    ALTER TABLE charge_points
      ALTER COLUMN vendor SET NOT NULL,
      ALTER COLUMN model SET NOT NULL,
      ALTER COLUMN last_boot_at SET NOT NULL
  `);
}
