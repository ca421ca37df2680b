import type { Knex } from 'knex';
import type { EnergyReadingsMode } from '../config';
import type { DeviceType } from '../devices/device-kinds';

const TABLE = 'device_settings';

/** A device's own settings; a device without a row follows the configured defaults. */
export class DeviceSettingsStore {
  constructor(private readonly db: Knex) {}

  /** The device's own energy semantics, or null when it follows ENERGY_READINGS. */
  async energyReadings(type: DeviceType, id: string): Promise<EnergyReadingsMode | null> {
    const row = await this.db(TABLE)
      .select('energy_readings')
      .where({ device_type: type, device_id: id })
      .first();
    return row ? (row.energy_readings as EnergyReadingsMode) : null;
  }

  /** Sets the device's energy semantics; null returns it to the default. */
  async setEnergyReadings(
    type: DeviceType,
    id: string,
    mode: EnergyReadingsMode | null,
  ): Promise<void> {
    if (mode === null) {
      await this.db(TABLE).where({ device_type: type, device_id: id }).del();
      return;
    }
    await this.setMany(type, [id], mode);
  }

  /** The same semantics for several devices at once (e.g. the connectors of a charge point). */
  async setMany(type: DeviceType, ids: string[], mode: EnergyReadingsMode): Promise<void> {
    if (ids.length === 0) return;
    await this.db(TABLE)
      .insert(ids.map((id) => ({ device_type: type, device_id: id, energy_readings: mode })))
      .onConflict(['device_type', 'device_id'])
      .merge({ energy_readings: mode, updated_at: this.db.fn.now() });
  }
}
