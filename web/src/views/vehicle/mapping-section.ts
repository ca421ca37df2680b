import type { MappingHistory } from '../../api/types';
import { h } from '../../dom/h';
import { dataTable, deviceId } from '../data-table';
import { notice } from '../notices';
import { timeText } from '../time-text';
import { Section } from './section';

type Period = MappingHistory['history'][number];

/** Which meters the vehicle charged from, and when (GET /v1/telemetry/map/:id). */
export class MappingSection extends Section {
  constructor() {
    super('mapping', 'Meter mapping history', 'the mapping history');
  }

  render(mapping: MappingHistory | null): void {
    if (!mapping) {
      this.show(
        notice(
          'empty',
          'No mapping: this vehicle has never been mapped to a meter',
          'Without a mapping the AC energy it drew is unknown, so its efficiency cannot be computed. Map it with POST /v1/telemetry/map.',
        ),
      );
      return;
    }
    const periods = [...mapping.history].sort((a, b) => Date.parse(b.from) - Date.parse(a.from));
    this.show(
      mapping.current
        ? h(
            'p',
            null,
            'Charges from meter ',
            h('strong', null, mapping.current.meterId),
            ' since ',
            timeText(mapping.current.from),
            '.',
          )
        : notice(
            'empty',
            'No current mapping',
            'The last mapping period has ended; AC energy after it is unknown.',
          ),
      dataTable<Period>({
        caption: 'Mapping periods, newest first',
        columns: [
          { header: 'Meter', cell: (p) => deviceId(p.meterId) },
          { header: 'From', cell: (p) => timeText(p.from) },
          { header: 'To', cell: (p) => (p.to ? timeText(p.to) : h('strong', null, 'current')) },
        ],
        rows: periods,
      }),
    );
  }
}
