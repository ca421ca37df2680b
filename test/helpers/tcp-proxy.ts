import net from 'node:net';
import path from 'node:path';

interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
}

/**
 * A TCP proxy in front of a real server (PostgreSQL here), for faults a test can switch on and off:
 * `cut()` drops every connection and refuses new ones, as a dead server does; `freeze()` keeps
 * every connection open but forwards nothing, as a vanished host or a network partition does (no
 * error, no answer); `restore()` / `thaw()` undo them; `retarget()` points it at another server.
 * With `socketDir`, it listens on PostgreSQL's Unix socket in that folder instead of a port, and
 * `cut()` removes the socket's file, as a stopped PostgreSQL does.
 */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly pairs = new Set<Pair>();
  private frozen = false;

  private constructor(
    private target: { host: string; port: number },
    public port = 0,
    private readonly socketDir: string | null = null,
  ) {}

  static async start(
    target: { host: string; port: number },
    socketDir: string | null = null,
  ): Promise<TcpProxy> {
    const proxy = new TcpProxy(target, 0, socketDir);
    await proxy.restore();
    return proxy;
  }

  /** A proxy in front of the server a connection URL names (on a Unix socket in `socketDir`). */
  static inFrontOf(url: string, socketDir: string | null = null): Promise<TcpProxy> {
    const { hostname, port } = new URL(url);
    return TcpProxy.start({ host: hostname, port: Number(port || 5432) }, socketDir);
  }

  /** The URL with its host and port replaced by the proxy's (its socket's folder, `?host=`). */
  rewrite(url: string): string {
    const parsed = new URL(url);
    if (this.socketDir) {
      // A host left empty: the socket's folder goes in `host` (its password and options kept).
      parsed.searchParams.set('host', this.socketDir);
      return parsed.toString().replace(`${parsed.host}/`, '/');
    }
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  async restore(): Promise<void> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (this.socketDir) server.listen(path.join(this.socketDir, '.s.PGSQL.5432'), resolve);
      else server.listen(this.port, '127.0.0.1', () => resolve());
    });
    if (!this.socketDir) this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const pair of this.pairs) this.destroy(pair);
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  freeze(): void {
    this.frozen = true;
    for (const pair of this.pairs) {
      pair.client.unpipe();
      pair.upstream?.unpipe();
      pair.client.pause();
      pair.upstream?.pause();
    }
  }

  /** New connections go to `target`; those open stay where they are, as a moved address does. */
  retarget(target: { host: string; port: number }): void {
    this.target = target;
  }

  thaw(): void {
    this.frozen = false;
    for (const pair of this.pairs) this.forward(pair);
  }

  private accept(client: net.Socket): void {
    const pair: Pair = { client, upstream: null };
    this.pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => this.destroy(pair));
    if (this.frozen) client.pause();
    else this.forward(pair);
  }

  private forward(pair: Pair): void {
    if (!pair.upstream) {
      const upstream = net.connect(this.target.port, this.target.host);
      upstream.on('error', () => undefined);
      upstream.on('close', () => this.destroy(pair));
      pair.upstream = upstream;
    }
    pair.client.pipe(pair.upstream);
    pair.upstream.pipe(pair.client);
    pair.client.resume();
    pair.upstream.resume();
  }

  private destroy(pair: Pair): void {
    this.pairs.delete(pair);
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
