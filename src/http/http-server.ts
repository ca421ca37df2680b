import {
  IncomingMessage,
  STATUS_CODES,
  ServerResponse,
  createServer,
  maxHeaderSize,
  type Server,
} from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import express, { type Express } from 'express';

/**
 * How often node:http looks for requests past `requestTimeout` or `headersTimeout`: by default
 * every 30 s, so a client stalled mid-body got its 408 up to 30 s after the timeout.
 */
const TIMEOUT_CHECK_MS = 2000;

/**
 * An HTTP server for `app` whose requests and responses are born with Express's prototypes
 * (`app.request`, `app.response`), so the prototype switch Express makes on each of them
 * (`Object.setPrototypeOf` in `app.handle`) changes nothing. Switched, part of every request
 * survived into V8's old generation (Node 20): at 1,000 requests/s for 10 s, a minimal Express app
 * promoted 85 MB and ran 5 full collections; born with the prototypes, 2.5 MB and none. The API's
 * full collections are what made ingest's latency tail (README, Operating notes).
 */
export function createHttpServer(app: Express): Server {
  // Constructor functions, not classes: the instances' prototype must be exactly Express's.
  // node:http's IncomingMessage and ServerResponse are such functions, callable on `this`.
  function Request(this: IncomingMessage, socket: Socket): void {
    Reflect.apply(IncomingMessage, this, [socket]);
  }
  Request.prototype = app.request;
  function Response(this: ServerResponse, req: IncomingMessage, options?: object): void {
    Reflect.apply(ServerResponse, this, [req, options]);
  }
  Response.prototype = app.response;
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    const problem = hostProblem(req);
    if (problem === undefined) return app(req, res);
    endResponseWithError(res, 400, { error: 'bad_request', message: problem });
  };
  const server = createServer(
    {
      IncomingMessage: Request as unknown as typeof IncomingMessage,
      ServerResponse: Response as unknown as typeof ServerResponse,
      connectionsCheckingInterval: TIMEOUT_CHECK_MS,
      // Refused below instead, in JSON: node:http's own answer was a 400 with no body.
      requireHostHeader: false,
    },
    serve,
  );
  // A request with `Expect: 100-continue`, which node:http hands here instead of to 'request', goes
  // to 'request' all the same (graceful-close.ts counts requests there), its 100 sent only once a
  // route reads its body (sendContinue): node:http sent it on arrival, so a client sent a body its
  // key or its size was then refused for. One without a body waits for nothing: its 100 at once
  // (node:http closes the connection of a request it never sent one for).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (carriesBody(req)) awaitingContinue.add(req);
    else res.writeContinue();
    server.emit('request', req, res);
  });
  server.on('clientError', answerClientError);
  // Node answers these itself otherwise: CONNECT by closing the socket unanswered, an Expect
  // other than 100-continue with an empty 417.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) =>
    endWithError(
      socket,
      405,
      {
        error: 'method_not_allowed',
        message: 'CONNECT is not answered here: this is an API, not a proxy',
      },
      'Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS\r\n',
    ),
  );
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    endResponseWithError(res, 417, {
      error: 'expectation_failed',
      message: `Expect: ${req.headers.expect} is not supported; only 100-continue is`,
    }),
  );
  return server;
}

/** Whether a request has a body at all: a length above 0, or chunks to come. */
export const carriesBody = (req: { headers: Record<string, string | string[] | undefined> }) =>
  req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/** Requests whose client waits for a 100 Continue before sending the body (checkContinue above). */
const awaitingContinue = new WeakSet<IncomingMessage>();

/**
 * Tells a client waiting for it (`Expect: 100-continue`, RFC 9110 10.1.1) to send its body: called
 * by a route starting to read it, once its checks of the headers and key passed.
 */
export function sendContinue(req: IncomingMessage, res: ServerResponse): void {
  if (awaitingContinue.delete(req) && !res.headersSent) res.writeContinue();
}

/**
 * A Host value as RFC 9110 7.2 allows it, and as hosts are named: a name (letters, digits, `-._~`
 * and %-escapes, empty included; none of the sub-delims RFC 3986 also admits, which no host name
 * holds), an IPv4 address or a bracketed IP literal (an IPv6 zone `%25eth0` too), then an optional
 * port. Proxies that merge two Hosts into one write `a, b` or `a,b`.
 */
const VALID_HOST =
  /^(?:\[[0-9A-Za-z:.]+(?:%25[0-9A-Za-z\-._~%]+)?\]|[A-Za-z0-9\-._~%]*)(?::[0-9]{0,5})?$/;

/**
 * What is wrong with a request's Host, if anything: HTTP/1.1 requires exactly one, with a valid
 * value (RFC 9112 3.2; HTTP/1.0 has none to send). node:http keeps the first of two, where a proxy
 * in front may have routed by the second.
 */
function hostProblem(req: IncomingMessage): string | undefined {
  const { host } = req.headers;
  if (host === undefined) {
    const needed = req.httpVersionMajor === 1 && req.httpVersionMinor >= 1;
    return needed ? 'An HTTP/1.1 request needs a Host header' : undefined;
  }
  let hosts = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return `A request has one Host header; this one has ${hosts}`;
  return VALID_HOST.test(host)
    ? undefined
    : `Host ${JSON.stringify(host)} is not a host name or address with an optional port`;
}

/** A refusal made before any route: its error code and message. */
export interface Refusal {
  error: string;
  message: string;
}

/** The JSON error body of every answer, for those given before Express. */
const errorBody = ({ error, message }: Refusal) => JSON.stringify({ error, message, details: [] });

/** Answers a request node:http refuses before Express with the JSON error body of every other. */
function endResponseWithError(res: ServerResponse, status: number, refusal: Refusal): void {
  const body = errorBody(refusal);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    Connection: 'close',
  });
  res.end(body);
}

/**
 * Answers on a bare socket, where there is no response object (a request node:http refused, an
 * upgrade refused), with the JSON error body of every other answer, and closes it.
 */
export function endWithError(
  socket: Duplex,
  status: number,
  refusal: Refusal,
  extraHeaders = '',
): void {
  const body = errorBody(refusal);
  // No HTTP timeout watches a socket handed over this way, and end() closes only our side: a
  // client that never closes its own would hold it (and a graceful stop) for ever.
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      extraHeaders +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Refuses a WebSocket upgrade (endWithError, perhaps with more: a log line, a count). */
export type RefuseUpgrade = (
  req: IncomingMessage,
  socket: Duplex,
  status: number,
  refusal: Refusal,
  extraHeaders?: string,
) => void;

/** Headers that ask to switch protocols, and the Connection tokens naming them. */
const UPGRADE_HEADERS = new Set(['upgrade', 'http2-settings']);

/**
 * Hands `server`'s WebSocket upgrades to `handle`. Once an 'upgrade' listener exists node:http
 * hands it every request with an Upgrade, so this one also serves the others as the HTTP/1.1
 * requests they also are (serveIgnoringUpgrade), and refuses (with `refuse`) a WebSocket upgrade
 * without HTTP/1.1 and a Host (RFC 6455 4.1), which the WebSocket library does not check.
 */
export function onWebSocketUpgrade(
  server: Server,
  handle: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
  refuse: RefuseUpgrade,
): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.headers.upgrade?.toLowerCase() !== 'websocket') {
      return serveIgnoringUpgrade(server, req, socket, head);
    }
    if (req.httpVersion !== '1.1' || req.headers.host === undefined) {
      return refuse(req, socket, 400, {
        error: 'bad_request',
        message: 'A WebSocket upgrade is an HTTP/1.1 request with a Host header',
      });
    }
    const problem = hostProblem(req);
    if (problem !== undefined) {
      return refuse(req, socket, 400, { error: 'bad_request', message: problem });
    }
    handle(req, socket, head);
  });
}

/**
 * Serves a request that asks to switch to a protocol other than WebSocket as the HTTP/1.1 request
 * it also is (RFC 9110 lets a server ignore Upgrade). Clients ask for HTTP/2 that way on http://
 * (`Upgrade: h2c`: curl --http2, Java's HttpClient): handed to the OCPP endpoint, they were
 * answered 404, ingest's readings refused. The request's head goes back to the server without the
 * Upgrade, followed by the rest of the connection, and is parsed and served as any other.
 */
function serveIgnoringUpgrade(
  server: Server,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const [name, value] = [req.rawHeaders[i], req.rawHeaders[i + 1]];
    const lower = name.toLowerCase();
    if (UPGRADE_HEADERS.has(lower)) continue;
    if (lower !== 'connection') lines.push(`${name}: ${value}`);
    else {
      const kept = value.split(',').filter((t) => !UPGRADE_HEADERS.has(t.trim().toLowerCase()));
      if (kept.some((t) => t.trim())) lines.push(`${name}: ${kept.join(',')}`);
    }
  }
  // Header bytes as they came: node:http reads them as latin1.
  const refeed = () => {
    if (socket.destroyed) return;
    socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]));
    server.emit('connection', socket);
  };
  // Pipelined behind a request still being answered: taken up once that answer is sent (given to
  // the server while it was being answered, this one's answer waited for ever).
  const answering = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  if (answering && !answering.writableFinished) answering.once('finish', refeed);
  else refeed();
}

/**
 * What node:http refuses before Express sees a request, answered in JSON like every error (and
 * listed on every operation of the OpenAPI document).
 */
export const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [
    431,
    'headers_too_large',
    `The request line and headers are larger than ${maxHeaderSize / 1024} KB together`,
  ],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'The request did not arrive in time'],
};

function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // As node:http does: an answer only where none is under way (a pipelined request's would be
  // written into the middle of the one before).
  const inProgress = (socket as { _httpMessage?: ServerResponse })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, error, message] = CLIENT_ERRORS[err.code ?? ''] ?? [
    400,
    'bad_request',
    'The request is not valid HTTP/1.1',
  ];
  const refuse = () => endWithError(socket, status, { error, message });
  // A request before the bad bytes is still being answered (an ingest already stored): its answer
  // first, or the client takes the 400 alone for a refusal of it. Not a request still receiving
  // its body: the error is about that one (stalled past requestTimeout, cut off), whose answer
  // waits for a body that will never come: it gets this one, and its socket is closed. (A route
  // that read no body for requestTimeout would be taken for one stalled: none waits that long.)
  if (inProgress && !inProgress.writableFinished && inProgress.req.complete) {
    inProgress.once('finish', refuse);
    inProgress.once('close', () => {
      if (!inProgress.writableFinished) socket.destroy();
    });
    return;
  }
  refuse();
}

/** Express as the engine sets it up (the benchmark's Express ceiling is built from it too). */
export function createExpress(): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  return app;
}
