import { setTimeout as sleep } from 'node:timers/promises';
import { Server as NetServer } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * Keep-alive connections idle for this long after the server stops listening are closed. A
 * client that sends on one within it is answered (with `Connection: close`) instead of finding the
 * connection reset under its request.
 */
export const IDLE_GRACE_MS = 1_000;

export interface GracefulClose {
  /**
   * Stops listening and ends every keep-alive connection without cutting a request: each answer
   * from now on carries `Connection: close`, requests in progress and those that arrive on an open
   * connection within IDLE_GRACE_MS are answered, then idle connections are closed. Resolves when
   * every request is answered, or after `timeoutMs` (the caller closes what is left).
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Tracks an HTTP server's requests in progress so that it can close gracefully. node:http's own
 * `close()` closes idle keep-alive connections at once, so a request already on its way to one
 * is reset, and answers requests in progress as keep-alive, so their clients send more on
 * connections the process is about to cut. (WebSocket upgrades are not requests: their
 * endpoint closes them.)
 */
export function trackRequests(server: Server): GracefulClose {
  const inProgress = new Set<ServerResponse>();
  let closing = false;
  function forget(this: ServerResponse): void {
    inProgress.delete(this);
  }
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    inProgress.add(res);
    res.once('close', forget);
    if (closing) res.setHeader('Connection', 'close');
  });

  return {
    async close(timeoutMs) {
      closing = true;
      for (const res of inProgress) if (!res.headersSent) res.setHeader('Connection', 'close');
      // net.Server's close stops listening; http.Server's would also close idle connections now.
      NetServer.prototype.close.call(server);
      const deadline = Date.now() + timeoutMs;
      await sleep(Math.min(IDLE_GRACE_MS, timeoutMs));
      while (inProgress.size > 0 && Date.now() < deadline) await sleep(10);
      server.closeIdleConnections();
    },
  };
}
