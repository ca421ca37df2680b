import { gzipSync } from 'node:zlib';
import { meterKind, vehicleKind } from '../../src/devices/device-kinds';
import { ConcurrencyLimit } from '../../src/concurrency-limit';
import { decodePayload } from '../../src/mqtt/payload';
import { parseIngestText } from '../../src/telemetry/ingest-input';
import { createFlappingDetector } from '../../src/mqtt/flapping-connection';
import { RetryGate } from '../../src/mqtt/retry-gate';
import { bindToTopic, createMqttTopics, topicKind } from '../../src/mqtt/topics';

const never = new AbortController().signal;
const tick = () => new Promise((r) => setImmediate(r));

describe('MQTT topics', () => {
  const topics = createMqttTopics('energy/v1', { group: 'energy', shared: true });

  test('when the topics are derived from the device kinds, then each kind has its form and the subscription is shared', () => {
    expect(topics.subscription).toBe('$share/energy/energy/v1/#');
    expect(topics.forms).toEqual([
      'energy/v1/readings',
      'energy/v1/meters/{meterId}',
      'energy/v1/vehicles/{vehicleId}',
    ]);
    expect(topics.device(vehicleKind, 'V-1')).toBe('energy/v1/vehicles/V-1');
  });

  test('when a topic is parsed, then only the engine forms are routes', () => {
    expect(topics.parse('energy/v1/readings')).toEqual({ kind: 'readings' });
    expect(topics.parse('energy/v1/meters/M-1')).toEqual({
      kind: 'device',
      device: meterKind,
      id: 'M-1',
    });
    for (const other of [
      'energy/v1/meters/',
      'energy/v1/meters/M-1/extra',
      'energy/v1/meters',
      'energy/v1/gadgets/G-1',
      'energy/v2/readings',
      'energy/v1/readings/x',
    ])
      expect({ other, route: topics.parse(other) }).toEqual({ other, route: null });
    expect(topicKind(topics.parse('energy/v1/vehicles/V-1'))).toBe('vehicle');
    expect(topicKind(null)).toBe('unknown');
  });

  test('when items are bound to a device topic, then the id is filled in, kept when equal, and refused when not', () => {
    const route = { kind: 'device' as const, device: meterKind, id: 'M-1' };
    const [filled, same, other, wrongKind, notObject, number] = bindToTopic(
      [
        { value: { voltage: 1 } },
        { value: { meterId: 'M-1' } },
        { value: { meterId: 'M-2' } },
        { value: { vehicleId: 'V-1' } },
        { value: 'text' },
        { value: { meterId: 1 } },
      ],
      route,
    );
    // Not a string: left to validation, which says what an id must be.
    expect(number).toEqual({ value: { meterId: 1 } });
    expect(filled).toEqual({ value: { voltage: 1, meterId: 'M-1' } });
    expect(same).toEqual({ value: { meterId: 'M-1' } });
    expect(other).toMatchObject({ invalid: { error: 'topic_mismatch' } });
    expect(wrongKind).toMatchObject({
      invalid: { error: 'topic_mismatch', details: [{ path: '/vehicleId' }] },
    });
    expect(notObject).toEqual({ value: 'text' });
  });
  test('when an id is filled in, then into the message as parsed, not a copy: a copy of a huge object cost its size before validation refused it', () => {
    const route = { kind: 'device' as const, device: meterKind, id: 'M-1' };
    const huge = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i]));
    const [bound] = bindToTopic([{ value: huge }], route);
    expect(bound).toEqual({ value: huge });
    expect((bound as { value: unknown }).value).toBe(huge);
    expect(huge.meterId).toBe('M-1');
  });
  test("when the topic's device id is not a valid id, then every item is refused with words about the topic", () => {
    const route = { kind: 'device' as const, device: meterKind, id: 'M 1' };
    const [item] = bindToTopic([{ value: { kwhConsumedAc: 1 } }], route);
    expect(item).toEqual({
      invalid: {
        error: 'invalid_topic_id',
        message: `The topic's meterId "M 1" must be 1-64 characters from A-Z a-z 0-9 . _ : -, not dots alone`,
        details: [
          {
            path: '/',
            message:
              "the topic's device id must be 1-64 characters from A-Z a-z 0-9 . _ : -, not dots alone",
          },
        ],
      },
    });
  });
});

describe('MQTT payloads', () => {
  const MAX_READINGS = 100;
  const LIMITS = {
    limitBytes: 1024,
    parse: (text: string) => parseIngestText(text, 'auto', MAX_READINGS),
  };

  test('when a payload is gzip, JSON or NDJSON, then it decodes to the same input as an HTTP body', async () => {
    const reading = { meterId: 'M-1' };
    expect(await decodePayload(Buffer.from(JSON.stringify(reading)), LIMITS)).toMatchObject({
      ok: true,
      input: { kind: 'single', value: reading },
    });
    expect(await decodePayload(gzipSync(JSON.stringify([reading, reading])), LIMITS)).toMatchObject(
      {
        ok: true,
        input: { kind: 'batch', items: [{ value: reading }, {}] },
      },
    );
    const ndjson = await decodePayload(Buffer.from('{"a":1}\n{"b":\n{"c":3}\n'), LIMITS);
    expect(ndjson).toMatchObject({
      ok: true,
      input: {
        kind: 'batch',
        items: [{ value: { a: 1 } }, { parseError: expect.any(String) }, {}],
      },
    });
  });

  test('when a payload cannot be decoded, then the reason says why, and a gzip bomb stops at the limit', async () => {
    const reason = async (payload: Buffer) => {
      const decoded = await decodePayload(payload, LIMITS);
      return decoded.ok ? 'ok' : decoded.error.code;
    };
    expect(await reason(gzipSync(Buffer.alloc(1_000_000, 32)))).toBe('payload_too_large');
    expect(await reason(Buffer.alloc(2000, 32))).toBe('payload_too_large');
    // The limit a small gzip passes is its gunzipped size: the message names both.
    const bomb = gzipSync(Buffer.alloc(1_000_000, 32));
    const decoded = await decodePayload(bomb, LIMITS);
    expect(decoded.ok ? '' : decoded.error.message).toBe(
      `The payload is larger than ${LIMITS.limitBytes} bytes once gunzipped (${bomb.length} bytes of gzip)`,
    );
    expect(await reason(Buffer.from([0x1f, 0x8b, 0, 0]))).toBe('invalid_gzip');
    expect(await reason(Buffer.from([0x22, 0xc3, 0x28, 0x22]))).toBe('invalid_encoding');
    expect(await reason(Buffer.from('{\n  "a": 1,\n'))).toBe('invalid_json');
    expect(await reason(Buffer.from('   '))).toBe('empty_body');
    expect(await reason(Buffer.from('[]'))).toBe('empty_batch');
    // Counted before a line is parsed: refused for their number, not parsed one by one.
    const lines = await decodePayload(gzipSync('x\n'.repeat(MAX_READINGS + 1)), LIMITS);
    expect(lines).toMatchObject({
      ok: false,
      error: {
        code: 'too_many_readings',
        message: `It holds ${MAX_READINGS + 1} readings; at most ${MAX_READINGS} (MAX_BATCH_READINGS) are accepted in one request or MQTT message`,
      },
    });
  });

  test('when a JSON array holds more readings than accepted, even pretty-printed over more lines, then it is refused for their number as it is read', () => {
    const tooMany = Array.from({ length: MAX_READINGS + 1 }, (_, i) => ({ meterId: `M-${i}` }));
    for (const text of [JSON.stringify(tooMany), JSON.stringify(tooMany, null, 2)]) {
      expect(() => parseIngestText(text, 'auto', MAX_READINGS)).toThrow(
        expect.objectContaining({ code: 'too_many_readings', count: MAX_READINGS + 1 }),
      );
    }
    expect(() => parseIngestText(JSON.stringify(tooMany), 'json', MAX_READINGS)).toThrow(
      expect.objectContaining({ code: 'too_many_readings', count: MAX_READINGS + 1 }),
    );
  });
});

describe('nesting', () => {
  const MAX_READINGS = 100;
  const nested = (depth: number, open = '[', close = ']') =>
    open.repeat(depth) + close.repeat(depth);
  const objects = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

  const tooDeep = (what: string) =>
    expect.stringMatching(
      new RegExp(`^${what} nests arrays and objects more than 32 deep \\(at character \\d+\\)`),
    );
  /** JSON.parse's calls during `run`, by the length of the text each was given. */
  const parsedLengths = (run: () => void): number[] => {
    const parse = jest.spyOn(JSON, 'parse');
    try {
      run();
      return parse.mock.calls.map(([text]) => String(text).length);
    } finally {
      parse.mockRestore();
    }
  };

  test('when a text nests arrays or objects deeper than readings ever do, then it is refused whole before JSON.parse sees it (a JSON body; an MQTT payload of one line)', () => {
    const texts = [
      nested(200_000),
      objects(200_000),
      `[{"meterId":"M-1"},${nested(MAX_READINGS)}]`,
    ];
    for (const text of texts) {
      for (const format of ['json', 'auto'] as const) {
        const lengths = parsedLengths(() =>
          expect(() => parseIngestText(text, format, MAX_READINGS)).toThrow(
            expect.objectContaining({
              statusCode: 400,
              code: 'nested_too_deep',
              message: tooDeep('The body'),
            }),
          ),
        );
        expect(lengths).toEqual([]);
      }
    }
  });

  test('when an MQTT payload is one document pretty-printed too deep, more lines than readings, then it is refused as too deep, not counted as readings', () => {
    const pretty = `${'[\n'.repeat(10_000)}${']\n'.repeat(10_000)}`;
    expect(() => parseIngestText(pretty, 'auto', MAX_READINGS)).toThrow(
      expect.objectContaining({ code: 'nested_too_deep', message: tooDeep('The body') }),
    );
    // As NDJSON it is what it says: too many lines.
    expect(() => parseIngestText(pretty, 'ndjson', MAX_READINGS)).toThrow(
      expect.objectContaining({ code: 'too_many_readings', count: 20_000 }),
    );
  });

  test('when a line of NDJSON nests too deep, also after a line that leaves a string or a bracket open or closes too many, then that line alone is refused unparsed and the others are read', () => {
    const deep = nested(200_000);
    const reading = '{"meterId":"M-1","kwhConsumedAc":1}';
    for (const before of ['{"a":"x', '{"a":"x\\', ']'.repeat(1000), '{"a":[', reading]) {
      const text = `${reading}\n${before}\n${deep}\n${reading}`;
      for (const format of ['ndjson', 'auto'] as const) {
        let input: ReturnType<typeof parseIngestText> | undefined;
        const lengths = parsedLengths(() => {
          input = parseIngestText(text, format, MAX_READINGS);
        });
        expect(input).toMatchObject({
          kind: 'batch',
          items: [
            { value: { meterId: 'M-1' } },
            expect.anything(),
            { invalid: { error: 'nested_too_deep', message: tooDeep('Line'), details: [] } },
            { value: { meterId: 'M-1' } },
          ],
        });
        expect(Math.max(...lengths)).toBeLessThan(deep.length);
      }
    }
  });

  test('when a text holds far more arrays and objects than its readings could (4 MB of small arrays, shallow), then it is refused whole before JSON.parse sees it, and an NDJSON line so full alone', () => {
    const crowded = (count: number) => `[${Array(count).fill('[[[]]]').join(',')}]`;
    const manyStructures = new RegExp(
      `^The body holds more than ${4 * MAX_READINGS + 1} arrays and objects \\(at character \\d+\\), and was not parsed`,
    );
    for (const format of ['json', 'auto'] as const) {
      const lengths = parsedLengths(() =>
        expect(() => parseIngestText(crowded(200_000), format, MAX_READINGS)).toThrow(
          expect.objectContaining({
            statusCode: 400,
            code: 'too_many_structures',
            message: expect.stringMatching(manyStructures),
          }),
        ),
      );
      expect(lengths).toEqual([]);
    }
    const reading = '{"meterId":"M-1","kwhConsumedAc":1}';
    const input = parseIngestText(
      `${reading}\n${crowded(100)}\n${reading}`,
      'ndjson',
      MAX_READINGS,
    );
    expect(input).toMatchObject({
      kind: 'batch',
      items: [
        { value: { meterId: 'M-1' } },
        { invalid: { error: 'too_many_structures' } },
        { value: { meterId: 'M-1' } },
      ],
    });
    // A full batch, each reading holding a stray array, is parsed: validation names the arrays.
    const full = JSON.stringify(
      Array.from({ length: MAX_READINGS }, (_, i) => ({ meterId: `M-${i}`, stray: [] })),
    );
    expect(parseIngestText(full, 'json', MAX_READINGS)).toMatchObject({ kind: 'batch' });
  });

  test('when brackets are inside strings, escaped quotes too, or a text holds few arrays and objects, then its depth is not held against it', () => {
    // As many brackets as would be refused, all inside strings of readings.
    const inStrings = JSON.stringify(
      Array.from({ length: 10 }, (_, i) => ({
        meterId: `M-${i}`,
        // A quote first: JSON.stringify escapes it, and the scan must step over it.
        note: `"${'['.repeat(MAX_READINGS)}`,
      })),
    );
    expect(parseIngestText(inStrings, 'json', MAX_READINGS)).toMatchObject({ kind: 'batch' });
    // Deep, but no more arrays and objects than a full batch: parsed, as cheap as a batch.
    expect(parseIngestText(nested(MAX_READINGS / 2), 'json', MAX_READINGS)).toMatchObject({
      kind: 'batch',
    });
  });
});

describe('retry gate', () => {
  test('when storage refuses, then one probe at a time tries after the delay, and a success lets every waiter go', async () => {
    const gate = new RetryGate({ minMs: 20, maxMs: 40 });
    gate.failed(await gate.pass(never));
    expect(gate.isOpen).toBe(false);
    const passed: boolean[] = [];
    const waiters = [1, 2, 3].map(() => gate.pass(never).then((t) => passed.push(t.probe)));
    // No further probe is scheduled until this one reports, however long it takes.
    while (passed.length < 1) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    expect(passed).toEqual([true]);
    gate.failed({ probe: true });
    while (passed.length < 2) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 50));
    expect(passed).toEqual([true, true]);
    gate.succeeded({ probe: true });
    await Promise.all(waiters);
    expect(passed).toEqual([true, true, false]);
    expect(gate.isOpen).toBe(true);
    gate.close();
  });

  test('when an attempt that passed before the gate closed succeeds, then the gate stays closed: only its probe opens it', async () => {
    const gate = new RetryGate({ minMs: 20, maxMs: 40 });
    const early = await gate.pass(never);
    const refused = await gate.pass(never);
    gate.failed(refused);
    let woken = 0;
    const waiters = [1, 2].map(() => gate.pass(never).then(() => (woken += 1)));
    gate.succeeded(early);
    await new Promise((r) => setTimeout(r, 5));
    expect({ open: gate.isOpen, woken }).toEqual({ open: false, woken: 0 });
    // The probe (after the delay) takes one waiter; its success lets the other go.
    while (woken < 1) await new Promise((r) => setTimeout(r, 5));
    gate.succeeded({ probe: true });
    await Promise.all(waiters);
    expect({ open: gate.isOpen, woken }).toEqual({ open: true, woken: 2 });
    gate.close();
  });

  test('when a probe ends without telling (its message refused for its own fault), then the next waiter probes', async () => {
    const gate = new RetryGate({ minMs: 10, maxMs: 10 });
    gate.failed(await gate.pass(never));
    const probe = await gate.pass(never).then(async (t) => t);
    expect(probe.probe).toBe(true);
    const next = gate.pass(never);
    gate.undecided(probe);
    expect((await next).probe).toBe(true);
    gate.close();
  });

  test('when a caller cannot wait (QoS 0), then it passes only while open or when a probe is due and nobody waits for it, and its success reopens the gate', async () => {
    const gate = new RetryGate({ minMs: 10, maxMs: 10 });
    expect(gate.passNow()).toEqual({ probe: false });
    gate.failed(await gate.pass(never));
    expect(gate.passNow()).toBeNull();
    await new Promise((r) => setTimeout(r, 30)); // the probe is due, with no waiter to take it
    const probe = gate.passNow();
    expect(probe).toEqual({ probe: true });
    expect(gate.passNow()).toBeNull(); // one probe at a time
    gate.succeeded(probe as { probe: boolean });
    expect(gate.isOpen).toBe(true);
    gate.close();
  });

  test('when a waiter is aborted, then it stops waiting', async () => {
    const gate = new RetryGate({ minMs: 10_000, maxMs: 10_000 });
    gate.failed(await gate.pass(never));
    const abort = new AbortController();
    const waiting = gate.pass(abort.signal);
    abort.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(gate.waiting).toBe(0);
    gate.close();
  });
});

describe('concurrency limit', () => {
  test('when more tasks come than the limit, then the rest wait in order and an aborted waiter leaves', async () => {
    const limit = new ConcurrencyLimit(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const release: (() => void)[] = [];
    const task = (n: number) => async () => {
      running += 1;
      most = Math.max(most, running);
      order.push(n);
      await new Promise<void>((r) => release.push(r));
      running -= 1;
    };
    const abort = new AbortController();
    const runs = [1, 2, 3].map((n) => limit.run(never, task(n)));
    const aborted = limit.run(abort.signal, task(99));
    const last = limit.run(never, task(4));
    await tick();
    abort.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    while (order.length < 4) {
      release.shift()?.();
      await tick();
    }
    release.forEach((r) => r());
    await Promise.all([...runs, last]);
    expect(most).toBe(2);
    expect(order).toEqual([1, 2, 3, 4]);
  });
});

describe('flapping connection', () => {
  test('when drops reach the count within the window, then they are reported once per window', () => {
    let now = 0;
    const flapping = createFlappingDetector({ drops: 3, windowMs: 60_000, now: () => now });
    const dropAt = (ms: number) => {
      now = ms;
      return flapping.dropped();
    };
    expect([dropAt(0), dropAt(10_000)]).toEqual([null, null]);
    expect(dropAt(20_000)).toBe(3);
    // Still flapping, but reported a window ago at most: quiet.
    expect(dropAt(30_000)).toBeNull();
    // A window after the report: the drops of the last minute count again (30, 81 and 82 s).
    expect(dropAt(81_000)).toBeNull();
    expect(dropAt(82_000)).toBe(3);
  });

  test('when drops are spread wider than the window, then nothing is reported', () => {
    let now = 0;
    const flapping = createFlappingDetector({ drops: 3, windowMs: 60_000, now: () => now });
    const reports = [0, 40_000, 80_000, 120_000].map((ms) => {
      now = ms;
      return flapping.dropped();
    });
    expect(reports).toEqual([null, null, null, null]);
  });
});
