import type { Request } from 'express';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';
import { AppError, badRequest, payloadTooLarge, unsupportedMediaType } from '../errors';
import { decodeUtf8, isGzip } from '../telemetry/ingest-input';
import { sendContinue } from './http-server';

export type BodyFormat = 'json' | 'ndjson';

const MEDIA_TYPES: Record<string, BodyFormat> = {
  'application/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
};

/** The media types a body of `format` may be sent as (for the API document). */
export const mediaTypesOf = (format: BodyFormat): string[] =>
  Object.keys(MEDIA_TYPES).filter((m) => MEDIA_TYPES[m] === format);

/** The common case, a bare `application/json`, needs no parsing: it is checked on every request. */
const PLAIN_JSON = 'application/json';

export function bodyFormatOf(req: Request, accepted: BodyFormat[]): BodyFormat {
  const header = req.headers['content-type'];
  if (header === PLAIN_JSON && accepted.includes('json')) return 'json';
  const [mediaType, ...params] = (header ?? '').split(';').map((p) => p.trim().toLowerCase());
  const format = MEDIA_TYPES[mediaType];
  if (!format || !accepted.includes(format)) {
    const names = accepted.flatMap(mediaTypesOf);
    throw unsupportedMediaType(
      `Content-Type ${header ? JSON.stringify(header) : 'is missing'}${header ? ' is not accepted' : ''}; send ${names.join(' or ')}`,
    );
  }
  const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length);
  if (charset && !['utf-8', 'utf8', '"utf-8"'].includes(charset)) {
    throw unsupportedMediaType(`charset ${charset} is not accepted; send UTF-8`);
  }
  return format;
}

function decodedStream(req: Request): Readable {
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || encoding === '') return req;
  if (encoding === 'gzip' || encoding === 'x-gzip') return req.pipe(createGunzip());
  throw new AppError(
    415,
    'unsupported_encoding',
    `Content-Encoding ${encoding} is not accepted; send gzip or none`,
  );
}

/**
 * Reads the whole body as UTF-8 text, gunzipping when asked, and stops as soon as it passes
 * `limitBytes` (compressed or not): a gzip bomb costs at most the limit.
 */
export async function readBodyText(req: Request, limitBytes: number): Promise<string> {
  const tooLarge = (after = '') =>
    payloadTooLarge(`The body is larger than ${limitBytes} bytes${after}`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    throw tooLarge();
  }
  const stream = decodedStream(req);
  if (req.res) sendContinue(req, req.res);
  const chunks: Buffer[] = [];
  let received = 0;
  let compressedReceived = 0;
  if (stream !== req) req.on('data', (chunk: Buffer) => (compressedReceived += chunk.length));

  await new Promise<void>((resolve, reject) => {
    const fail = (err: AppError) => {
      stream.removeAllListeners('data');
      if (stream !== req) stream.destroy();
      req.unpipe();
      req.resume(); // discard the rest; the error handler closes the connection
      reject(err);
    };
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (compressedReceived > limitBytes) return fail(tooLarge());
      // Within the limit as sent, over it once gunzipped: say which, or 5 KB "is larger than 4 MB".
      if (received > limitBytes) return fail(tooLarge(stream === req ? '' : ' once gunzipped'));
      chunks.push(chunk);
    });
    stream.on('end', () => resolve());
    stream.on('error', (err: Error) => {
      // An empty body is empty, gzip or not: the parser says so by name.
      if (stream !== req && compressedReceived === 0) return resolve();
      fail(
        stream === req
          ? badRequest('body_read_error', 'The request body could not be read')
          : badRequest('invalid_gzip', `The body is not valid gzip: ${err.message}`),
      );
    });
    req.on('aborted', () => fail(badRequest('body_read_error', 'The client aborted the request')));
  });

  const body = Buffer.concat(chunks);
  if (isGzip(body)) {
    // Gzip that is not to be gunzipped (again): "not valid UTF-8" would not say what to change.
    throw badRequest(
      'invalid_encoding',
      stream === req
        ? 'The body is gzip (it starts with 1f 8b) but was sent without Content-Encoding: gzip; send that header with it'
        : 'The body is gzip inside gzip: gzip it once',
    );
  }
  return decodeUtf8(body);
}
