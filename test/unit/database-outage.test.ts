import { DatabaseOutageGuard } from '../../workers/database-outage';
import { capturingLogger } from '../helpers/capturing-logger';

const driverError = (code: string, message: string) => Object.assign(new Error(message), { code });

/** A guard whose probe fails with each of `failures` in turn, then succeeds. */
function guardProbing(failures: Error[]) {
  const { logger, lines } = capturingLogger();
  const states: boolean[] = [];
  let probes = 0;
  const guard = new DatabaseOutageGuard({
    probe: async () => {
      const failure = failures[probes++];
      if (failure) throw failure;
    },
    logger,
    probeIntervalMs: 5,
    pause: async () => undefined,
    resume: () => undefined,
    onChange: (down) => states.push(down),
  });
  const probed = async (count: number) => {
    while (probes < count) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
  };
  return { guard, lines, states, probed };
}

describe('the flusher paused for PostgreSQL', () => {
  test('when PostgreSQL refuses the login, then the flusher pauses, says why once however often the probe is refused, and resumes once it lets in', async () => {
    const refused = driverError('28P01', 'password authentication failed for user "energy"');
    const { guard, lines, states, probed } = guardProbing([refused, refused, refused]);
    guard.report(refused);
    await probed(4);
    guard.stop();

    expect(states).toEqual([true, false]);
    expect(lines.map((l) => [l.msg, l.reason])).toEqual([
      [
        'PostgreSQL unavailable: flusher paused, readings wait in the queue until it is back',
        undefined,
      ],
      ['PostgreSQL answers but the flusher cannot resume yet', refused.message],
      ['PostgreSQL is back: flusher resumed', undefined],
    ]);
  });

  test('when PostgreSQL keeps refusing the login, then the probes slow down, doubling up to a limit, and an outage after it is probed at the interval again', async () => {
    jest.useFakeTimers();
    try {
      const refused = driverError('28P01', 'password authentication failed for user "energy"');
      const down = driverError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432');
      const failures = [...Array<Error>(6).fill(refused), down, down];
      const probedAt: number[] = [];
      const guard = new DatabaseOutageGuard({
        probe: async () => {
          probedAt.push(Date.now());
          const failure = failures[probedAt.length - 1];
          if (failure) throw failure;
        },
        logger: capturingLogger().logger,
        probeIntervalMs: 100,
        refusedProbeMaxMs: 1000,
        pause: async () => undefined,
        resume: () => undefined,
      });
      const start = Date.now();
      guard.report(refused);
      await jest.advanceTimersByTimeAsync(10_000);
      guard.stop();
      const gaps = probedAt.map((at, i) => at - (i === 0 ? start : probedAt[i - 1]));
      expect(gaps).toEqual([100, 200, 400, 800, 1000, 1000, 1000, 100, 100]);
    } finally {
      jest.useRealTimers();
    }
  });

  test('when PostgreSQL cannot be reached, then the probe failures say nothing more than the pause did', async () => {
    const down = driverError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432');
    const { guard, lines, probed } = guardProbing([down, down]);
    guard.report(down);
    await probed(3);
    guard.stop();

    expect(lines.map((l) => l.msg)).toEqual([
      'PostgreSQL unavailable: flusher paused, readings wait in the queue until it is back',
      'PostgreSQL is back: flusher resumed',
    ]);
  });
});
