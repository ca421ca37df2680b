import { startConnectorGuardRestore } from '../../src/ocpp/connector-guard-restore';
import { capturingLogger } from '../helpers/capturing-logger';
import { waitFor } from '../helpers/engine';

/** A restore over fakes: `recorded` charge point ids in PostgreSQL, each listing failing `failures` times first. */
function restoreOver(recorded: string[], failures = 0) {
  const { logger, lines } = capturingLogger();
  let ready: () => void = () => undefined;
  const marked: string[][] = [];
  let failed = 0;
  let gate: Promise<void> = Promise.resolve();
  const state = {
    onReady(listener: () => void) {
      ready = listener;
      return () => (ready = () => undefined);
    },
    async markRecorded(ids: readonly string[]) {
      await gate;
      marked.push([...ids]);
    },
  };
  const chargePoints = {
    async ids(limit: number, after: string | null) {
      if (failed < failures) {
        failed++;
        throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      }
      return recorded.filter((id) => after === null || id > after).slice(0, limit);
    },
  };
  const holdMarks = () => {
    let release: () => void = () => undefined;
    gate = new Promise((r) => (release = r));
    return () => {
      gate = Promise.resolve();
      release();
    };
  };
  const restore = startConnectorGuardRestore({ state, chargePoints, logger, retryMs: 10 });
  return { restore, marked, lines, ready: () => ready(), holdMarks };
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `CP-${String(i).padStart(5, '0')}`);

describe("restoring the OCPP connectors' guard in Redis", () => {
  test('when it starts, then every recorded charge point is marked, a page at a time', async () => {
    const all = ids(2500);
    const { restore, marked } = restoreOver(all);
    await waitFor(async () => marked.flat().length === 2500, 5_000, 'all marked');
    expect(marked.map((page) => page.length)).toEqual([1000, 1000, 500]);
    expect(marked.flat()).toEqual(all);
    await restore.stop();
  });

  test('when PostgreSQL fails, then it says so once, retries, and says when the connectors are guarded again', async () => {
    const { restore, marked, lines } = restoreOver(ids(3), 4);
    await waitFor(async () => marked.length === 1, 5_000, 'marked after the retries');
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      [
        40,
        "charge points' connectors not guarded again in Redis yet (PostgreSQL or Redis failed): readings for them from other sources are not refused until then; retrying",
      ],
      [30, "charge points' connectors guarded again in Redis"],
    ]);
    await restore.stop();
  });

  test('when Redis is ready again during a restore, then it runs once more after it; stopped, it waits for the one in progress and does no more', async () => {
    const { restore, marked, ready, holdMarks, lines } = restoreOver(ids(2));
    await waitFor(async () => marked.length === 1, 5_000, 'the first restore');
    const release = holdMarks();
    ready();
    ready(); // twice during one restore: one more run, not two
    await new Promise((r) => setTimeout(r, 20));
    release();
    await waitFor(async () => marked.length === 3, 5_000, 'the second and third restore');
    await new Promise((r) => setTimeout(r, 50));
    expect(marked).toHaveLength(3);

    const releaseLast = holdMarks();
    ready();
    const stopped = restore.stop();
    let done = false;
    void stopped.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    releaseLast();
    await stopped;
    ready();
    await new Promise((r) => setTimeout(r, 20));
    expect(marked).toHaveLength(4);
    expect(lines.filter((l) => (l.level as number) >= 40)).toEqual([]);
  });
});
