import type { LiveConnection } from './charge-point-state';

/**
 * Tells Redis again, every `intervalMs`, that the charge points connected here still are (a
 * replica that dies stops, and its charge points read as disconnected). The interval is cut into
 * `ticks` slices and each connection keeps one slice for as long as it lives, so each is told once
 * an interval and each tick sends a share of them: all at once, 10,000 charge points' script calls
 * went out in one burst every 30 s, in front of every other command on the shared Redis connection.
 * (The bench's MeterValues tail did not come from those bursts: see the README's Performance.)
 */
export class PresenceRefresh {
  private readonly slices: Set<LiveConnection>[];
  private readonly sliceOf = new Map<LiveConnection, Set<LiveConnection>>();
  /** The slice the next connection joins: connections are dealt round the slices in turn. */
  private nextSlice = 0;
  private tick = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (connections: LiveConnection[]) => void,
    private readonly options: { intervalMs: number; ticks: number },
  ) {
    this.slices = Array.from({ length: options.ticks }, () => new Set());
  }

  start(): void {
    this.timer = setInterval(() => this.sendSlice(), this.options.intervalMs / this.options.ticks);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  add(connection: LiveConnection): void {
    const slice = this.slices[this.nextSlice];
    this.nextSlice = (this.nextSlice + 1) % this.slices.length;
    slice.add(connection);
    this.sliceOf.set(connection, slice);
  }

  /** No longer told: closed, or replaced by a newer connection of its charge point. */
  remove(connection: LiveConnection): void {
    this.sliceOf.get(connection)?.delete(connection);
    this.sliceOf.delete(connection);
  }

  private sendSlice(): void {
    const slice = this.slices[this.tick];
    this.tick = (this.tick + 1) % this.slices.length;
    if (slice.size > 0) this.send([...slice]);
  }
}
