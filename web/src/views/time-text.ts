import { h } from '../dom/h';
import { formatDateTime, formatDateTimeSeconds } from '../format/dates';

/**
 * A machine-readable <time> showing the instant in the browser's zone, offset included. Its date,
 * time and offset are each a span: where a time may wrap (a narrow figure), it wraps between
 * them, never after a hyphen inside the date ("2026-⏎12-07"), as browsers otherwise do.
 */
export const timeText = (iso: string, { seconds = false } = {}): HTMLTimeElement => {
  const text = seconds ? formatDateTimeSeconds(iso) : formatDateTime(iso);
  const parts = text.split(' ').flatMap((part, i) => (i === 0 ? [] : [' ']).concat([part]));
  return h(
    'time',
    { attrs: { datetime: iso } },
    parts.map((part) => (part === ' ' ? part : h('span', null, part))),
  );
};

/** "from – to" of a window, both as <time>. */
export const windowText = (window: { from: string; to: string }): HTMLSpanElement =>
  h('span', { class: 'window-text' }, timeText(window.from), ' – ', timeText(window.to));
