import type { LiveConnection } from '../../src/ocpp/charge-point-state';
import { PresenceRefresh } from '../../src/ocpp/presence-refresh';

const connectionOf = (n: number): LiveConnection => ({
  chargePointId: `CP-${n}`,
  connection: `c${n}`,
  connectedAt: new Date(0),
});

describe('PresenceRefresh', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function started(ticks = 30, intervalMs = 30_000) {
    const sent: LiveConnection[][] = [];
    const presence = new PresenceRefresh((c) => sent.push(c), { intervalMs, ticks });
    presence.start();
    return { presence, sent };
  }

  it('tells each connection once an interval, a share of them each tick', () => {
    const { presence, sent } = started();
    const connections = Array.from({ length: 90 }, (_, n) => connectionOf(n));
    connections.forEach((c) => presence.add(c));

    jest.advanceTimersByTime(30_000);
    expect(sent).toHaveLength(30);
    expect(sent.every((slice) => slice.length === 3)).toBe(true);
    const told = sent.flat().map((c) => c.chargePointId);
    expect(new Set(told).size).toBe(90);

    // The next interval tells each again, in the same slice: once every 30 s, never 59 s apart.
    jest.advanceTimersByTime(30_000);
    expect(sent.slice(30)).toEqual(sent.slice(0, 30));
    presence.stop();
  });

  it('no longer tells a connection removed (closed or replaced), and sends nothing for an empty slice', () => {
    const { presence, sent } = started(3, 3000);
    const [a, b] = [connectionOf(1), connectionOf(2)];
    presence.add(a);
    presence.add(b);
    presence.remove(a);
    presence.remove(a); // closing after being replaced removes it again: nothing happens

    jest.advanceTimersByTime(3000);
    expect(sent).toEqual([[b]]);
    presence.stop();
  });

  it('stops telling once stopped', () => {
    const { presence, sent } = started(3, 3000);
    presence.add(connectionOf(1));
    presence.stop();
    jest.advanceTimersByTime(9000);
    expect(sent).toEqual([]);
  });
});
