import { h } from '../dom/h';
import { formatRatio } from '../format/numbers';

interface Flaggable {
  alert: boolean | null;
  drift?: boolean | null;
  reason?: string | null;
  efficiency: number | null;
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
}

export interface Flag {
  flagged: boolean;
  /** Why, in words: the engine's own reason when it gives one, else the threshold or drift. */
  text: string;
}

export function flagOf(item: Flaggable, threshold: number): Flag {
  const flagged = item.alert === true || item.drift === true;
  if (item.reason) return { flagged, text: item.reason };
  if (item.drift === true) return { flagged, text: 'Drift: efficiency falling across sessions' };
  if (item.alert === true)
    return { flagged, text: `Below the ${formatRatio(threshold)} efficiency threshold` };
  if (item.alert === false) return { flagged, text: 'OK' };
  if (item.acConsumedKwh === null) return { flagged, text: 'No efficiency: AC energy unknown' };
  if (item.dcDeliveredKwh === null) return { flagged, text: 'No efficiency: no vehicle readings' };
  return { flagged, text: 'No efficiency: no AC energy drawn' };
}

/** The status cell: a visible "Flagged" badge (not colour alone) followed by the reason. */
export function flagBadge(flag: Flag): HTMLElement {
  return h(
    'span',
    { class: flag.flagged ? 'flag flag-on' : 'flag' },
    flag.flagged ? h('strong', { class: 'badge badge-alert' }, 'Flagged') : null,
    flag.flagged ? ' ' : null,
    h('span', { class: 'flag-reason' }, flag.text),
  );
}
