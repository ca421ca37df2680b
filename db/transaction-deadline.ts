import type { Knex } from 'knex';

/** The parts of knex's client and node-postgres' client this module reaches into. */
interface PooledConnection {
  connection?: { stream?: { destroy(): void } };
}
interface KnexPool {
  acquireConnection(): Promise<PooledConnection>;
  releaseConnection(connection: PooledConnection): Promise<unknown>;
}

/** Thrown when a transaction was cut at its deadline; ETIMEDOUT marks it "database unavailable". */
export class TransactionDeadlineError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(deadlineMs: number, cause: unknown) {
    super(`PostgreSQL did not answer within ${deadlineMs} ms: the connection was cut`, { cause });
    this.name = 'TransactionDeadlineError';
  }
}

/**
 * Runs `work` in a transaction on a connection of its own, and cuts that connection (destroys its
 * socket) if the transaction is still running after `deadlineMs`. statement_timeout cancels slow
 * statements, but only a server that still answers can cancel: after a failover, a network
 * partition or a host that vanished, the socket stays half-open and the client would wait for
 * minutes (TCP retransmissions) or for ever (an idle socket waiting for its reply).
 */
export async function transactionWithDeadline<T>(
  db: Knex,
  deadlineMs: number,
  work: (trx: Knex.Transaction) => Promise<T>,
): Promise<T> {
  const pool = db.client as unknown as KnexPool;
  const connection = await pool.acquireConnection();
  let cut = false;
  const timer = setTimeout(() => {
    cut = true;
    // knex sees the socket end, marks the connection disposed and drops it on release.
    connection.connection?.stream?.destroy();
  }, deadlineMs);
  try {
    return await db.transaction(work, { connection });
  } catch (err) {
    throw cut ? new TransactionDeadlineError(deadlineMs, err) : err;
  } finally {
    clearTimeout(timer);
    await pool.releaseConnection(connection);
  }
}
