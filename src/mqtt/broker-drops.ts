/**
 * Messages the broker dropped before any subscriber had them. A broker with a queue limit (Mosquitto's
 * `max_queued_messages`, 1000 by default) drops what passes it for a client that is offline or
 * slow, the engine's session included, and tells no one but its `$SYS` topics: the engine never
 * sees those readings and cannot refuse them. Watching the broker's own count turns that loss into
 * a metric and a warning. Mosquitto publishes it every `sys_interval`; a broker that has no such
 * topic, or does not let the engine read it, leaves the metric at 0.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../logger';

/** Mosquitto's count of messages dropped since it started (any client's). */
export const BROKER_DROPPED_TOPIC = '$SYS/broker/publish/messages/dropped';

/** Closed this many times in a row without a SUBACK, the watch stops trying. */
const MAX_CLOSES_BEFORE_SUBACK = 3;

export interface BrokerDropsWatch {
  close(): Promise<void>;
}

/**
 * Subscribes (QoS 0, on a connection of its own: the intake's acknowledges what it is handed) to
 * the broker's dropped count; `onCount` gets each count, and an increase is logged as a warning.
 */
export function watchBrokerDrops({
  url,
  clientId,
  username,
  password,
  onCount,
  logger,
}: {
  url: string;
  /** The intake's client id; this connection's is derived from it. */
  clientId: string;
  username?: string;
  password?: string;
  onCount: (dropped: number) => void;
  logger: Logger;
}): BrokerDropsWatch {
  const client: MqttClient = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: `${clientId}-sys`,
    username,
    password,
    clean: true,
    reconnectPeriod: 5000,
    // Subscribed anew at each connect, below: with mqtt.js resubscribing too, that subscribe after
    // a broker restart sent nothing and answered no grant, taken as a refusal: the watch stopped.
    resubscribe: false,
  });
  let last: number | null = null;
  /** Connections closed in a row after CONNACK and before a SUBACK (a broker that is down does not count). */
  let refusals = 0;
  let awaitingSuback = false;
  const giveUp = (why: string) => {
    logger.info(
      { topic: BROKER_DROPPED_TOPIC, why },
      'the MQTT broker does not let the engine read its dropped-message count: broker drops are not watched',
    );
    client.end(true);
  };
  client.on('connect', () => {
    awaitingSuback = true;
    client.subscribe(BROKER_DROPPED_TOPIC, { qos: 0 }, (err, granted) => {
      if (!awaitingSuback) return; // the connection closed meanwhile
      awaitingSuback = false;
      const code = granted?.[0]?.qos ?? 0x80;
      if (err || code >= 0x80) giveUp(err ? err.message : `SUBACK reason code ${code}`);
      else refusals = 0;
    });
  });
  // Some brokers close the connection of a client that subscribes where it may not.
  client.on('close', () => {
    if (!awaitingSuback) return;
    awaitingSuback = false;
    if (++refusals >= MAX_CLOSES_BEFORE_SUBACK)
      giveUp(`the connection closed ${refusals} times before the subscription was granted`);
  });
  client.on('message', (topic, payload) => {
    const count = Number(payload.toString());
    if (topic !== BROKER_DROPPED_TOPIC || !Number.isSafeInteger(count) || count < 0) return;
    onCount(count);
    // The broker's count starts at its own start: a lower one is a restarted broker.
    const since = last === null || count < last ? 0 : last;
    if (count > since) {
      logger.warn(
        { dropped: count - since, total: count },
        last === null
          ? 'the MQTT broker has dropped messages since it started (a queue or in-flight limit): readings may be lost; see the README, Broker settings'
          : 'the MQTT broker dropped messages (a queue or in-flight limit): readings may be lost; see the README, Broker settings',
      );
    }
    last = count;
  });
  // Connection trouble is the intake's to report; this connection only retries.
  client.on('error', (err) => logger.debug({ err }, 'broker drops watch: connection error'));
  return {
    close: () => client.endAsync(true),
  };
}
