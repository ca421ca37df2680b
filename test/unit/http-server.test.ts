import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';

import { createExpress, createHttpServer } from '../../src/http/http-server';

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
    server = createHttpServer(app, { bodyLimitBytes: 1000 });
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

  test('when a client asks to continue (Expect: 100-continue) with a body declared over the limit, then it is refused before sending it; within the limit, it is invited', async () => {
    const { port } = server.address() as AddressInfo;
    /** What the server answers to headers alone, then (if invited) to the body. */
    const exchange = (length: number) =>
      new Promise<string>((resolve) => {
        const body = JSON.stringify({ pad: 'x'.repeat(length - 10) });
        const socket = connect(port, '127.0.0.1', () =>
          socket.write(
            `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
              `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
          ),
        );
        let text = '';
        socket.on('data', (d) => {
          text += d.toString();
          if (text.startsWith('HTTP/1.1 100') && !text.includes('201')) socket.write(body);
        });
        socket.on('close', () => resolve(text));
      });
    const refused = await exchange(5000);
    expect(refused).toMatch(/^HTTP\/1\.1 413 /);
    expect(refused).toContain('"error":"payload_too_large"');
    expect(refused).not.toContain('100 Continue');
    const invited = await exchange(100);
    expect(invited).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
  });

  test('when node:http refuses a request before Express (headers over 16 KB, not HTTP), then the answer is JSON too', async () => {
    const long = await fetch(`${url}/echo?x=${'a'.repeat(17_000)}`, { method: 'POST' });
    expect(long.status).toBe(431);
    expect(await long.json()).toMatchObject({ error: 'headers_too_large' });
    const { port } = server.address() as AddressInfo;
    const raw = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(JSON.parse(raw.split('\r\n\r\n')[1])).toMatchObject({ error: 'bad_request' });
  });
});
