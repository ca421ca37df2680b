/**
 * The MQTT part of `npm run bench`: the MQTT process (dist/src/mqtt-server.js) on a Mosquitto of
 * the benchmark's own, fed by mqtt.js publishers at QoS 1 in this process, on the same Redis queue
 * and flusher as the API run beside it.
 * - throughput: a fixed number of messages published as fast as the publishers go (the broker
 *   queues what the engine has not taken yet); readings/s = readings / (first publish -> the
 *   engine's accepted counter reaching them all);
 * - latency at the nominal 166 readings/s: publish -> the broker's PUBACK at the publisher, and
 *   receive -> the engine's PUBACK (stored) from its histogram energy_mqtt_ack_duration_seconds.
 */
import mqtt, { type MqttClient } from 'mqtt';
import {
  counterTotal,
  freePort,
  histogramDelta,
  sleep,
  startNode,
  waitForHttp,
  type Proc,
} from './bench-helpers';
import { Mosquitto } from './mosquitto';
import { quantile } from './open-loop';

export interface MqttThroughput {
  messages: number;
  readingsPerMessage: number;
  readings: number;
  seconds: number;
  readingsPerS: number;
}

export interface MqttBenchResults {
  batch: MqttThroughput;
  single: MqttThroughput;
  nominal: {
    readingsPerS: number;
    messages: number;
    /** publish -> PUBACK of the broker, at the publisher (what a device waits for). */
    brokerPubackP50Ms: number;
    brokerPubackP99Ms: number;
    /** receive -> PUBACK of the engine, once stored (interpolated from histogram buckets). */
    storedAckP50Ms: number | null;
    storedAckP99Ms: number | null;
  };
  peakRssMb: number;
}

const TOPIC_PREFIX = 'bench/v1';

async function connectPublishers(url: string, count: number): Promise<MqttClient[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      mqtt.connectAsync(url, { protocolVersion: 5, clean: true, reconnectPeriod: 0 }),
    ),
  );
}

/** Publishes `messages` payloads at QoS 1, keeping `window` outstanding per publisher. */
async function publishAll(
  publishers: MqttClient[],
  messages: number,
  window: number,
  payload: (i: number) => string,
): Promise<void> {
  let next = 0;
  const loop = async (client: MqttClient) => {
    while (next < messages) {
      const i = next++;
      await client.publishAsync(`${TOPIC_PREFIX}/readings`, payload(i), { qos: 1 });
    }
  };
  await Promise.all(publishers.flatMap((c) => Array.from({ length: window }, () => loop(c))));
}

export async function benchMqtt({
  env,
  quick,
  seconds,
  meterJson,
  mixedBatch,
  waitUntilDrained,
}: {
  /** The engine's environment (database, Redis, prefix) shared with the API and the flusher. */
  env: Record<string, string>;
  quick: boolean;
  seconds: number;
  /** The n-th single meter reading, as JSON. */
  meterJson: (n: number) => string;
  /** `size` mixed readings from the n-th on, as a JSON array. */
  mixedBatch: (n: number, size: number) => string;
  waitUntilDrained: () => Promise<unknown>;
}): Promise<MqttBenchResults> {
  const broker = await Mosquitto.start();
  const healthPort = await freePort();
  const engine: Proc = startNode('mqtt', 'src/mqtt-server.js', [], {
    ...env,
    MQTT_URL: broker.url,
    MQTT_TOPIC_PREFIX: TOPIC_PREFIX,
    MQTT_CLIENT_ID: `${env.REDIS_PREFIX}-bench-mqtt`,
    MQTT_HEALTH_PORT: String(healthPort),
  });
  const publishers = await connectPublishers(broker.url, 2);
  const metricsUrl = `http://127.0.0.1:${healthPort}/metrics`;
  const scrape = () => fetch(metricsUrl).then((r) => r.text());
  const accepted = async () =>
    counterTotal(await scrape(), 'energy_ingest_readings_accepted_total');

  const throughput = async (
    messages: number,
    readingsPerMessage: number,
    payload: (i: number) => string,
  ): Promise<MqttThroughput> => {
    const before = await accepted();
    const readings = messages * readingsPerMessage;
    const started = Date.now();
    await publishAll(publishers, messages, 200, payload);
    // Scraped every 200 ms: the error is at most that in runs of several seconds.
    while ((await accepted()) - before < readings) await sleep(200);
    const s = (Date.now() - started) / 1000;
    await waitUntilDrained();
    return { messages, readingsPerMessage, readings, seconds: s, readingsPerS: readings / s };
  };

  try {
    await waitForHttp(`http://127.0.0.1:${healthPort}/health/ready`);
    // Warm-up: JIT, connections, the first partitions.
    await throughput(200, 1, (i) => meterJson(20_000_000 + i));

    const batchMessages = quick ? 1000 : 3000;
    const batch = await throughput(batchMessages, 100, (i) =>
      mixedBatch(12_000_000 + i * 100, 100),
    );
    const singleMessages = quick ? 20_000 : 60_000;
    const single = await throughput(singleMessages, 1, (i) => meterJson(15_000_000 + i));

    // Nominal rate: a 10,000-device fleet reporting every minute, one reading per message.
    const rate = 166;
    const before = await scrape();
    const latencies: number[] = [];
    const started = Date.now();
    const pending: Promise<void>[] = [];
    let sent = 0;
    while (Date.now() - started < seconds * 1000) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      for (; sent < due; sent++) {
        const t0 = performance.now();
        pending.push(
          publishers[sent % publishers.length]
            .publishAsync(`${TOPIC_PREFIX}/readings`, meterJson(18_000_000 + sent), { qos: 1 })
            .then(() => void latencies.push(performance.now() - t0)),
        );
      }
      await sleep(5);
    }
    await Promise.all(pending);
    const nominalSeconds = (Date.now() - started) / 1000;
    await waitUntilDrained();
    await sleep(200);
    const stored = histogramDelta(before, await scrape(), 'energy_mqtt_ack_duration_seconds');
    latencies.sort((a, b) => a - b);
    return {
      batch,
      single,
      nominal: {
        readingsPerS: sent / nominalSeconds,
        messages: sent,
        brokerPubackP50Ms: quantile(latencies, 0.5),
        brokerPubackP99Ms: quantile(latencies, 0.99),
        storedAckP50Ms: stored.p50Ms,
        storedAckP99Ms: stored.p99Ms,
      },
      peakRssMb: engine.peakRssMb(),
    };
  } finally {
    await Promise.all(publishers.map((p) => p.endAsync()));
    await engine.stop();
    await broker.destroy();
  }
}
