import type { VehicleStatus } from '../../api/types';
import { h } from '../../dom/h';
import { formatAge } from '../../format/dates';
import { formatCelsius, formatKwh, formatPercent } from '../../format/numbers';
import { notice } from '../notices';
import { timeText } from '../time-text';
import { Section } from './section';

/** A reading older than this is called out: the vehicle may be offline. */
const STALE_AFTER_MS = 15 * 60_000;

/**
 * What a reading's kwhDeliveredDc is, by how the vehicle's energy is read: the energy since its
 * reading before, or its register (a total that only rises); null when the engine cannot tell.
 */
const DC_ENERGY_LABELS = {
  interval: 'DC energy in that reading',
  cumulative: 'DC register (total delivered)',
  unknown: 'DC energy value (in that reading or a total: unknown)',
};

/** The vehicle's latest reading (GET /v1/vehicles/:id/status) and how old it is. */
export class LiveStatusSection extends Section {
  constructor() {
    super('live-status', 'Live status', 'the live status');
  }

  render(status: VehicleStatus | null, now = Date.now()): void {
    if (!status) {
      this.show(
        notice(
          'empty',
          'No readings received from this vehicle yet',
          'Its live status appears with its first reading.',
        ),
      );
      return;
    }
    const age = now - Date.parse(status.timestamp);
    const row = (label: string, ...value: (Node | string)[]) =>
      h('div', null, h('dt', null, label), h('dd', null, ...value));
    this.show(
      h(
        'dl',
        { class: 'figures' },
        row(
          'Latest reading',
          timeText(status.timestamp, { seconds: true }),
          h(
            'span',
            { class: age > STALE_AFTER_MS ? 'age age-stale' : 'age' },
            ` (${formatAge(age)})`,
          ),
        ),
        row('State of charge', formatPercent(status.soc)),
        row(DC_ENERGY_LABELS[status.energyReadings ?? 'unknown'], formatKwh(status.kwhDeliveredDc)),
        row('Battery temperature', formatCelsius(status.batteryTemp)),
        row(
          'Source',
          status.source === 'live' ? 'live state (Redis)' : 'status table (PostgreSQL)',
        ),
      ),
      age > STALE_AFTER_MS
        ? notice(
            'info',
            'This vehicle has not reported for over 15 minutes',
            'It may be offline or parked without connectivity.',
          )
        : null,
    );
  }
}
