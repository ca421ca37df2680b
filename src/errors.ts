/**
 * Errors a client may see. Anything that is not an AppError becomes a generic 500 in the error
 * middleware, so driver and database messages never reach a response.
 */
export interface ErrorDetail {
  path: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }

  toJSON(): { error: string; message: string; details: ErrorDetail[] } {
    return { error: this.code, message: this.message, details: this.details };
  }
}

export const badRequest = (code: string, message: string, details: ErrorDetail[] = []) =>
  new AppError(400, code, message, details);

/** A path or query parameter that is not acceptable; `message` completes "<name> ...". */
export const invalidParameter = (name: string, message: string) =>
  badRequest('invalid_parameter', `${name} ${message}`, [{ path: `/${name}`, message }]);

export const notFound = (message: string) => new AppError(404, 'not_found', message);

/**
 * A vehicle with no reading stored and no meter mapped. `accepted`, by its live state: it sent
 * readings not stored (the flusher behind or stopped, or PostgreSQL refused them); it sent none;
 * or null, unknown (Redis did not answer).
 */
export const unknownVehicle = (vehicleId: string, accepted: boolean | null = false) =>
  notFound(
    accepted === null
      ? `Vehicle ${vehicleId} has no reading stored and is mapped to no meter`
      : accepted
        ? `Vehicle ${vehicleId} has readings accepted but none stored (the flusher is behind or stopped, or PostgreSQL refused them: see the dead letters); its reports count them once stored`
        : `Vehicle ${vehicleId} has sent no readings and is mapped to no meter`,
  );

export const conflict = (code: string, message: string, details: ErrorDetail[] = []) =>
  new AppError(409, code, message, details);

export const payloadTooLarge = (message: string) => new AppError(413, 'payload_too_large', message);

export const unsupportedMediaType = (message: string) =>
  new AppError(415, 'unsupported_media_type', message);

export const serviceUnavailable = (code: string, message: string, retryAfterS: number) =>
  new AppError(503, code, message, [], { 'Retry-After': String(retryAfterS) });

/** Redis away or failing over (a replica takes over within about a second): retry soon. */
export const redisUnavailable = (message: string, code = 'redis_unavailable') =>
  serviceUnavailable(code, message, 1);
