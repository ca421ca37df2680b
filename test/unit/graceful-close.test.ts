import { Agent, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { trackRequests, type GracefulClose } from '../../src/http/graceful-close';
import { createExpress, createHttpServer } from '../../src/http/http-server';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Answer {
  status: number;
  connection: string | undefined;
}

describe('trackRequests: closing an HTTP server without cutting a request', () => {
  let server: Server;
  let requests: GracefulClose;
  let port: number;
  /** Requests the handler has received: a test closes once its request is in progress. */
  let arrived: number;

  const waitUntil = async (holds: () => boolean) => {
    while (!holds()) await sleep(5);
  };

  beforeEach(async () => {
    arrived = 0;
    const app = createExpress();
    app.get('/slow/:ms', (req, res) => {
      arrived += 1;
      setTimeout(() => res.json({ ok: true }), Number(req.params.ms));
    });
    server = createHttpServer(app);
    requests = trackRequests(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** One GET on `agent`: its status and Connection header, or the error's code. */
  const get = (agent: Agent, ms: number, headers: Record<string, string> = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const options = { port, host: '127.0.0.1', path: `/slow/${ms}`, agent, headers };
      const req = request(options, (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ status: res.statusCode!, connection: res.headers.connection }),
        );
      });
      req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code ?? err.message)));
      req.end();
    });

  test('when it closes, then a request in progress is answered, with Connection: close', async () => {
    const agent = new Agent({ keepAlive: true });
    const answer = get(agent, 200);
    await waitUntil(() => arrived === 1);
    const closed = requests.close(5_000);
    await expect(answer).resolves.toEqual({ status: 200, connection: 'close' });
    await closed;
    agent.destroy();
  });

  test('when it closes while a request that expects 100 Continue is in progress, then that one is waited for and answered with Connection: close too', async () => {
    const agent = new Agent({ keepAlive: true });
    // Past IDLE_GRACE_MS: a request the close does not know of is not waited for.
    const answer = get(agent, 1500, { Expect: '100-continue' });
    await waitUntil(() => arrived === 1);
    const closed = requests.close(5_000);
    await expect(answer).resolves.toEqual({ status: 200, connection: 'close' });
    await closed;
    agent.destroy();
  });

  test('when a client sends on its idle keep-alive connection just after the close, then it is answered, not reset', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    await expect(get(agent, 0)).resolves.toEqual({ status: 200, connection: 'keep-alive' });
    const closed = requests.close(5_000);
    await sleep(100);
    await expect(get(agent, 0)).resolves.toEqual({ status: 200, connection: 'close' });
    await closed;
    // Listening stopped: a new connection is refused, which a client can retry elsewhere.
    await expect(get(agent, 0)).rejects.toThrow('ECONNREFUSED');
    agent.destroy();
  });

  test('when keep-alive clients send without pause while it closes, then none sees a reset: each is answered until its connection closes, then refused', async () => {
    const errors: string[] = [];
    let answered = 0;
    let stop = false;
    const client = async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      while (!stop) {
        try {
          await get(agent, 5);
          answered += 1;
        } catch (err) {
          const code = (err as Error).message;
          if (code === 'ECONNREFUSED') break;
          errors.push(code);
        }
      }
      agent.destroy();
    };
    const clients = Array.from({ length: 12 }, client);
    // The clients are in full flow when the close comes.
    await waitUntil(() => answered > 0);
    await sleep(100);
    await requests.close(5_000);
    // As the API does once it has stored what it accepted: whatever is still open is cut.
    server.closeAllConnections();
    stop = true;
    await Promise.all(clients);
    expect(errors).toEqual([]);
  });
});
