/**
 * The charge point list of a fleet larger than one page of GET /v1/charge-points: 1,233 charge
 * points recorded in the engine's table (as the OCPP endpoint records one that connects) and one
 * real OCPP charge point, connected, whose id sorts last. The list shows them a page at a time in
 * the engine's order, says when there are more, and a refresh keeps the pages the user loaded.
 */
import type { Page } from 'playwright-core';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { connectLiveChargePoint, type LiveChargePoint } from './helpers/live-charge-point';
import { recordCspViolations, runAxe } from './helpers/page-checks';

/** The dashboard's page of charge points (CHARGE_POINTS_PAGE of the view). */
const PAGE = 500;
const SEEDED = 1_233;
const TOTAL = SEEDED + 1;
/** Sorts after every CP-n in any collation. */
const LIVE_CP = 'ZZ-LIVE-1';

let engine: TestEngine;
let live: LiveChargePoint;
let browser: DashboardBrowser;

beforeAll(async () => {
  engine = await startTestEngine();
  // Ids without padding (CP-1, CP-10, CP-100, ...): the engine's order is by id as text.
  const bootAt = new Date(Date.now() - 3_600_000);
  const rows = Array.from({ length: SEEDED }, (_, i) => ({
    id: `CP-${i + 1}`,
    vendor: 'Acme',
    model: 'Wallbox 11',
    firmware_version: '1.0.0',
    last_boot_at: bootAt,
  }));
  await engine.ctx.db.batchInsert('charge_points', rows, 500);
  live = await connectLiveChargePoint(engine, {
    id: LIVE_CP,
    idTag: 'CARD-ZZ-1',
    vehicleId: 'ZZ-V-1',
    startedAtMs: Date.now() - 15 * 60_000,
  });
  browser = await launchDashboardBrowser();
}, 180_000);

afterAll(async () => {
  await live?.chargePoint.close({ force: true });
  await browser?.close();
  await engine?.stop();
});

/** Every charge point id, in the engine's order, through its own cursors. */
async function engineIds(): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
    const res = await fetch(`${engine.url}/v1/charge-points?limit=1000${query}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as {
      chargePoints: { id: string }[];
      nextCursor: string | null;
    };
    ids.push(...page.chargePoints.map((cp) => cp.id));
    cursor = page.nextCursor;
  } while (cursor);
  return ids;
}

const shownIds = (page: Page) =>
  page.$$eval('.view tbody tr th', (ths) => ths.map((th) => th.textContent ?? ''));

const caption = (page: Page) => page.textContent('.view caption');

const showMore = (page: Page) => page.getByRole('button', { name: `Show the next ${PAGE}` });

const waitForRows = (page: Page, n: number) =>
  page.waitForFunction((count) => document.querySelectorAll('.view tbody tr').length === count, n, {
    timeout: 60_000,
  });

async function openList(page: Page): Promise<void> {
  await page.goto(`${engine.url}/dashboard#/charge-points`);
  await page.waitForSelector('.view tbody tr', { timeout: 60_000 });
}

describe(`charge point list of ${TOTAL} charge points`, () => {
  test('when it opens, then it shows the first page saying there are more, and "Show more" reaches the last one', async () => {
    const ids = await engineIds();
    expect(ids).toHaveLength(TOTAL);
    expect(ids[ids.length - 1]).toBe(LIVE_CP);
    const page = await browser.newPage();
    const cspViolations = await recordCspViolations(page);
    try {
      await openList(page);
      expect(await shownIds(page)).toEqual(ids.slice(0, PAGE));
      expect(await caption(page)).toBe('First 500 charge points by id, of more');
      expect(await page.textContent('.list-more [role="status"]')).toBe(
        'Showing the first 500 charge points by id; the engine has more.',
      );
      const serious = (await runAxe(page)).filter(
        (v) => v.impact === 'serious' || v.impact === 'critical',
      );
      expect(serious).toEqual([]);

      // The keyboard's way: focus stays on the button while pages remain.
      await showMore(page).focus();
      await page.keyboard.press('Enter');
      await waitForRows(page, 2 * PAGE);
      expect(await shownIds(page)).toEqual(ids.slice(0, 2 * PAGE));
      expect(await caption(page)).toBe('First 1,000 charge points by id, of more');
      expect(
        await page.evaluate(() => document.activeElement?.getAttribute('data-focus-key')),
      ).toBe('show-more-charge-points');

      await page.keyboard.press('Enter');
      await waitForRows(page, TOTAL);
      expect(await shownIds(page)).toEqual(ids);
      expect(await caption(page)).toBe('1,234 charge points');
      expect(await page.textContent('.list-more [role="status"]')).toBe(
        'All 1,234 charge points shown.',
      );
      expect(await showMore(page).count()).toBe(0);
      // The button gone, the reader goes on at the first row the last page added.
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe(ids[2 * PAGE]);

      // The last one is on the list with its live state, and opens.
      const last = await page.$$eval(
        '.view tbody tr:last-child th, .view tbody tr:last-child td',
        (cells) => cells.map((c) => c.textContent ?? ''),
      );
      expect(last[0]).toBe(LIVE_CP);
      expect(last[1]).toBe('Connected');
      expect(last[4]).toBe('1: Charging, 2: Faulted');
      await page.getByRole('link', { name: LIVE_CP, exact: true }).click();
      await page.waitForSelector(`h1:has-text("Charge point ${LIVE_CP}")`);
      await page.waitForSelector('.view dl.figures');
      expect(await cspViolations()).toEqual([]);
    } finally {
      await page.close();
    }
  });

  test('when 30 s pass after "Show more", then the refresh keeps as many rows, in the engine’s current order, and the next page follows on', async () => {
    const page = await browser.newPage();
    try {
      await page.clock.install();
      await openList(page);
      await showMore(page).click();
      await waitForRows(page, 2 * PAGE);
      await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
      const scrolled = await page.evaluate(() => window.scrollY);
      expect(scrolled).toBeGreaterThan(0);

      // A charge point connects meanwhile whose id sorts first: the pages shift by one.
      await engine.ctx.db('charge_points').insert({ id: 'AA-NEW-1' });
      const ids = await engineIds();
      expect(ids[0]).toBe('AA-NEW-1');

      const statusBefore = await page.textContent('.refresh-status');
      await page.clock.fastForward(30_000);
      await page.waitForFunction(
        (previous) =>
          /^Updated /.test(document.querySelector('.refresh-status')?.textContent ?? '') &&
          document.querySelector('.refresh-status')?.textContent !== previous,
        statusBefore,
        { timeout: 60_000 },
      );
      expect(await shownIds(page)).toEqual(ids.slice(0, 2 * PAGE));
      expect(await caption(page)).toBe('First 1,000 charge points by id, of more');
      expect(await page.evaluate(() => window.scrollY)).toBe(scrolled);

      // The next page starts right after the last row shown: none missed, none twice.
      await showMore(page).click();
      await waitForRows(page, TOTAL + 1);
      expect(await shownIds(page)).toEqual(ids);
      expect(await caption(page)).toBe('1,235 charge points');
    } finally {
      await page.close();
    }
  });
});
