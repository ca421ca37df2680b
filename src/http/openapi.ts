import { Router, static as serveStatic } from 'express';
import path from 'node:path';
import {
  deviceIdSchema,
  mappingRequestSchema,
  meterReadingSchema,
  vehicleReadingSchema,
} from '../telemetry/schemas';
import {
  errorResponseSchema,
  fleetReportSchema,
  healthSchema,
  ingestBatchResponseSchema,
  ingestSingleResponseSchema,
  mappingHistorySchema,
  mappingResponseSchema,
  meterStatusSchema,
  performanceReportSchema,
  vehicleStatusSchema,
} from './response-schemas';

/** The schemas as components, without ajv's `$id` (OpenAPI names them by their key). */
function component(schema: object): object {
  const copy: Record<string, unknown> = { ...schema };
  delete copy.$id;
  return copy;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ 'application/json': { schema } });
const reply = (description: string, schema: object) => ({ description, content: json(schema) });
const error = (description: string) => reply(description, ref('Error'));

const deviceParam = (name: string) => ({
  name,
  in: 'path',
  required: true,
  schema: deviceIdSchema,
});
const windowParams = [
  {
    name: 'from',
    in: 'query',
    schema: { type: 'string', format: 'date-time' },
    description: 'window start (inclusive)',
  },
  {
    name: 'to',
    in: 'query',
    schema: { type: 'string', format: 'date-time' },
    description: 'window end (exclusive)',
  },
  {
    name: 'hours',
    in: 'query',
    schema: { type: 'integer', minimum: 1, maximum: 168 },
    description: 'window length, with at most one of from/to; default 24',
  },
  {
    name: 'bucket',
    in: 'query',
    schema: { enum: ['hour'] },
    description: 'hour: add `series`, one entry per hour, for charts',
  },
];

const readingOrBatch = {
  oneOf: [
    ref('MeterReading'),
    ref('VehicleReading'),
    { type: 'array', minItems: 1, items: { oneOf: [ref('MeterReading'), ref('VehicleReading')] } },
  ],
};

/**
 * Every /v1 operation takes an API key (unless AUTH=off) and may be refused for it, and may answer
 * 503 while PostgreSQL is down (ingest has its own 503s: it does not touch PostgreSQL).
 */
type Operation = { responses: Record<string, unknown>; [field: string]: unknown };

function withSecurity(paths: Record<string, Record<string, Operation>>) {
  for (const [path, operations] of Object.entries(paths)) {
    if (!path.startsWith('/v1/')) continue;
    for (const operation of Object.values(operations)) {
      Object.assign(operation, { security: [{ apiKey: [] }] });
      operation.responses['401'] ??= error(
        'no API key, or not a valid one (WWW-Authenticate: Bearer)',
      );
      operation.responses['403'] ??= error('the key lacks the scope this endpoint needs');
      operation.responses['429'] ??= error('the key is over its rate limit; see Retry-After');
      operation.responses['503'] ??= error(
        'PostgreSQL unavailable or too slow (database_unavailable, database_timeout); see Retry-After',
      );
    }
  }
  return paths;
}

const readiness = (summary: string) => ({
  get: {
    summary,
    responses: {
      '200': reply('ready', ref('Health')),
      '503': reply('not ready; names the failing part', ref('Health')),
    },
  },
});

/** The OpenAPI 3.1 document, built from the very schemas the server validates with. */
export function buildOpenApiDocument(config: {
  maxBatchReadings: number;
  bodyLimitBytes: number;
}): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Energy Ingestion Engine',
      version: '0.1.0',
      description:
        'Telemetry for EV fleets: smart meters (AC) and vehicles (DC). A 202 means the reading is durably queued and will reach PostgreSQL.',
    },
    paths: withSecurity({
      '/v1/telemetry/ingest': {
        post: {
          summary: 'Ingest one reading, a JSON array, or NDJSON (gzip accepted)',
          description: `Up to ${config.maxBatchReadings} readings and ${config.bodyLimitBytes} bytes (after decompression) per request.`,
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: readingOrBatch },
              'application/x-ndjson': {
                schema: { type: 'string', description: 'one reading per line' },
              },
            },
          },
          responses: {
            '202': {
              description: 'accepted and durably queued',
              content: json({ oneOf: [ref('IngestSingleResult'), ref('IngestBatchResult')] }),
            },
            '207': reply(
              'some readings invalid; the valid ones are accepted',
              ref('IngestBatchResult'),
            ),
            '400': error('invalid reading(s), malformed JSON, bad gzip or encoding'),
            '413': error('body or reading count over the limit'),
            '415': error('content type or encoding not accepted'),
            '503': error('backlog full, Redis memory high, or Redis unavailable; see Retry-After'),
          },
        },
      },
      '/v1/telemetry/map': {
        post: {
          summary: 'From `since` on, the vehicle charges from this meter',
          requestBody: { required: true, content: json(ref('MappingRequest')) },
          responses: {
            '200': reply('the current mapping', ref('MappingResult')),
            '400': error('invalid mapping'),
            '409': error('since is not after the start of the current period'),
          },
        },
      },
      '/v1/telemetry/map/{vehicleId}': {
        get: {
          summary: 'Current mapping and every past period of a vehicle',
          parameters: [deviceParam('vehicleId')],
          responses: {
            '200': reply('mapping history', ref('MappingHistory')),
            '400': error('invalid vehicle id'),
            '404': error('never mapped'),
          },
        },
      },
      '/v1/meters/{meterId}/status': {
        get: {
          summary: 'Latest reading of a meter',
          parameters: [deviceParam('meterId')],
          responses: {
            '200': reply('latest reading', ref('MeterStatus')),
            '400': error('invalid meter id'),
            '404': error('never seen'),
          },
        },
      },
      '/v1/vehicles/{vehicleId}/status': {
        get: {
          summary: 'Latest reading of a vehicle',
          parameters: [deviceParam('vehicleId')],
          responses: {
            '200': reply('latest reading', ref('VehicleStatus')),
            '400': error('invalid vehicle id'),
            '404': error('never seen'),
          },
        },
      },
      '/v1/analytics/performance/{vehicleId}': {
        get: {
          summary: 'AC consumed, DC delivered, efficiency and battery behaviour over a window',
          parameters: [deviceParam('vehicleId'), ...windowParams],
          responses: {
            '200': reply('the report', ref('PerformanceReport')),
            '400': error('invalid id or window parameter'),
            '404': error('no readings and no mapping'),
          },
        },
      },
      '/v1/analytics/fleet': {
        get: {
          summary: 'Every vehicle active in the window, worst efficiency first, paged',
          parameters: [
            ...windowParams.filter((p) => p.name !== 'bucket'),
            {
              name: 'below',
              in: 'query',
              schema: { type: 'number', minimum: 0, maximum: 10 },
              description: 'alert threshold; default EFFICIENCY_THRESHOLD',
            },
            {
              name: 'limit',
              in: 'query',
              schema: { type: 'integer', minimum: 1, maximum: 10000 },
              description: 'vehicles per page; default 100',
            },
            {
              name: 'cursor',
              in: 'query',
              schema: { type: 'string' },
              description: 'nextCursor of the previous page',
            },
          ],
          responses: {
            '200': reply('the fleet report', ref('FleetReport')),
            '400': error('invalid window, below, limit or cursor'),
          },
        },
      },
      '/health/live': {
        get: { summary: 'The process is up', responses: { '200': reply('live', ref('Health')) } },
      },
      '/health/ready': readiness('PostgreSQL and Redis answer'),
      '/health/ready/ingest': readiness(
        'What ingest needs (Redis) answers; for load balancers in front of ingest',
      ),
      '/metrics': {
        get: {
          summary: 'Prometheus metrics',
          responses: {
            '200': {
              description: 'text exposition format',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
    }),
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description:
            'A key from `npm run key`; scopes: ingest (POST ingest), read (status, analytics, GET map), admin (POST map)',
        },
      },
      schemas: {
        MeterReading: component(meterReadingSchema),
        VehicleReading: component(vehicleReadingSchema),
        MappingRequest: component(mappingRequestSchema),
        Error: errorResponseSchema,
        IngestSingleResult: ingestSingleResponseSchema,
        IngestBatchResult: ingestBatchResponseSchema,
        MappingResult: mappingResponseSchema,
        MappingHistory: mappingHistorySchema,
        MeterStatus: meterStatusSchema,
        VehicleStatus: vehicleStatusSchema,
        PerformanceReport: performanceReportSchema,
        FleetReport: fleetReportSchema,
        Health: healthSchema,
      },
    },
  };
}

const DOCS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Energy Ingestion Engine API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>`;

const DOCS_INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui' });`;

/** `/openapi.json` and interactive docs at `/docs` (Swagger UI, served from this process). */
export function createDocsRouter(document: object): Router {
  const router = Router();
  const assets = path.dirname(require.resolve('swagger-ui-dist/package.json'));
  // The JSON API forbids everything; the docs page needs its own scripts and styles.
  const docsHeaders = (
    _req: unknown,
    res: { set(h: Record<string, string>): void },
    next: () => void,
  ) => {
    res.set({
      'Content-Security-Policy':
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    });
    next();
  };
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  router.get('/docs', docsHeaders, (_req, res) => {
    res.type('html').send(DOCS_PAGE);
  });
  router.get('/docs/init.js', docsHeaders, (_req, res) => {
    res.type('application/javascript').send(DOCS_INIT);
  });
  router.use('/docs/assets', docsHeaders, serveStatic(assets, { index: false }));
  return router;
}
