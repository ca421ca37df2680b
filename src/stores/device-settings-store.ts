import type { Knex } from 'knex';
import type { EnergyReadingsMode } from '../config';
import type { DeviceType } from '../devices/device-kinds';
import { markSessionsOfDevices } from './session-marks';

const TABLE = 'device_settings';

/**
 * A device's own settings; a device without a row follows the configured defaults. A change of
 * a device's semantics marks the kept sessions it is part of, for the session builder to compute
 * again (the reports read raw readings and the rollups hold both sums, so they follow at once).
 */
export class DeviceSettingsStore {
  constructor(
    private readonly db: Knex,
    private readonly config: { energyReadings: EnergyReadingsMode },
  ) {}

  /** The device's own energy semantics, or null when it follows ENERGY_READINGS. */
  async energyReadings(type: DeviceType, id: string): Promise<EnergyReadingsMode | null> {
    const row = await this.db(TABLE)
      .select('energy_readings')
      .where({ device_type: type, device_id: id })
      .first();
    return row ? (row.energy_readings as EnergyReadingsMode) : null;
  }

  /** The semantics of each of `ids`, in order: its own or ENERGY_READINGS (a device list's page). */
  async energyReadingsOf(type: DeviceType, ids: string[]): Promise<EnergyReadingsMode[]> {
    if (ids.length === 0) return [];
    const own = new Map<string, EnergyReadingsMode>(
      (
        await this.db(TABLE)
          .select('device_id', 'energy_readings')
          .where({ device_type: type })
          .whereIn('device_id', ids)
      ).map((r: { device_id: string; energy_readings: EnergyReadingsMode }) => [
        r.device_id,
        r.energy_readings,
      ]),
    );
    return ids.map((id) => own.get(id) ?? this.config.energyReadings);
  }

  /** Sets the device's energy semantics; null returns it to the default. */
  async setEnergyReadings(
    type: DeviceType,
    id: string,
    mode: EnergyReadingsMode | null,
  ): Promise<void> {
    await this.change(type, [id], mode);
  }

  /** The same semantics for several devices at once (e.g. the connectors of a charge point). */
  async setMany(type: DeviceType, ids: string[], mode: EnergyReadingsMode): Promise<void> {
    await this.change(type, ids, mode);
  }

  private async change(type: DeviceType, ids: string[], mode: EnergyReadingsMode | null) {
    if (ids.length === 0) return;
    const sorted = [...new Set(ids)].sort(); // rows locked in one order by concurrent writers
    await this.db.transaction(async (trx) => {
      const before = new Map<string, EnergyReadingsMode>(
        (
          await trx(TABLE)
            .select('device_id', 'energy_readings')
            .where({ device_type: type })
            .whereIn('device_id', sorted)
            .orderBy('device_id')
            .forUpdate()
        ).map((r: { device_id: string; energy_readings: EnergyReadingsMode }) => [
          r.device_id,
          r.energy_readings,
        ]),
      );
      if (mode === null) {
        await trx(TABLE).where({ device_type: type }).whereIn('device_id', sorted).del();
      } else {
        await trx(TABLE)
          .insert(sorted.map((id) => ({ device_type: type, device_id: id, energy_readings: mode })))
          .onConflict(['device_type', 'device_id'])
          .merge({ energy_readings: mode, updated_at: trx.fn.now() });
      }
      const { energyReadings: byDefault } = this.config;
      const after = mode ?? byDefault;
      const changed = sorted.filter((id) => (before.get(id) ?? byDefault) !== after);
      await markSessionsOfDevices(trx, type, changed);
    });
  }
}
