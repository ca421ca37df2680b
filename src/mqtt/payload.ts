/**
 * An MQTT payload to IngestInput. MQTT has no content type or encoding header, so gzip is
 * recognised by its magic bytes (1f 8b) and the format by the text itself (JSON value, JSON array
 * or NDJSON); the text rules are the HTTP body's (src/telemetry/ingest-input.ts).
 */
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { AppError, badRequest, payloadTooLarge } from '../errors';
import { decodeUtf8, isGzip } from '../telemetry/ingest-input';
import type { IngestInput } from '../telemetry/ingest-service';

const gunzipAsync = promisify(gunzip);

/**
 * The payload's bytes, gunzipped when they are gzip, at most `limitBytes` either way (a gzip bomb
 * costs at most the limit). Throws a 4xx AppError: `payload_too_large` or `invalid_gzip`.
 */
export async function decompressPayload(payload: Buffer, limitBytes: number): Promise<Buffer> {
  const tooLarge = (after = '') =>
    payloadTooLarge(`The payload is larger than ${limitBytes} bytes${after}`);
  if (payload.length > limitBytes) throw tooLarge();
  if (!isGzip(payload)) return payload;
  try {
    return await gunzipAsync(payload, { maxOutputLength: limitBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw tooLarge(` once gunzipped (${payload.length} bytes of gzip)`);
    }
    throw badRequest('invalid_gzip', `The payload is not valid gzip: ${(err as Error).message}`);
  }
}

export type DecodedPayload =
  /** `bytes`: the payload as decoded so far (gunzipped when it was gzip), for the rejects list. */
  { ok: true; bytes: Buffer; input: IngestInput } | { ok: false; bytes: Buffer; error: AppError };

/**
 * A payload to IngestInput, or the 4xx AppError saying why not (`invalid_json`, `invalid_encoding`...).
 * `parse`: the text to IngestInput, as an HTTP body's of any format (IngestService.parse).
 */
export async function decodePayload(
  payload: Buffer,
  { limitBytes, parse }: { limitBytes: number; parse: (text: string) => IngestInput },
): Promise<DecodedPayload> {
  let bytes = payload;
  try {
    bytes = await decompressPayload(payload, limitBytes);
    return { ok: true, bytes, input: parse(decodeUtf8(bytes, 'payload')) };
  } catch (err) {
    if (err instanceof AppError && err.statusCode < 500) return { ok: false, bytes, error: err };
    throw err;
  }
}
