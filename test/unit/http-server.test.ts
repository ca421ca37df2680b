import { Agent, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import express from 'express';

import { createExpress, createHttpServer, onWebSocketUpgrade } from '../../src/http/http-server';

describe('createHttpServer', () => {
  const app = createExpress();
  app.use(express.json());
  app.post('/echo', (req, res) => {
    res.status(201).json({ body: req.body as unknown, query: req.query, host: req.hostname });
  });
  let server: Server;
  let url: string;
  const born: { req: object | null; res: object | null }[] = [];

  beforeAll(async () => {
    server = createHttpServer(app);
    // Runs before Express: what the server made, before Express switches anything.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      born.push({
        req: Object.getPrototypeOf(req) as object,
        res: Object.getPrototypeOf(res) as object,
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Everything the server writes back to `request`, sent as raw bytes, until it closes. */
  const rawAnswer = (request: string) =>
    new Promise<string>((resolve) => {
      const { port } = server.address() as AddressInfo;
      const socket = connect(port, '127.0.0.1', () => socket.write(request));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });

  test("when a request arrives, then it and its response are born with the app's prototypes, so Express switches none", async () => {
    await fetch(`${url}/echo`, { method: 'POST' });
    expect(born.at(-1)).toEqual({ req: app.request, res: app.response });
  });

  test('when Express handles a request on it, then the body, the query, the status and the JSON answer work as on its own server', async () => {
    const response = await fetch(`${url}/echo?a=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kwh: 1.5 }),
    });
    expect(response.status).toBe(201);
    expect(await response.json()).toEqual({
      body: { kwh: 1.5 },
      query: { a: '1' },
      host: '127.0.0.1',
    });
  });

  test('when node:http refuses a request before Express (headers over 16 KB, not HTTP), then the answer is JSON too', async () => {
    const long = await fetch(`${url}/echo?x=${'a'.repeat(17_000)}`, { method: 'POST' });
    expect(long.status).toBe(431);
    expect(await long.json()).toMatchObject({ error: 'headers_too_large' });
    const raw = await rawAnswer('NOT HTTP AT ALL\r\n\r\n');
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(raw.split('\r\n\r\n')[1])).toMatchObject({ error: 'bad_request' });
  });

  test('when a request is a CONNECT, expects something other than 100-continue, lacks its Host, has two or one that is no host, then it gets a JSON error, not a closed socket or an empty answer', async () => {
    const connected = await rawAnswer('CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n');
    expect(connected).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(JSON.parse(connected.split('\r\n\r\n')[1])).toMatchObject({
      error: 'method_not_allowed',
    });
    const expecting = await rawAnswer(
      'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Length: 0\r\n\r\n',
    );
    expect(expecting).toMatch(/^HTTP\/1\.1 417 Expectation Failed\r\n/);
    expect(JSON.parse(expecting.split('\r\n\r\n')[1])).toMatchObject({
      error: 'expectation_failed',
      message: 'Expect: foo is not supported; only 100-continue is',
    });
    // HTTP/1.1 without Host: node:http answered 400 with no body; HTTP/1.0 needs none.
    const hostless = await rawAnswer('POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n');
    expect(hostless).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(hostless.split('\r\n\r\n')[1])).toMatchObject({
      error: 'bad_request',
      message: 'An HTTP/1.1 request needs a Host header',
    });
    const old = await rawAnswer('POST /echo HTTP/1.0\r\nContent-Length: 0\r\n\r\n');
    expect(old).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
    // Two Hosts: node:http kept the first, where a proxy in front may have routed by the second.
    const twoHosts = await rawAnswer(
      'POST /echo HTTP/1.1\r\nHost: a\r\nhost: b\r\nContent-Length: 0\r\n\r\n',
    );
    expect(twoHosts).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(twoHosts.split('\r\n\r\n')[1])).toMatchObject({
      error: 'bad_request',
      message: 'A request has one Host header; this one has 2',
    });
    // One Host holding two, as a proxy merges them: which one it routed by is as unknown.
    const merged = await rawAnswer(
      'POST /echo HTTP/1.1\r\nHost: a, b\r\nContent-Length: 0\r\n\r\n',
    );
    expect(merged).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(merged.split('\r\n\r\n')[1])).toMatchObject({
      error: 'bad_request',
      message: 'Host "a, b" is not a host name or address with an optional port',
    });
    const mergedTight = await rawAnswer(
      'POST /echo HTTP/1.1\r\nHost: a,b\r\nContent-Length: 0\r\n\r\n',
    );
    expect(mergedTight).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    const hosts = ['', 'API.example.com.', '127.0.0.1:3000', '[::1]:3000', '[fe80::1%25eth0]:3000'];
    for (const host of [...hosts, 'ev-fleet_1:80']) {
      const valid = await rawAnswer(
        `POST /echo HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      expect(valid).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
    }
  });

  test('when a request without a body expects 100 Continue, then it gets it at once and keeps its connection', async () => {
    const { port } = server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true });
    const answer = await new Promise<{ continued: boolean; status: number; connection?: string }>(
      (resolve, reject) => {
        let continued = false;
        const req = request(
          {
            port,
            host: '127.0.0.1',
            method: 'POST',
            path: '/echo',
            agent,
            headers: { Expect: '100-continue', 'Content-Length': '0' },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              resolve({ continued, status: res.statusCode!, connection: res.headers.connection }),
            );
          },
        );
        req.on('continue', () => (continued = true));
        req.on('error', reject);
        req.end();
      },
    );
    agent.destroy();
    expect(answer).toEqual({ continued: true, status: 201, connection: 'keep-alive' });
  });

  test('when bad bytes follow a valid request on its connection (pipelined), then that request is answered first, then the bad bytes get their 400', async () => {
    const answer = await rawAnswer(
      'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"kwh":1.5}GARBAGE\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
    expect(answer).toContain('{"body":{"kwh":1.5}');
    expect(answer).toMatch(
      /\r\n\r\nHTTP\/1\.1 400 Bad Request\r\n|}HTTP\/1\.1 400 Bad Request\r\n/,
    );
  });

  test('when a client keeps its side open after a CONNECT is answered, then the server closes the socket all the same (no HTTP timeout watches it)', async () => {
    const { port } = server.address() as AddressInfo;
    const serverSide = new Promise<Socket>((resolve) =>
      server.once('connection', (socket: Socket) => resolve(socket)),
    );
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    client.write('CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n');
    client.resume(); // reads the answer, so its end arrives
    await new Promise((resolve) => client.once('end', resolve));
    const socket = await serverSide;
    // Only end() on the server's side left it half open, waiting for the client's end for ever.
    const closed = await Promise.race([
      new Promise<boolean>((resolve) =>
        socket.destroyed ? resolve(true) : socket.once('close', () => resolve(true)),
      ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000)),
    ]);
    client.destroy();
    expect(closed).toBe(true);
  });
});

describe('a request asking to switch to another protocol than WebSocket', () => {
  test('when a client asks for HTTP/2 (Upgrade: h2c) beside a WebSocket endpoint, then it is served as HTTP/1.1, its body and the next request on the connection too', async () => {
    const app = createExpress();
    app.use(express.json());
    app.post('/echo', (req, res) => {
      res.status(201).json({ body: req.body as unknown, upgrade: req.headers.upgrade ?? null });
    });
    app.get('/ping', (_req, res) => res.json({ pong: true }));
    app.get('/slow', (_req, res) => setTimeout(() => res.json({ slow: true }), 300));
    const server = createHttpServer(app);
    // As the OCPP endpoint's: with an 'upgrade' listener, node:http hands it every Upgrade.
    onWebSocketUpgrade(
      server,
      (_req, socket) => socket.destroy(),
      (_req, socket) => socket.destroy(),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const body = JSON.stringify({ kwh: 1.5 });
      const raw = await new Promise<string>((resolve) => {
        const socket = connect(port, '127.0.0.1', () =>
          socket.write(
            'POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n' +
              'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n' +
              `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
              'GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
          ),
        );
        let text = '';
        socket.on('data', (d) => (text += d.toString()));
        socket.on('close', () => resolve(text));
      });
      const answers = raw.split(/HTTP\/1\.1 (?=\d{3} )/).filter(Boolean);
      expect(answers.map((a) => a.slice(0, 3))).toEqual(['201', '200']);
      expect(answers[0]).toContain('{"body":{"kwh":1.5},"upgrade":null}');
      expect(answers[1]).toContain('{"pong":true}');
      // Pipelined behind a request still being answered, it is answered after it.
      const behind = await new Promise<string>((resolve) => {
        const socket = connect(port, '127.0.0.1', () =>
          socket.write(
            'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n' +
              'GET /ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n',
          ),
        );
        let text = '';
        socket.on('data', (d) => (text += d.toString()));
        socket.on('close', () => resolve(text));
      });
      expect(
        behind
          .split(/HTTP\/1\.1 (?=\d{3} )/)
          .filter(Boolean)
          .map((a) => a.slice(-13)),
      ).toEqual(['{"slow":true}', '{"pong":true}']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('a request whose body never arrives whole', () => {
  const app = createExpress();
  app.use(express.json());
  app.post('/echo', (req, res) => {
    res.status(201).json({ body: req.body as unknown });
  });
  let server: Server;
  let port: number;
  const serverSockets: Socket[] = [];

  beforeAll(async () => {
    server = createHttpServer(app);
    // Short, for the API's minute: node:http looks every 2 s (createHttpServer). Of the two it
    // takes the shorter for the headers and the longer for the whole request: both short here.
    server.requestTimeout = 1000;
    server.headersTimeout = 1000;
    server.on('connection', (socket: Socket) => serverSockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const partialRequest =
    'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"a":';

  /** Whether the server's side of its newest connection closes within `ms`. */
  const serverSideCloses = async (ms: number) => {
    const socket = serverSockets.at(-1)!;
    return Promise.race([
      new Promise<boolean>((resolve) =>
        socket.destroyed ? resolve(true) : socket.once('close', () => resolve(true)),
      ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
    ]);
  };

  test('when the client stalls mid-body past requestTimeout, then it is answered 408 in JSON and the connection closed', async () => {
    const client = connect(port, '127.0.0.1', () => client.write(partialRequest));
    let text = '';
    client.on('data', (d) => (text += d.toString()));
    const closed = await new Promise<boolean>((resolve) => {
      client.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 8000);
    });
    client.destroy();
    expect(closed).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(JSON.parse(text.split('\r\n\r\n')[1])).toMatchObject({ error: 'request_timeout' });
  }, 15_000);

  test('when the client closes its side mid-body, then the server closes its own (no socket left half open)', async () => {
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () =>
      client.write(partialRequest),
    );
    client.resume();
    await new Promise((resolve) => setTimeout(resolve, 200));
    client.end();
    const closed = await serverSideCloses(8000);
    client.destroy();
    expect(closed).toBe(true);
  }, 15_000);
});
