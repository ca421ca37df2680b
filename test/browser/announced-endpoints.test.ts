/**
 * The sessions and charge point endpoints are announced but not in the engine yet. Until they
 * land, these tests answer just those routes with bodies of the announced shape (everything else
 * is the real engine), to check the views that will show them. When the endpoints exist, load
 * OCPP sessions into the engine instead and drop the route handlers.
 */
import type { Page, Route } from 'playwright-core';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { loadSimulatedFleet } from './helpers/fleet-loader';
import { drawnPixels, recordCspViolations, runAxe } from './helpers/page-checks';

const VEHICLE = 'SIM-V-1';
let engine: TestEngine;
let browser: DashboardBrowser;
let page: Page;
let cspViolations: () => Promise<string[]>;

const minute = 60_000;
const sessionStart = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;
const session = (id: string, startMs: number, extra: object) => ({
  id,
  source: 'ocpp',
  transactionId: 41,
  start: new Date(startMs).toISOString(),
  end: new Date(startMs + 30 * minute).toISOString(),
  open: false,
  meters: [{ meterId: 'SIM-M-1', from: new Date(startMs).toISOString() }],
  acConsumedKwh: 6.25,
  dcDeliveredKwh: 5.5,
  efficiency: 0.88,
  threshold: 0.85,
  alert: false,
  drift: false,
  socStart: 40,
  socEnd: 52.5,
  meanAcPowerKw: 12.5,
  peakAcPowerKw: 13.1,
  ...extra,
});
const sessions = [
  session('S-1', sessionStart, {}),
  session('S-2', sessionStart + 60 * minute, {
    transactionId: 42,
    efficiency: 0.79,
    alert: true,
    drift: true,
    reason: 'drift',
  }),
];
const series = Array.from({ length: 30 }, (_, i) => ({
  minute: new Date(sessionStart + 60 * minute + i * minute).toISOString(),
  acPowerKw: 12 + (i % 3) * 0.3,
  dcPowerKw: 9.5 + (i % 3) * 0.2,
  soc: 40 + i * 0.4,
  batteryTempC: 30 + i * 0.1,
}));
const chargePoint = {
  id: 'CP-7',
  connected: true,
  lastBootAt: new Date(sessionStart).toISOString(),
  connectors: [
    {
      connectorId: 1,
      meterId: 'SIM-M-1',
      status: 'Charging',
      errorCode: 'NoError',
      registerKwh: 1234.5,
      openTransaction: { transactionId: 43 },
    },
    {
      connectorId: 2,
      meterId: null,
      status: 'Faulted',
      errorCode: 'GroundFailure',
      registerKwh: null,
      openTransaction: null,
    },
  ],
};

const json = (route: Route, body: unknown) =>
  route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });

beforeAll(async () => {
  engine = await startTestEngine();
  await loadSimulatedFleet(engine, { vehicles: 3, faulty: 0, backfill: '3h' });
  browser = await launchDashboardBrowser();
  page = await browser.newPage();
  cspViolations = await recordCspViolations(page);
  await page.route(/\/v1\/vehicles\/[^/]+\/sessions(\?|$)/, (route) =>
    json(route, {
      vehicleId: VEHICLE,
      window: { from: new Date(sessionStart).toISOString(), to: new Date().toISOString() },
      sessions,
    }),
  );
  await page.route(/\/v1\/vehicles\/[^/]+\/sessions\/S-2$/, (route) =>
    json(route, { ...sessions[1], series }),
  );
  await page.route(/\/v1\/charge-points$/, (route) => json(route, { chargePoints: [chargePoint] }));
  await page.route(/\/v1\/charge-points\/CP-7$/, (route) => json(route, chargePoint));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
});

const seriousAxe = async () =>
  (await runAxe(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');

describe('views of the announced sessions and charge point endpoints', () => {
  test('when a vehicle has sessions, then they are listed with their reason and open a per-minute chart', async () => {
    await page.goto(`${engine.url}/dashboard#/vehicles/${VEHICLE}?window=24h`);
    await page.waitForSelector('#sessions table');
    expect(await page.isVisible('#sessions')).toBe(true);
    const rows = page.locator('#sessions tbody tr');
    expect(await rows.count()).toBe(2);
    // Newest first; the drifting one carries the engine's reason.
    await expect(rows.first().textContent()).resolves.toMatch(
      /OCPP transaction 42.*79\.0\s%.*Flagged\s*drift/,
    );
    await rows.first().getByRole('link', { name: 'Show chart' }).click();
    await page.waitForSelector('#sessions .session-detail canvas');
    expect(page.url()).toContain('session=S-2');
    expect(await drawnPixels(page, '#sessions .session-detail .chart canvas')).toBeGreaterThan(
      1000,
    );
    expect(await seriousAxe()).toEqual([]);
  });

  test('when the engine has charge points, then the nav shows them and each opens its connectors', async () => {
    await page.waitForSelector('[data-nav-item="charge-points"]:not([hidden])');
    await page.getByRole('link', { name: 'Charge points' }).click();
    await page.waitForSelector('.view tbody tr');
    await expect(page.locator('.view tbody tr').first().textContent()).resolves.toMatch(
      /CP-7.*Connected.*1: Charging, 2: Faulted/,
    );
    await page.getByRole('link', { name: 'CP-7' }).click();
    await page.waitForSelector('h1:has-text("Charge point CP-7")');
    await page.waitForSelector('.view tbody tr');
    const connectors = await page.locator('.view tbody tr').allTextContents();
    expect(connectors[0]).toMatch(/1.*Charging.*NoError.*SIM-M-1.*1,234\.50\skWh.*transaction 43/);
    expect(connectors[1]).toMatch(/2.*Faulted.*GroundFailure.*no meter.*no reading.*none/);
    expect(await seriousAxe()).toEqual([]);
    expect(await cspViolations()).toEqual([]);
  });
});
