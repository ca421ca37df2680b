/**
 * The acknowledging subscriber against a broker that does what Mosquitto does not: grants less
 * than QoS 1, or delivers QoS 2. A broker of the test's own, speaking MQTT 5 through mqtt-packet.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import {
  REASON_SUCCESS,
  startAckAfterStoreSubscriber,
  type DeliveredMessage,
  type PubackReason,
} from '../src/mqtt/ack-after-store';
import pino from 'pino';
import { createLogger, type Logger } from '../src/logger';
import { waitFor } from './helpers/engine';

const V5 = { protocolVersion: 5 as const };

/** Answers CONNECT and SUBSCRIBE (granting `grantedQos`) and keeps what the client sends. */
async function fakeBroker(
  grantedQos: number,
  { dropAfterSubscribe = false, refuseLogins = 0 } = {},
) {
  const received: Packet[] = [];
  let client: Socket | null = null;
  let refusals = refuseLogins;
  const server = net.createServer((socket) => {
    client = socket;
    const parser = mqttPacket.parser(V5);
    parser.on('packet', (packet: Packet) => {
      received.push(packet);
      if (packet.cmd === 'connect') {
        // 135: Not authorized (a password changed on the broker, then changed back).
        const reasonCode = refusals > 0 ? 135 : 0;
        refusals -= 1;
        socket.write(
          mqttPacket.generate({ cmd: 'connack', sessionPresent: false, reasonCode }, V5),
        );
      } else if (packet.cmd === 'subscribe') {
        socket.write(
          mqttPacket.generate(
            { cmd: 'suback', messageId: packet.messageId, granted: [grantedQos] },
            V5,
          ),
        );
        // As Mosquitto does when another client takes the id: closed, no DISCONNECT.
        if (dropAfterSubscribe) setTimeout(() => socket.destroy(), 50);
      } else if (packet.cmd === 'pingreq') {
        socket.write(mqttPacket.generate({ cmd: 'pingresp' }, V5));
      }
    });
    socket.on('data', (data) => parser.parse(data));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    send: (packet: Packet) => client?.write(mqttPacket.generate(packet, V5)),
    close: () =>
      new Promise<void>((resolve) => {
        client?.destroy();
        server.close(() => resolve());
      }),
  };
}

function subscriberOn(
  url: string,
  handle: (m: DeliveredMessage) => Promise<PubackReason>,
  logger: Logger = createLogger({ level: 'silent', name: 'test' }),
  onConnection?: (up: boolean) => void,
) {
  return startAckAfterStoreSubscriber({
    url,
    clientId: 'quirks',
    subscription: 'q/#',
    receiveMaximum: 10,
    sessionExpiryS: 60,
    handle,
    logger,
    onConnection,
  });
}

test('when the broker grants QoS 0, then the subscriber is not ready, nor counted as connected: messages could not be held until stored', async () => {
  for (const [granted, ready] of [
    [0, false],
    [1, true],
  ] as const) {
    const broker = await fakeBroker(granted);
    // energy_mqtt_connected: the "MQTT down" alert never fired while nothing was taken.
    let taking = false;
    const subscriber = subscriberOn(
      broker.url,
      async () => REASON_SUCCESS,
      undefined,
      (up) => (taking = up),
    );
    try {
      await waitFor(
        async () => broker.received.some((p) => p.cmd === 'subscribe'),
        10_000,
        'the subscription',
      );
      if (ready) await waitFor(async () => subscriber.ready, 10_000, 'the subscriber ready');
      else await new Promise((r) => setTimeout(r, 200));
      expect({ granted, ready: subscriber.ready, taking }).toEqual({
        granted,
        ready,
        taking: ready,
      });
    } finally {
      await subscriber.close(1000);
      await broker.close();
    }
  }
});

test('when the broker refuses the login for a while, then the subscriber keeps trying and is ready once it is let in', async () => {
  const broker = await fakeBroker(1, { refuseLogins: 2 });
  const subscriber = subscriberOn(broker.url, async () => REASON_SUCCESS);
  try {
    // Before, mqtt.js stopped reconnecting after the first refused CONNACK, for good.
    await waitFor(async () => subscriber.ready, 15_000, 'the subscriber ready');
    expect(broker.received.filter((p) => p.cmd === 'connect')).toHaveLength(3);
  } finally {
    await subscriber.close(1000);
    await broker.close();
  }
});

test('when the broker delivers QoS 2, then the message is handled and PUBCOMP answered only once it is stored', async () => {
  const broker = await fakeBroker(1);
  const held: { message: DeliveredMessage; store: () => void }[] = [];
  const subscriber = subscriberOn(
    broker.url,
    (message) =>
      new Promise((resolve) => held.push({ message, store: () => resolve(REASON_SUCCESS) })),
  );
  try {
    await waitFor(async () => subscriber.ready, 10_000, 'subscribed');
    broker.send({
      cmd: 'publish',
      topic: 'q/a',
      payload: Buffer.from('m'),
      qos: 2,
      messageId: 7,
      dup: false,
      retain: false,
    });
    await waitFor(async () => broker.received.some((p) => p.cmd === 'pubrec'), 10_000, 'PUBREC');
    broker.send({ cmd: 'pubrel', messageId: 7 });
    await waitFor(async () => held.length === 1, 10_000, 'the message handed over');
    expect({ topic: held[0].message.topic, qos: held[0].message.qos }).toEqual({
      topic: 'q/a',
      qos: 2,
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(broker.received.some((p) => p.cmd === 'pubcomp')).toBe(false);
    held[0].store();
    await waitFor(async () => broker.received.some((p) => p.cmd === 'pubcomp'), 10_000, 'PUBCOMP');
  } finally {
    await subscriber.close(1000);
    await broker.close();
  }
});

test('when the broker delivers more QoS 2 messages one after another than Receive Maximum, then each is completed on the one connection', async () => {
  const broker = await fakeBroker(1);
  const subscriber = subscriberOn(broker.url, async () => REASON_SUCCESS);
  const count = (cmd: string) => broker.received.filter((p) => p.cmd === cmd).length;
  try {
    await waitFor(async () => subscriber.ready, 10_000, 'subscribed');
    // Receive Maximum is 10: one in flight at a time, 25 in all.
    for (let messageId = 1; messageId <= 25; messageId++) {
      broker.send({
        cmd: 'publish',
        topic: 'q/a',
        payload: Buffer.from(String(messageId)),
        qos: 2,
        messageId,
        dup: false,
        retain: false,
      });
      await waitFor(async () => count('pubrec') === messageId, 10_000, `PUBREC ${messageId}`);
      broker.send({ cmd: 'pubrel', messageId });
      await waitFor(async () => count('pubcomp') === messageId, 10_000, `PUBCOMP ${messageId}`);
    }
    expect(count('connect')).toBe(1);
  } finally {
    await subscriber.close(1000);
    await broker.close();
  }
});

test('when the broker closes the connection again and again without a DISCONNECT, then an error names MQTT_CLIENT_ID', async () => {
  const broker = await fakeBroker(1, { dropAfterSubscribe: true });
  const errors: string[] = [];
  const logger = pino(
    { level: 'error' },
    { write: (line: string) => errors.push((JSON.parse(line) as { msg: string }).msg) },
  );
  const subscriber = subscriberOn(broker.url, async () => REASON_SUCCESS, logger);
  try {
    await waitFor(async () => errors.length > 0, 20_000, 'the error');
    expect(errors[0]).toMatch(/same client id \(give each engine process its own MQTT_CLIENT_ID\)/);
    expect(broker.received.filter((p) => p.cmd === 'connect').length).toBeGreaterThanOrEqual(3);
  } finally {
    await subscriber.close(1000);
    await broker.close();
  }
});
