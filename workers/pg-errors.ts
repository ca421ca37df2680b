/**
 * Which PostgreSQL failures are permanent. Data and constraint errors (SQLSTATE classes 22 and 23)
 * fail again however often a batch is retried, so the flusher isolates the readings that cause
 * them. Everything else (connection lost, timeouts, deadlocks, the server restarting, a partition
 * dropped under us) is retried with backoff: when in doubt, retry rather than drop.
 */
interface PgLikeError {
  code?: unknown;
  message?: unknown;
}

export function isMissingPartition(err: unknown): boolean {
  return /no partition of relation/i.test(String((err as PgLikeError)?.message ?? ''));
}

export function isPermanentDataError(err: unknown): boolean {
  const code = (err as PgLikeError)?.code;
  if (typeof code !== 'string' || code.length !== 5 || isMissingPartition(err)) return false;
  return code.startsWith('22') || code.startsWith('23');
}
