/**
 * A route declares its contract once: path, parameters, query, body and responses, as TypeBox
 * schemas. The same declaration validates requests (mount-routes.ts), types the handler's input
 * and output (Static<>), and becomes the route's entry in /openapi.json (openapi.ts), so what is
 * served and what is documented cannot drift.
 */
import type { Static, TObject, TSchema } from '@sinclair/typebox';
import type { Request, Response } from 'express';
import type { Scope } from '../auth/api-keys';

export interface ResponseDeclaration {
  description: string;
  /** The body's schema; none for a response without a JSON body. */
  schema?: TSchema;
  /** Default application/json. */
  contentType?: string;
  /** Headers it carries, by name, each with what it says: in place of its status's usual ones. */
  headers?: Record<string, string>;
}

export type Responses = Record<number, ResponseDeclaration>;

/** Largest JSON body the router reads for a route (`read: 'json'`); ingest has BODY_LIMIT. */
export const JSON_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * A JSON body the router reads and validates (`read: 'json'`), or one the handler reads itself
 * (ingest streams NDJSON and gzip) and the schemas only document.
 */
export interface BodyDeclaration<B extends TSchema> {
  schema: B;
  /** Names the body in errors: `invalid_<name>`, "Invalid <name>: ...". */
  name: string;
  read: 'json' | 'handler';
  /** A request without a body (no Content-Length, or 0) is an empty object (`read: 'json'`). */
  optional?: boolean;
  /** Other media types the handler accepts, documented beside application/json. */
  alternatives?: Record<string, TSchema>;
}

/** What a handler returns: a status its route declares, with a body of that status's schema. */
export type Reply<R extends Responses> = {
  [S in keyof R & number]: {
    status: S;
    body: R[S]['schema'] extends TSchema ? Static<R[S]['schema']> : undefined;
    headers?: Record<string, string>;
  };
}[keyof R & number];

type StaticOr<T, Fallback> = T extends TSchema ? Static<T> : Fallback;

export interface HandlerInput<P, Q, B> {
  params: StaticOr<P, Record<string, never>>;
  query: StaticOr<Q, Record<string, never>>;
  body: StaticOr<B, undefined>;
  req: Request;
  res: Response;
}

export interface RouteDeclaration<
  P extends TObject | undefined = TObject | undefined,
  Q extends TObject | undefined = TObject | undefined,
  B extends TSchema | undefined = TSchema | undefined,
  R extends Responses = Responses,
> {
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI style: `/v1/vehicles/{vehicleId}/status`. */
  path: string;
  /** Unique across the API: what a client generated from the document names the call. */
  operationId: string;
  summary: string;
  description?: string;
  /** The API-key scope it needs; none for public routes (health, metrics, the document). */
  scope?: Scope;
  /** Reads PostgreSQL, so it may answer 503 database_unavailable / database_timeout / database_busy /
   * database_not_migrated. */
  database?: boolean;
  params?: P;
  query?: Q;
  /**
   * A route without `query` refuses any parameter; these ignore them instead: probes and scrapers
   * (a load balancer's cache-buster, Prometheus's `params`) and ingest's gateways add their own.
   */
  ignoresQuery?: boolean;
  body?: B extends TSchema ? BodyDeclaration<B> : undefined;
  responses: R;
  handler(input: HandlerInput<P, Q, B>): Promise<Reply<R>> | Reply<R>;
}

/** A route of any shape, as the router and the document builder see it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = RouteDeclaration<any, any, any, any>;

/** A handler's answer; `status` keeps its literal type, so it is checked against the declaration. */
export const reply = <const S extends number, B>(
  status: S,
  body: B,
  headers?: Record<string, string>,
) => ({ status, body, ...(headers ? { headers } : {}) });

/** Declares a route; the identity function, there for type inference. */
export function defineRoute<
  P extends TObject | undefined = undefined,
  Q extends TObject | undefined = undefined,
  B extends TSchema | undefined = undefined,
  const R extends Responses = Responses,
>(route: RouteDeclaration<P, Q, B, R>): AnyRoute {
  return route;
}
