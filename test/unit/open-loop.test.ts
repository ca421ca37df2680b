import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { openLoop, quantile } from '../../bench/open-loop';

/** A local server; `respond` decides when and how each request is answered. */
async function serve(
  respond: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
) {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => respond(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const answer = (res: http.ServerResponse, status: number) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');

describe('open-loop generator', () => {
  it('sends every scheduled request, with its body, and counts statuses and errors', async () => {
    const bodies: string[] = [];
    const server = await serve((req, res, body) => {
      bodies.push(body);
      answer(res, req.url === '/fail' ? 500 : 202);
    });
    try {
      const result = await openLoop({
        url: server.url,
        ratePerS: 200,
        durationS: 0.5,
        request: (i) =>
          i % 10 === 9
            ? { method: 'GET', path: '/fail' }
            : { method: 'POST', path: '/ok', body: `{"n":${i}}` },
      });
      expect(result.sent).toBe(100);
      expect(result.ok).toBe(90);
      expect(result.errors).toBe(10);
      expect(result.statuses).toEqual({ 202: 90, 500: 10 });
      expect(bodies.filter((b) => b !== '').sort()).toEqual(
        Array.from({ length: 100 }, (_, i) => i)
          .filter((i) => i % 10 !== 9)
          .map((i) => `{"n":${i}}`)
          .sort(),
      );
      expect(result.p50Ms).toBeLessThanOrEqual(result.p99Ms);
      expect(result.p99Ms).toBeLessThanOrEqual(result.maxMs);
      expect(result.connections).toBeGreaterThanOrEqual(1);
    } finally {
      await server.close();
    }
  });

  it('counts a delayed response in the latency, from its scheduled send', async () => {
    const delayMs = 300;
    const server = await serve((req, res) => {
      if (req.url === '/slow') setTimeout(() => answer(res, 200), delayMs);
      else answer(res, 200);
    });
    try {
      const result = await openLoop({
        url: server.url,
        ratePerS: 100,
        durationS: 0.3,
        request: (i) => ({ method: 'GET', path: i === 5 ? '/slow' : '/fast' }),
      });
      expect(result.ok).toBe(30);
      expect(result.maxMs).toBeGreaterThanOrEqual(delayMs);
    } finally {
      await server.close();
    }
  });

  it('sends on schedule without waiting for responses', async () => {
    // Nothing is answered until every request has arrived: a generator that waited for a response
    // before sending the next (a closed loop, on any fixed number of connections) never finishes.
    const total = 60;
    const held: http.ServerResponse[] = [];
    const server = await serve((_req, res) => {
      held.push(res);
      if (held.length === total) for (const r of held) answer(r, 200);
    });
    try {
      const ratePerS = 200;
      const result = await openLoop({
        url: server.url,
        ratePerS,
        durationS: total / ratePerS,
        request: () => ({ method: 'GET', path: '/' }),
      });
      expect(result.sent).toBe(total);
      expect(result.ok).toBe(total);
      expect(result.connections).toBe(total);
      // The first request waited for the last one's scheduled send, (total - 1) intervals later.
      expect(result.maxMs).toBeGreaterThanOrEqual(((total - 1) * 1000) / ratePerS);
    } finally {
      await server.close();
    }
  });

  it('queues beyond maxConnections, the wait counted from the scheduled send', async () => {
    const delayMs = 100;
    const server = await serve((_req, res) => setTimeout(() => answer(res, 200), delayMs));
    try {
      const result = await openLoop({
        url: server.url,
        ratePerS: 100,
        durationS: 0.2,
        maxConnections: 2,
        request: () => ({ method: 'GET', path: '/' }),
      });
      expect(result).toMatchObject({ sent: 20, ok: 20, connections: 2 });
      // 20 requests of 100 ms on two connections take 1 s; the last was scheduled at 190 ms.
      expect(result.maxMs).toBeGreaterThanOrEqual(10 * delayMs - 190);
    } finally {
      await server.close();
    }
  });

  it('counts refused connections as errors', async () => {
    const server = await serve((_req, res) => answer(res, 200));
    const { url } = server;
    await server.close();
    const result = await openLoop({
      url,
      ratePerS: 100,
      durationS: 0.1,
      request: () => ({ method: 'GET', path: '/' }),
    });
    expect(result).toMatchObject({ sent: 10, ok: 0, errors: 10, statuses: { error: 10 } });
  });
});

describe('quantile', () => {
  it('takes the nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(sorted, 0.5)).toBe(50);
    expect(quantile(sorted, 0.99)).toBe(99);
    expect(quantile(sorted, 1)).toBe(100);
    expect(quantile([], 0.5)).toBeNaN();
  });
});
