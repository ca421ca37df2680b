/**
 * The Devices view against a real engine: 30 vehicles and 5 meters ingested over HTTP, some of
 * them last heard from hours ago, stored by the flusher. The list shows them in the engine's id
 * order with their latest readings, the "gone quiet" filter keeps only the quiet ones, pages turn
 * by the engine's cursors, a vehicle opens its own view, and the URL keeps it all across a reload
 * and the 30-second refresh.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { ingestAllStored } from './helpers/requests';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { recordCspViolations, runAxe } from './helpers/page-checks';
import { MAX_TRAIL } from '../../web/src/routing/routes';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DOCS = join(__dirname, '..', '..', 'docs');

/** DV-01 … DV-30: zero-padded, so every collation orders them alike. */
const VEHICLES = Array.from({ length: 30 }, (_, i) => `DV-${String(i + 1).padStart(2, '0')}`);
const METERS = ['DM-01', 'DM-02', 'DM-03', 'DM-04', 'DM-05'];
/** How long ago each quiet device last reported; every other one reported 2 minutes ago. */
const QUIET: Record<string, number> = {
  'DV-03': 2 * HOUR,
  'DV-07': 2 * HOUR,
  'DV-12': 5 * HOUR,
  'DV-20': 30 * HOUR,
  'DM-02': 3 * HOUR,
};
/** A meter whose reading has no voltage (a charger's register without one). */
const NO_VOLTAGE = 'DM-04';
const REGISTER = 'DM-05';

let engine: TestEngine;
let browser: DashboardBrowser;
let loadedAt: number;

const ingest = (readings: unknown[]) => ingestAllStored(engine, readings);

beforeAll(async () => {
  engine = await startTestEngine();
  loadedAt = Date.now();
  const at = (id: string) => new Date(loadedAt - (QUIET[id] ?? 2 * MIN)).toISOString();
  await ingest([
    ...VEHICLES.map((vehicleId, i) => ({
      vehicleId,
      soc: 40 + i,
      kwhDeliveredDc: 0.25 * (i + 1),
      batteryTemp: 20 + i / 2,
      timestamp: at(vehicleId),
    })),
    ...METERS.map((meterId, i) => ({
      meterId,
      kwhConsumedAc: 1.5 * (i + 1),
      ...(meterId === NO_VOLTAGE ? {} : { voltage: 229 + i }),
      timestamp: at(meterId),
    })),
  ]);
  // One meter a register: its value is its running total, not one reading's energy.
  const settings = await fetch(`${engine.url}/v1/meters/${REGISTER}/settings`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ energyReadings: 'cumulative' }),
  });
  expect(settings.status).toBe(200);
  browser = await launchDashboardBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
});

interface Listed {
  id: string;
  timestamp: string;
  [field: string]: unknown;
}

/** Every device of a kind in the engine's order, through its own cursors; `silentSince` filters. */
async function engineList(kind: 'vehicles' | 'meters', silentSince?: string): Promise<Listed[]> {
  const idField = kind === 'vehicles' ? 'vehicleId' : 'meterId';
  const rows: Listed[] = [];
  let cursor: string | null = null;
  do {
    const query = new URLSearchParams({ limit: '7' });
    if (cursor) query.set('cursor', cursor);
    if (silentSince) query.set('silentSince', silentSince);
    const res = await fetch(`${engine.url}/v1/${kind}?${query}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as Record<string, Record<string, unknown>[]> & {
      nextCursor: string | null;
    };
    rows.push(...page[kind].map((r) => ({ ...r, id: r[idField] as string }) as Listed));
    cursor = page.nextCursor;
  } while (cursor);
  return rows;
}

/** An instant as the page writes it in Europe/Berlin: 2024-03-20 11:00:05 +01:00. */
function berlinTime(iso: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/Berlin',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'longOffset',
    })
      .formatToParts(new Date(iso))
      .map((p) => [p.type, p.value]),
  );
  const offset = parts.timeZoneName.replace('GMT', '') || '+00:00';
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${offset}`;
}

/** The rows on screen: each cell's text, the first being the device's id. */
const shownRows = (page: Page) =>
  page.$$eval('.devices-view tbody tr', (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent ?? '')),
  );
const shownIds = async (page: Page) => (await shownRows(page)).map((cells) => cells[0]);

/** Waits until the list shows exactly these ids (after a navigation, a filter, a refresh). */
const waitForIds = (page: Page, ids: string[]) =>
  page.waitForFunction(
    (expected) =>
      JSON.stringify(
        [...document.querySelectorAll('.devices-view tbody tr th')].map((th) => th.textContent),
      ) === JSON.stringify(expected),
    ids,
    { timeout: 30_000 },
  );

const nbsp = (text: string) => text.replace(/ /g, '\u00a0');

async function open(page: Page, hash: string): Promise<void> {
  await page.goto(`${engine.url}/dashboard${hash}`);
  await page.waitForSelector('.devices-view tbody tr, .devices-view .notice-empty', {
    timeout: 30_000,
  });
}

describe('devices view', () => {
  test('when it opens from the menu, then it lists the vehicles in the engine’s id order with their latest readings, units and ages', async () => {
    const listed = await engineList('vehicles');
    expect(listed.map((v) => v.id)).toEqual(VEHICLES);
    const page = await browser.newPage();
    const cspViolations = await recordCspViolations(page);
    try {
      await page.goto(`${engine.url}/dashboard`);
      await page.waitForSelector('.fleet-view');
      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      await page.waitForSelector('.devices-view tbody tr');
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=all');
      expect(await page.getAttribute('[data-nav="devices"]', 'aria-current')).toBe('page');
      expect(await page.isChecked('#devices-kind-vehicles')).toBe(true);
      expect(await page.isChecked('#devices-quiet-all')).toBe(true);

      const rows = await shownRows(page);
      expect(rows.map((cells) => cells[0])).toEqual(VEHICLES);
      expect(await page.textContent('.devices-view caption')).toBe('Vehicles by id: 1–30');
      for (const [i, v] of listed.entries()) {
        expect(rows[i]).toEqual([
          v.id,
          berlinTime(v.timestamp),
          expect.any(String),
          nbsp(`${(v.soc as number).toFixed(1)} %`),
          `${nbsp(`${(v.kwhDeliveredDc as number).toFixed(2)} kWh`)}in the reading`,
          nbsp(`${(v.batteryTemp as number).toFixed(1)} °C`),
        ]);
        expect(rows[i][2]).toMatch(
          QUIET[v.id] === undefined ? /^\d+ min ago$/ : /^\d+ (h \d+ min|days) ago$/,
        );
      }
      expect(rows[VEHICLES.indexOf('DV-03')][2]).toMatch(/^2 h \d+ min ago$/);
      expect(rows[VEHICLES.indexOf('DV-20')][2]).toMatch(/^30 h \d+ min ago$/);
      // Quiet for over 15 minutes is called out, as on the vehicle's live status.
      const stale = await page.$$eval('.devices-view tbody tr', (trs) =>
        trs.filter((tr) => tr.querySelector('.age-stale')).map((tr) => tr.dataset.deviceId),
      );
      expect(stale).toEqual(['DV-03', 'DV-07', 'DV-12', 'DV-20']);
      // All on one page: nothing to turn to.
      expect(await page.locator('.pager .pager-disabled').allTextContents()).toEqual([
        '← Previous page',
        'Next page →',
      ]);

      const serious = (await runAxe(page)).filter(
        (v) => v.impact === 'serious' || v.impact === 'critical',
      );
      expect(serious).toEqual([]);
      expect(await cspViolations()).toEqual([]);
    } finally {
      await page.close();
    }
  });

  test('when the meters are chosen, then each shows its energy, said as in the reading or a register total, and its voltage; one without voltage says so', async () => {
    const listed = await engineList('meters');
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=vehicles&quiet=all');
      await page.check('#devices-kind-meters');
      await waitForIds(page, METERS);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=meters&quiet=all');
      const rows = await shownRows(page);
      expect(rows).toEqual(
        listed.map((m) => [
          m.id,
          berlinTime(m.timestamp),
          expect.stringMatching(/ ago$/),
          `${nbsp(`${(m.kwhConsumedAc as number).toFixed(2)} kWh`)}${m.id === REGISTER ? 'register total' : 'in the reading'}`,
          m.voltage === null ? 'not measured' : nbsp(`${(m.voltage as number).toFixed(1)} V`),
        ]),
      );
      expect(rows[METERS.indexOf(NO_VOLTAGE)][4]).toBe('not measured');
    } finally {
      await page.close();
    }
  });

  test('when "gone quiet for more than" is chosen, then only the devices whose latest reading is older are listed, and none says so', async () => {
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=vehicles&quiet=all');
      await page.check('#devices-quiet-1h');
      await waitForIds(page, ['DV-03', 'DV-07', 'DV-12', 'DV-20']);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=1h');
      // The engine's own answer for the same filter.
      const silentSince = new Date(Date.now() - HOUR).toISOString();
      expect((await engineList('vehicles', silentSince)).map((v) => v.id)).toEqual(
        await shownIds(page),
      );
      expect(await page.textContent('.devices-view caption')).toBe(
        'Vehicles gone quiet for more than 1 hour by id: 1–4',
      );
      await page.screenshot({ path: join(DOCS, 'dashboard-devices.png'), fullPage: true });

      await page.check('#devices-quiet-24h');
      await waitForIds(page, ['DV-20']);
      await page.check('#devices-quiet-15m');
      await waitForIds(page, ['DV-03', 'DV-07', 'DV-12', 'DV-20']);

      await page.check('#devices-kind-meters');
      await waitForIds(page, ['DM-02']);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=meters&quiet=15m');
      await page.check('#devices-quiet-24h');
      await page.waitForSelector('.devices-view .notice-empty');
      expect(await page.textContent('.devices-view .notice-empty .notice-title')).toBe(
        'No meter has gone quiet for more than 24 hours',
      );
      expect(await page.locator('.devices-view table').count()).toBe(0);
    } finally {
      await page.close();
    }
  });

  test('when a link goes deep into the list, then its address keeps at most MAX_TRAIL cursors and names the page, and the pager leads back as far as they reach, then to the first page', async () => {
    const page = await browser.newPage();
    const hashParams = () => new URLSearchParams(new URL(page.url()).hash.split('?')[1]);
    // The engine pages by the last cursor alone: these lead to the page after DV-01, page 11.
    const trail = VEHICLES.slice(0, MAX_TRAIL).reverse();
    try {
      await open(page, `#/devices?kind=vehicles&quiet=all&limit=25&trail=${trail.join(',')}`);
      expect(await shownIds(page)).toEqual(VEHICLES.slice(1, 26));
      expect(await page.textContent('.devices-view .pager-page')).toBe('Page 11');

      await page.getByRole('link', { name: 'Next page', exact: true }).click();
      await waitForIds(page, VEHICLES.slice(26));
      expect(hashParams().get('page')).toBe('12');
      expect(hashParams().get('trail')?.split(',')).toEqual([...trail.slice(1), 'DV-26']);
      expect(await page.textContent('.devices-view .pager-page')).toBe('Page 12');
      expect(await page.textContent('.devices-view caption')).toBe('Vehicles by id: 276–279');

      await page.getByRole('link', { name: 'Previous page', exact: true }).click();
      await waitForIds(page, VEHICLES.slice(1, 26));
      expect(hashParams().get('page')).toBe('11');
      expect(hashParams().get('trail')?.split(',')).toEqual(trail.slice(1));

      // Back as far as the cursors reach; then the first page stands for the previous one.
      for (let n = 10; n >= 3; n--) {
        await page.getByRole('link', { name: 'Previous page', exact: true }).click();
        await page.waitForFunction(
          (text) => document.querySelector('.devices-view .pager-page')?.textContent === text,
          `Page ${n}`,
        );
      }
      expect(hashParams().get('trail')).toBe('DV-09');
      // The rest of the list fits this page (DV-10 to DV-30): no next page either.
      expect(await page.locator('.devices-view .pager .pager-disabled').allTextContents()).toEqual([
        '← Previous page',
        'Next page →',
      ]);
      await page.getByRole('link', { name: 'First page', exact: true }).click();
      await waitForIds(page, VEHICLES.slice(0, 25));
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=all&limit=25');
    } finally {
      await page.close();
    }
  });

  test('when the list is longer than a page, then the pages follow the engine’s cursors, and a reload keeps the page', async () => {
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=vehicles&quiet=all&limit=25');
      expect(await shownIds(page)).toEqual(VEHICLES.slice(0, 25));
      expect(await page.textContent('.devices-view caption')).toBe(
        'Vehicles by id: 1–25, more follow',
      );
      expect(await page.inputValue('#devices-page-size')).toBe('25');
      await page.getByRole('link', { name: 'Next page', exact: true }).click();
      await waitForIds(page, VEHICLES.slice(25));
      expect(new URL(page.url()).hash).toBe(
        '#/devices?kind=vehicles&quiet=all&limit=25&trail=DV-25',
      );
      expect(await page.textContent('.devices-view .pager-page')).toBe('Page 2');
      expect(await page.textContent('.devices-view caption')).toBe('Vehicles by id: 26–30');

      await page.reload();
      await page.waitForSelector('.devices-view tbody tr');
      expect(await shownIds(page)).toEqual(VEHICLES.slice(25));
      expect(await page.textContent('.devices-view .pager-page')).toBe('Page 2');

      await page.getByRole('link', { name: 'Previous page', exact: true }).click();
      await waitForIds(page, VEHICLES.slice(0, 25));
      expect(await page.textContent('.devices-view .pager-page')).toBe('Page 1');

      // A link with a cursor the engine refuses shows the first page, saying so.
      await open(page, '#/devices?kind=vehicles&quiet=all&limit=25&trail=..');
      await waitForIds(page, VEHICLES.slice(0, 25));
      expect(await page.textContent('#devices-link-problem')).toMatch(
        /named a page this list does not have/,
      );
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=all&limit=25');
    } finally {
      await page.close();
    }
  });

  test('when a link names a kind or filter the view does not know, then the defaults show, it says so once, and the address becomes what is shown', async () => {
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=foo&quiet=5m&limit=25');
      expect(await shownIds(page)).toEqual(VEHICLES.slice(0, 25));
      expect(await page.textContent('#devices-link-problem')).toBe(
        'The link\'s list could not be shown as asked: its kind "foo" is neither vehicles nor meters; its filter "5m" is none of all, 15m, 1h, 24h. Showing the vehicles instead.',
      );
      expect(await page.isChecked('#devices-kind-vehicles')).toBe(true);
      expect(await page.isChecked('#devices-quiet-all')).toBe(true);
      // Without a history entry of its own: back leaves the view.
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=all&limit=25');
      expect(await page.evaluate(() => history.length)).toBe(2);
      expect(await page.getAttribute('[data-nav="devices"]', 'href')).toBe(
        '#/devices?kind=vehicles&quiet=all&limit=25',
      );

      // A reload shows the list as shown, the note gone.
      await page.reload();
      await page.waitForSelector('.devices-view tbody tr');
      expect(await shownIds(page)).toEqual(VEHICLES.slice(0, 25));
      expect(await page.isHidden('#devices-link-problem')).toBe(true);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=all&limit=25');

      // Typed over the list's address: the same.
      await page.evaluate(() => {
        location.hash = '#/devices?kind=meters&quiet=2h';
      });
      await waitForIds(page, METERS);
      expect(await page.textContent('#devices-link-problem')).toMatch(/its filter "2h" is none of/);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=meters&quiet=all');
    } finally {
      await page.close();
    }
  });

  test('when a link’s page cursor is refused, then the first page shows, and the "Devices" menu link leads to it, not to the refused page', async () => {
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=meters&quiet=all&limit=25&trail=..');
      await page.waitForFunction(() => !location.hash.includes('trail='));
      await waitForIds(page, METERS);
      expect(await page.textContent('#devices-link-problem')).toBe(
        'The link named a page this list does not have: showing its first page.',
      );
      expect(new URL(page.url()).hash).toBe('#/devices?kind=meters&quiet=all&limit=25');
      expect(await page.getAttribute('[data-nav="devices"]', 'href')).toBe(
        '#/devices?kind=meters&quiet=all&limit=25',
      );

      // To the fleet and back by the menu: the first page, without the note.
      await page.getByRole('link', { name: 'Fleet', exact: true }).click();
      await page.waitForSelector('.fleet-view');
      const asked: string[] = [];
      page.on('request', (r) => asked.push(r.url()));
      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      await waitForIds(page, METERS);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=meters&quiet=all&limit=25');
      expect(await page.isHidden('#devices-link-problem')).toBe(true);
      // The refused cursor was not asked again.
      const listed = asked.filter((url) => url.includes('/v1/meters?'));
      expect(listed.length).toBeGreaterThan(0);
      expect(listed.filter((url) => url.includes('cursor='))).toEqual([]);

      // Likewise after a reload (the menu's link is kept for the tab).
      await page.reload();
      await waitForIds(page, METERS);
      expect(await page.getAttribute('[data-nav="devices"]', 'href')).toBe(
        '#/devices?kind=meters&quiet=all&limit=25',
      );
    } finally {
      await page.close();
    }
  });

  test('when a link’s page is past the end of the list, then the page says so and links back to the first page', async () => {
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=vehicles&quiet=1h&trail=zzzzzz');
      expect(await page.textContent('.devices-view .notice-empty .notice-title')).toBe(
        'This page is past the end of the list',
      );
      const back = page.getByRole('link', { name: 'Go back to the first page' });
      expect(await back.getAttribute('href')).toBe('#/devices?kind=vehicles&quiet=1h');
      await back.click();
      await waitForIds(page, ['DV-03', 'DV-07', 'DV-12', 'DV-20']);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=1h');
    } finally {
      await page.close();
    }
  });

  test('when a vehicle is clicked, then its own view opens, and "Devices" goes back to the list as it was', async () => {
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=vehicles&quiet=1h');
      await page.getByRole('link', { name: 'DV-07', exact: true }).click();
      await page.waitForSelector('h1:has-text("Vehicle DV-07")');
      expect(new URL(page.url()).hash).toBe('#/vehicles/DV-07?window=24h');
      await page.waitForSelector('#live-status dl.figures');
      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      await waitForIds(page, ['DV-03', 'DV-07', 'DV-12', 'DV-20']);
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=1h');
    } finally {
      await page.close();
    }
  });

  test('when an id is typed into "Open a vehicle by id", then that vehicle opens, trimmed; an id the engine does not know opens a view that says so', async () => {
    const page = await browser.newPage();
    try {
      await open(page, '#/devices?kind=meters');
      await page.getByLabel('Open a vehicle by id').fill('  DV-12 ');
      await page.getByRole('button', { name: 'Open', exact: true }).click();
      await page.waitForSelector('h1:has-text("Vehicle DV-12")');
      expect(new URL(page.url()).hash).toBe('#/vehicles/DV-12?window=24h');
      await page.waitForSelector('#live-status dl.figures');

      await open(page, '#/devices');
      await page.getByLabel('Open a vehicle by id').fill('NO-SUCH-VEHICLE');
      await page.getByLabel('Open a vehicle by id').press('Enter');
      await page.waitForSelector('h1:has-text("Vehicle NO-SUCH-VEHICLE")');
      const answered = '#live-status .notice:not(.notice-loading)';
      await page.waitForSelector(answered);
      await expect(page.locator(answered).textContent()).resolves.toMatch(
        /No readings received from this vehicle yet/,
      );

      // One the engine would refuse is said at the field, with the engine's rule, and not opened.
      await open(page, '#/devices');
      const field = page.getByLabel('Open a vehicle by id');
      await field.fill('V 17');
      await field.press('Enter');
      await expect(
        field.evaluate((input) => (input as HTMLInputElement).validationMessage),
      ).resolves.toBe('A vehicle id is 1-64 characters from A-Z a-z 0-9 . _ : -, not dots alone.');
      expect(new URL(page.url()).hash).toMatch(/^#\/devices/);
      await field.fill('V-17');
      await expect(
        field.evaluate((input) => (input as HTMLInputElement).validity.valid),
      ).resolves.toBe(true);
    } finally {
      await page.close();
    }
  });

  test('when a narrow screen scrolls a table sideways and focuses it, then 30 s later the table is still scrolled and focused', async () => {
    const page = await browser.newPage();
    try {
      await page.setViewportSize({ width: 375, height: 740 });
      await page.clock.install();
      await open(page, '#/devices?kind=vehicles&quiet=all&limit=25');
      const region = page.locator('.devices-view .table-scroll');
      await region.focus();
      const left = await region.evaluate((el) => {
        el.scrollLeft = Math.floor((el.scrollWidth - el.clientWidth) / 2);
        return el.scrollLeft;
      });
      expect(left).toBeGreaterThan(0);
      const refreshed = page.waitForResponse((r) => r.url().includes('/v1/vehicles?'));
      await page.clock.fastForward(30_000);
      await refreshed;
      await page.waitForFunction(() =>
        /^Updated /.test(document.querySelector('.refresh-status')?.textContent ?? ''),
      );
      expect(await region.evaluate((el) => el.scrollLeft)).toBe(left);
      expect(await region.evaluate((el) => el === document.activeElement)).toBe(true);
    } finally {
      await page.close();
    }
  });

  test('when the page is reloaded or 30 s pass, then the kind, filter, page, scroll and focus stay, and the list is the engine’s current one', async () => {
    const page = await browser.newPage();
    try {
      await page.clock.install();
      await open(page, '#/devices?kind=meters&quiet=1h');
      await page.reload();
      await page.waitForSelector('.devices-view tbody tr');
      expect(await page.isChecked('#devices-kind-meters')).toBe(true);
      expect(await page.isChecked('#devices-quiet-1h')).toBe(true);
      expect(await shownIds(page)).toEqual(['DM-02']);

      await open(page, '#/devices?kind=vehicles&quiet=all&limit=25');
      await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
      const scrolled = await page.evaluate(() => window.scrollY);
      expect(scrolled).toBeGreaterThan(0);
      await page.getByRole('link', { name: 'Next page', exact: true }).focus();

      // A vehicle that sorts first reports meanwhile: the first page now starts with it.
      await ingest([
        {
          vehicleId: 'DV-00',
          soc: 90,
          kwhDeliveredDc: 1,
          batteryTemp: 25,
          timestamp: new Date().toISOString(),
        },
      ]);
      const refreshed = page.waitForResponse((r) => r.url().includes('/v1/vehicles?'));
      await page.clock.fastForward(30_000);
      await refreshed;
      await waitForIds(page, ['DV-00', ...VEHICLES.slice(0, 24)]);
      await page.waitForFunction(() =>
        /^Updated /.test(document.querySelector('.refresh-status')?.textContent ?? ''),
      );
      expect(new URL(page.url()).hash).toBe('#/devices?kind=vehicles&quiet=all&limit=25');
      expect(await page.evaluate(() => window.scrollY)).toBe(scrolled);
      expect(
        await page.evaluate(() => document.activeElement?.getAttribute('data-focus-key')),
      ).toBe('next');
    } finally {
      await page.close();
    }
  });
});
