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
