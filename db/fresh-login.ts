import pg from 'pg';

/**
 * Logs in to `databaseUrl` anew, outside any pool, and leaves at once; rejects with the driver's
 * own error (a SQLSTATE when the server answered). A pool's sessions outlive a role disabled or a
 * password changed, so a query through one says nothing of whether the next connection gets in.
 */
export async function loginAnew(databaseUrl: string, timeoutMs: number): Promise<void> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: timeoutMs,
  });
  client.on('error', () => undefined); // a connection lost after the login: the answer is given
  try {
    await client.connect();
  } finally {
    await client.end().catch(() => undefined);
  }
}
