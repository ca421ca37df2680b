import type { Response } from 'express';
import { AppError } from '../errors';

/**
 * What a file's send (Express's `res.sendFile`, for the dashboard's and the docs' files) fails
 * with, told apart and answered as the API answers.
 */

/**
 * A send that found no file to serve: not there, outside its folder (`..`), or a folder (which
 * Express's send fails with no status).
 */
export const isNotServed = (err: Error): boolean =>
  [403, 404].includes((err as { status?: number }).status ?? 500) ||
  (err as NodeJS.ErrnoException).code === 'EISDIR';

/** A send refusing a Range outside the file: its `Content-Range` says the file's size. */
export function rangeNotSatisfiable(err: unknown): AppError {
  const { headers } = err as { headers?: Record<string, string> };
  const contentRange = headers?.['Content-Range'];
  const size = contentRange?.split('/')[1];
  return new AppError(
    416,
    'range_not_satisfiable',
    `The requested Range lies outside the file${size ? `, which is ${size} bytes` : ''}`,
    [],
    contentRange ? { 'Content-Range': contentRange } : {},
  );
}

/** Headers a send sets before it fails: they describe the file, not the error answered instead. */
const FILE_HEADERS = [
  'Content-Type',
  'Content-Encoding',
  'Content-Range',
  'Content-Length',
  'Accept-Ranges',
  'ETag',
  'Last-Modified',
];

/** Takes a failed send's headers off `res` (its type, encoding, a year's caching, validators). */
export function clearFileHeaders(res: Response): void {
  for (const name of FILE_HEADERS) res.removeHeader(name);
  res.setHeader('Cache-Control', 'no-store');
}
