import type { ErrorRequestHandler, RequestHandler } from 'express';
import { AppError, badRequest, redisUnavailable, serviceUnavailable } from '../errors';
import {
  isDatabaseUnavailable,
  isLockConflict,
  isLockTableFull,
  isSchemaMissing,
  isStatementTimeout,
} from '../stores/database-errors';
import type { Logger } from '../logger';
import { RepeatedErrorLog } from '../repeated-errors';
import { clearFileHeaders, rangeNotSatisfiable } from './file-sends';
import { isRedisUnavailable } from '../redis';

/** The router's refusal of a path segment it cannot percent-decode (its value in quotes). */
const UNDECODABLE_PARAM = /^Failed to decode param '(.*)'$/s;

/** Errors thrown by Express itself or its parsers carry a 4xx `status`; keep those as 4xx. */
function fromFrameworkError(err: unknown): AppError | null {
  const { status, statusCode, message } = (err ?? {}) as {
    status?: unknown;
    statusCode?: unknown;
    message?: unknown;
  };
  const code = status ?? statusCode;
  if (typeof code !== 'number' || code < 400 || code >= 500) return null;
  if (code === 416) return rangeNotSatisfiable(err);
  if (code === 412) {
    return new AppError(
      412,
      'precondition_failed',
      'The file does not match If-Match or If-Unmodified-Since',
    );
  }
  const undecodable = typeof message === 'string' ? UNDECODABLE_PARAM.exec(message) : null;
  if (undecodable) {
    const segment = undecodable[1];
    // Escapes well formed that decode to bytes that are not UTF-8 (%E9 for é is Latin-1).
    const wellFormed = /^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(segment);
    return badRequest(
      'invalid_parameter',
      wellFormed
        ? `The path segment ${JSON.stringify(segment)} is not UTF-8 once percent-decoded (é is %C3%A9, not %E9)`
        : `The path segment ${JSON.stringify(segment)} is not valid percent-encoding (a % starts an escape such as %2F; a literal % is %25)`,
    );
  }
  return new AppError(code, 'bad_request', 'The request could not be understood');
}

const DATABASE_RETRY_AFTER_S = 5;

/**
 * PostgreSQL down, restarting, overloaded or refusing this database or login: a 503 the client can
 * retry, not a server fault.
 */
function fromDatabaseError(err: unknown): AppError | null {
  // PostgreSQL is up, only too busy: said so, so that nobody looks for an outage.
  if (isLockTableFull(err))
    return serviceUnavailable(
      'database_busy',
      "PostgreSQL's lock table is full (out of shared memory): a report locks each partition of history it may read. Try again shortly; the operator raises max_locks_per_transaction or keeps fewer days (RETENTION_DAYS)",
      DATABASE_RETRY_AFTER_S,
    );
  if (isDatabaseUnavailable(err))
    return serviceUnavailable(
      'database_unavailable',
      'The database is not available right now; try again shortly',
      DATABASE_RETRY_AFTER_S,
    );
  if (isLockConflict(err))
    return serviceUnavailable(
      'database_busy',
      'The database set this request aside for a concurrent one (a deadlock or lock conflict); try again',
      DATABASE_RETRY_AFTER_S,
    );
  if (isStatementTimeout(err))
    return serviceUnavailable(
      'database_timeout',
      'The database took too long to answer; try again shortly',
      DATABASE_RETRY_AFTER_S,
    );
  return null;
}

/** Redis down or failing over on a read (live state): as retryable as ingest's own 503. */
function fromRedisError(err: unknown): AppError | null {
  return isRedisUnavailable(err)
    ? redisUnavailable(
        'Redis, which holds live state, is not available right now; try again shortly',
      )
    : null;
}

/**
 * A table, function or column missing (42P01, 42883, 42703) is the database lacking migrations
 * only when it does lack some (`schemaBehind`, asked then): a 503 telling the operator to migrate.
 * Otherwise it is a statement's own bug, and stays a 500 logged as one.
 */
async function fromMissingSchema(
  err: unknown,
  schemaBehind: (() => Promise<boolean>) | undefined,
): Promise<AppError | null> {
  if (!schemaBehind || !isSchemaMissing(err)) return null;
  if (!(await schemaBehind().catch(() => false))) return null;
  return serviceUnavailable(
    'database_not_migrated',
    'The database lacks tables or functions this version needs: the operator runs npm run migrate',
    DATABASE_RETRY_AFTER_S,
  );
}

/**
 * The last middleware: AppErrors become their JSON body, framework 4xx stay 4xx, anything else is a
 * generic 500 whose details go to the log only (never a stack trace or driver message to clients).
 */
export function createErrorHandler(
  logger: Logger,
  { schemaBehind }: { schemaBehind?: () => Promise<boolean> } = {},
): ErrorRequestHandler {
  // A 503 of an outage (Redis or PostgreSQL away) comes with every request until it ends: each
  // cause is logged once an interval, with how many were left out, not once a request.
  const outages = new RepeatedErrorLog({ logger, level: 'warn' });
  return async (err, req, res, _next) => {
    const appError =
      err instanceof AppError
        ? err
        : (fromFrameworkError(err) ??
          fromDatabaseError(err) ??
          fromRedisError(err) ??
          (await fromMissingSchema(err, schemaBehind)));
    if (res.headersSent) {
      logger.error({ err, url: req.originalUrl }, 'error after the response started');
      res.destroy();
      return;
    }
    // Whatever a file's send set before it failed is not the error's (a year's caching, say).
    clearFileHeaders(res);
    if (!appError) {
      logger.error(
        { err, reqId: req.id, method: req.method, url: req.originalUrl },
        'unhandled error',
      );
      res.status(500).json({
        error: 'internal_error',
        message: 'Something went wrong on our side; it has been logged',
        details: [],
      });
      return;
    }
    if (appError.statusCode >= 500) {
      const cause = appError === err ? undefined : err;
      // By codes: messages may name the backlog's size, a device or a statement's values.
      const causeCode = (cause as { code?: unknown } | undefined)?.code;
      outages.log(
        cause,
        { code: appError.code, reqId: req.id, url: req.originalUrl },
        appError.message,
        `${appError.code} ${String(causeCode ?? '')}`,
      );
    }
    // A refused upload may still be streaming in: close the connection rather than read it all.
    if (appError.statusCode === 413) res.set('Connection', 'close');
    res.set(appError.headers).status(appError.statusCode).json(appError.toJSON());
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  clearFileHeaders(res);
  res.status(404).json({
    error: 'not_found',
    message: `No route for ${req.method} ${req.path}`,
    details: [],
  });
};

/** Conservative headers for a JSON API. */
const SECURITY_HEADERS = Object.entries({
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'Cross-Origin-Resource-Policy': 'same-origin',
});

/** Sets SECURITY_HEADERS on every response (plain setHeader: they need none of res.set's checks). */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  for (const [name, value] of SECURITY_HEADERS) res.setHeader(name, value);
  next();
};
