/** Dates in the browser's time zone, always with the offset: 2024-03-20 11:00 +01:00. */
const pad = (n: number) => String(n).padStart(2, '0');

export function formatOffset(date: Date): string {
  const minutes = -date.getTimezoneOffset();
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

const localDay = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const localMinute = (d: Date) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;

/** A date alone, in the browser's zone: 2024-03-20. */
export const formatDay = (value: Date | string | number): string => localDay(toDate(value));

export const toDate = (value: Date | string | number): Date =>
  value instanceof Date ? value : new Date(value);

export function formatDateTime(value: Date | string | number): string {
  const d = toDate(value);
  return `${localDay(d)} ${localMinute(d)} ${formatOffset(d)}`;
}

/** With seconds (2024-03-20 11:00:15 +01:00), and `milliseconds` too (11:00:15.001). */
export function formatDateTimeSeconds(
  value: Date | string | number,
  { milliseconds = false }: { milliseconds?: boolean } = {},
): string {
  const d = toDate(value);
  const ms = milliseconds ? `.${String(d.getMilliseconds()).padStart(3, '0')}` : '';
  return `${localDay(d)} ${localMinute(d)}:${pad(d.getSeconds())}${ms} ${formatOffset(d)}`;
}

const DAY_MS = 86_400_000;

/**
 * A time axis's tick labels (24-hour, local zone). Ticks whole days apart (they fall on local
 * midnights) are their dates alone. Closer ones are their times, with the date under the first
 * tick of each day that starts on the axis; under the axis's first tick only when that is a
 * midnight or no other tick has a date. So two dated labels never stand side by side (a day
 * starting at the second tick would otherwise put a date under both). `stepMs`: between ticks.
 */
export function timeTickLabels(ticksMs: readonly number[], stepMs: number): string[] {
  if (stepMs >= DAY_MS) return ticksMs.map(formatDay);
  const dates = ticksMs.map((ms) => toDate(ms));
  const days = dates.map(localDay);
  const dated = dates.map((d, i) =>
    i === 0 ? d.getHours() === 0 && d.getMinutes() === 0 : days[i] !== days[i - 1],
  );
  if (dates.length > 0 && !dated.includes(true)) dated[0] = true;
  return dates.map((d, i) => (dated[i] ? `${localMinute(d)}\n${days[i]}` : localMinute(d)));
}

/** How long ago, in the largest unit that matters: "40 s ago", "12 min ago", "3 h 5 min ago". */
export function formatAge(ms: number): string {
  if (ms < 0) return 'in the future (clock skew)';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s ago`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ago`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours} h ${min % 60} min ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** The value of an `<input type="datetime-local">` for a date (local time, minutes). */
export const toDateTimeLocalValue = (d: Date): string => `${localDay(d)}T${localMinute(d)}`;

/** An `<input type="datetime-local">` value read as local time, or null when empty or invalid. */
export function fromDateTimeLocalValue(value: string): Date | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value)) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * The instants a local time (an `<input type="datetime-local">` value) stands for in the browser's
 * zone, earliest first: one, two in the hour the clocks go back (it occurs twice), none in the
 * hour they skip going forward. `new Date(value)` picks one of two silently.
 */
export function instantsAtLocalTime(value: string): Date[] {
  const guess = fromDateTimeLocalValue(value);
  if (!guess) return [];
  const minute = value.slice(0, 16);
  const found = new Map<number, Date>();
  // Zones shift by 30 min to 2 h: the other instant is within that of the browser's guess.
  for (let shift = -120; shift <= 120; shift += 30) {
    const d = new Date(guess.getTime() + shift * 60_000);
    if (toDateTimeLocalValue(d) === minute) found.set(d.getTime(), d);
  }
  return [...found.values()].sort((a, b) => a.getTime() - b.getTime());
}

/** An RFC 3339 UTC instant as the engine writes them in text (e.g. a report's warnings). */
const UTC_INSTANT = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z\b/g;

/** `text` with each UTC instant in it written as the rest of the page writes times (local, offset). */
export function localizeInstants(text: string): string {
  return text.replace(UTC_INSTANT, (instant) => {
    const d = new Date(instant);
    if (Number.isNaN(d.getTime())) return instant;
    // As precise as the engine wrote it: cut to the second, a gap starting at 23:59:45.001 would
    // read as including a reading at 23:59:45.000.
    if (d.getUTCMilliseconds() !== 0) return formatDateTimeSeconds(d, { milliseconds: true });
    return d.getUTCSeconds() === 0 ? formatDateTime(d) : formatDateTimeSeconds(d);
  });
}
