import { Registry } from 'prom-client';
import { createMqttMetrics } from '../../src/metrics';
import { REASON_PAYLOAD_FORMAT_INVALID } from '../../src/mqtt/ack-after-store';
import { MqttMessageHandler } from '../../src/mqtt/message-handler';
import { RejectLog } from '../../src/mqtt/reject-log';
import { createMqttTopics } from '../../src/mqtt/topics';
import type { RedisClient } from '../../src/redis';
import { REPEATED_ERROR_INTERVAL_MS } from '../../src/repeated-errors';
import type { IngestService } from '../../src/telemetry/ingest-service';
import { capturingLogger } from '../helpers/capturing-logger';

/** As many bad messages in flight as the probe's clients kept: each fails an attempt of its own. */
const IN_FLIGHT = 200;

/** A Redis whose writes of the rejects list fail with `error` the first `failures` times. */
function failingRedis(error: () => Error, failures: number): RedisClient {
  let attempts = 0;
  const multi = {
    lpush: () => multi,
    ltrim: () => multi,
    exec: async () => {
      attempts += 1;
      if (attempts <= failures) throw error();
      return [
        [null, 1],
        [null, 'OK'],
      ];
    },
  };
  return { multi: () => multi } as unknown as RedisClient;
}

/** IN_FLIGHT messages on an unknown topic (bad input, for the rejects list) at once. */
async function rejectMany(redis: RedisClient) {
  const { logger, lines } = capturingLogger();
  const registry = new Registry();
  const handler = new MqttMessageHandler({
    topics: createMqttTopics('energy/v1', { group: null, shared: false }),
    // Not reached: an unknown topic is refused before its payload is read.
    ingestService: {} as IngestService,
    rejects: new RejectLog(redis, 'test:mqtt:rejects'),
    metrics: createMqttMetrics(registry, { unacked: () => 0 }),
    limitBytes: 1024,
    log: logger,
  });
  const handled = Promise.all(
    Array.from({ length: IN_FLIGHT }, () =>
      handler.handle({
        topic: 'energy/v1/gadgets/G-1',
        payload: Buffer.from('{}'),
        qos: 1,
        redelivered: false,
        retained: false,
        signal: new AbortController().signal,
      }),
    ),
  );
  // The gate's first probe (after 0.1 s) succeeds and lets every waiter go.
  await jest.advanceTimersByTimeAsync(100);
  const reasons = await handled;
  const failed = () => lines.filter((l) => l.err);
  const failuresAtOnce = failed().length;
  await jest.advanceTimersByTimeAsync(REPEATED_ERROR_INTERVAL_MS);
  handler.close();
  const retries = (await registry.getSingleMetric('energy_mqtt_store_retries_total')!.get()).values;
  return {
    reasons,
    failuresAtOnce,
    failures: failed(),
    retries: Object.fromEntries(retries.map((v) => [v.labels.cause, v.value])),
  };
}

describe('MQTT store failures', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  test('when the rejects list cannot be written because Redis commands time out, then each retry counts as redis_unavailable and the outage is one warning an interval, not a line a message', async () => {
    const { reasons, failuresAtOnce, failures, retries } = await rejectMany(
      failingRedis(() => new Error('Command timed out'), IN_FLIGHT),
    );

    expect(reasons).toEqual(Array(IN_FLIGHT).fill(REASON_PAYLOAD_FORMAT_INVALID));
    expect(retries).toEqual({ redis_unavailable: IN_FLIGHT });
    expect(failures.map((l) => [l.level, l.cause, (l.err as Error).message, l.repeated])).toEqual([
      [40, 'redis_unavailable', 'Command timed out', undefined],
      [40, 'redis_unavailable', 'Command timed out', IN_FLIGHT - 1],
    ]);
    // The first at once; the count of the others at the interval's end.
    expect(failuresAtOnce).toBe(1);
  });

  test('when a store fails unexpectedly attempt after attempt, then the first is an error with its stack and the rest a count at the end of the interval', async () => {
    const wrongType = () =>
      new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
    const { reasons, failures, retries } = await rejectMany(failingRedis(wrongType, IN_FLIGHT));

    expect(reasons).toEqual(Array(IN_FLIGHT).fill(REASON_PAYLOAD_FORMAT_INVALID));
    expect(retries).toEqual({ unexpected_error: IN_FLIGHT });
    expect(failures.map((l) => [l.level, l.msg, l.repeated])).toEqual([
      [50, 'MQTT store failed unexpectedly; retrying', undefined],
      [50, 'MQTT store failed unexpectedly; retrying', IN_FLIGHT - 1],
    ]);
    expect((failures[0].err as { stack: string }).stack).toMatch(/^Error: WRONGTYPE .*\n\s+at /);
  });
});
