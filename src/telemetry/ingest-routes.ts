import { Type, type TSchema } from '@sinclair/typebox';
import type { Request } from 'express';
import { DEVICE_KINDS } from '../devices/device-kinds';
import { bodyFormatOf, mediaTypesOf, readBodyText } from '../http/read-body';
import { defineRoute, reply, type AnyRoute } from '../http/route-contract';
import { ErrorBody, ErrorDetail } from '../schema/primitives';
import { noValidReadings, type IngestInput, type IngestService } from './ingest-service';

const AnyReading = Type.Union(DEVICE_KINDS.map((k) => k.readingSchema) as TSchema[]);

const ItemError = Type.Object(
  {
    index: Type.Integer({
      description: 'position of the reading in the array or NDJSON lines (blank lines skipped)',
    }),
    error: Type.String(),
    message: Type.String(),
    details: Type.Array(ErrorDetail),
  },
  { additionalProperties: false },
);

const IngestSingleResult = Type.Object(
  {
    accepted: Type.Literal(1),
    type: Type.Union(DEVICE_KINDS.map((k) => Type.Literal(k.type))),
    id: Type.String(),
  },
  { $id: 'IngestSingleResult', additionalProperties: false },
);

/** Invalid readings an answer lists (`rejected` counts them all). */
export const MAX_LISTED_ERRORS = 100;

const IngestBatchResult = Type.Object(
  {
    accepted: Type.Integer({ minimum: 0 }),
    rejected: Type.Integer({ minimum: 0 }),
    errors: Type.Optional(
      Type.Array(ItemError, {
        maxItems: MAX_LISTED_ERRORS,
        description: `the first ${MAX_LISTED_ERRORS} invalid readings; rejected counts them all`,
      }),
    ),
  },
  { $id: 'IngestBatchResult', additionalProperties: false },
);

/** The 400 of a batch in which no reading is valid: the error, and each reading's own. */
const NoValidReadings = Type.Object(
  {
    ...ErrorBody.properties,
    accepted: Type.Literal(0),
    rejected: Type.Integer(),
    errors: Type.Array(ItemError, {
      maxItems: MAX_LISTED_ERRORS,
      description: `the first ${MAX_LISTED_ERRORS} invalid readings; rejected counts them all`,
    }),
  },
  { $id: 'NoValidReadings' },
);

async function readIngestInput(
  req: Request,
  ingestService: IngestService,
  bodyLimitBytes: number,
): Promise<IngestInput> {
  const format = bodyFormatOf(req, ['json', 'ndjson']);
  return ingestService.parse(await readBodyText(req, bodyLimitBytes), format);
}

export function ingestRoutes({
  ingestService,
  config,
}: {
  ingestService: IngestService;
  config: { bodyLimitBytes: number; maxBatchReadings: number };
}): AnyRoute[] {
  return [
    defineRoute({
      method: 'post',
      path: '/v1/telemetry/ingest',
      operationId: 'ingestReadings',
      summary: 'Ingest one reading, a JSON array, or NDJSON (gzip accepted)',
      description: `Up to ${config.maxBatchReadings} readings and ${config.bodyLimitBytes} bytes (after decompression) per request. A 202 means the readings are durably queued and will reach PostgreSQL.`,
      scope: 'ingest',
      // Gateways append their own parameters to every URL; there is no `?dryRun`.
      ignoresQuery: true,
      body: {
        schema: Type.Union([AnyReading, Type.Array(AnyReading, { minItems: 1 })]),
        name: 'readings',
        read: 'handler',
        alternatives: Object.fromEntries(
          mediaTypesOf('ndjson').map((type) => [
            type,
            Type.String({ description: 'one reading per line' }),
          ]),
        ),
      },
      responses: {
        202: {
          description: 'accepted and durably queued',
          schema: Type.Union([IngestSingleResult, IngestBatchResult]),
        },
        207: {
          description: 'some readings invalid; the valid ones are accepted',
          schema: IngestBatchResult,
        },
        400: {
          description: 'invalid reading(s), malformed JSON, bad gzip or encoding',
          schema: Type.Union([NoValidReadings, ErrorBody]),
        },
        409: {
          description:
            "a single reading for an OCPP charge point's connector meter (`CP:n`), which only the charge point writes",
          schema: ErrorBody,
        },
        413: { description: 'body or reading count over the limit', schema: ErrorBody },
        415: { description: 'content type or encoding not accepted', schema: ErrorBody },
        503: {
          description: 'backlog full, Redis memory high, or Redis unavailable; see Retry-After',
          schema: ErrorBody,
        },
      },
      handler: async ({ req }) => {
        const outcome = await ingestService.ingest(
          await readIngestInput(req, ingestService, config.bodyLimitBytes),
        );
        if (outcome.kind === 'single') {
          const { reading } = outcome;
          return reply(202, { accepted: 1 as const, type: reading.type, id: reading.id });
        }
        const { accepted } = outcome;
        // The first ones: a request of thousands of bad readings gets an answer of bounded size.
        const errors = outcome.errors.slice(0, MAX_LISTED_ERRORS);
        const rejected = outcome.errors.length;
        if (accepted === 0) {
          const first = errors[0];
          const { code, message } = noValidReadings(outcome.errors);
          return reply(400, {
            error: code,
            message,
            details: first.details.map((d) => ({
              path: `/${first.index}${d.path === '/' ? '' : d.path}`,
              message: d.message,
            })),
            accepted: 0 as const,
            rejected,
            errors,
          });
        }
        const body = { accepted, rejected };
        return rejected > 0 ? reply(207, { ...body, errors }) : reply(202, body);
      },
    }),
  ];
}
