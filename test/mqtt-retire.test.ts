/**
 * Retiring an MQTT client id (`npm run mqtt:retire`) on this machine's broker (or TEST_MQTT_URL),
 * real Redis, BullMQ and PostgreSQL.
 */
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { NoSessionError, retireSession } from '../src/mqtt/retire-session';
import { startTestFlusher, waitFor, type TestFlusher } from './helpers/engine';
import {
  connectPublisher,
  purgeSession,
  startTestMqtt,
  testBrokerUrl,
  type TestMqtt,
} from './helpers/mqtt';
import { createTestContext, type TestContext } from './helpers/test-env';

jest.setTimeout(60_000);

const brokerUrl = testBrokerUrl();
let ctx: TestContext;
let flusher: TestFlusher;
let publisher: MqttClient;
let clientId: string;

beforeAll(async () => {
  ctx = await createTestContext();
  flusher = await startTestFlusher(ctx);
  publisher = await connectPublisher(brokerUrl);
  clientId = `${ctx.config.redisPrefix}-retired`;
});

afterAll(async () => {
  await publisher?.endAsync();
  await purgeSession(brokerUrl, clientId).catch(() => undefined);
  await flusher?.close();
  await ctx?.cleanup();
});

/** Waits until the intake is ready: connected and subscribed (collecting only: connected). */
async function untilReady(started: TestMqtt): Promise<void> {
  await waitFor(
    () =>
      started.service.intake.ready().then(
        () => true,
        () => false,
      ),
    15_000,
    'ready',
  );
}

async function startUnderRetiredId(): Promise<TestMqtt> {
  const started = await startTestMqtt(ctx, {
    mqttClientId: clientId,
    mqttTopicPrefix: `test/${ctx.config.redisPrefix}`,
  });
  await untilReady(started);
  return started;
}

/** Publishes `count` readings of `meterId` at QoS 1, a minute apart from midnight of May `day`. */
async function publishReadings(meterId: string, count: number, day: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await publisher.publishAsync(
      `test/${ctx.config.redisPrefix}/meters/${meterId}`,
      JSON.stringify({
        kwhConsumedAc: 0.1,
        voltage: 230,
        timestamp: new Date(Date.UTC(2024, 4, day, 0, i)).toISOString(),
      }),
      { qos: 1 },
    );
  }
}

async function historyOf(meterId: string): Promise<number> {
  const rows = await ctx.db('telemetry_history').where({ device_id: meterId }).count('* as n');
  return Number((rows[0] as { n: string }).n);
}

/** Whether the broker holds a session of `id` (asked without keeping one: session expiry 0). */
async function sessionPresent(id: string): Promise<boolean> {
  const probe = mqtt.connect(brokerUrl, {
    protocolVersion: 5,
    clientId: id,
    clean: false,
    reconnectPeriod: 0,
    properties: { sessionExpiryInterval: 0 },
  });
  const connack = await new Promise<IConnackPacket>((resolve) => probe.once('connect', resolve));
  await probe.endAsync();
  return connack.sessionPresent;
}

test('when a stopped process is retired, then what the broker queued for its id is stored and the session is gone', async () => {
  // The process ran once (its session holds the shared subscription), then stopped for good.
  const stopped = await startUnderRetiredId();
  await stopped.close();
  // Published while it is away: queued in its session, for no other member.
  const readings = 7;
  await publishReadings('M-retired', readings, 1);

  const retiring = await startTestMqtt(
    ctx,
    { mqttClientId: clientId, mqttTopicPrefix: `test/${ctx.config.redisPrefix}` },
    { collectOnly: true },
  );
  const collected = await retireSession(retiring.service, {
    quietMs: 1000,
    connectTimeoutMs: 15_000,
    logger: ctx.logger,
  });
  await retiring.close();
  expect(collected).toBe(readings);
  await waitFor(async () => (await historyOf('M-retired')) === readings, 20_000, 'stored');

  // The id has no session any more: the broker keeps nothing for it.
  expect(await sessionPresent(clientId)).toBe(false);
});

test('when the id has no session on the broker (a mistyped id), then retiring says so and leaves no session behind', async () => {
  const unknownId = `${ctx.config.redisPrefix}-never-connected`;
  const retiring = await startTestMqtt(
    ctx,
    { mqttClientId: unknownId, mqttTopicPrefix: `test/${ctx.config.redisPrefix}` },
    { collectOnly: true },
  );
  try {
    await expect(
      retireSession(retiring.service, {
        quietMs: 1000,
        connectTimeoutMs: 15_000,
        logger: ctx.logger,
      }),
    ).rejects.toThrow(NoSessionError);
  } finally {
    await retiring.close();
  }
  expect(await sessionPresent(unknownId)).toBe(false);
});

test('when an id is being retired, then it takes nothing from the live subscription it shares with running members: a mistyped id took messages and dropped them', async () => {
  const live = await startTestMqtt(ctx, {
    mqttClientId: `${ctx.config.redisPrefix}-live-member`,
    mqttTopicPrefix: `test/${ctx.config.redisPrefix}`,
  });
  const retiring = await startTestMqtt(
    ctx,
    {
      mqttClientId: `${ctx.config.redisPrefix}-typo`,
      mqttTopicPrefix: `test/${ctx.config.redisPrefix}`,
    },
    { collectOnly: true },
  );
  try {
    for (const started of [live, retiring]) await untilReady(started);
    const readings = 10;
    await publishReadings('M-live', readings, 2);
    await waitFor(async () => (await historyOf('M-live')) === readings, 20_000, 'stored');
    expect(retiring.service.intake.delivered).toBe(0);
  } finally {
    await retiring.service.close({ endSession: true });
    await live.close();
    await purgeSession(brokerUrl, `${ctx.config.redisPrefix}-live-member`);
  }
});
