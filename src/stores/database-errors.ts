/**
 * How PostgreSQL failures are told apart, for the API and the flusher alike:
 * - unavailable (the server cannot answer right now, or refuses this database or login until an
 *   operator acts): the API answers 503 + Retry-After, so clients and load balancers retry instead
 *   of reporting a server fault; the flusher pauses;
 * - permanent data errors (SQLSTATE classes 22 and 23) fail again however often a batch is retried,
 *   so the flusher isolates the readings that cause them;
 * - everything else (timeouts, deadlocks, a partition dropped under us) is retried with backoff:
 *   when in doubt, retry rather than drop.
 */
interface DriverError {
  code?: unknown;
  name?: unknown;
  message?: unknown;
  hint?: unknown;
  syscall?: unknown;
}

/** Socket-level failures reaching the server. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs of a server that is shutting down, starting up, or out of connections. */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * SQLSTATEs of a server that answers but will not let this process in: 3D000 the database does
 * not exist and 57P04 it was dropped (being restored), 28000 and 28P01 the login refused (a role
 * or password changed). Until an operator acts nothing can be read or written: as unavailable as a
 * server that is down (a 503, a paused flusher), not a fault of the request or of the readings.
 */
const REFUSED_SQLSTATES = new Set(['3D000', '57P04', '28000', '28P01']);

/**
 * node-postgres and knex report lost connections and connect or pool timeouts by message only
 * ("timeout expired" is a connection that got no answer within connectionTimeoutMillis).
 */
const UNAVAILABLE_MESSAGES =
  /Connection terminated|^timeout expired$|timeout exceeded when trying to connect|Timeout acquiring a connection|Client has encountered a connection error/i;

/** The server cannot be reached or cannot answer now (down, starting, stopping, overloaded). */
export function isDatabaseUnreachable(err: unknown): boolean {
  const { code, name, message, syscall } = (err ?? {}) as DriverError;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    // A Unix socket whose file is gone: PostgreSQL removes it when it stops.
    if (code === 'ENOENT' && syscall === 'connect') return true;
    if (code.length === 5 && code.startsWith('08')) return true; // connection exception class
  }
  if (name === 'KnexTimeoutError') return true;
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message);
}

/** PostgreSQL cannot be used now: unreachable, or refusing this database or login. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as DriverError)?.code;
  return isDatabaseUnreachable(err) || (typeof code === 'string' && REFUSED_SQLSTATES.has(code));
}

/**
 * 53200 "out of shared memory", hinting at max_locks_per_transaction: the server's lock table is
 * full. A statement over history locks every partition it may read (with a generic plan, all of
 * them: about 3 locks a partition of history), so many partitions and concurrent reports fill it.
 */
export function isLockTableFull(err: unknown): boolean {
  const { code, hint } = (err ?? {}) as DriverError;
  return code === '53200' && /max_locks_per_transaction/.test(String(hint));
}

/**
 * 40P01 deadlock, 40001 serialization failure, 55P03 lock not available: PostgreSQL gave up on
 * the statement for another's sake; sent again, it goes through.
 */
export function isLockConflict(err: unknown): boolean {
  return ['40P01', '40001', '55P03'].includes(String((err as DriverError)?.code));
}

/** 57014: the statement ran past DB_STATEMENT_TIMEOUT_MS (the database is overloaded or locked). */
export function isStatementTimeout(err: unknown): boolean {
  return (err as DriverError)?.code === '57014';
}

/**
 * 42P01 undefined_table, 42883 undefined_function, 42703 undefined_column: the database lacks what
 * a statement expects. Migrations missing (a process started while PostgreSQL was down could not
 * check at start) when the schema check says so (db/schema-check.ts); else the statement's own bug.
 */
const SCHEMA_MISSING_SQLSTATES = new Set(['42P01', '42883', '42703']);

export function isSchemaMissing(err: unknown): boolean {
  const code = (err as DriverError)?.code;
  return typeof code === 'string' && SCHEMA_MISSING_SQLSTATES.has(code);
}

export function isMissingPartition(err: unknown): boolean {
  return /no partition of relation/i.test(String((err as DriverError)?.message ?? ''));
}

export function isPermanentDataError(err: unknown): boolean {
  const code = (err as DriverError)?.code;
  if (typeof code !== 'string' || code.length !== 5 || isMissingPartition(err)) return false;
  return code.startsWith('22') || code.startsWith('23');
}

/**
 * PostgreSQL's own words for a failed statement. knex prefixes them with the whole statement
 * (`<sql> - <message>`), kilobytes for a flush: a dead letter or a log line needs the words only.
 */
export function databaseMessage(err: unknown): string {
  const message = String((err as DriverError)?.message ?? err);
  const cut = message.lastIndexOf(' - ');
  return cut === -1 ? message : message.slice(cut + 3);
}
