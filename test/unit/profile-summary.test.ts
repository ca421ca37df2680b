import { allocations, selfTimes, type AllocationNode } from '../../bench/profile-summary';

const frame = (functionName: string, file: string, line: number) => ({
  functionName,
  url: `file:///work/app/dist/${file}`,
  lineNumber: line - 1,
});

describe('profile summaries', () => {
  test('when a function allocates under several callers, then its bytes are summed, largest first', () => {
    const node = (
      f: ReturnType<typeof frame>,
      selfSize: number,
      children: AllocationNode[] = [],
    ): AllocationNode => ({ callFrame: f, selfSize, children });
    const parse = frame('parseJson', 'src/telemetry/ingest-input.js', 27);
    const head = node(frame('(root)', '', 0), 0, [
      node(frame('handler', 'src/telemetry/ingest-routes.js', 91), 100, [node(parse, 300)]),
      node(frame('onMessage', 'src/mqtt/message-handler.js', 40), 50, [node(parse, 200)]),
    ]);
    expect(allocations(head).slice(0, 3)).toEqual([
      { name: 'parseJson src/telemetry/ingest-input.js:27', bytes: 500 },
      { name: 'handler src/telemetry/ingest-routes.js:91', bytes: 100 },
      { name: 'onMessage src/mqtt/message-handler.js:40', bytes: 50 },
    ]);
  });

  test('when samples land in functions, then each gets its time and share of all samples', () => {
    const times = selfTimes({
      nodes: [
        { id: 1, callFrame: frame('(idle)', '', 0) },
        { id: 2, callFrame: frame('validateReading', 'src/telemetry/validation.js', 100) },
      ],
      samples: [1, 2, 2, 2],
      timeDeltas: [1000, 1000, 1000, 1000],
    });
    expect(times[0]).toEqual({
      name: 'validateReading src/telemetry/validation.js:100',
      ms: 3,
      share: 0.75,
    });
  });
});
