import pg from 'pg';

/** The name a login check shows under in pg_stat_activity and PostgreSQL's log. */
const LOGIN_CHECK_NAME = 'energy-login-check';

/**
 * Logs in to `databaseUrl` anew, outside any pool, and leaves at once; rejects with the driver's
 * own error (a SQLSTATE when the server answered). A pool's sessions outlive a role disabled or a
 * password changed, so a query through one says nothing of whether the next connection gets in.
 */
export async function loginAnew(databaseUrl: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: timeoutMs,
    application_name: LOGIN_CHECK_NAME,
  });
  client.on('error', () => undefined); // a connection lost after the login: the answer is given
  try {
    await client.connect();
  } finally {
    await client.end().catch(() => undefined);
  }
}
