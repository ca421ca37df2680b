/**
 * `/openapi.json`, assembled from the route declarations: every path, parameter, body and response
 * is the schema the server validates with or answers with. Schemas with an `$id` become named
 * components. docs-router.ts serves it, with Swagger UI at `/docs`.
 */
import type { TObject, TSchema } from '@sinclair/typebox';
import { ErrorBody } from '../schema/primitives';
import { CLIENT_ERRORS } from './http-server';
import { JSON_BODY_LIMIT_BYTES, type AnyRoute, type ResponseDeclaration } from './route-contract';

type Json = Record<string, unknown>;

/** A copy of the schema with each `$id` sub-schema replaced by a `$ref` to its component. */
function withRefs(schema: TSchema, components: Json): Json {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (typeof node !== 'object' || node === null) return node;
    const { $id, ...rest } = node as Json;
    const copy = Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, walk(v)]));
    if (typeof $id !== 'string') return copy;
    components[$id] ??= copy;
    return { $ref: `#/components/schemas/${$id}` };
  };
  // JSON round trip: TypeBox's symbol-keyed metadata is not part of the document.
  return walk(JSON.parse(JSON.stringify(schema))) as Json;
}

function parameters(schema: TObject | undefined, where: 'path' | 'query', components: Json) {
  if (!schema) return [];
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, property]) => {
    const { description, ...rest } = withRefs(property, components);
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}

/**
 * The headers an error answer carries by its status: a client (a generated one too) needs them to
 * act on it. The engine's 429 and error 503s say when to retry; a 401 names the scheme.
 */
function headersOf(status: number, declared: ResponseDeclaration): Json | null {
  if (declared.headers) {
    return Object.fromEntries(
      Object.entries(declared.headers).map(([name, description]) => [
        name,
        { description, schema: { type: 'string' } },
      ]),
    );
  }
  if (status === 401) {
    return {
      'WWW-Authenticate': {
        description: 'Bearer: send the API key as Authorization: Bearer <key>',
        schema: { type: 'string' },
      },
    };
  }
  if (status === 429 || (status === 503 && declared.schema === ErrorBody)) {
    return {
      'Retry-After': {
        description: 'seconds to wait before sending again',
        schema: { type: 'integer', minimum: 0 },
      },
    };
  }
  return null;
}

function response(status: number, declared: ResponseDeclaration, components: Json): Json {
  const headers = headersOf(status, declared);
  if (!declared.schema) return { description: declared.description, ...(headers && { headers }) };
  return {
    description: declared.description,
    ...(headers && { headers }),
    content: {
      [declared.contentType ?? 'application/json']: {
        schema: withRefs(declared.schema, components),
      },
    },
  };
}

/** What every route of a kind may answer besides what it declares. */
function implicitResponses(route: AnyRoute): Record<number, ResponseDeclaration> {
  const error = (description: string): ResponseDeclaration => ({ description, schema: ErrorBody });
  const responses: Record<number, ResponseDeclaration> = {};
  // Any request, before a route sees it: headers too large, a request that did not arrive in time.
  for (const [status, , message] of Object.values(CLIENT_ERRORS))
    responses[status] = error(message);
  responses[417] = error('an Expect header other than 100-continue');
  responses[400] = error(
    'not valid HTTP/1.1, or an HTTP/1.1 request without a Host header, or one with two',
  );
  if (route.params || route.query) responses[400] = error('invalid path or query parameter');
  if (route.body?.read === 'json') {
    responses[400] = error('invalid body, malformed JSON, or invalid path or query parameter');
    responses[413] = error(`body over ${JSON_BODY_LIMIT_BYTES} bytes`);
    responses[415] = error(
      'content type other than application/json, or an encoding other than UTF-8',
    );
  }
  if (route.scope) {
    const ambiguous = 'two Authorization headers (ambiguous_api_key)';
    const bad = responses[400]?.description;
    responses[400] = error(bad ? `${bad}, or ${ambiguous}` : ambiguous);
    responses[401] = error('no API key, or not a valid one (WWW-Authenticate: Bearer)');
    responses[403] = error('the key lacks the scope this endpoint needs');
    responses[429] = error('the key is over its rate limit; see Retry-After');
  }
  if (route.database) {
    responses[503] = error(
      'PostgreSQL unavailable, too slow or too busy, or not migrated (database_unavailable, database_timeout, database_busy, database_not_migrated); see Retry-After',
    );
  }
  return responses;
}

/**
 * A route's responses: the implicit ones and its own; of a 400 both give, its own description
 * first, then what else the status says (a bad parameter, two Authorization headers).
 */
function responsesOf(route: AnyRoute): Record<number, ResponseDeclaration> {
  const implicit = implicitResponses(route);
  const responses = { ...implicit, ...route.responses };
  const own = route.responses[400];
  if (own && implicit[400]) {
    responses[400] = { ...own, description: `${own.description}; or ${implicit[400].description}` };
  }
  return responses;
}

function operation(route: AnyRoute, components: Json): Json {
  const responses = responsesOf(route);
  const body = route.body;
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    ...(route.scope ? { security: [{ apiKey: [] }], 'x-scope': route.scope } : {}),
    parameters: [
      ...parameters(route.params, 'path', components),
      ...parameters(route.query, 'query', components),
    ],
    ...(body
      ? {
          requestBody: {
            required: !body.optional,
            content: Object.fromEntries(
              Object.entries({ 'application/json': body.schema, ...body.alternatives }).map(
                ([type, schema]) => [type, { schema: withRefs(schema as TSchema, components) }],
              ),
            ),
          },
        }
      : {}),
    responses: Object.fromEntries(
      Object.entries(responses).map(([status, declared]) => [
        status,
        response(Number(status), declared as ResponseDeclaration, components),
      ]),
    ),
  };
}

/** Which routes each scope opens, for the security scheme's description. */
function scopesDescription(routes: AnyRoute[]): string {
  const byScope = new Map<string, string[]>();
  for (const route of routes.filter((r) => r.scope)) {
    const list = byScope.get(route.scope as string) ?? [];
    list.push(`${route.method.toUpperCase()} ${route.path}`);
    byScope.set(route.scope as string, list);
  }
  const lines = [...byScope].map(([scope, ops]) => `- \`${scope}\`: ${ops.join(', ')}`);
  return `A key from \`npm run key\`, sent as \`Authorization: Bearer <key>\`. Scopes:\n${lines.join('\n')}`;
}

/** The OpenAPI 3.1 document of the given routes. */
export function buildOpenApiDocument(
  routes: AnyRoute[],
  info: { title: string; version: string; description: string },
): Json {
  const components: Json = {};
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    paths[route.path][route.method] = operation(route, components);
  }
  return {
    openapi: '3.1.0',
    info,
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: scopesDescription(routes) },
      },
      schemas: components,
    },
  };
}
