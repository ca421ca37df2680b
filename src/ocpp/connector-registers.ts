import type { DeviceSettingsStore } from '../stores/device-settings-store';
import { connectorMeterId } from './charge-point-state';
import { takeDistinct } from './take-distinct';

/** Meters per statement: a bounded parameter list however many charge points wait. */
const METERS_PER_WRITE = 1000;

interface Connector {
  chargePointId: string;
  connectorId: number;
}

interface Waiter {
  meterId: string;
  connector: Connector;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Records, once per connector meter and process, that the meter is a register (its own
 * `cumulative` energy semantics) and that its charge point has that connector. Thousands of charge
 * points send their first message at once after a restart: requests made while a write is in
 * flight join the next one, so PostgreSQL sees one statement at a time for all of them, and a
 * failed write is retried with the connector's next message rather than queued up per message.
 */
export class ConnectorRegisters {
  private readonly recorded = new Set<string>();
  private waiting: Waiter[] = [];
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly write: (meterIds: string[], connectors: Connector[]) => Promise<void>,
  ) {}

  /** Writes through the settings store and the live state's connector sets. */
  static using(deps: {
    settings: DeviceSettingsStore;
    knownConnectors: (connectors: Connector[]) => Promise<void>;
  }): ConnectorRegisters {
    return new ConnectorRegisters(async (meterIds, connectors) => {
      await Promise.all([
        deps.settings.setMany('meter', meterIds, 'cumulative'),
        deps.knownConnectors(connectors),
      ]);
    });
  }

  /** Resolves once the connector's meter is recorded: at once if it already is. */
  record(chargePointId: string, connectorId: number): Promise<void> {
    const meterId = connectorMeterId(chargePointId, connectorId);
    if (this.recorded.has(meterId)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ meterId, connector: { chargePointId, connectorId }, resolve, reject });
      if (!this.inFlight) this.inFlight = this.writeLoop();
    });
  }

  private async writeLoop(): Promise<void> {
    // Let the messages that arrive in the same tick join the first write.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.waiting.length > 0) {
      const group = takeDistinct(this.waiting, (w) => w.meterId, METERS_PER_WRITE);
      const byMeter = new Map(group.map((w) => [w.meterId, w.connector]));
      // Sorted: concurrent writers (other replicas) lock the rows in the same order.
      const meterIds = [...byMeter.keys()].sort();
      try {
        await this.write(
          meterIds,
          meterIds.map((id) => byMeter.get(id) as Connector),
        );
        for (const id of meterIds) this.recorded.add(id);
        group.forEach((w) => w.resolve());
      } catch (err) {
        group.forEach((w) => w.reject(err));
      }
    }
    this.inFlight = null;
  }
}
