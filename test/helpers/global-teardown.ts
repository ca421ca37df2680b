import { withMaintenanceClient, quoteIdent } from '../../db/migrate';
import { TEST_ENV, baseDatabaseUrl } from './test-env';

/** Drops every database this run created (a crashed test file may have left its own behind). */
export default async function globalTeardown(): Promise<void> {
  const runId = process.env[TEST_ENV.runId];
  if (!runId) return;
  await withMaintenanceClient(baseDatabaseUrl(), async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE $1`,
      [`energy_test_${runId}_%`],
    );
    for (const { datname } of rows) {
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(datname)} WITH (FORCE)`);
    }
  });
}
