/**
 * MQTT under faults (`npm run test:faults`): publishers at QoS 1 under load against a broker of the
 * scenario's own (persistence on, max_queued_messages 0), the consuming process (src/mqtt-server.ts)
 * SIGKILLed and restarted mid-stream. Every message the broker accepted (its publisher got PUBACK 0)
 * must end up in history exactly once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, waitForHttp } from '../../bench/bench-helpers';
import { Mosquitto } from '../../bench/mosquitto';
import { waitFor } from '../helpers/engine';
import { purgeSession } from '../helpers/mqtt';
import { startProcess, type EngineProcess } from '../helpers/processes';
import { createTestContext } from '../helpers/test-env';
import { EngineProcesses, OwnRedis, verifyLedger } from './harness';
import { MqttLoadWithLedger } from './mqtt-load';

jest.setTimeout(180_000);

describe('MQTT fault scenarios', () => {
  test('when the MQTT consumer is SIGKILLed and restarted twice under load, then every message the broker accepted is in history exactly once', async () => {
    const broker = await Mosquitto.start();
    const redis = await OwnRedis.create();
    const ctx = await createTestContext({ REDIS_URL: redis.url });
    const engine = await EngineProcesses.create(ctx, redis.url);
    const healthPort = await freePort();
    const topicPrefix = `faults/${ctx.config.redisPrefix}`;
    const clientId = `${ctx.config.redisPrefix}-mqtt-0`;
    const env = {
      ...engine.env,
      MQTT_URL: broker.url,
      MQTT_TOPIC_PREFIX: topicPrefix,
      MQTT_CLIENT_ID: clientId,
      MQTT_HEALTH_PORT: String(healthPort),
    };
    const load = new MqttLoadWithLedger({
      url: broker.url,
      topic: `${topicPrefix}/readings`,
      publishers: 2,
      window: 10,
      readingsPerMessage: 10,
      pauseMs: 20,
    });
    const consumers: EngineProcess[] = [];
    const startConsumer = async () => {
      const consumer = startProcess('src/mqtt-server.ts', env);
      consumers.push(consumer);
      await waitForHttp(`http://127.0.0.1:${healthPort}/health/ready`, 30_000);
      return consumer;
    };
    const rowsStored = async () => {
      const [row] = await ctx
        .db('telemetry_history')
        .where('device_id', 'like', 'F-%')
        .count({ n: '*' });
      return Number(row.n);
    };
    try {
      engine.startFlusher();
      let consumer = await startConsumer(); // its session (and subscription) exists from here on
      await load.start();
      const killedAt: number[] = [];
      for (let kill = 1; kill <= 2; kill++) {
        const target = load.acknowledged.size + 15_000;
        await waitFor(async () => load.acknowledged.size > target, 60_000, 'load');
        await waitFor(async () => (await rowsStored()) > 0, 30_000, 'the flusher to write');
        consumer.child.kill('SIGKILL');
        await consumer.exited;
        killedAt.push(load.acknowledged.size);
        await sleep(1500); // the broker queues for the absent session meanwhile
        consumer = await startConsumer();
      }
      await sleep(2000);
      await load.stop();

      // Until history holds every acknowledged reading (a loss shows in the ledger after 60 s): a
      // pause in the flush must not end the wait early.
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && (await rowsStored()) < load.acknowledged.size)
        await sleep(200);
      await sleep(500);
      const result = await verifyLedger(ctx, load);
      const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      const dropped = /^energy_mqtt_acks_dropped_total\{[^}]*\} (\d+)/m.exec(metrics)?.[1];
      process.stdout.write(
        `[fault] MQTT consumer SIGKILL x2: published=${load.published} messages, acknowledged=${result.acknowledged} readings, verified=${result.stored}, killed at ${killedAt.join(' and ')} acknowledged, no-subscriber PUBACKs=${load.noSubscribers}, publish errors=${load.failed}, last consumer's dropped acks=${dropped}\n`,
      );
      expect(load.noSubscribers).toBe(0);
      expect(result.acknowledged).toBeGreaterThan(30_000);
    } finally {
      await load.stop().catch(() => undefined);
      for (const c of consumers)
        if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
      await Promise.all(consumers.map((c) => c.exited));
      await engine.stopAll();
      await purgeSession(broker.url, clientId).catch(() => undefined);
      await broker.destroy();
      await ctx.cleanup().catch(() => undefined);
      await redis.kill('SIGTERM');
    }
  });
});
