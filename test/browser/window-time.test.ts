/**
 * The dashboard's windows against time: the hour the clocks go back (Europe/Berlin, the test
 * browser's zone), the hour turning while a page is open, and a browser clock off the engine's.
 */
import type { Page } from 'playwright-core';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { loadSimulatedFleet } from './helpers/fleet-loader';

const HOUR_MS = 3_600_000;

let engine: TestEngine;
let browser: DashboardBrowser;

beforeAll(async () => {
  engine = await startTestEngine();
  // 26 vehicles: two pages of 25.
  await loadSimulatedFleet(engine, { vehicles: 26, faulty: 0.2, backfill: '2h' });
  browser = await launchDashboardBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
});

const hashParams = (page: Page) =>
  page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.split('?')[1])));

/**
 * The engine's clock as the page reads it (every answer's Date header) moved `ahead()` ms on:
 * the hour turns for the engine, not for the browser.
 */
async function shiftEngineClock(page: Page, ahead: () => number): Promise<void> {
  await page.route('**/v1/**', async (route) => {
    const response = await route.fetch();
    const date = new Date(Date.parse(response.headers().date) + ahead()).toUTCString();
    await route.fulfill({ response, headers: { ...response.headers(), date } });
  });
}

describe('a custom window in the hour the clocks go back', () => {
  // 2026-10-25 in Berlin: 02:00-03:00 +02:00, then 02:00-03:00 +01:00 again.
  const link = '#/vehicles/V-1?window=custom&from=2026-10-24T22:00:15Z&to=2026-10-25T01:30:00Z';

  test('when Apply is pressed with the fields unchanged, then the window stays exactly the link’s, its seconds and its second 02:30 too', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${engine.url}/dashboard${link}`);
      await expect(page.inputValue('#vehicle-window-to')).resolves.toBe('2026-10-25T02:30');
      await page.getByRole('button', { name: 'Apply' }).click();
      expect(await hashParams(page)).toEqual({
        window: 'custom',
        from: '2026-10-24T22:00:15Z',
        to: '2026-10-25T01:30:00Z',
      });
      // Which 02:30 it is shows beside the field.
      expect(await page.isVisible('#vehicle-window-to-which')).toBe(true);
      await expect(page.inputValue('#vehicle-window-to-which')).resolves.toBe('1');
      expect(await page.isVisible('#vehicle-window-from-which')).toBe(false);
    } finally {
      await page.close();
    }
  });

  test('when a time of that hour is typed, then the page asks which of the two it is, and a time the clocks skip is refused', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${engine.url}/dashboard${link}`);
      await page.getByLabel('To', { exact: true }).fill('2026-10-25T02:15');
      await expect(page.textContent('label[for="vehicle-window-to-which"]')).resolves.toBe(
        'To: 02:15 occurs twice (the clocks go back), take',
      );
      const options = await page.$$eval('#vehicle-window-to-which option', (all) =>
        all.map((o) => o.textContent),
      );
      expect(options).toEqual(['the first, +02:00', 'the second, +01:00']);
      await page.selectOption('#vehicle-window-to-which', 'the second, +01:00');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.waitForFunction(() => location.hash.includes('T01%3A15'));
      expect((await hashParams(page)).to).toBe('2026-10-25T01:15:00.000Z');

      // 2026-03-29 in Berlin goes from 02:00 +01:00 to 03:00 +02:00.
      await page.getByLabel('From', { exact: true }).fill('2026-03-29T02:30');
      await page.getByLabel('To', { exact: true }).fill('2026-03-29T04:00');
      await page.getByRole('button', { name: 'Apply' }).click();
      await expect(page.textContent('#vehicle-window-problem')).resolves.toBe(
        'From: 2026-03-29 02:30 does not exist here (the clocks skip that hour). Enter another time.',
      );
      expect((await hashParams(page)).to).toBe('2026-10-25T01:15:00.000Z');
    } finally {
      await page.close();
    }
  });
});

describe('the last 24 hours when the hour turns', () => {
  test('when the engine’s hour turns while a later page is open, then the fleet goes to the new window’s first page and says why', async () => {
    const page = await browser.newPage();
    let ahead = 0;
    try {
      await page.clock.install();
      await shiftEngineClock(page, () => ahead);
      await page.goto(`${engine.url}/dashboard#/fleet?window=24h&limit=25`);
      await page.waitForSelector('.fleet-view tbody tr');
      await page.getByRole('link', { name: 'Next page', exact: true }).click();
      await page.waitForFunction(
        () => document.querySelector('.fleet-view .pager-page')?.textContent === 'Page 2',
      );
      // A refresh in the same hour keeps the page.
      const refreshed = () => page.waitForResponse((r) => r.url().includes('/v1/analytics/fleet?'));
      let answered = refreshed();
      await page.clock.fastForward(30_000);
      await answered;
      expect(await page.textContent('.fleet-view .pager-page')).toBe('Page 2');
      expect(await page.isHidden('#fleet-window-link-problem')).toBe(true);

      ahead = HOUR_MS;
      answered = refreshed();
      await page.clock.fastForward(30_000);
      await answered;
      await page.waitForFunction(() => !location.hash.includes('trail='));
      await page.waitForFunction(
        () => document.querySelector('.fleet-view .pager-page')?.textContent === 'Page 1',
      );
      await expect(page.textContent('#fleet-window-link-problem')).resolves.toMatch(
        /^The hour has turned, and with it the last 24 hours: showing the first page of the new window \(page 2 was of the window ending .*\)\.$/,
      );
      expect(await page.evaluate(() => location.hash)).toBe('#/fleet?window=24h&limit=25');
    } finally {
      await page.close();
    }
  });
});

describe('a vehicle opened from the fleet', () => {
  test('when the browser’s clock is hours ahead of the engine’s, then the vehicle shows its fleet report’s window; once the engine’s hour turns, the current one, saying so', async () => {
    const page = await browser.newPage();
    let ahead = 0;
    try {
      await page.clock.install({ time: Date.now() + 3 * HOUR_MS });
      await shiftEngineClock(page, () => ahead);
      await page.goto(`${engine.url}/dashboard#/fleet?window=24h`);
      await page.waitForSelector('.fleet-view tbody tr');
      const fleetWindow = await page.$$eval('.fleet-view .window-line time', (times) =>
        times.map((t) => t.getAttribute('datetime')),
      );
      await page.locator('.fleet-view tbody tr a').first().click();
      await page.waitForSelector('.vehicle-view .window-line time');
      const vehicleWindow = await page.$$eval('.vehicle-view .window-line time', (times) =>
        times.map((t) => t.getAttribute('datetime')),
      );
      expect(vehicleWindow).toEqual(fleetWindow);
      expect((await hashParams(page)).end).toBe(fleetWindow[1]);
      expect(await page.isChecked('#vehicle-window-24h')).toBe(true);

      // The refresh after an answer of the engine's new hour goes on to the current window.
      ahead = HOUR_MS;
      const answered = page.waitForResponse((r) => r.url().includes('/v1/analytics/performance/'));
      await page.clock.fastForward(30_000);
      await answered;
      await page.clock.fastForward(30_000);
      await page.waitForFunction(() => !location.hash.includes('end='));
      await expect(page.textContent('#vehicle-window-link-problem')).resolves.toMatch(
        /^The hour has turned since the fleet report this vehicle was opened from \(its window ended .*\): showing the last 24 hours now\.$/,
      );
    } finally {
      await page.close();
    }
  });
});

describe('a vehicle whose window the hour has left behind', () => {
  test('when a refresh finds the engine’s hour turned, then the sections keep their figures, focus and scroll until the current window’s replace them, and only what depends on the window is asked again', async () => {
    const page = await browser.newPage();
    let ahead = 0;
    let watching = false;
    const asked: string[] = [];
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let secondAsked = () => {};
    const second = new Promise<void>((resolve) => (secondAsked = resolve));
    try {
      // Short, so the view scrolls.
      await page.setViewportSize({ width: 1280, height: 500 });
      await page.clock.install();
      await shiftEngineClock(page, () => ahead);
      // The window of a fleet report asked now: it ends at the last whole hour.
      const end = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS).toISOString();
      await page.goto(`${engine.url}/dashboard#/vehicles/SIM-V-4?window=24h&end=${end}`);
      await page.waitForSelector('#efficiency .window-totals');
      expect((await hashParams(page)).end).toBe(end);
      const shownEnd = () =>
        page.$$eval('#efficiency .window-line time', (times) => times[1]?.getAttribute('datetime'));
      const endBefore = await shownEnd();
      // The current window's hourly report (the second asked once the hour has turned) waits.
      await page.route('**/v1/**', async (route) => {
        const { pathname } = new URL(route.request().url());
        if (watching) {
          asked.push(pathname);
          if (pathname.startsWith('/v1/analytics/performance/')) {
            if (asked.filter((p) => p.startsWith('/v1/analytics/performance/')).length === 2) {
              secondAsked();
              await held;
            }
          }
        }
        await route.fallback();
      });
      await page.focus('#efficiency .hourly summary');
      await page.evaluate(() => window.scrollTo(0, 300));
      expect(await page.evaluate(() => window.scrollY)).toBeGreaterThan(0);
      // Where the reader is: the hourly figures' place in the window (the note of why the window
      // moved on, above, moves the page under it, and the browser's scroll anchoring with it).
      const place = () =>
        page.$eval('#efficiency .hourly summary', (summary) => summary.getBoundingClientRect().top);
      const placeBefore = await place();

      ahead = HOUR_MS;
      watching = true;
      await page.clock.fastForward(30_000);
      await second;
      await page.waitForFunction(() => !location.hash.includes('end='));
      expect(await page.locator('main .notice-loading').count()).toBe(0);
      expect(await page.locator('#efficiency .window-totals').count()).toBe(1);
      expect(
        await page.evaluate(() => document.activeElement?.matches('#efficiency .hourly summary')),
      ).toBe(true);
      expect(Math.abs((await place()) - placeBefore)).toBeLessThan(2);
      // The status, the mapping, asked once: they do not depend on the window.
      expect(asked.filter((p) => p.endsWith('/status'))).toHaveLength(1);
      expect(asked.filter((p) => p.startsWith('/v1/telemetry/map/'))).toHaveLength(1);

      release();
      await page.waitForFunction(
        (before) =>
          document
            .querySelectorAll('#efficiency .window-line time')[1]
            ?.getAttribute('datetime') !== before,
        endBefore,
      );
      expect(Date.parse((await shownEnd()) ?? '')).toBe(Date.parse(end) + HOUR_MS);
      await expect(page.textContent('#vehicle-window-link-problem')).resolves.toMatch(
        /^The hour has turned since the fleet report this vehicle was opened from/,
      );
      await expect(page.textContent('.refresh-status')).resolves.toMatch(/^Updated /);
    } finally {
      release();
      await page.close();
    }
  });
});

describe("a vehicle's window", () => {
  const vehicle = '#/vehicles/SIM-V-4';

  test('when another window is picked and the engine is slow to answer, then the view says it is loading that window instead of showing the last one’s figures', async () => {
    const page = await browser.newPage();
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    try {
      await page.goto(`${engine.url}/dashboard${vehicle}?window=24h`);
      await page.waitForSelector('#efficiency .window-totals');
      await page.route('**/v1/analytics/performance/**', async (route) => {
        await held;
        await route.continue();
      });
      await page.getByLabel('Last 7 days').check();
      await page.waitForFunction(() => location.hash.includes('window=7d'));
      await expect(page.textContent('#efficiency .notice-loading')).resolves.toBe(
        'Loading the performance report for the last 7 days…',
      );
      expect(await page.locator('#efficiency .window-totals').count()).toBe(0);
      await expect(page.textContent('.refresh-status')).resolves.toMatch(/^Loading… /);

      release();
      await page.waitForSelector('#efficiency .window-totals');
      const [from, to] = await page.$$eval('#efficiency .window-line time', (times) =>
        times.map((t) => Date.parse(t.getAttribute('datetime') ?? '')),
      );
      expect(to - from).toBe(168 * HOUR_MS);
      await expect(page.textContent('.refresh-status')).resolves.toMatch(/^Updated /);
    } finally {
      release();
      await page.close();
    }
  });

  test('when a link’s window ends after the engine’s now, then the view shows the last hours now, saying so, and the address follows', async () => {
    const page = await browser.newPage();
    const future = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS + 5 * HOUR_MS);
    try {
      await page.goto(`${engine.url}/dashboard${vehicle}?window=24h&end=${future.toISOString()}`);
      await page.waitForSelector('#efficiency .window-line time');
      const to = await page.$$eval('#efficiency .window-line time', (times) =>
        Date.parse(times[1].getAttribute('datetime') ?? ''),
      );
      expect(to).toBeLessThanOrEqual(Date.now());
      await expect(page.textContent('#vehicle-window-link-problem')).resolves.toMatch(
        /^The link's window ends \d{4}-\d\d-\d\d \d\d:00 [+-]\d\d:\d\d, which is still to come by the engine's clock: showing the last 24 hours now\.$/,
      );
      expect(await page.evaluate(() => location.hash)).toBe(`${vehicle}?window=24h`);
    } finally {
      await page.close();
    }
  });

  test('when a refresh under way is overtaken by another window picked, then the header says Loading until that window’s figures arrive', async () => {
    const page = await browser.newPage();
    // Each hourly report asked, held until released, by its window's span.
    const held: { hours: number; release(): void }[] = [];
    let holding = false;
    const span = (url: string) => {
      const query = new URL(url).searchParams;
      return (Date.parse(query.get('to') ?? '') - Date.parse(query.get('from') ?? '')) / HOUR_MS;
    };
    const heldFor = async (hours: number) => {
      for (;;) {
        const found = held.find((h) => h.hours === hours);
        if (found) return found;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await page.clock.install();
      await page.goto(`${engine.url}/dashboard${vehicle}?window=24h`);
      await page.waitForSelector('#efficiency .window-totals');
      await expect(page.textContent('.refresh-status')).resolves.toMatch(/^Updated /);
      await page.route('**/v1/analytics/performance/**', async (route) => {
        if (holding)
          await new Promise<void>((release) =>
            held.push({ hours: span(route.request().url()), release }),
          );
        await route.fallback();
      });

      holding = true;
      await page.clock.fastForward(30_000);
      const refresh = await heldFor(24);
      await page.getByLabel('Last 7 days').check();
      const picked = await heldFor(168);
      await expect(page.textContent('.refresh-status')).resolves.toMatch(/^Loading… /);

      // The refresh's answer, of the window no longer shown, arrives first.
      const answered = page.waitForResponse(
        (r) => r.url().includes('/v1/analytics/performance/') && span(r.url()) === 24,
      );
      refresh.release();
      await answered;
      await page.waitForTimeout(500);
      await expect(page.textContent('.refresh-status')).resolves.toMatch(/^Loading… /);
      expect(await page.locator('#efficiency .window-totals').count()).toBe(0);

      picked.release();
      await page.waitForSelector('#efficiency .window-totals');
      await expect(page.textContent('.refresh-status')).resolves.toMatch(/^Updated /);
    } finally {
      for (const h of held) h.release();
      await page.close();
    }
  });
});
