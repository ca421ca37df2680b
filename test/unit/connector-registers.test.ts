import { ConnectorRegisters } from '../../src/ocpp/connector-registers';

/** A write that records what it was asked and can be held open or made to fail. */
function recordingWrite() {
  const writes: string[][] = [];
  let open = 0;
  let maxOpen = 0;
  let failNext = false;
  let release: (() => void) | null = null;
  let hold = false;
  const write = async (meterIds: string[]) => {
    writes.push(meterIds);
    open += 1;
    maxOpen = Math.max(maxOpen, open);
    try {
      if (hold) await new Promise<void>((r) => (release = r));
      if (failNext) {
        failNext = false;
        throw new Error('database unavailable');
      }
    } finally {
      open -= 1;
    }
  };
  return {
    write,
    writes,
    maxOpen: () => maxOpen,
    failNext: () => (failNext = true),
    hold: () => (hold = true),
    release: () => {
      hold = false;
      release?.();
    },
  };
}

describe('ConnectorRegisters', () => {
  test('when many connectors ask at once, then one write records each meter once, in order', async () => {
    const w = recordingWrite();
    const registers = new ConnectorRegisters(w.write);
    await Promise.all([
      registers.record('CP-2', 1),
      registers.record('CP-1', 1),
      registers.record('CP-2', 1),
      registers.record('CP-1', 2),
    ]);
    expect(w.writes).toEqual([['CP-1:1', 'CP-1:2', 'CP-2:1']]);
    await registers.record('CP-2', 1);
    expect(w.writes).toHaveLength(1);
  });

  test('when connectors ask during a write, then they join the next one: never two writes at once', async () => {
    const w = recordingWrite();
    const registers = new ConnectorRegisters(w.write);
    w.hold();
    const first = registers.record('CP-1', 1);
    await new Promise((r) => setImmediate(r));
    const later = [registers.record('CP-2', 1), registers.record('CP-3', 1)];
    w.release();
    await Promise.all([first, ...later]);
    expect(w.writes).toEqual([['CP-1:1'], ['CP-2:1', 'CP-3:1']]);
    expect(w.maxOpen()).toBe(1);
  });

  test('when a write fails, then its waiters hear it and the next ask writes again', async () => {
    const w = recordingWrite();
    const registers = new ConnectorRegisters(w.write);
    w.failNext();
    await expect(registers.record('CP-1', 1)).rejects.toThrow('database unavailable');
    await registers.record('CP-1', 1);
    expect(w.writes).toEqual([['CP-1:1'], ['CP-1:1']]);
  });

  test('when more than 1,000 meters wait, then they are written 1,000 at a time', async () => {
    const w = recordingWrite();
    const registers = new ConnectorRegisters(w.write);
    await Promise.all(Array.from({ length: 2500 }, (_, i) => registers.record(`CP-${i}`, 1)));
    expect(w.writes.map((ids) => ids.length)).toEqual([1000, 1000, 500]);
  });
});
