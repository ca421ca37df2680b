import {
  serveTestApi,
  startTestApi,
  startTestEngine,
  waitForDrained,
  type TestEngine,
} from '../helpers/engine';
import { createTestContext } from '../helpers/test-env';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { ingestAllStored } from './helpers/requests';

let engine: TestEngine;
let browser: DashboardBrowser;

beforeAll(async () => {
  engine = await startTestEngine();
  browser = await launchDashboardBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
});

const noticeTexts = (url: string, selector = '.notice') =>
  browser.newPage().then(async (page) => {
    try {
      await page.goto(url);
      await page.waitForSelector(selector);
      return await page.locator(selector).allTextContents();
    } finally {
      await page.close();
    }
  });

/** Posts JSON to the engine and expects the status. */
async function post(path: string, body: unknown, status: number): Promise<void> {
  const res = await fetch(`${engine.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(status);
}

describe('dashboard empty and error states', () => {
  test('when the engine has no readings, then the fleet says so instead of showing an empty table', async () => {
    // The 7-day window: the fleet report is cached per window, and the next test reads 24 hours.
    const texts = await noticeTexts(`${engine.url}/dashboard#/fleet?window=7d`, '.notice-empty');
    expect(texts.join(' ')).toMatch(/No vehicle sent readings in this window/);
  });

  test('when a vehicle reports but is mapped to no meter, then its views name what is missing', async () => {
    const hour = 3_600_000;
    const start = Math.floor(Date.now() / hour) * hour - 2 * hour;
    const readings = Array.from({ length: 12 }, (_, i) => ({
      vehicleId: 'V-UNMAPPED',
      soc: 40 + i,
      kwhDeliveredDc: 0.5,
      batteryTemp: 30,
      timestamp: new Date(start + i * 5 * 60_000).toISOString(),
    }));
    await ingestAllStored(engine, readings);

    const fleet = await browser.newPage();
    await fleet.goto(`${engine.url}/dashboard`);
    await fleet.waitForSelector('.fleet-summary');
    await expect(
      fleet.locator('.count', { hasText: 'Without mapping' }).locator('dd').textContent(),
    ).resolves.toBe('1');
    await expect(fleet.locator('.notice-empty').textContent()).resolves.toMatch(
      /No vehicle can be measured in this window/,
    );
    await fleet.locator('summary', { hasText: 'Without mapping' }).click();
    await fleet.getByRole('link', { name: 'V-UNMAPPED' }).click();

    await fleet.waitForSelector('#mapping .notice-empty');
    await expect(fleet.locator('#mapping .notice-empty').textContent()).resolves.toMatch(
      /No mapping: this vehicle has never been mapped to a meter/,
    );
    await fleet.waitForSelector('#efficiency .window-totals');
    await expect(fleet.locator('#efficiency .warnings').textContent()).resolves.toMatch(
      /mapped to no meter in this window, so AC energy is unknown/,
    );
    await expect(fleet.locator('#efficiency .window-totals').textContent()).resolves.toMatch(
      /AC consumed\s*unknown \(see warnings\)/,
    );
    await fleet.close();
  });

  test('when a vehicle is unknown, then its view says it sent nothing', async () => {
    const page = await browser.newPage();
    await page.goto(`${engine.url}/dashboard#/vehicles/V-NEVER-SEEN?window=24h`);
    await page.waitForSelector('#live-status .notice:not(.notice-loading)');
    await page.waitForSelector('#efficiency .notice:not(.notice-loading)');
    await expect(
      page.locator('#live-status .notice:not(.notice-loading)').textContent(),
    ).resolves.toMatch(/No readings received from this vehicle yet/);
    await expect(
      page.locator('#efficiency .notice:not(.notice-loading)').textContent(),
    ).resolves.toMatch(
      /No report for this vehicle.*has sent no readings and is mapped to no meter/,
    );
    await page.waitForSelector('#mapping .notice:not(.notice-loading)');
    await expect(
      page.locator('#mapping .notice:not(.notice-loading)').textContent(),
    ).resolves.toMatch(/never been mapped to a meter/);
    await expect(page.locator('#sessions').textContent()).resolves.toMatch(/No charging sessions/);
    // Nothing on the vehicle is an answer, not a failed refresh.
    await expect(page.locator('.refresh-status').textContent()).resolves.toMatch(/^Updated /);
    await page.close();
  });

  test('when the address holds a stray %, then the vehicle view says what is wrong with the id, not a blank page', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${engine.url}/dashboard#/vehicles/50%?window=24h`);
    await page.waitForSelector('#live-status .notice:not(.notice-loading)');
    await expect(
      page.locator('#live-status .notice:not(.notice-loading)').textContent(),
    ).resolves.toMatch(/vehicleId/);
    expect(errors).toEqual([]);
    await page.close();
  });

  test('when the engine never answers, then the page says so once the request deadline passes, and the next refresh tries again', async () => {
    const page = await browser.newPage();
    try {
      // Every API request hangs, as behind a proxy whose engine stopped answering.
      await page.route('**/v1/**', () => undefined);
      await page.goto(`${engine.url}/dashboard#/fleet`);
      await page.waitForSelector('.notice-error', { timeout: 30_000 });
      await expect(page.locator('.notice-error').first().textContent()).resolves.toMatch(
        /did not answer within 20 s: it is down or hung, or the network is/,
      );
      await expect(page.locator('.refresh-status').textContent()).resolves.toMatch(
        /^Refresh failed /,
      );
    } finally {
      await page.close();
    }
  }, 60_000);

  test('when the engine is slow to answer, then each vehicle section says it is loading and the charge points entry stays', async () => {
    const page = await browser.newPage();
    try {
      await page.route('**/v1/**', () => undefined);
      await page.goto(`${engine.url}/dashboard#/vehicles/V-SLOW`);
      await page.waitForSelector('#sessions .notice-loading');
      const loading = await page.$$eval('.view section.panel', (sections) =>
        sections.map((s) => [
          s.id,
          (s as HTMLElement).hidden,
          s.querySelector('.notice')?.textContent ?? '',
        ]),
      );
      expect(loading).toEqual([
        ['live-status', false, 'Loading the live status…'],
        ['efficiency', false, 'Loading the performance report…'],
        ['sessions', false, 'Loading the charging sessions…'],
        ['mapping', false, 'Loading the mapping history…'],
      ]);
      // An engine not answering is not an engine without charge points.
      expect(await page.isVisible('[data-nav-item="charge-points"]')).toBe(true);
    } finally {
      await page.close();
    }
  });

  test('when a meter is mapped to two vehicles at once, then the fleet names it and both vehicles, above its lists', async () => {
    for (const vehicleId of ['V-SHARE-1', 'V-SHARE-2']) {
      await post(
        '/v1/telemetry/map',
        { vehicleId, meterId: 'M-SHARED', since: '2024-09-01T00:00:00Z' },
        200,
      );
    }
    await post(
      '/v1/telemetry/ingest',
      [
        { meterId: 'M-SHARED', kwhConsumedAc: 2, voltage: 230, timestamp: '2024-09-01T10:30:00Z' },
        ...['V-SHARE-1', 'V-SHARE-2'].map((vehicleId) => ({
          vehicleId,
          soc: 50,
          kwhDeliveredDc: 1.5,
          batteryTemp: 30,
          timestamp: '2024-09-01T10:45:00Z',
        })),
      ],
      202,
    );
    await waitForDrained(engine.queue);
    const page = await browser.newPage();
    try {
      await page.goto(
        `${engine.url}/dashboard#/fleet?window=custom&from=2024-09-01T10:00:00.000Z&to=2024-09-01T12:00:00.000Z`,
      );
      const shared = page.locator('.notice-info', { hasText: 'Meters mapped to several vehicles' });
      await shared.waitFor();
      await expect(shared.textContent()).resolves.toMatch(
        /M-SHARED \(V-SHARE-1, V-SHARE-2\): each of these vehicles counts the meter's whole AC energy/,
      );
      // Above the lists it changes the reading of: the table, its pager, the vehicles apart.
      await page.waitForSelector('.fleet-view tbody tr');
      await expect(
        page.$eval('.fleet-content', (content) => {
          const notice = [...content.querySelectorAll('.notice-info')].find((n) =>
            n.textContent?.includes('Meters mapped to several vehicles'),
          );
          const lists = content.querySelectorAll('.table-block, .pager, .vehicle-list');
          return (
            lists.length > 0 &&
            [...lists].every(
              (l) =>
                !!notice &&
                !!(notice.compareDocumentPosition(l) & Node.DOCUMENT_POSITION_FOLLOWING),
            )
          );
        }),
      ).resolves.toBe(true);
      // Each vehicle's view names the shared stretch in the page's own time format (Berlin here).
      await page.goto(
        `${engine.url}/dashboard#/vehicles/V-SHARE-1?window=custom&from=2024-09-01T10:00:00.000Z&to=2024-09-01T12:00:00.000Z`,
      );
      const warning = page.locator('.warnings li', { hasText: 'M-SHARED' });
      await warning.waitFor();
      await expect(warning.textContent()).resolves.toBe(
        'Meter M-SHARED was mapped to vehicle V-SHARE-2 too between 2024-09-01 12:00 +02:00 and 2024-09-01 14:00 +02:00: its AC energy counts in each of their reports',
      );
    } finally {
      await page.close();
    }
  });

  test('when a session took more DC than its meter gave AC, then its chart view says so', async () => {
    await post(
      '/v1/telemetry/map',
      { vehicleId: 'V-OVER', meterId: 'M-OVER', since: '2024-09-02T00:00:00Z' },
      200,
    );
    await post(
      '/v1/telemetry/ingest',
      [
        { meterId: 'M-OVER', kwhConsumedAc: 1, voltage: 230, timestamp: '2024-09-02T10:30:00Z' },
        {
          vehicleId: 'V-OVER',
          soc: 50,
          kwhDeliveredDc: 1.5,
          batteryTemp: 30,
          timestamp: '2024-09-02T10:30:00Z',
        },
      ],
      202,
    );
    await waitForDrained(engine.queue);
    // Its one charging reading, the vehicle's first: the session starts SESSION_GAP_S before it.
    const session = `d-${Date.parse('2024-09-02T10:20:00Z')}`;
    const page = await browser.newPage();
    try {
      await page.goto(
        `${engine.url}/dashboard#/vehicles/V-OVER?window=custom&from=2024-09-02T10:00:00.000Z&to=2024-09-02T12:00:00.000Z&session=${session}`,
      );
      const warnings = page.locator('#sessions .session-detail .warnings li');
      await warnings.first().waitFor();
      await expect(warnings.allTextContents()).resolves.toEqual([
        'DC delivered exceeds AC consumed: check the meter mapping and the energy mode',
      ]);
    } finally {
      await page.close();
    }
  });

  test('when PostgreSQL is unreachable, then the page says the engine is unavailable (503)', async () => {
    const ctx = await createTestContext();
    // Port 1: nothing listens there, so every database connection is refused at once.
    const api = await startTestApi(ctx, { databaseUrl: 'postgres://postgres@127.0.0.1:1/none' });
    const { server, url } = await serveTestApi(api);
    try {
      const texts = await noticeTexts(`${url}/dashboard`, '.notice-error');
      expect(texts.join(' ')).toMatch(
        /Could not load the fleet report.*The engine is unavailable \(503 database_unavailable\).*tries again every 30 s/,
      );
    } finally {
      await new Promise((r) => server.close(r));
      await api.close();
      await ctx.cleanup();
    }
  });
});
