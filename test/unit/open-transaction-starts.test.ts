import { OpenTransactionStarts } from '../../src/ocpp/open-transaction-starts';

describe('OpenTransactionStarts', () => {
  test('when many charge points ask at once, then one read serves them all; a fresh answer is not read again; forget reads again', async () => {
    const reads: string[][] = [];
    let now = 0;
    const starts = new OpenTransactionStarts(
      async (ids) => {
        reads.push(ids);
        return ids.flatMap((id) =>
          id === 'CP-1'
            ? [{ chargePointId: id, connectorId: 2, meterStartWh: 5000, startedAt: new Date(3000) }]
            : [],
        );
      },
      () => now,
    );
    const asked = await Promise.all(
      Array.from({ length: 2500 }, (_, i) => starts.startOf(`CP-${i % 1500}`, 2)),
    );
    // 1,500 charge points, at most 1,000 a statement: two reads, not 2,500.
    expect(reads.map((ids) => ids.length)).toEqual([1000, 500]);
    expect(asked[1]).toEqual({ wh: 5000, atMs: 3000 });
    expect(asked.filter((start) => start !== null)).toHaveLength(2); // CP-1, asked twice
    expect(await starts.startOf('CP-1', 1)).toBeNull();
    expect(reads).toHaveLength(2);
    starts.forget('CP-1');
    await starts.startOf('CP-1', 2);
    expect(reads.at(-1)).toEqual(['CP-1']);
    now += 61_000; // known for a minute
    await starts.startOf('CP-2', 2);
    expect(reads.at(-1)).toEqual(['CP-2']);
  });

  test('when a transaction starts while a read is in flight, then that read does not bring back the old answer', async () => {
    let open: {
      chargePointId: string;
      connectorId: number;
      meterStartWh: number;
      startedAt: Date;
    }[] = [];
    let release = () => undefined as void;
    const starts = new OpenTransactionStarts(async () => {
      const answer = open; // read before the start is written
      await new Promise<void>((resolve) => (release = resolve));
      return answer;
    });
    const inFlight = starts.startOf('CP-1', 1);
    await new Promise((r) => setImmediate(r));
    open = [{ chargePointId: 'CP-1', connectorId: 1, meterStartWh: 5000, startedAt: new Date(0) }];
    starts.forget('CP-1'); // the start is written
    release();
    await inFlight;
    // Kept, the stale "no transaction" held for a minute: the next ask reads again.
    const next = starts.startOf('CP-1', 1);
    await new Promise((r) => setImmediate(r));
    release();
    expect(await next).toEqual({ wh: 5000, atMs: 0 });
  });

  test('when the read fails, then the askers get the error and the next ask reads again', async () => {
    let fail = true;
    const starts = new OpenTransactionStarts(async () => {
      if (fail) throw new Error('PostgreSQL down');
      return [];
    });
    await expect(starts.startOf('CP-1', 1)).rejects.toThrow('PostgreSQL down');
    fail = false;
    await expect(starts.startOf('CP-1', 1)).resolves.toBeNull();
  });
});
