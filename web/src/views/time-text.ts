import { h } from '../dom/h';
import { formatDateTime, formatDateTimeSeconds } from '../format/dates';

/** A machine-readable <time> showing the instant in the browser's zone, offset included. */
export const timeText = (iso: string, { seconds = false } = {}): HTMLTimeElement =>
  h(
    'time',
    { attrs: { datetime: iso } },
    seconds ? formatDateTimeSeconds(iso) : formatDateTime(iso),
  );

/** "from – to" of a window, both as <time>. */
export const windowText = (window: { from: string; to: string }): HTMLSpanElement =>
  h('span', { class: 'window-text' }, timeText(window.from), ' – ', timeText(window.to));
