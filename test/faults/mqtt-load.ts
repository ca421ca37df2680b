import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';

/**
 * Continuous MQTT load with a ledger: publishers at QoS 1, each message a few new meter readings,
 * recorded only once the broker acknowledged it with PUBACK reason 0 (accepted for a subscriber;
 * 16, "no matching subscribers", would mean dropped and is counted apart). The same keys as
 * LoadWithLedger (`F-3@ts`), so verifyLedger checks both.
 */
export class MqttLoadWithLedger {
  readonly acknowledged = new Map<string, number>();
  published = 0;
  noSubscribers = 0;
  failed = 0;
  private running = false;
  private loops: Promise<void>[] = [];
  private clients: MqttClient[] = [];
  private counter = 0;

  constructor(
    private readonly options: {
      url: string;
      topic: string;
      publishers: number;
      /** Publishes each publisher keeps outstanding at once. */
      window: number;
      readingsPerMessage: number;
      /** Pause of each publish loop after each acknowledged message, for a steady rate. */
      pauseMs?: number;
      devices?: number;
    },
  ) {}

  async start(): Promise<void> {
    this.running = true;
    for (let p = 0; p < this.options.publishers; p++) {
      const client = await mqtt.connectAsync(this.options.url, {
        protocolVersion: 5,
        clean: true,
        reconnectPeriod: 0,
      });
      this.clients.push(client);
      const reasons = new Map<number, number>();
      client.on('packetreceive', (packet) => {
        if (packet.cmd === 'puback') reasons.set(packet.messageId ?? -1, packet.reasonCode ?? 0);
      });
      for (let w = 0; w < this.options.window; w++) this.loops.push(this.run(client, reasons));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((c) => c.endAsync()));
  }

  private nextMessage() {
    const base = Date.parse('2024-05-01T00:00:00Z');
    const devices = this.options.devices ?? 50;
    return Array.from({ length: this.options.readingsPerMessage }, () => {
      const n = this.counter++;
      return {
        meterId: `F-${n % devices}`,
        kwhConsumedAc: (n % 97) / 10,
        voltage: 230,
        timestamp: new Date(base + n * 1000).toISOString(),
      };
    });
  }

  private async run(client: MqttClient, reasons: Map<number, number>): Promise<void> {
    while (this.running) {
      const readings = this.nextMessage();
      try {
        const packet = await new Promise<IPublishPacket>((resolve, reject) =>
          client.publish(this.options.topic, JSON.stringify(readings), { qos: 1 }, (err, p) =>
            err ? reject(err) : resolve(p as IPublishPacket),
          ),
        );
        this.published += 1;
        const reason = reasons.get(packet.messageId ?? -1) ?? 0;
        reasons.delete(packet.messageId ?? -1);
        if (reason !== 0) {
          this.noSubscribers += 1;
          continue;
        }
        for (const r of readings)
          this.acknowledged.set(`${r.meterId}@${Date.parse(r.timestamp)}`, r.kwhConsumedAc);
        if (this.options.pauseMs) await new Promise((r) => setTimeout(r, this.options.pauseMs));
      } catch {
        this.failed += 1;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
