import { randomBytes } from 'node:crypto';
import { createDb } from '../../db/create-db';
import { ensureDatabase, migrateToLatest } from '../../db/migrate';
import { loadConfig } from '../../src/config';
import { TEST_ENV, baseDatabaseUrl, withDatabaseName } from './test-env';

/**
 * Migrates one template database per test run; each test file then copies it
 * (CREATE DATABASE ... TEMPLATE), which takes milliseconds instead of a migration per file.
 */
export default async function globalSetup(): Promise<void> {
  const runId = `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
  const template = `energy_test_${runId}_tpl`;
  process.env[TEST_ENV.runId] = runId;
  process.env[TEST_ENV.template] = template;

  const url = withDatabaseName(baseDatabaseUrl(), template);
  await ensureDatabase(url);
  const db = createDb(loadConfig({ DATABASE_URL: url }));
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}
