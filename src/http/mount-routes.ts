/**
 * Mounts declared routes on an Express router: one validation step for every route (path
 * parameters, query, JSON body), then the handler with typed input, then its reply.
 */
import { Router, type RequestHandler } from 'express';
import type { TObject } from '@sinclair/typebox';
import type Ajv from 'ajv';
import type { Authorize } from '../auth/authorize';
import { AppError, badRequest, invalidParameter } from '../errors';
import {
  isNumberText,
  compile,
  createAjv,
  notationNote,
  numberRule,
  objectValidator,
  toDetails,
} from '../schema/validator';
import { parseJson } from '../telemetry/ingest-input';
import { carriesBody } from './http-server';
import { bodyFormatOf, readBodyText } from './read-body';
import { JSON_BODY_LIMIT_BYTES, type AnyRoute } from './route-contract';

export const expressPath = (path: string) => path.replace(/\{(\w+)\}/g, ':$1');

const PLUS_HINT = 'a "+" in a URL query reads as a space: send it as %2B';

/** A query parameter the route does not take, by name (`?=1` has none: said so, at `/`). */
function unknownParameter(name: string, use: string) {
  const message = `is not a known parameter (${use})`;
  if (name !== '') return invalidParameter(name, message);
  const nameless = `a parameter without a name ("?=1") ${message}`;
  return badRequest('invalid_parameter', nameless, [{ path: '/', message: nameless }]);
}

/** Path and query values arrive as text: numbers are coerced, anything else must already fit. */
function textInputValidator(ajv: Ajv, schema: TObject, where: 'path' | 'query') {
  const validate = compile(ajv, schema);
  const declared = Object.keys(schema.properties);
  const numbers = new Map(
    Object.entries(schema.properties).filter(
      ([, p]) => p.type === 'number' || p.type === 'integer',
    ),
  );
  return (raw: Record<string, unknown>): Record<string, unknown> => {
    const input: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(raw)) {
      if (!declared.includes(name)) {
        throw unknownParameter(name, `use ${declared.join(', ')}`);
      }
      if (typeof value !== 'string' || value === '') {
        throw invalidParameter(name, 'must be given once, with a value');
      }
      const number = numbers.get(name);
      if (number && !isNumberText(number, value)) {
        throw invalidParameter(name, `${numberRule(number)}${notationNote(value)}`);
      }
      input[name] = value;
    }
    if (!validate(input)) {
      const [first] = toDetails(validate.errors);
      const name = first.path.replace(/^\//, '') || where;
      // A "+" written as such in a URL arrives as a space (an offset such as +01:00 most often).
      const spaced = where === 'query' && String(input[name] ?? '').includes(' ');
      throw invalidParameter(name, spaced ? `${first.message} (${PLUS_HINT})` : first.message);
    }
    return input;
  };
}

/**
 * A route that declares no query takes none: a parameter given is refused, not ignored (but by
 * routes that say `ignoresQuery`). A write ignoring one did what it was not asked: a mapping sent
 * with `?since=` began now, for good (the past is never rewritten).
 */
function noQuery(raw: unknown): Record<string, never> {
  const [name] = Object.keys(raw as object);
  if (name !== undefined) throw unknownParameter(name, 'this endpoint takes none');
  return {};
}

/** `authorize` guards the routes that declare a scope (every route of the API has one or none). */
export function mountRoutes(
  routes: AnyRoute[],
  { authorize }: { authorize?: Authorize } = {},
): Router {
  const router = Router();
  const textAjv = createAjv({ coerce: true });
  const bodyAjv = createAjv();
  for (const route of routes) {
    const params = route.params ? textInputValidator(textAjv, route.params, 'path') : null;
    const query = route.query ? textInputValidator(textAjv, route.query, 'query') : null;
    const body =
      route.body?.read === 'json'
        ? objectValidator(bodyAjv, route.body.schema, route.body.name)
        : null;

    const handle: RequestHandler = async (req, res) => {
      const input = {
        params: params ? params(req.params) : {},
        query: query
          ? query(req.query as Record<string, unknown>)
          : route.ignoresQuery
            ? {}
            : noQuery(req.query),
        body: undefined as unknown,
        req,
        res,
      };
      if (body) {
        const omitted = route.body?.optional === true && !carriesBody(req);
        if (!omitted) bodyFormatOf(req, ['json']);
        const result = body(
          omitted ? {} : parseJson(await readBodyText(req, JSON_BODY_LIMIT_BYTES)),
        );
        if (!result.ok) {
          const { error, message, details } = result.failure;
          throw new AppError(400, error, message, details);
        }
        input.body = result.value;
      }
      const reply = await route.handler(input);
      if (reply.headers) res.set(reply.headers);
      res.status(reply.status);
      const contentType = route.responses[reply.status]?.contentType;
      if (reply.body === undefined) res.end();
      else if (contentType) {
        // A declared media type; the handler may name it more precisely (parameters) in headers.
        if (!res.get('Content-Type')) res.type(contentType);
        res.send(reply.body);
      } else res.json(reply.body);
    };
    if (route.scope && !authorize) throw new Error(`${route.path} needs a scope but no authorize`);
    const guards = route.scope && authorize ? [authorize(route.scope)] : [];
    router[route.method](expressPath(route.path), ...guards, handle);
  }
  mountMethodNotAllowed(router, routes);
  return router;
}

/**
 * A declared path asked with a method it does not have: 405 naming the methods it has (in
 * `Allow`, as HTTP asks), not a 404 that reads as a wrong path. OPTIONS answers with `Allow`.
 */
function mountMethodNotAllowed(router: Router, routes: AnyRoute[]): void {
  const methodsByPath = new Map<string, Set<string>>();
  for (const { path, method } of routes) {
    const methods = methodsByPath.get(path) ?? new Set();
    methods.add(method.toUpperCase());
    if (method === 'get') methods.add('HEAD');
    methodsByPath.set(path, methods);
  }
  for (const [path, methods] of methodsByPath) {
    router.all(expressPath(path), methodNotAllowed([...methods]));
  }
}

/**
 * The handler after a path's own, for every other method: 405 with `Allow` (the given methods and
 * OPTIONS), or 204 with it for OPTIONS. Also for paths served outside the declared routes (the
 * API document, the docs page, the dashboard).
 */
export function methodNotAllowed(methods: string[]): RequestHandler {
  const allow = [...methods, 'OPTIONS'].join(', ');
  return (req, res) => {
    if (req.method === 'OPTIONS') {
      res.set('Allow', allow).status(204).end();
      return;
    }
    const message = `${req.method} is not allowed on ${req.path}; it allows ${allow}`;
    throw new AppError(405, 'method_not_allowed', message, [], { Allow: allow });
  };
}
