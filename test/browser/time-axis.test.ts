/**
 * The charts' time axis: its labels (web/src/format/dates.ts, pure) and, drawn by the dashboard's
 * own charts in Chromium at widths on screens from 360 px to 1920 px over every span the
 * window picker offers (a 24-hour and 7-day window ending at any hour, custom up to 31 days, a
 * session's minutes) and across daylight-saving changes, that no two tick labels overlap: a date
 * is wider than the times, and neighbouring ticks can both carry one.
 */
import { build } from 'esbuild';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { timeTickLabels } from '../../web/src/format/dates';
import { CHROMIUM_PATH } from './helpers/chromium';
import type { AxisCase, DrawnTick } from './helpers/time-axis-page';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

describe('the time axis labels', () => {
  const local = (day: number, hour: number) => new Date(2026, 10, day, hour).getTime();

  test('when ticks are hours apart, then each is its time, with the date under the first and under each day’s first', () => {
    const ticks = [14, 16, 18].map((hour) => local(28, hour));
    expect(timeTickLabels(ticks, 2 * HOUR_MS)).toEqual(['14:00\n2026-11-28', '16:00', '18:00']);
    const days = [0, 12, 24, 36, 48].map((hour) => local(28, hour));
    expect(timeTickLabels(days, 12 * HOUR_MS)).toEqual([
      '00:00\n2026-11-28',
      '12:00',
      '00:00\n2026-11-29',
      '12:00',
      '00:00\n2026-11-30',
    ]);
  });

  test('when a later tick starts a day, then the first has no date (unless a midnight), so no two dated labels stand side by side', () => {
    const ticks = [22, 24, 26].map((hour) => local(28, hour));
    expect(timeTickLabels(ticks, 2 * HOUR_MS)).toEqual(['22:00', '00:00\n2026-11-29', '02:00']);
    expect(timeTickLabels([local(28, 12), local(29, 0)], 12 * HOUR_MS)).toEqual([
      '12:00',
      '00:00\n2026-11-29',
    ]);
    expect(timeTickLabels([local(28, 0), local(28, 12)], 12 * HOUR_MS)).toEqual([
      '00:00\n2026-11-28',
      '12:00',
    ]);
    expect(timeTickLabels([local(28, 22)], 2 * HOUR_MS)).toEqual(['22:00\n2026-11-28']);
  });

  test('when ticks are whole days apart, then each is its date alone', () => {
    const ticks = [27, 29, 31].map((day) => local(day, 0));
    expect(timeTickLabels(ticks, 2 * DAY_MS)).toEqual(['2026-11-27', '2026-11-29', '2026-12-01']);
  });
});

/** Room left between two neighbouring labels, px, that reads as two labels. */
const MIN_GAP_PX = 8;
/** A chart's width, px: 310 on a 360 px screen (the page's padding), up to main's 1,400 px less its own. */
const WIDTHS = [310, 340, 400, 480, 640, 800, 1024, 1280, 1350, 1920];
const ORDINARY_DAY = Date.parse('2026-11-29T00:00:00Z');
/** The end of every hour of a day: a window's first tick falls at any hour (22:00 included). */
const EVERY_HOUR = Array.from({ length: 24 }, (_, h) => ORDINARY_DAY + h * HOUR_MS);
/** After daylight-saving changes: Berlin's (at 02:00 and 03:00) and Santiago's (at midnight). */
const AFTER_DST_CHANGES = ['2026-03-30', '2026-10-26', '2026-04-06', '2026-09-07'].flatMap((day) =>
  [0, 11].map((h) => Date.parse(`${day}T00:00:00Z`) + h * HOUR_MS),
);

function cases(): AxisCase[] {
  const windows: Array<[hours: number, ends: number[]]> = [
    // The presets, ending at any hour.
    [24, [...EVERY_HOUR, ...AFTER_DST_CHANGES]],
    [168, [...EVERY_HOUR, ...AFTER_DST_CHANGES]],
    // Custom windows, up to the picker's 31 days.
    ...[1, 3, 12, 48, 96, 336, 504, 744].map((hours): [number, number[]] => [
      hours,
      [0, 7, 22].map((h) => ORDINARY_DAY + h * HOUR_MS),
    ]),
    [744, AFTER_DST_CHANGES],
  ];
  const all: AxisCase[] = [];
  for (const width of WIDTHS) {
    for (const [hours, ends] of windows)
      for (const toMs of ends)
        all.push({ chart: 'hourly', fromMs: toMs - hours * HOUR_MS, toMs, width });
    // A session's minutes, over midnight.
    for (const minutes of [15, 60, 240, 720])
      for (const toMs of [22, 23.5, 24.5].map((h) => ORDINARY_DAY + h * HOUR_MS))
        all.push({ chart: 'minute', fromMs: toMs - minutes * MINUTE_MS, toMs, width });
  }
  return all;
}

/** Neighbouring labels closer than their half widths and the gap: what overlaps, for the report. */
function crowded(ticks: DrawnTick[]): string[] {
  const found: string[] = [];
  for (let i = 1; i < ticks.length; i++) {
    const [a, b] = [ticks[i - 1], ticks[i]];
    const gap = b.x - a.x - (a.width + b.width) / 2;
    if (gap < MIN_GAP_PX)
      found.push(`${a.lines.join(' ')} | ${b.lines.join(' ')}: ${gap.toFixed(1)} px apart`);
  }
  return found;
}

let browser: Browser;
let bundle: string;

beforeAll(async () => {
  const result = await build({
    entryPoints: [join(__dirname, 'helpers', 'time-axis-page.ts')],
    bundle: true,
    format: 'iife',
    write: false,
    logLevel: 'warning',
  });
  bundle = result.outputFiles[0].text;
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
});

describe("the charts' time axis as drawn", () => {
  test.each(['Europe/Berlin', 'America/Santiago', 'Asia/Kolkata'])(
    'when a chart spans any window the picker offers at any width (in %s), then no two tick labels overlap',
    async (timezoneId) => {
      const context = await browser.newContext({ timezoneId, locale: 'en-US' });
      const page = await context.newPage();
      await page.setContent('<!doctype html><html><body></body></html>');
      await page.addScriptTag({ content: bundle });
      const all = cases();
      const drawn = await page.evaluate(async (list) => {
        const out: DrawnTick[][] = [];
        for (const c of list) out.push(await window.drawTimeAxis(c));
        return out;
      }, all);
      await context.close();

      const problems = all.flatMap((c, i) =>
        crowded(drawn[i]).map(
          (p) =>
            `${c.chart} ${new Date(c.fromMs).toISOString()} to ${new Date(c.toMs).toISOString()} at ${c.width} px: ${p}`,
        ),
      );
      // Every chart has its time labels; none crowds its neighbour.
      const unlabelled = all
        .filter((_, i) => drawn[i].length === 0)
        .map((c) => `${c.chart} ${(c.toMs - c.fromMs) / MINUTE_MS} min at ${c.width} px`);
      expect(unlabelled).toEqual([]);
      expect({ timezoneId, problems: problems.slice(0, 10), count: problems.length }).toEqual({
        timezoneId,
        problems: [],
        count: 0,
      });
    },
  );
});
