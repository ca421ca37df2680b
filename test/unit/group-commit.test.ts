import { GroupCommitBuffer, type StoreBatches } from '../../src/telemetry/group-commit';
import type { Reading } from '../../src/devices/device-kinds';

/** `count` meter readings whose ids start with `tag`, so a batch shows whose readings it holds. */
const readings = (tag: string, count: number): Reading[] =>
  Array.from({ length: count }, (_, i) => ({
    type: 'meter',
    id: `${tag}${i}`,
    ts: 1_700_000_000_000 + i,
    kwhConsumedAc: 1,
    voltage: 230,
  }));

/** Tags of the readings in each batch: [['a', 'a'], ['b']]. */
const tags = (batches: Reading[][]) => batches.map((b) => b.map((r) => r.id.replace(/\d+$/, '')));

/** A store whose calls the test completes or fails by hand. */
function manualStore() {
  const calls: { batches: Reading[][]; resolve: () => void; reject: (err: unknown) => void }[] = [];
  const store: StoreBatches = (batches) =>
    new Promise<void>((resolve, reject) => calls.push({ batches, resolve, reject }));
  return { store, calls };
}

/** Lets the buffer's store loop run: it starts a store one macrotask after the first add. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Records how a promise settled, without awaiting it. */
function watch(promise: Promise<void>) {
  const state = {
    settled: 'pending' as 'pending' | 'resolved' | 'rejected',
    error: undefined as unknown,
  };
  promise.then(
    () => (state.settled = 'resolved'),
    (err: unknown) => {
      state.settled = 'rejected';
      state.error = err;
    },
  );
  return state;
}

describe('GroupCommitBuffer', () => {
  test('when the buffer is idle, then an add is stored at once and resolves once stored', async () => {
    const stored: Reading[][][] = [];
    const onStored = jest.fn();
    const buffer = new GroupCommitBuffer(
      async (batches) => void stored.push(batches),
      { batchSize: 10, maxBatchesPerStore: 4 },
      onStored,
    );
    await buffer.add(readings('a', 3));
    expect(stored.map(tags)).toEqual([[['a', 'a', 'a']]]);
    expect(onStored).toHaveBeenCalledWith(3, 1);
  });

  test('when adds arrive in the same tick, then they share the first store', async () => {
    const { store, calls } = manualStore();
    const buffer = new GroupCommitBuffer(store, { batchSize: 10, maxBatchesPerStore: 4 });
    const a = watch(buffer.add(readings('a', 2)));
    const b = watch(buffer.add(readings('b', 1)));
    await turn();
    expect(calls.map((c) => tags(c.batches))).toEqual([[['a', 'a', 'b']]]);
    calls[0].resolve();
    await turn();
    expect([a.settled, b.settled]).toEqual(['resolved', 'resolved']);
  });

  test('when adds arrive while a store is in flight, then they coalesce into the next store', async () => {
    const { store, calls } = manualStore();
    const buffer = new GroupCommitBuffer(store, { batchSize: 10, maxBatchesPerStore: 4 });
    const a = watch(buffer.add(readings('a', 1)));
    await turn();
    const b = watch(buffer.add(readings('b', 2)));
    await turn();
    const c = watch(buffer.add(readings('c', 1)));
    await turn();
    expect(calls).toHaveLength(1);
    expect([a.settled, b.settled, c.settled]).toEqual(['pending', 'pending', 'pending']);

    calls[0].resolve();
    await turn();
    expect(a.settled).toBe('resolved');
    expect(calls).toHaveLength(2);
    expect(tags(calls[1].batches)).toEqual([['b', 'b', 'c']]);
    expect([b.settled, c.settled]).toEqual(['pending', 'pending']);

    calls[1].resolve();
    await turn();
    expect([b.settled, c.settled]).toEqual(['resolved', 'resolved']);
  });

  test('when two stores may be in flight, then adds arriving while one is in flight are stored at once, and the third store waits', async () => {
    const { store, calls } = manualStore();
    const buffer = new GroupCommitBuffer(store, {
      batchSize: 10,
      maxBatchesPerStore: 4,
      maxStoresInFlight: 2,
    });
    const a = watch(buffer.add(readings('a', 1)));
    await turn();
    const b = watch(buffer.add(readings('b', 1)));
    await turn();
    const c = watch(buffer.add(readings('c', 1)));
    await turn();
    expect(calls.map((call) => tags(call.batches))).toEqual([[['a']], [['b']]]);

    calls[1].resolve();
    await turn();
    expect([a.settled, b.settled, c.settled]).toEqual(['pending', 'resolved', 'pending']);
    expect(tags(calls[2].batches)).toEqual([['c']]);

    calls[0].resolve();
    calls[2].resolve();
    await buffer.drain();
    expect([a.settled, c.settled]).toEqual(['resolved', 'resolved']);
  });

  test('when a group holds more readings than a batch, then it is stored as batches of batchSize', async () => {
    const { store, calls } = manualStore();
    const onStored = jest.fn();
    const buffer = new GroupCommitBuffer(store, { batchSize: 3, maxBatchesPerStore: 4 }, onStored);
    const done = buffer.add(readings('a', 7));
    await turn();
    expect(calls[0].batches.map((b) => b.length)).toEqual([3, 3, 1]);
    calls[0].resolve();
    await done;
    expect(onStored).toHaveBeenCalledWith(7, 3);
  });

  test('when waiting requests pass the per-store cap, then the store takes whole requests up to it and the rest waits for the next', async () => {
    const { store, calls } = manualStore();
    // cap: 2 batches of 2 = 4 readings per store
    const buffer = new GroupCommitBuffer(store, { batchSize: 2, maxBatchesPerStore: 2 });
    void buffer.add(readings('a', 1));
    await turn();
    void buffer.add(readings('b', 3));
    void buffer.add(readings('c', 1));
    void buffer.add(readings('d', 2));
    calls[0].resolve();
    await turn();
    expect(tags(calls[1].batches)).toEqual([
      ['b', 'b'],
      ['b', 'c'],
    ]);
    calls[1].resolve();
    await turn();
    expect(tags(calls[2].batches)).toEqual([['d', 'd']]);
    calls[2].resolve();
    await buffer.drain();
  });

  test('when one request alone passes the cap, then it is stored whole in one store', async () => {
    const { store, calls } = manualStore();
    const buffer = new GroupCommitBuffer(store, { batchSize: 2, maxBatchesPerStore: 2 });
    const done = buffer.add(readings('a', 9));
    await turn();
    expect(calls[0].batches.map((b) => b.length)).toEqual([2, 2, 2, 2, 1]);
    calls[0].resolve();
    await done;
  });

  test('when a store fails, then exactly its group is rejected and the next group is still stored', async () => {
    const { store, calls } = manualStore();
    const onStored = jest.fn();
    const buffer = new GroupCommitBuffer(store, { batchSize: 10, maxBatchesPerStore: 4 }, onStored);
    const a1 = watch(buffer.add(readings('a', 1)));
    const a2 = watch(buffer.add(readings('a', 1)));
    await turn();
    const b = watch(buffer.add(readings('b', 1)));
    const failure = new Error('redis down');
    calls[0].reject(failure);
    await turn();
    expect([a1.settled, a2.settled]).toEqual(['rejected', 'rejected']);
    expect(a1.error).toBe(failure);
    expect(b.settled).toBe('pending');
    expect(tags(calls[1].batches)).toEqual([['b']]);

    calls[1].resolve();
    await turn();
    expect(b.settled).toBe('resolved');
    expect(onStored).toHaveBeenCalledTimes(1);
    expect(onStored).toHaveBeenCalledWith(1, 1);
  });

  test('when drained, then it resolves only after every store, including those added meanwhile, has finished', async () => {
    const { store, calls } = manualStore();
    const buffer = new GroupCommitBuffer(store, { batchSize: 10, maxBatchesPerStore: 4 });
    void buffer.add(readings('a', 1));
    await turn();
    void buffer.add(readings('b', 1));
    const drained = watch(buffer.drain());
    calls[0].resolve();
    await turn();
    expect(drained.settled).toBe('pending');
    calls[1].resolve();
    await turn();
    expect(drained.settled).toBe('resolved');
    expect(calls).toHaveLength(2);
  });

  test('when nothing was added, then drain resolves at once and an empty add stores nothing', async () => {
    const store = jest.fn<Promise<void>, [Reading[][]]>(async () => undefined);
    const buffer = new GroupCommitBuffer(store, { batchSize: 10, maxBatchesPerStore: 4 });
    await buffer.drain();
    await buffer.add([]);
    await buffer.drain();
    expect(store).not.toHaveBeenCalled();
  });

  test('when readings wait or are in a store in flight, then pendingReadings counts them until it is stored or fails, and each stored one is reported in the same turn', async () => {
    const { store, calls } = manualStore();
    const reported: number[] = [];
    const buffer = new GroupCommitBuffer(store, { batchSize: 10, maxBatchesPerStore: 4 }, (n) =>
      reported.push(n + buffer.pendingReadings),
    );
    void buffer.add(readings('a', 3)).catch(() => undefined);
    expect(buffer.pendingReadings).toBe(3);
    await turn();
    expect(calls).toHaveLength(1);
    expect(buffer.pendingReadings).toBe(3); // taken by the store in flight, not yet stored
    void buffer.add(readings('b', 2));
    void buffer.add(readings('c', 4));
    expect(buffer.pendingReadings).toBe(9);
    calls[0].reject(new Error('fails'));
    await turn();
    expect(buffer.pendingReadings).toBe(6);
    calls[1].resolve();
    await buffer.drain();
    expect(buffer.pendingReadings).toBe(0);
    // Stored and still pending, seen together: never a reading counted twice or missed.
    expect(reported).toEqual([6]);
  });
});
