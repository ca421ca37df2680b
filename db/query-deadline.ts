import type pg from 'pg';

/** node-postgres keeps the socket on `client.connection.stream` (not in its types). */
const socketOf = (client: pg.Client) =>
  (client as unknown as { connection?: { stream?: { destroy(err?: Error): void } } }).connection
    ?.stream;

/** A query still unanswered at its deadline; ETIMEDOUT marks it "database unavailable". */
export class QueryDeadlineError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(deadlineMs: number) {
    super(`PostgreSQL did not answer within ${deadlineMs} ms: the connection was cut`);
    this.name = 'QueryDeadlineError';
  }
}

/**
 * Gives every query on this connection a deadline. statement_timeout cancels slow statements, but
 * only a server that still answers can cancel: after a failover, a network partition or a host
 * gone without closing its sockets, a query would wait for its reply for minutes (TCP
 * retransmissions) or for ever (an idle socket). At the deadline the socket is destroyed: the query
 * fails, knex sees the connection end and drops it from the pool, and the next query gets a new one.
 * knex calls `query(config, callback)`; other call shapes pass through unchanged. (A plain
 * function with call/apply: a bound rest-and-spread wrapper cost ~9% of uncached analytics.)
 */
export function armQueryDeadline(client: pg.Client, deadlineMs: number): void {
  type Callback = (err: unknown, result: unknown) => void;
  const query = client.query as unknown as (this: pg.Client, ...args: unknown[]) => unknown;
  const withDeadline = function (this: pg.Client, config: unknown, callback?: unknown): unknown {
    // eslint-disable-next-line prefer-rest-params
    if (typeof callback !== 'function') return query.apply(this, arguments as unknown as unknown[]);
    const timer = setTimeout(
      () => socketOf(client)?.destroy(new QueryDeadlineError(deadlineMs)),
      deadlineMs,
    );
    return query.call(this, config, (err: unknown, result: unknown) => {
      clearTimeout(timer);
      (callback as Callback)(err, result);
    });
  };
  (client as unknown as { query: unknown }).query = withDeadline;
}
