import { REMEMBERED_ERRORS, RepeatedErrorLog } from '../../src/repeated-errors';
import { capturingLogger } from '../helpers/capturing-logger';

describe('a repeated error', () => {
  test('when a worker reports the same error many times a second, then it is logged once per interval with how many were left out; another error at once', () => {
    const { logger, lines } = capturingLogger();
    let now = 0;
    const log = new RepeatedErrorLog({ logger, intervalMs: 30_000, now: () => now });
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:6390');
    // Four a second for a minute, as a BullMQ worker reconnecting to a Redis that is down.
    for (; now < 60_000; now += 250) log.log(refused, { shard: 0 }, 'flusher worker error');
    log.log(new Error('READONLY'), { shard: 0 }, 'flusher worker error');

    expect(lines.map((l) => [l.msg, (l.err as { message: string }).message, l.repeated])).toEqual([
      ['flusher worker error', refused.message, undefined],
      ['flusher worker error', refused.message, 119],
      ['flusher worker error', 'READONLY', undefined],
    ]);
    expect(lines[0].shard).toBe(0);
  });
});

describe('a repeated warning', () => {
  test('when a check is skipped for the same reason message after message, then it is a warning once per interval', () => {
    const { logger, lines } = capturingLogger();
    let now = 0;
    const log = new RepeatedErrorLog({ logger, intervalMs: 10_000, level: 'warn', now: () => now });
    const slow = new Error('stored registers took longer than 500 ms');
    for (; now < 1000; now += 1) log.log(slow, { meterId: 'CP-1:1' }, 'skipped');
    expect(lines.map((l) => [l.level, l.msg, l.repeated])).toEqual([[40, 'skipped', undefined]]);
  });

  test('when two checks fail in turn, message after message, then each is a warning once per interval', () => {
    const { logger, lines } = capturingLogger();
    let now = 0;
    const log = new RepeatedErrorLog({ logger, intervalMs: 10_000, level: 'warn', now: () => now });
    const open = new Error('open transaction took longer than 500 ms');
    const named = new Error('named transaction took longer than 500 ms');
    for (; now < 12_000; now += 2) {
      log.log(open, {}, 'open transaction unknown');
      log.log(named, {}, 'named transaction unknown');
    }
    expect(lines.map((l) => [l.msg, l.repeated])).toEqual([
      ['open transaction unknown', undefined],
      ['named transaction unknown', undefined],
      ['open transaction unknown', 4999],
      ['named transaction unknown', 4999],
    ]);
  });
});

describe('many distinct errors', () => {
  test('when a hundred and more new texts come between the repeats of one, then that one is still once an interval: the longest unseen are forgotten first', () => {
    const { logger, lines } = capturingLogger();
    let now = 0;
    const log = new RepeatedErrorLog({ logger, intervalMs: 10_000, level: 'warn', now: () => now });
    const down = new Error('connect ECONNREFUSED');
    for (let i = 0; i < 300; i += 1, now += 10) {
      log.log(down, {}, 'outage');
      log.log(new Error(`device D-${i} failed`), {}, 'one-off');
    }
    expect(lines.filter((l) => l.msg === 'outage')).toHaveLength(1);
  });
});

describe('an outage shorter than the interval', () => {
  test('when an error repeats for less than an interval and stops, then one more line at the end of the interval counts those left out, with the last one’s fields', async () => {
    const { logger, lines } = capturingLogger();
    const log = new RepeatedErrorLog({ logger, intervalMs: 50, level: 'warn' });
    const down = new Error('connect ECONNREFUSED');
    for (let request = 0; request < 6; request += 1) log.log(down, { request }, 'refused');
    expect(lines).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 150));
    expect(lines.map((l) => [l.msg, l.repeated, l.request])).toEqual([
      ['refused', undefined, 0],
      ['refused', 5, 5],
    ]);
    // Counted once: the next occurrence, an interval later, starts afresh.
    log.log(down, { request: 6 }, 'refused');
    expect(lines.at(-1)).toMatchObject({ request: 6 });
    expect(lines.at(-1)?.repeated).toBeUndefined();
  });
});

describe('a repeated error forgotten', () => {
  test('when a text with repeats left out is forgotten for as many new ones as are remembered, then its count is logged first', () => {
    const { logger, lines } = capturingLogger();
    const now = 0;
    const log = new RepeatedErrorLog({ logger, intervalMs: 10_000, level: 'warn', now: () => now });
    const down = new Error('connect ECONNREFUSED');
    log.log(down, {}, 'outage');
    log.log(down, {}, 'outage');
    for (let i = 0; i < REMEMBERED_ERRORS; i += 1) log.log(new Error(`D-${i}`), {}, 'one-off');
    expect(lines.filter((l) => l.msg === 'outage').map((l) => l.repeated)).toEqual([undefined, 1]);
  });

  test('when more charge points than were once remembered each repeat a fault, then each is still once an interval', () => {
    const { logger, lines } = capturingLogger();
    let now = 0;
    const log = new RepeatedErrorLog({ logger, intervalMs: 10_000, level: 'warn', now: () => now });
    // 1,000 chargers, a bad message each every second for 5 s: 100 texts forgot each other.
    for (let second = 0; second < 5; second += 1, now += 1000) {
      for (let cp = 0; cp < 1000; cp += 1) log.log(undefined, {}, 'refused', `CP-${cp} refused`);
    }
    expect(lines).toHaveLength(1000);
  });
});

describe('a stop before the interval ends', () => {
  test('when the log is flushed (as at exit) with repeats left out, then their count is written, once', () => {
    const { logger, lines } = capturingLogger();
    const log = new RepeatedErrorLog({ logger, intervalMs: 10_000, level: 'warn' });
    const down = new Error('connect ECONNREFUSED');
    for (let request = 0; request < 4; request += 1) log.log(down, { request }, 'refused');
    log.flush();
    log.flush();
    expect(lines.map((l) => [l.repeated, l.request])).toEqual([
      [undefined, 0],
      [3, 3],
    ]);
  });
});
