import pino from 'pino';
import { StatusRecovery } from '../src/ocpp/status-recovery';
import { waitFor } from './helpers/engine';

/** A charge point's answer to TriggerMessage, given when the test says so. */
interface Pending {
  chargePointId: string;
  signal: AbortSignal;
  answer(status: unknown): void;
  fail(err: Error): void;
}

function recoveryWithLog() {
  const lines: string[] = [];
  const pending: Pending[] = [];
  let mostAtOnce = 0;
  const recovery = new StatusRecovery({
    ask: (chargePointId, { signal }) =>
      new Promise((resolve, reject) => {
        pending.push({
          chargePointId,
          signal,
          answer: (status) => resolve({ status }),
          fail: reject,
        });
        signal.addEventListener('abort', () => reject(new Error('aborted')));
        mostAtOnce = Math.max(mostAtOnce, pending.filter((p) => !p.signal.aborted).length);
      }),
    logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
  });
  const answerAll = (status: unknown) => {
    for (const p of pending.splice(0)) p.answer(status);
  };
  return { recovery, lines, pending, answerAll, mostAtOnce: () => mostAtOnce };
}

describe('asking charge points for their statuses after Redis lost them', () => {
  test('when many are to be asked, then at most 20 at once, each once, and one line says how they answered', async () => {
    const { recovery, lines, pending, answerAll, mostAtOnce } = recoveryWithLog();
    const ids = Array.from({ length: 45 }, (_, i) => `CP-${i}`);
    recovery.add(ids);
    recovery.add(['CP-44']); // still waiting: not asked twice
    const asked: string[] = [];
    for (const status of ['Accepted', 'NotImplemented', 'Rejected']) {
      await waitFor(async () => pending.length > 0, 5_000, 'asks in flight');
      asked.push(...pending.map((p) => p.chargePointId));
      answerAll(status);
    }
    expect(asked.sort()).toEqual([...ids].sort());
    expect(mostAtOnce()).toBe(20);
    await waitFor(async () => lines.length > 0, 5_000, 'the summary');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]).answers).toEqual({ Accepted: 20, NotImplemented: 20, Rejected: 5 });
  });

  test('when a charge point refuses the call or never answers, then it counts as failed; stop abandons what is in flight', async () => {
    const { recovery, lines, pending } = recoveryWithLog();
    recovery.add(['CP-ERR', 'CP-SILENT']);
    await waitFor(async () => pending.length === 2, 5_000, 'both asked');
    pending[0].fail(new Error('NotImplemented'));
    recovery.stop();
    expect(pending[1].signal.aborted).toBe(true);
    recovery.add(['CP-LATER']); // stopped: asks no more
    await new Promise((r) => setImmediate(r));
    expect(pending.map((p) => p.chargePointId)).toEqual(['CP-ERR', 'CP-SILENT']);
    expect(lines).toEqual([]); // a shutdown is not a recovery to report
  });
});
