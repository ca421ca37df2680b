import { ENGINE_STATEMENT_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../../web/src/api/api-client';
import {
  serveTestApi,
  startTestApi,
  startTestEngine,
  waitFor,
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
    await page.waitForSelector('.vehicle-view .notice');
    await expect(page.locator('.vehicle-view .notice').textContent()).resolves.toMatch(
      /“50%” is not a vehicle id.*vehicleId must be 1-64 characters/,
    );
    expect(errors).toEqual([]);
    await page.close();
  });

  test('when a link names an id the engine refuses (markup in it), then the page asks nothing and says so once, the id as text', async () => {
    const page = await browser.newPage();
    const asked: string[] = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/v1/') && !r.url().includes('/v1/charge-points'))
        asked.push(r.url());
    });
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    try {
      await page.clock.install();
      const id = '<img src=x onerror=alert(1)>';
      await page.goto(`${engine.url}/dashboard#/vehicles/${encodeURIComponent(id)}`);
      await page.waitForSelector('.vehicle-view .notice');
      await expect(page.locator('.vehicle-view .notice').allTextContents()).resolves.toEqual([
        `“${id}” is not a vehicle id` +
          // The engine's own words for the rule (its 400 answer's), once.
          'The engine refuses it (400): vehicleId must be 1-64 characters from A-Z a-z 0-9 . _ : -, not dots alone. Open a vehicle from the fleet, or by its id under Devices.',
      ]);
      await expect(page.locator('.vehicle-view img').count()).resolves.toBe(0);
      // The next refresh asks nothing either.
      await page.clock.fastForward(30_000);
      await expect(page.locator('.refresh-status').textContent()).resolves.toMatch(/^Updated /);
      expect(asked).toEqual([]);
      expect(dialogs).toEqual([]);
      // The engine answers such an id with the same rule.
      const res = await fetch(`${engine.url}/v1/vehicles/${encodeURIComponent(id)}/status`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toContain(
        'vehicleId must be 1-64 characters from A-Z a-z 0-9 . _ : -, not dots alone',
      );
    } finally {
      await page.close();
    }
  });

  test('when the engine never answers, then the page says so once the request deadline passes, and the next refresh tries again', async () => {
    const page = await browser.newPage();
    try {
      await page.clock.install();
      // The fleet page's requests hang, as behind a proxy whose engine stopped answering.
      let asked = 0;
      await page.route('**/v1/analytics/fleet?*', () => {
        asked += 1;
      });
      await page.route('**/v1/charge-points?*', () => undefined);
      await page.goto(`${engine.url}/dashboard#/fleet`);
      await page.waitForSelector('.fleet-view .notice-loading');
      await page.clock.fastForward(REQUEST_TIMEOUT_MS);
      await page.waitForSelector('.notice-error');
      await expect(page.locator('.notice-error').first().textContent()).resolves.toContain(
        `did not answer within ${REQUEST_TIMEOUT_MS / 1000} s: it is down or hung, or the network is`,
      );
      await expect(page.locator('.refresh-status').textContent()).resolves.toMatch(
        /^Refresh failed /,
      );
      // Given up, the request is asked again by the next refresh.
      expect(asked).toBe(1);
      await page.clock.fastForward(30_000);
      await waitFor(async () => asked === 2, 5000, 'the refresh to ask again');
    } finally {
      await page.close();
    }
  });

  test('when the engine is still working on a request at the next refreshes, then they wait for it instead of asking again, and its answer is shown', async () => {
    const page = await browser.newPage();
    try {
      await page.clock.install();
      // The flagged sessions take longer than two refreshes (the engine's statement timeout
      // included), as at 1,370 vehicles whose sessions were not built yet (37.8 s).
      let release = () => {};
      const held = new Promise<void>((resolve) => (release = resolve));
      const asked = { fleet: 0, sessions: 0 };
      await page.route('**/v1/analytics/sessions?*', async (route) => {
        asked.sessions += 1;
        await held;
        await route.continue();
      });
      page.on('request', (r) => {
        if (r.url().includes('/v1/analytics/fleet?')) asked.fleet += 1;
      });
      await page.goto(`${engine.url}/dashboard#/fleet?window=24h`);
      await page.waitForSelector('.fleet-content[data-session-flags="pending"] .fleet-summary');
      await waitFor(async () => asked.sessions === 1, 5000, 'the flagged sessions asked');
      for (const refresh of [2, 3]) {
        const statusBefore = await page.textContent('.refresh-status');
        await page.clock.fastForward(30_000);
        await waitFor(async () => asked.fleet === refresh, 5000, `refresh ${refresh}`);
        // A refresh still running when the next is due is skipped: the clock moves on only once
        // this one has been answered (the status line then says when).
        await waitFor(
          async () => {
            const status = await page.textContent('.refresh-status');
            return status !== statusBefore && /^Updated /.test(status ?? '');
          },
          5000,
          `refresh ${refresh} answered`,
        );
      }
      // Two refreshes on, past the engine's statement timeout, the first request is still the one
      // awaited: neither asked again, nor given up on.
      expect(2 * 30_000).toBeGreaterThan(ENGINE_STATEMENT_TIMEOUT_MS);
      expect(asked.sessions).toBe(1);
      await expect(page.locator('.notice-error').count()).resolves.toBe(0);
      release();
      await page.waitForSelector('.fleet-content[data-session-flags="loaded"]');
      expect(asked.sessions).toBe(1);
    } finally {
      await page.close();
    }
  });

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

  test('when a mapping starts a millisecond after its meter’s last reading, then the warning’s instants keep their milliseconds', async () => {
    await post(
      '/v1/telemetry/map',
      { vehicleId: 'V-MS', meterId: 'M-MS', since: '2024-09-06T10:59:45.001Z' },
      200,
    );
    await ingestAllStored(engine, [
      { meterId: 'M-MS', kwhConsumedAc: 1, voltage: 230, timestamp: '2024-09-06T10:59:45.000Z' },
      {
        vehicleId: 'V-MS',
        soc: 50,
        kwhDeliveredDc: 0.5,
        batteryTemp: 30,
        timestamp: '2024-09-06T11:30:00Z',
      },
    ]);
    const page = await browser.newPage();
    try {
      await page.goto(
        `${engine.url}/dashboard#/vehicles/V-MS?window=custom&from=2024-09-06T10:00:00.000Z&to=2024-09-06T12:00:00.000Z`,
      );
      const warning = page.locator('#efficiency .warnings li', { hasText: 'M-MS' });
      await warning.waitFor();
      // Cut to the second, 12:59:45 would seem to hold the meter's reading of 12:59:45.000.
      await expect(warning.textContent()).resolves.toBe(
        'Meter M-MS sent no readings between 2024-09-06 12:59:45.001 +02:00 and 2024-09-06 14:00 +02:00',
      );
    } finally {
      await page.close();
    }
  });

  test('when vehicles draw tiny energies, then their figures say how tiny in Wh, not 0.00 kWh, in the fleet and in their own view', async () => {
    // A reading every 5 minutes of 0.000002 kWh AC and 0.000001 kWh DC, 50 % efficient: for a day
    // (0.0006 and 0.0003 kWh as the engine rounds them), and for an hour (0.000024 and 0.000012
    // kWh, which it rounds to 0, its efficiency computed before).
    const readings = (vehicleId: string, meterId: string, count: number) =>
      Array.from({ length: count }, (_, i) => {
        const timestamp = new Date(Date.parse('2024-09-03T00:05:00Z') + i * 300_000);
        return [
          { meterId, kwhConsumedAc: 0.000002, voltage: 230, timestamp },
          { vehicleId, soc: 50, kwhDeliveredDc: 0.000001, batteryTemp: 30, timestamp },
        ];
      }).flat();
    for (const [vehicleId, meterId] of [
      ['V-TINY', 'M-TINY'],
      ['V-TRACE', 'M-TRACE'],
    ])
      await post('/v1/telemetry/map', { vehicleId, meterId, since: '2024-09-02T00:00:00Z' }, 200);
    await ingestAllStored(engine, [
      ...readings('V-TINY', 'M-TINY', 288),
      ...readings('V-TRACE', 'M-TRACE', 12),
    ]);
    const window = 'window=custom&from=2024-09-03T00:00:00.000Z&to=2024-09-04T00:00:00.000Z';
    const page = await browser.newPage();
    try {
      await page.goto(`${engine.url}/dashboard#/fleet?${window}`);
      await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
      const cells = (vehicleId: string) =>
        page.locator(`.fleet-view tbody tr[data-vehicle-id="${vehicleId}"] td`).allTextContents();
      const [tiny, trace] = [await cells('V-TINY'), await cells('V-TRACE')];
      expect(tiny[0]).toMatch(/^Flagged\s+Below the 85\.00\s% efficiency threshold/);
      expect(tiny.slice(1, 4)).toEqual(['50.00\u00a0%', '0.6\u00a0Wh', '0.3\u00a0Wh']);
      expect(trace.slice(1, 4)).toEqual([
        '50.00\u00a0%',
        '<\u00a00.05\u00a0Wh',
        '<\u00a00.05\u00a0Wh',
      ]);

      await page.goto(`${engine.url}/dashboard#/vehicles/V-TINY?${window}`);
      await page.waitForSelector('#efficiency .window-totals');
      await page.waitForSelector('#sessions tbody tr');
      const totals = await page.$eval('#efficiency .window-totals', (dl) =>
        [...dl.querySelectorAll('dd')].slice(0, 2).map((dd) => dd.textContent),
      );
      expect(totals).toEqual(['0.6\u00a0Wh', '0.3\u00a0Wh']);
      const session = await page
        .locator('#sessions tbody tr')
        .first()
        .locator('td')
        .allTextContents();
      expect(session.slice(4, 6)).toEqual(['0.6\u00a0Wh', '0.3\u00a0Wh']);
      const hour = await page
        .locator('#efficiency .hourly tbody tr')
        .nth(1)
        .locator('td')
        .allTextContents();
      expect(hour.slice(0, 3)).toEqual([
        '<\u00a00.05\u00a0Wh',
        '<\u00a00.05\u00a0Wh',
        '50.00\u00a0%',
      ]);
    } finally {
      await page.close();
    }
  });

  test("when a session holds the vehicle's very first reading, then its DC line starts with it: its energy over the time since the session's start", async () => {
    await post(
      '/v1/telemetry/map',
      { vehicleId: 'V-FIRST', meterId: 'M-FIRST', since: '2024-09-04T00:00:00Z' },
      200,
    );
    const minute = (m: number) => new Date(Date.parse('2024-09-04T10:00:00Z') + m * 60_000);
    // The meter reported before; the vehicle's first reading ever is its session's first, at
    // 10:21, so the session starts SESSION_GAP_S (10 min) before it: 0.18 kWh over 10 minutes.
    await ingestAllStored(engine, [
      { meterId: 'M-FIRST', kwhConsumedAc: 0, voltage: 230, timestamp: minute(0) },
      ...Array.from({ length: 10 }, (_, i) => [
        { meterId: 'M-FIRST', kwhConsumedAc: 0.2, voltage: 230, timestamp: minute(21 + i) },
        {
          vehicleId: 'V-FIRST',
          soc: 50 + i,
          kwhDeliveredDc: 0.18,
          batteryTemp: 30,
          timestamp: minute(21 + i),
        },
      ]).flat(),
    ]);
    const session = `d-${minute(11).getTime()}`;
    const detail = await (
      await fetch(`${engine.url}/v1/vehicles/V-FIRST/sessions/${session}`)
    ).json();
    expect(detail).toMatchObject({ dcDeliveredKwh: 1.8, start: minute(11).toISOString() });
    // The first reading has no earlier one: its energy over the time since the session's start.
    expect(detail.series[0]).toMatchObject({ minute: minute(21).toISOString(), dcPowerKw: 1.08 });
    expect(detail.series[1]).toMatchObject({ dcPowerKw: 10.8 });
    const page = await browser.newPage();
    try {
      await page.goto(
        `${engine.url}/dashboard#/vehicles/V-FIRST?window=custom&from=2024-09-04T10:00:00.000Z&to=2024-09-04T12:00:00.000Z&session=${session}`,
      );
      const figure = page.locator('#sessions .session-detail .chart-figure').first();
      await figure.locator('canvas').waitFor();
      // The mouse reaches only what is on screen.
      await figure.locator('.u-over').scrollIntoViewIfNeeded();
      const plot = await figure.locator('.u-over').boundingBox();
      if (!plot) throw new Error('the power chart has no plot area');
      const legend = (label: string) =>
        figure
          .locator('.u-legend .u-series')
          .filter({ has: page.locator('th', { hasText: new RegExp(`^${label}$`) }) })
          .locator('.u-value')
          .textContent();
      // Its first minute: 0.18 kWh over the 10 minutes since the session's start, 1.08 kW.
      await page.mouse.move(plot.x + 1, plot.y + plot.height / 2);
      await expect(legend('DC power')).resolves.toBe('1.1\u00a0kW');
      await page.mouse.move(plot.x + plot.width / 9 + 1, plot.y + plot.height / 2);
      await expect(legend('DC power')).resolves.toBe('10.8\u00a0kW');
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
