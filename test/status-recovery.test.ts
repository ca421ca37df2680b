import pino from 'pino';
import { TimeoutError } from 'ocpp-rpc';
import { StatusRecovery } from '../src/ocpp/status-recovery';
import type { LiveConnection } from '../src/ocpp/charge-point-state';
import { waitFor } from './helpers/engine';

/** A charge point's TriggerMessage call, answered when the test says so. */
interface Pending {
  connection: LiveConnection;
  signal: AbortSignal;
  answer(status: unknown): void;
  fail(err: Error): void;
}

const connection = (chargePointId: string): LiveConnection => ({
  chargePointId,
  connection: `c-${chargePointId}`,
  connectedAt: new Date(),
});

/** A StatusRecovery whose asks wait for the test; `gone` connections are no longer here. */
function recoveryWithLog(gone = new Set<LiveConnection>()) {
  const lines: string[] = [];
  const pending: Pending[] = [];
  let inFlight = 0;
  let mostAtOnce = 0;
  const recovery = new StatusRecovery({
    ask: (asked, { signal }) => {
      if (gone.has(asked)) return null;
      inFlight += 1;
      mostAtOnce = Math.max(mostAtOnce, inFlight);
      return new Promise((resolve, reject) => {
        pending.push({
          connection: asked,
          signal,
          answer: (status) => resolve({ status }),
          fail: reject,
        });
        signal.addEventListener('abort', () => reject(new Error('aborted')));
      }).finally(() => (inFlight -= 1));
    },
    logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
  });
  const answerAll = (status: unknown) => {
    for (const p of pending.splice(0)) p.answer(status);
  };
  const summary = async () => {
    await waitFor(async () => lines.length > 0, 5_000, 'the summary line');
    return JSON.parse(lines.shift() as string).answers as Record<string, number>;
  };
  return { recovery, lines, pending, answerAll, summary, mostAtOnce: () => mostAtOnce };
}

describe('asking charge points for their statuses after Redis lost them', () => {
  test('when many are to be asked, then at most 20 at once, each once, and one line says how they answered', async () => {
    const { recovery, pending, answerAll, summary, mostAtOnce } = recoveryWithLog();
    const all = Array.from({ length: 45 }, (_, i) => connection(`CP-${i}`));
    recovery.add(all);
    recovery.add([all[0], all[44]]); // being asked, and waiting: neither asked twice
    const asked: LiveConnection[] = [];
    for (const status of ['Accepted', 'NotImplemented', 'Rejected']) {
      await waitFor(async () => pending.length > 0, 5_000, 'asks in flight');
      asked.push(...pending.map((p) => p.connection));
      answerAll(status);
    }
    expect(asked).toEqual(all);
    expect(mostAtOnce()).toBe(20);
    expect(await summary()).toEqual({ Accepted: 20, NotImplemented: 20, Rejected: 5 });
    // A later wave is told of on its own.
    recovery.add([all[0]]);
    await waitFor(async () => pending.length === 1, 5_000, 'the next wave');
    answerAll('Accepted');
    expect(await summary()).toEqual({ Accepted: 1 });
  });

  test('when charge points refuse the call, do not answer in time or are gone, then the line tells each apart', async () => {
    const gone = connection('CP-GONE');
    const { recovery, pending, summary } = recoveryWithLog(new Set([gone]));
    recovery.add([connection('CP-OLD'), connection('CP-SILENT'), gone]);
    await waitFor(async () => pending.length === 2, 5_000, 'both asked');
    pending[0].fail(
      Object.assign(new Error('not implemented'), { rpcErrorCode: 'NotImplemented' }),
    );
    pending[1].fail(new TimeoutError('Call timeout'));
    expect(await summary()).toEqual({
      'CALLERROR NotImplemented': 1,
      'no answer in time': 1,
      gone: 1,
    });
  });

  test('when stopped, then each ask in flight is abandoned (its own signal aborted), none is made after, and nothing is told', async () => {
    const { recovery, lines, pending } = recoveryWithLog();
    recovery.add([connection('CP-A'), connection('CP-B')]);
    await waitFor(async () => pending.length === 2, 5_000, 'both asked');
    expect(pending[0].signal).not.toBe(pending[1].signal);
    recovery.stop();
    expect(pending.map((p) => p.signal.aborted)).toEqual([true, true]);
    recovery.add([connection('CP-LATER')]);
    await new Promise((r) => setImmediate(r));
    expect(pending.map((p) => p.connection.chargePointId)).toEqual(['CP-A', 'CP-B']);
    expect(lines).toEqual([]);
  });
});
