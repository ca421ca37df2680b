import type { Page } from 'playwright-core';
import type { Fleet } from '../../scripts/fleet-model';
import { startTestEngine, waitForDrained, type TestEngine } from '../helpers/engine';
import { ingestAllStored, post } from './helpers/requests';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { loadSimulatedFleet } from './helpers/fleet-loader';
import { palette } from '../../web/src/charts/palette';
import {
  drawnPixels,
  parseFigure,
  pixelsOfColour,
  recordCspViolations,
  runAxe,
} from './helpers/page-checks';

const HOUR_MS = 3_600_000;

let engine: TestEngine;
let fleet: Fleet;
let browser: DashboardBrowser;
let page: Page;
let cspViolations: () => Promise<string[]>;

beforeAll(async () => {
  engine = await startTestEngine();
  fleet = await loadSimulatedFleet(engine, { vehicles: 20, faulty: 0.25, backfill: '3h' });
  browser = await launchDashboardBrowser();
  page = await browser.newPage();
  cspViolations = await recordCspViolations(page);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
});

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${engine.url}${path}`);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

interface FleetRow {
  vehicleId: string;
  flagged: boolean;
  status: string;
  efficiency: string;
}

const fleetRows = (p: Page): Promise<FleetRow[]> =>
  p.$$eval('.fleet-view tbody tr', (rows) =>
    rows.map((r) => {
      const cells = r.querySelectorAll('td');
      return {
        vehicleId: r.getAttribute('data-vehicle-id') ?? '',
        flagged: r.getAttribute('data-flagged') === 'true',
        status: cells[0]?.textContent ?? '',
        efficiency: cells[1]?.textContent ?? '',
      };
    }),
  );

/** A percentage on the page equals the API's ratio (to 4 decimals), not a rounding of it. */
const expectRatioShown = (text: string | undefined, ratio: number | null) =>
  expect(parseFigure(text ?? '')).toBeCloseTo((ratio ?? NaN) * 100, 6);

/** The energy chart's legend (its tooltip) for one hour of the window: its efficiency as shown. */
async function legendEfficiencyAt(p: Page, hour: number, hours: number): Promise<string> {
  const energyFigure = p.locator('#efficiency .chart-figure').first();
  // The mouse reaches only what is on screen (warnings above may push the chart down).
  await energyFigure.locator('.u-over').scrollIntoViewIfNeeded();
  const box = await energyFigure.locator('.u-over').boundingBox();
  if (!box) throw new Error('the energy chart has no plot area');
  // Each hour is drawn at its middle, the x range spanning whole hours.
  await p.mouse.move(box.x + (box.width * (hour + 0.5)) / hours, box.y + box.height / 2);
  const value = energyFigure
    .locator('.u-legend .u-series')
    .filter({ has: p.locator('th', { hasText: /^Efficiency$/ }) })
    .locator('.u-value');
  return (await value.textContent()) ?? '';
}

/** A point that stands out: a solid dot (about 40 px of its colour), not a thin ring (7). */
const LONE_POINT_PIXELS = 25;

/**
 * Pixels of the efficiency line's colour in the energy chart within `halfWidth` px of one hour's
 * middle, where its point and its line through that hour are drawn.
 */
async function efficiencyPixelsAt(
  p: Page,
  hour: number,
  hours: number,
  halfWidth: number,
): Promise<number> {
  const energyFigure = p.locator('#efficiency .chart-figure').first();
  const canvas = await energyFigure.locator('canvas').boundingBox();
  const plot = await energyFigure.locator('.u-over').boundingBox();
  if (!canvas || !plot) throw new Error('the energy chart has no plot area');
  const x = plot.x - canvas.x + (plot.width * (hour + 0.5)) / hours;
  return pixelsOfColour(p, '#efficiency .chart-figure:nth-of-type(1) canvas', palette.efficiency, {
    from: x - halfWidth,
    to: x + halfWidth,
  });
}

/**
 * The lines each cell of a table's column takes for its text (its own content's line boxes,
 * not the row's height); the column by its header.
 */
const linesOfColumn = (p: Page, table: string, header: string): Promise<number[]> =>
  p.$eval(
    table,
    (t, name) => {
      const column = [...t.querySelectorAll('thead th')].findIndex((th) => th.textContent === name);
      return [...t.querySelectorAll('tbody tr')].map((row) => {
        const range = document.createRange();
        range.selectNodeContents(row.children[column]);
        const tops = [...range.getClientRects()]
          .filter((r) => r.width > 0)
          .map((r) => Math.round(r.top));
        return new Set(tops).size;
      });
    },
    header,
  );

/** A table's ids and times each on one line, at 1280 px and at 375 px, where it scrolls sideways. */
async function expectUnbroken(p: Page, table: string, headers: string[]): Promise<void> {
  for (const width of [1280, 375]) {
    await p.setViewportSize({ width, height: 900 });
    for (const header of headers) {
      const lines = await linesOfColumn(p, table, header);
      expect(lines.length).toBeGreaterThan(0);
      expect({ header, width, lines }).toEqual({ header, width, lines: lines.map(() => 1) });
    }
    // Wider than the screen, the table scrolls in its own region; the page itself does not.
    await expect(
      p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    ).resolves.toBe(true);
  }
}

/** A <dl> of dt/dd pairs as { term: definition }. */
const definitionList = (p: Page, selector: string): Promise<Record<string, string>> =>
  p.$eval(selector, (dl) =>
    Object.fromEntries(
      [...dl.querySelectorAll('dt')].map((dt) => [
        dt.textContent ?? '',
        dt.nextElementSibling?.textContent ?? '',
      ]),
    ),
  );

describe('dashboard against a simulated fleet with known faulty chargers', () => {
  test('when the dashboard opens, then the fleet lists exactly the flagged vehicles, worst first', async () => {
    await page.goto(`${engine.url}/dashboard`);
    await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
    const rows = await fleetRows(page);
    const faulty = fleet.faulty().map((f) => f.vehicleId);
    expect(faulty.length).toBe(5);

    expect(rows).toHaveLength(20);
    const flagged = rows.filter((r) => r.flagged).map((r) => r.vehicleId);
    expect(new Set(flagged)).toEqual(new Set(faulty));
    expect(rows.slice(0, faulty.length).every((r) => r.flagged)).toBe(true);
    for (const row of rows.filter((r) => r.flagged))
      expect(row.status).toMatch(/Flagged\s+Below the 85\.00\s%\sefficiency threshold/);

    // Same order as the engine's report for the same window.
    const report = await api<{ vehicles: { vehicleId: string; efficiency: number }[] }>(
      '/v1/analytics/fleet?hours=24&limit=100',
    );
    expect(rows.map((r) => r.vehicleId)).toEqual(report.vehicles.map((v) => v.vehicleId));
    // The API's efficiency as it gives it (4 decimals), not rounded a second time.
    report.vehicles.forEach((v, i) => expectRatioShown(rows[i].efficiency, v.efficiency));
    await expect(page.locator('.count-alert dd').textContent()).resolves.toBe('5');
    await expect(page.locator('.window-line time').first().textContent()).resolves.toMatch(
      /^\d{4}-\d{2}-\d{2} \d{2}:00 \+0[12]:00$/,
    );
    expect(page.url()).toMatch(/#\/fleet\?window=24h$/);
  });

  test('when the screen is 375 px wide, then the fleet table says it scrolls sideways and its status cells stay short', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    try {
      const block = page.locator('.fleet-view .table-block').first();
      await page.waitForSelector('.fleet-view .table-block[data-overflowing]');
      await expect(block.locator('.table-scroll-hint').isVisible()).resolves.toBe(true);
      const heights = await page.$$eval('.fleet-view tbody tr', (rows) =>
        rows.map((r) => r.getBoundingClientRect().height),
      );
      // A reason in a line or a few, not a column of single words.
      expect(Math.max(...heights)).toBeLessThan(120);
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
    await page.locator('.fleet-view .table-block:not([data-overflowing])').first().waitFor();
  });

  test('when the fleet shows at 1280 px, then its seven summary cards share one row', async () => {
    await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
    const tops = await page.$$eval('.fleet-view .counts .count', (cards) =>
      cards.map((c) => Math.round(c.getBoundingClientRect().top)),
    );
    expect(tops).toHaveLength(7);
    expect(new Set(tops).size).toBe(1);
  });

  test('when the fleet table lists meter ids, then no id breaks across lines, on a wide or a narrow screen', async () => {
    await page.waitForSelector('.fleet-view tbody tr');
    try {
      await expectUnbroken(page, '.fleet-view table', ['Meters']);
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  test('when a flagged vehicle is clicked, then its view draws the chart and shows the API figures', async () => {
    const worst = (await fleetRows(page))[0].vehicleId;
    await page.click(`.fleet-view tbody tr[data-vehicle-id="${worst}"] a`);
    await page.waitForSelector('#efficiency .window-totals');
    await page.waitForSelector('#efficiency .chart canvas');
    expect(page.url()).toContain(`#/vehicles/${worst}?window=24h`);

    // Drawn, not blank: bars and lines put thousands of pixels on the canvas.
    const charts = await page.$$('#efficiency .chart canvas');
    expect(charts).toHaveLength(2);
    expect(
      await drawnPixels(page, '#efficiency .chart-figure:nth-of-type(1) canvas'),
    ).toBeGreaterThan(2000);

    // The same window's report, asked of the API directly.
    const [from, to] = await page.$$eval('#efficiency .window-line time', (times) =>
      times.map((t) => t.getAttribute('datetime')),
    );
    const report = await api<{
      energy: { acConsumedKwh: number; dcDeliveredKwh: number; efficiency: number; alert: boolean };
      series: {
        acConsumedKwh: number | null;
        dcDeliveredKwh: number | null;
        efficiency: number | null;
      }[];
    }>(`/v1/analytics/performance/${worst}?from=${from}&to=${to}&bucket=hour`);
    const totals = await definitionList(page, '#efficiency .window-totals');
    const figure = (label: string) => parseFigure(totals[label] ?? '');
    expect(report.energy.alert).toBe(true);
    expect(figure('AC consumed')).toBeCloseTo(report.energy.acConsumedKwh, 2);
    expect(figure('DC delivered')).toBeCloseTo(report.energy.dcDeliveredKwh, 2);
    expectRatioShown(totals['Efficiency (DC / AC)'], report.energy.efficiency);

    // The hourly table under the charts carries the series hour by hour.
    const hourly = await page.$$eval('#efficiency .hourly tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].slice(0, 3).map((td) => td.textContent ?? '')),
    );
    expect(hourly).toHaveLength(report.series.length);
    report.series.forEach((point, i) => {
      if (point.acConsumedKwh !== null)
        expect(parseFigure(hourly[i][0])).toBeCloseTo(point.acConsumedKwh, 2);
      if (point.dcDeliveredKwh !== null)
        expect(parseFigure(hourly[i][1])).toBeCloseTo(point.dcDeliveredKwh, 2);
      if (point.efficiency !== null) expectRatioShown(hourly[i][2], point.efficiency);
    });
    // The chart's legend (its tooltip) shows the hour's efficiency as the table does.
    const charging = report.series.findIndex((p) => (p.dcDeliveredKwh ?? 0) > 0);
    expectRatioShown(
      await legendEfficiencyAt(page, charging, report.series.length),
      report.series[charging].efficiency,
    );

    // Its sessions (detected from the readings), the mapping and the live status show.
    await page.waitForSelector('#sessions tbody tr');
    await page.waitForSelector('#live-status .figures');
    await page.waitForSelector('#mapping table');
  });

  test('when a vehicle idles for an hour between two charges, then the efficiency line leaves that hour out and each lone charging hour shows as a point', async () => {
    const vehicleId = 'IDLE-HOUR-V1';
    const meterId = 'IDLE-HOUR-M1';
    const lastWholeHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    await post(engine, '/v1/telemetry/map', {
      vehicleId,
      meterId,
      since: new Date(lastWholeHour - 50 * HOUR_MS).toISOString(),
    });
    // Charging 4 h and 2 h before the last whole hour; in the hour between, standby AC and no DC.
    // And a day before: a line of its own length in the 7-day chart (idle hours in between).
    const hourReadings = (hoursBack: number, acKwh: number, dcKwh: number) =>
      [10, 20, 30, 40, 50].flatMap((minute) => {
        const timestamp = new Date(lastWholeHour - hoursBack * HOUR_MS + minute * 60_000);
        return [
          { meterId, kwhConsumedAc: acKwh, voltage: 230, timestamp: timestamp.toISOString() },
          {
            vehicleId,
            soc: 50,
            kwhDeliveredDc: dcKwh,
            batteryTemp: 25,
            timestamp: timestamp.toISOString(),
          },
        ];
      });
    await post(engine, '/v1/telemetry/ingest', [
      ...hourReadings(48, 2, 1.8),
      ...hourReadings(4, 2, 1.8),
      ...hourReadings(3, 0.0004, 0),
      ...hourReadings(2, 2, 1.8),
    ]);
    await waitForDrained(engine.queue, 60_000);

    await page.goto(`${engine.url}/dashboard#/vehicles/${vehicleId}?window=24h`);
    await page.waitForSelector('#efficiency .chart canvas');
    const [from, to] = await page.$$eval('#efficiency .window-line time', (times) =>
      times.map((t) => t.getAttribute('datetime')),
    );
    const { series } = await api<{
      series: { hour: string; dcDeliveredKwh: number | null; efficiency: number | null }[];
    }>(`/v1/analytics/performance/${vehicleId}?from=${from}&to=${to}&bucket=hour`);
    const hourAt = (hoursBack: number) =>
      series.findIndex(
        (p) => p.hour === new Date(lastWholeHour - hoursBack * HOUR_MS).toISOString(),
      );
    const [charging, idle] = [hourAt(4), hourAt(3)];
    expect(series[charging].efficiency).toBeCloseTo(0.9, 6);
    expect(series[idle]).toMatchObject({ dcDeliveredKwh: 0, efficiency: null });

    expectRatioShown(await legendEfficiencyAt(page, charging, series.length), 0.9);
    await expect(legendEfficiencyAt(page, idle, series.length)).resolves.toBe('–');
    // The hourly table gives the idle hour's AC, and no efficiency, as the API does.
    const idleRow = await page.$$eval(
      '#efficiency .hourly tbody tr',
      (rows, i) => [...rows[i].querySelectorAll('td')].map((td) => td.textContent ?? ''),
      idle,
    );
    expect(idleRow[2]).toBe('–');

    // The idle hour is a gap in the line: nothing of its colour where a line from the charging
    // hour before to the one after would cross it. Each of those, lone now, is a solid point that
    // stands out from the bars (a 5 px ring was lost against a bar's edge).
    await expect(efficiencyPixelsAt(page, idle, series.length, 4)).resolves.toBe(0);
    await expect(efficiencyPixelsAt(page, charging, series.length, 8)).resolves.toBeGreaterThan(
      LONE_POINT_PIXELS,
    );

    // Over 7 days, where the chart hides its points, a lone charging hour still shows as one:
    // the hour 48 h back, with no line from it across the idle day to the next charging hour.
    await page.goto(`${engine.url}/dashboard#/vehicles/${vehicleId}?window=7d`);
    // Only the hash changed: the 24-hour chart stays on the page until the 7-day one replaces it.
    await page.waitForFunction(() => {
      const [from, to] = [...document.querySelectorAll('#efficiency .window-line time')].map((t) =>
        Date.parse(t.getAttribute('datetime') ?? ''),
      );
      return to - from >= 7 * 24 * 3_600_000;
    });
    await page.waitForSelector('#efficiency .chart canvas');
    const week = await page.$$eval('#efficiency .window-line time', (times) =>
      times.map((t) => t.getAttribute('datetime')),
    );
    const weekSeries = (
      await api<{ series: { hour: string }[] }>(
        `/v1/analytics/performance/${vehicleId}?from=${week[0]}&to=${week[1]}&bucket=hour`,
      )
    ).series;
    const weekHourAt = (hoursBack: number) =>
      weekSeries.findIndex(
        (p) => p.hour === new Date(lastWholeHour - hoursBack * HOUR_MS).toISOString(),
      );
    await expect(
      efficiencyPixelsAt(page, weekHourAt(48), weekSeries.length, 8),
    ).resolves.toBeGreaterThan(LONE_POINT_PIXELS);
    await expect(efficiencyPixelsAt(page, weekHourAt(26), weekSeries.length, 4)).resolves.toBe(0);
  });

  test("when a vehicle's energy is read as a register, then its live status calls the DC value the register, not the energy in that reading", async () => {
    const reading = (vehicleId: string) => ({
      vehicleId,
      soc: 60,
      kwhDeliveredDc: 1234.5,
      batteryTemp: 25,
      timestamp: new Date().toISOString(),
    });
    const res = await fetch(`${engine.url}/v1/vehicles/REGISTER-V1/settings`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ energyReadings: 'cumulative' }),
    });
    expect(res.status).toBe(200);
    await ingestAllStored(engine, [reading('REGISTER-V1'), reading('INTERVAL-V1')]);
    const labelOf = async (vehicleId: string) => {
      await page.goto(`${engine.url}/dashboard#/vehicles/${vehicleId}?window=24h`);
      return page.locator('#live-status dl.figures dt', { hasText: /^DC / }).textContent();
    };
    await expect(labelOf('REGISTER-V1')).resolves.toBe('DC register (total delivered)');
    await expect(labelOf('INTERVAL-V1')).resolves.toBe('DC energy in that reading');
  });

  test("when a vehicle's sessions are listed, then their times and meters do not break across lines, on a wide or a narrow screen", async () => {
    // The vehicle of the last test: its charges ended, so each session has an end time.
    await page.goto(`${engine.url}/dashboard#/vehicles/IDLE-HOUR-V1?window=24h`);
    // Only the hash changed: the 7-day view stays on the page until the 24-hour one replaces it.
    await page.waitForFunction(() => {
      const [from, to] = [...document.querySelectorAll('#efficiency .window-line time')].map((t) =>
        Date.parse(t.getAttribute('datetime') ?? ''),
      );
      return to - from < 7 * 24 * 3_600_000;
    });
    await page.waitForSelector('#sessions tbody tr');
    await expect(page.locator('#sessions tbody td time').count()).resolves.toBeGreaterThan(0);
    try {
      await expectUnbroken(page, '#sessions table', ['Start', 'End', 'Meters']);
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });
});

describe('dashboard window choice', () => {
  test("when a later page's link holds an earlier window (the hour has turned since), then the fleet shows the new window's first page, says why, and its session flags are of that window", async () => {
    // A 24-hour window ending an hour ago, as a page-2 link made an hour ago holds it.
    const now = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000);
    const to = new Date(now.getTime() - 3_600_000);
    const from = new Date(to.getTime() - 24 * 3_600_000);
    const first = await api<{ nextCursor: string | null }>(
      `/v1/analytics/fleet?from=${from.toISOString()}&to=${to.toISOString()}&limit=5`,
    );
    expect(first.nextCursor).not.toBeNull();
    const sessionsRequest = page.waitForRequest((r) => r.url().includes('/v1/analytics/sessions?'));
    await page.goto(
      `${engine.url}/dashboard#/fleet?window=24h&limit=5&trail=${first.nextCursor ?? ''}`,
    );
    await page.waitForFunction(() => !location.hash.includes('trail='));
    const asked = new URL((await sessionsRequest).url()).searchParams;
    const newFrom = new Date(now.getTime() - 24 * 3_600_000);
    expect([asked.get('from'), asked.get('to')]).toEqual([
      newFrom.toISOString(),
      now.toISOString(),
    ]);
    await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
    await expect(
      page.locator('.fleet-view .window-line time').first().getAttribute('datetime'),
    ).resolves.toBe(newFrom.toISOString());
    expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=24h');
    expect(await page.textContent('.fleet-view .pager-page')).toBe('Page 1');
    await expect(page.locator('#fleet-window-link-problem').textContent()).resolves.toMatch(
      /^The hour has turned, and with it the last 24 hours: showing the first page of the new window \(page 2 was of the window ending \d{4}-\d\d-\d\d \d\d:00 [+-]\d\d:\d\d\)\.$/,
    );
  });

  test('when a custom window is applied, then the fleet reports exactly that span', async () => {
    await page.goto(`${engine.url}/dashboard#/fleet?window=24h`);
    await page.waitForSelector('.fleet-view tbody tr');
    await page.getByLabel('Custom').check();
    // Prefilled with the span on screen; narrow it to the last two whole hours.
    const to = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000);
    const from = new Date(to.getTime() - 2 * 3_600_000);
    // The browser runs in Europe/Berlin: type the wall-clock times it shows there.
    const berlin = (d: Date) =>
      new Intl.DateTimeFormat('sv-SE', {
        timeZone: 'Europe/Berlin',
        dateStyle: 'short',
        timeStyle: 'short',
      })
        .format(d)
        .replace(' ', 'T');
    await page.getByLabel('From').fill(berlin(from));
    await page.getByLabel('To', { exact: true }).fill(berlin(to));
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForFunction(() => location.hash.includes('window=custom'));
    await page.waitForFunction(
      (iso) =>
        document.querySelector('.fleet-view .window-line time')?.getAttribute('datetime') === iso,
      from.toISOString(),
    );
    const params = new URLSearchParams(new URL(page.url()).hash.split('?')[1]);
    expect(params.get('from')).toBe(from.toISOString());
    expect(params.get('to')).toBe(to.toISOString());
    expect(await page.isChecked('#fleet-window-custom')).toBe(true);
  });

  test("when a link's custom window cannot be shown, then the page says why and which window it shows instead", async () => {
    const linkProblem = (p: Page, view: string) => p.locator(`#${view}-window-link-problem`);
    await page.goto(
      `${engine.url}/dashboard#/fleet?window=custom&from=2024-09-01T12:00:00Z&to=2024-09-01T10:00:00Z`,
    );
    await page.waitForSelector('.fleet-view tbody tr');
    await expect(linkProblem(page, 'fleet').textContent()).resolves.toBe(
      `The link's window could not be shown: its custom window's "from" (2024-09-01T12:00:00Z) is not before its "to" (2024-09-01T10:00:00Z). Showing the last 24 hours instead.`,
    );
    expect(await page.isChecked('#fleet-window-24h')).toBe(true);
    const vehicleId = (await fleetRows(page))[0].vehicleId;
    await page.goto(
      `${engine.url}/dashboard#/vehicles/${vehicleId}?window=custom&from=2024-09-01T10:00:00Z&to=yesterday`,
    );
    await expect(linkProblem(page, 'vehicle').textContent()).resolves.toBe(
      `The link's window could not be shown: "yesterday" in its custom window is not a date and time with a zone offset (e.g. 2024-03-20T10:00:00Z). Showing the last 24 hours instead.`,
    );
    // Choosing a window replaces the link's: the note goes.
    await page.getByLabel('Last 7 days').check();
    await page.waitForFunction(() => location.hash.includes('window=7d'));
    await linkProblem(page, 'vehicle').waitFor({ state: 'hidden' });
  });

  test("when a link's window is unknown (window=bogus), then the page says so once and the address becomes the window shown", async () => {
    const vehicleId = fleet.vehicles[0].id;
    await page.goto(`${engine.url}/dashboard#/vehicles/${vehicleId}?window=bogus`);
    const problem = page.locator('#vehicle-window-link-problem');
    await expect(problem.textContent()).resolves.toBe(
      `The link's window could not be shown: its window "bogus" is none of 24h, 7d and custom. Showing the last 24 hours instead.`,
    );
    expect(await page.evaluate(() => location.hash)).toBe(`#/vehicles/${vehicleId}?window=24h`);
    // A reload (or a copy of the address) shows the window without repeating the note.
    await page.reload();
    await page.waitForSelector('#efficiency .window-line time');
    expect(await problem.isHidden()).toBe(true);

    await page.goto(`${engine.url}/dashboard#/fleet?window=bogus&limit=25`);
    await expect(page.locator('#fleet-window-link-problem').textContent()).resolves.toMatch(
      /^The link's window could not be shown: its window "bogus"/,
    );
    expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=24h&limit=25');
  });

  test('when a link names no screen of the dashboard, then the fleet shows, says so, and the address becomes the fleet’s', async () => {
    const problem = page.locator('#fleet-window-link-problem');
    await page.goto(`${engine.url}/dashboard#/nowhere`);
    await page.waitForSelector('.fleet-view tbody tr');
    await expect(problem.textContent()).resolves.toBe(
      "The link's address (#/nowhere) names no screen of the dashboard: showing the fleet instead.",
    );
    expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=24h');
    // Typed over another screen's address: the same, without a history entry of its own.
    const vehicleId = (await fleetRows(page))[0].vehicleId;
    await page.goto(`${engine.url}/dashboard#/vehicles/${vehicleId}?window=24h`);
    await page.waitForSelector('#efficiency .window-line time');
    await page.evaluate(() => {
      location.hash = '#/vehicles/a/b';
    });
    await page.waitForSelector('.fleet-view tbody tr');
    await expect(problem.textContent()).resolves.toBe(
      "The link's address (#/vehicles/a/b) names no screen of the dashboard: showing the fleet instead.",
    );
    expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=24h');
    // A window chosen replaces the link: the note goes.
    await page.getByLabel('Last 7 days').check();
    await page.waitForFunction(() => location.hash.includes('window=7d'));
    await problem.waitFor({ state: 'hidden' });
  });

  test("when a link's page cursor is refused (stale or edited), then the fleet shows its first page, says so, and drops the trail from the address", async () => {
    await page.goto(`${engine.url}/dashboard#/fleet?window=7d&trail=garbage`);
    // The page may still show the last test's table (a hash change keeps the document): the
    // refusal is seen when the trail leaves the address, in the same step as the note appears.
    await page.waitForFunction(() => !location.hash.includes('trail='));
    await page.waitForSelector('.fleet-view tbody tr');
    await expect(page.locator('#fleet-window-link-problem').textContent()).resolves.toBe(
      'The link named a page this report does not have: showing its first page.',
    );
    expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=7d');
    expect(await page.isChecked('#fleet-window-7d')).toBe(true);
    // A link whose window could not be shown either says both.
    await page.goto(
      `${engine.url}/dashboard#/fleet?window=custom&from=2024-09-01T12:00:00Z&to=2024-09-01T10:00:00Z&trail=garbage`,
    );
    await page.waitForFunction(() => !location.hash.includes('trail='));
    await expect(page.locator('#fleet-window-link-problem').textContent()).resolves.toMatch(
      /^The link's window could not be shown: .* The link named a page this report does not have/,
    );
  });

  test('when a link’s page cursor was refused, then the "Fleet" menu link leads to the first page shown, not to the refused one', async () => {
    await page.goto(`${engine.url}/dashboard#/fleet?window=7d&limit=25&trail=garbage`);
    await page.waitForFunction(() => !location.hash.includes('trail='));
    await page.waitForSelector('.fleet-view tbody tr');
    expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=7d&limit=25');
    expect(await page.getAttribute('[data-nav="fleet"]', 'href')).toBe(
      '#/fleet?window=7d&limit=25',
    );

    // To the devices and back by the menu: the first page, without the note.
    await page.getByRole('link', { name: 'Devices', exact: true }).click();
    await page.waitForSelector('.devices-view');
    const asked: string[] = [];
    const record = (r: { url(): string }) => asked.push(r.url());
    page.on('request', record);
    try {
      await page.getByRole('link', { name: 'Fleet', exact: true }).click();
      await page.waitForSelector('.fleet-view tbody tr');
      expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=7d&limit=25');
      expect(await page.isHidden('#fleet-window-link-problem')).toBe(true);
      expect(await page.isChecked('#fleet-window-7d')).toBe(true);
      // The refused cursor was not asked again.
      const listed = asked.filter((url) => url.includes('/v1/analytics/fleet?'));
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.filter((url) => url.includes('cursor='))).toEqual([]);
    } finally {
      page.off('request', record);
    }
  });
});

describe('dashboard page rules', () => {
  test('when the page and its assets are fetched, then they need no key and carry the dashboard CSP', async () => {
    const res = await fetch(`${engine.url}/dashboard`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    const html = await res.text();
    expect(html).not.toMatch(/<script>|<style|style=/);
    const assets = [...html.matchAll(/\/dashboard\/assets\/[\w.-]+/g)].map((m) => m[0]);
    expect(assets).toHaveLength(2);
    for (const asset of assets) {
      const assetRes = await fetch(`${engine.url}${asset}`);
      expect(assetRes.status).toBe(200);
      expect(assetRes.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    }
    // The JSON API keeps its own policy.
    const apiRes = await fetch(`${engine.url}/v1/analytics/fleet`);
    expect(apiRes.headers.get('content-security-policy')).toBe(
      "default-src 'none'; frame-ancestors 'none'",
    );
    // Every view visited so far, charts included, ran without a CSP violation.
    expect(await cspViolations()).toEqual([]);
  });

  test('when axe-core checks the fleet and vehicle views, then it finds no serious or critical violation', async () => {
    const serious = async () =>
      (await runAxe(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(await serious()).toEqual([]);
    await page.goto(`${engine.url}/dashboard#/fleet?window=24h`);
    await page.waitForSelector('.fleet-view tbody tr');
    expect(await serious()).toEqual([]);
  });

  test('when 30 s pass on a vehicle view, then it refreshes in place: same vehicle, window and scroll', async () => {
    const vehicleId = fleet.faulty()[0].vehicleId;
    const refreshing = await browser.newPage();
    try {
      await refreshing.clock.install();
      await refreshing.goto(`${engine.url}/dashboard#/vehicles/${vehicleId}?window=7d`);
      await refreshing.waitForSelector('#efficiency .chart canvas');
      await refreshing.evaluate(() => window.scrollTo(0, 600));
      const before = await refreshing.evaluate(() => window.scrollY);
      const statusBefore = await refreshing.textContent('.refresh-status');
      const refreshed = refreshing.waitForResponse((r) =>
        r.url().includes(`/v1/analytics/performance/${vehicleId}`),
      );
      await refreshing.clock.fastForward(30_000);
      await refreshed;
      // The refresh has drawn all it fetched once the status names its time (30 s on).
      await refreshing.waitForFunction(
        (previous) =>
          /^Updated /.test(document.querySelector('.refresh-status')?.textContent ?? '') &&
          document.querySelector('.refresh-status')?.textContent !== previous,
        statusBefore,
      );
      expect(refreshing.url()).toContain(`#/vehicles/${vehicleId}?window=7d`);
      expect(await refreshing.isChecked('#vehicle-window-7d')).toBe(true);
      expect(await refreshing.evaluate(() => window.scrollY)).toBe(before);
      expect(await drawnPixels(refreshing, '#efficiency .chart canvas')).toBeGreaterThan(2000);
      // The engine has the charge points endpoint: its nav entry shows, even with none yet.
      expect(await refreshing.isVisible('[data-nav-item="charge-points"]')).toBe(true);
    } finally {
      await refreshing.close();
    }
  });
});

// Last: its vehicle joins the fleet the tests above count.
describe('dashboard with the longest ids', () => {
  // 64 characters each, the most an id may have.
  const vehicleId = `V-${'L'.repeat(30)}.:_-${'x'.repeat(22)}-00042`;
  const meterId = `M-${'y'.repeat(56)}-00042`;

  test('when a vehicle and its meter have the longest ids there are, then its view at 375 px does not scroll sideways', async () => {
    // From before the window of the next test's charge.
    const since = new Date(Date.now() - 3 * HOUR_MS).toISOString();
    await post(engine, '/v1/telemetry/map', { vehicleId, meterId, since });
    await ingestAllStored(engine, [
      {
        vehicleId,
        soc: 50,
        kwhDeliveredDc: 1,
        batteryTemp: 30,
        timestamp: new Date().toISOString(),
      },
    ]);
    await page.setViewportSize({ width: 375, height: 800 });
    try {
      await page.goto(`${engine.url}/dashboard#/vehicles/${vehicleId}?window=24h`);
      await page.waitForSelector('#mapping strong');
      const widths = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        screen: document.documentElement.clientWidth,
      }));
      expect(widths.page).toBeLessThanOrEqual(widths.screen);
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });
  test('when the fleet lists them at 1280 px, then the ids are cut in the middle, whole in their title, link and copy, and the table needs no scrolling; scrolled sideways at 375 px, the vehicle column stays', async () => {
    // A charge inside the window (which ends at the last whole hour), its meter's AC too: the
    // vehicle is in the table rather than listed below it.
    const lastWholeHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const timestamp = new Date(lastWholeHour - HOUR_MS / 2).toISOString();
    await ingestAllStored(engine, [
      { meterId, kwhConsumedAc: 1.2, voltage: 230, timestamp },
      { vehicleId, soc: 50, kwhDeliveredDc: 1, batteryTemp: 30, timestamp },
    ]);
    // A window no test before asked for: a report cached from before this charge lacks it.
    const window = `window=custom&from=${new Date(lastWholeHour - HOUR_MS).toISOString()}&to=${new Date(lastWholeHour).toISOString()}`;
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${engine.url}/dashboard#/fleet?${window}&limit=1000`);
    const row = page.locator(`.fleet-view tbody tr[data-vehicle-id="${vehicleId}"]`);
    await row.waitFor();
    // Once the flags are in: a row they change is built again, its old cells detached.
    await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
    const sizes = await page.$eval('.fleet-view .table-scroll', (region) => {
      const width = (selector: string) =>
        Math.max(
          ...[...region.querySelectorAll<HTMLElement>(selector)].map((cell) => cell.offsetWidth),
        );
      return {
        scroll: region.scrollWidth,
        view: region.clientWidth,
        vehicle: width('tbody th .id'),
        meters: width('tbody td .id'),
      };
    });
    expect(sizes.scroll).toBeLessThanOrEqual(sizes.view);
    expect(sizes.vehicle).toBeLessThan(160);
    expect(sizes.meters).toBeLessThan(160);

    // Cut in the middle: its start and its end show, the whole id is its text, title and name.
    const link = row.locator('th a');
    await expect(link.getAttribute('title')).resolves.toBe(vehicleId);
    await expect(link.textContent()).resolves.toBe(vehicleId);
    await expect(
      link.locator('.id-head').evaluate((head) => head.scrollWidth > head.clientWidth),
    ).resolves.toBe(true);
    await expect(link.evaluate((a) => (a as HTMLElement).innerText)).resolves.toMatch(/-00042$/);
    expect(await row.getByRole('link', { name: vehicleId, exact: true }).count()).toBe(1);
    await expect(row.locator(`td .id[title="${meterId}"]`).textContent()).resolves.toBe(meterId);
    // Selected and copied, it is the whole id.
    await expect(
      link.evaluate((a) => {
        const range = document.createRange();
        range.selectNodeContents(a);
        const selection = getSelection();
        selection?.removeAllRanges();
        selection?.addRange(range);
        return selection?.toString();
      }),
    ).resolves.toBe(vehicleId);

    // Narrow, the table scrolls sideways under its row headers.
    await page.setViewportSize({ width: 375, height: 800 });
    try {
      await page.waitForSelector('.fleet-view .table-block[data-overflowing]');
      const moved = await page.$eval(
        '.fleet-view .table-scroll',
        (region, id) => {
          const tr = region.querySelector(`tr[data-vehicle-id="${CSS.escape(id)}"]`);
          const [th, status] = [tr?.querySelector('th'), tr?.querySelector('td')];
          if (!th || !status) return null;
          th.scrollIntoView({ block: 'center' });
          const before = {
            th: th.getBoundingClientRect().left,
            td: status.getBoundingClientRect().left,
          };
          region.scrollLeft = 300;
          const box = th.getBoundingClientRect();
          const over = document.elementFromPoint(
            box.left + box.width / 2,
            box.top + box.height / 2,
          );
          return {
            region: region.getBoundingClientRect().left,
            th: box.left - before.th,
            td: status.getBoundingClientRect().left - before.td,
            thOnTop: !!over && th.contains(over),
          };
        },
        vehicleId,
      );
      expect(moved).toMatchObject({ th: 0, thOnTop: true });
      expect(moved?.td).toBeLessThan(-100);
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }

    // The link still leads to the vehicle.
    await link.click();
    await page.waitForSelector('#efficiency .window-line time');
    await expect(page.locator('h1').textContent()).resolves.toBe(`Vehicle ${vehicleId}`);

    // The devices list cuts them the same way.
    for (const kind of ['vehicles', 'meters']) {
      await page.goto(`${engine.url}/dashboard#/devices?kind=${kind}&quiet=all&limit=1000`);
      const id = kind === 'vehicles' ? vehicleId : meterId;
      const shown = page.locator(`.devices-view tbody tr[data-device-id="${id}"] th .id`);
      await shown.waitFor();
      expect(await shown.evaluate((el) => (el as HTMLElement).offsetWidth)).toBeLessThan(160);
      await expect(shown.getAttribute('title')).resolves.toBe(id);
    }
  });
});
