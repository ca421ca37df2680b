/**
 * The sessions and charge point views against a real engine: a simulated fleet of OCPP charge
 * points (the simulator's --ocpp backfill) with known faulty chargers, a vehicle whose charger
 * degrades (drift), and a real OCPP charge point connected while the page looks at it.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { Fleet } from '../../scripts/fleet-model';
import { startTestEngine, waitFor, waitForDrained, type TestEngine } from '../helpers/engine';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { loadDriftingCharger, type DriftingCharger } from './helpers/drifting-charger';
import { loadSimulatedFleet } from './helpers/fleet-loader';
import { connectLiveChargePoint, type LiveChargePoint } from './helpers/live-charge-point';
import { drawnPixels, parseFigure, recordCspViolations, runAxe } from './helpers/page-checks';

const DOCS = join(__dirname, '..', '..', 'docs');
const HOUR_MS = 3_600_000;
const LIVE_CP = 'CP-LIVE-1';

interface SessionJson {
  id: string;
  vehicleId: string;
  source: 'ocpp' | 'detected';
  transactionId: number | null;
  efficiency: number | null;
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
  meanAcPowerKw: number | null;
  peakAcPowerKw: number | null;
  alert: boolean | null;
  drift: boolean | null;
  baseline: { medianEfficiency: number; sessions: number } | null;
}
interface ConnectorJson {
  connectorId: number;
  status: string | null;
  errorCode: string | null;
  vendorErrorCode: string | null;
  info: string | null;
  registerKwh: number | null;
  openTransaction: { transactionId: number; vehicleId: string | null } | null;
}
interface ChargePointJson {
  id: string;
  connected: boolean;
  connectors: ConnectorJson[];
}

let engine: TestEngine;
let fleet: Fleet;
let drifting: DriftingCharger;
let live: LiveChargePoint;
let browser: DashboardBrowser;
let page: Page;
let cspViolations: () => Promise<string[]>;

beforeAll(async () => {
  engine = await startTestEngine({
    EFFICIENCY_THRESHOLDS: '3.7:0.75,11:0.82,22:0.85,*:0.88',
    EFFICIENCY_DRIFT: '0.04',
  });
  fleet = await loadSimulatedFleet(engine, {
    vehicles: 8,
    faulty: 0.25,
    backfill: '6h',
    ocpp: true,
  });
  // Its last session lies inside the last-24-hours window; the six before it, on the days before.
  const lastWholeHour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  drifting = await loadDriftingCharger(engine, {
    vehicleId: 'DRIFT-V-1',
    meterId: 'DRIFT-M-1',
    usual: 0.93,
    degraded: 0.87,
    days: 6,
    lastSessionStartMs: lastWholeHour - 3 * HOUR_MS,
  });
  // What the flusher does in the background: roll the closed hours up and keep their sessions.
  // Drift compares a session with the kept sessions before it, so it shows once they are built.
  await engine.flusher.flusher.rollups.rollUpNow();
  await engine.flusher.flusher.sessions.buildNow();
  live = await connectLiveChargePoint(engine, {
    id: LIVE_CP,
    idTag: 'CARD-LIVE-1',
    vehicleId: 'LIVE-V-1',
    startedAtMs: Date.now() - 15 * 60_000,
  });
  // Its first readings stored before any page or report is read, so both see the same data.
  await waitForDrained(engine.queue);
  browser = await launchDashboardBrowser();
  page = await browser.newPage();
  cspViolations = await recordCspViolations(page);
}, 240_000);

afterAll(async () => {
  await live?.chargePoint.close({ force: true });
  await browser?.close();
  await engine?.stop();
});

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${engine.url}${path}`);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

const seriousAxe = async () =>
  (await runAxe(page)).filter((v) => v.impact === 'serious' || v.impact === 'critical');

/** The window a view shows, as its <time datetime> attributes. */
const shownWindow = async (selector: string) => {
  const [from, to] = await page.$$eval(`${selector} .window-line time`, (times) =>
    times.map((t) => t.getAttribute('datetime') ?? ''),
  );
  return { from, to };
};

interface Row {
  id: string;
  flagged: boolean;
  reasons: string;
  reasonText: string;
  cells: string[];
}

const rowsOf = (selector: string, idAttribute: string): Promise<Row[]> =>
  page.$$eval(
    selector,
    (rows, attr) =>
      rows.map((r) => ({
        id: r.getAttribute(attr) ?? '',
        flagged: r.getAttribute('data-flagged') === 'true',
        reasons: r.getAttribute('data-flag-reasons') ?? '',
        reasonText: r.querySelector('.flag-reason')?.textContent ?? '',
        cells: [...r.querySelectorAll('th, td')].map((td) => td.textContent ?? ''),
      })),
    idAttribute,
  );

const definitionList = (selector: string): Promise<Record<string, string>> =>
  page.$eval(selector, (dl) =>
    Object.fromEntries(
      [...dl.querySelectorAll('dt')].map((dt) => [
        dt.textContent ?? '',
        dt.nextElementSibling?.textContent ?? '',
      ]),
    ),
  );

/** A ratio as the page shows it: the API's 4 decimals as a percentage with 2, not rounded again. */
const percent = (ratio: number) => `${(ratio * 100).toFixed(2)}\u00a0%`;
/** A percentage on the page equals the API's ratio (to 4 decimals), not a rounding of it. */
const expectRatioShown = (text: string, ratio: number | null) =>
  expect(parseFigure(text)).toBeCloseTo((ratio ?? NaN) * 100, 6);

describe('fleet view with sessions', () => {
  test('when chargers are faulty or drifting, then exactly those vehicles are flagged, first, with their reason', async () => {
    await page.goto(`${engine.url}/dashboard#/fleet?window=24h`);
    await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
    const rows = await rowsOf('.fleet-view tbody tr', 'data-vehicle-id');
    const window = await shownWindow('.fleet-view');
    const flaggedSessions = await api<{
      totals: { sessions: number; flagged: number; drifting: number };
      sessions: SessionJson[];
    }>(`/v1/analytics/sessions?flagged=true&limit=10000&from=${window.from}&to=${window.to}`);

    const faulty = fleet.faulty().map((f) => f.vehicleId);
    expect(faulty).toHaveLength(2);
    const driftingIds = [
      ...new Set(flaggedSessions.sessions.filter((s) => s.drift).map((s) => s.vehicleId)),
    ];
    expect(driftingIds).toEqual([drifting.vehicleId]);
    // The engine's session alerts fall on the faulty chargers and nowhere else.
    expect(
      new Set(flaggedSessions.sessions.filter((s) => s.alert).map((s) => s.vehicleId)),
    ).toEqual(new Set(faulty));

    // The engine's report for the same window, in its order: the simulated fleet, the drifting
    // vehicle and, once its transaction is inside the window, the live charge point's vehicle.
    const report = await api<{ vehicles: { vehicleId: string }[] }>(
      `/v1/analytics/fleet?limit=100&from=${window.from}&to=${window.to}`,
    );
    expect(rows.map((r) => r.id)).toEqual(report.vehicles.map((v) => v.vehicleId));
    expect(rows.map((r) => r.id)).toEqual(
      expect.arrayContaining([...fleet.vehicles.map((v) => v.id), drifting.vehicleId]),
    );
    const flagged = rows.filter((r) => r.flagged);
    expect(new Set(flagged.map((r) => r.id))).toEqual(new Set([...faulty, drifting.vehicleId]));
    // Worst efficiency first: the faulty chargers (0.70-0.84), then the drifting one (0.87).
    expect(rows.slice(0, flagged.length).every((r) => r.flagged)).toBe(true);
    for (const row of flagged.filter((r) => faulty.includes(r.id))) {
      expect(row.reasons).toBe('threshold');
      expect(row.reasonText).toMatch(
        /^Below the 85\.00\s% efficiency threshold; \d+ sessions? below (its|their) threshold$/,
      );
    }
    const drift = flagged.find((r) => r.id === drifting.vehicleId);
    const driftSession = flaggedSessions.sessions.find((s) => s.drift);
    expect(driftSession).toMatchObject({
      efficiency: drifting.degraded,
      alert: false,
      drift: true,
    });
    expect(driftSession?.baseline).toEqual({ medianEfficiency: drifting.usual, sessions: 6 });
    expect(drift?.reasons).toBe('drift');
    expect(drift?.reasonText).toBe(
      `Drift: ${percent(drifting.degraded)} against its usual ${percent(drifting.usual)}`,
    );

    const counts = await definitionList('.fleet-view .counts');
    expect(parseFigure(counts['Sessions flagged'])).toBe(flaggedSessions.totals.flagged);
    expect(parseFigure(counts['Sessions drifting'])).toBe(1);
    expect(parseFigure(counts['Sessions'])).toBe(flaggedSessions.totals.sessions);
    expect(await seriousAxe()).toEqual([]);

    mkdirSync(DOCS, { recursive: true });
    await page.screenshot({ path: join(DOCS, 'dashboard-fleet.png'), fullPage: true });
  });

  test('when the flagged sessions take more than one page, then a drift on a later page still marks its vehicle', async () => {
    // The engine's answer cut in two pages, its drifting session on the second (worst first:
    // in a large fleet, a drift at 0.87 comes after the faulty chargers' pages of alerts).
    const sessionsUrl = '**/v1/analytics/sessions?*';
    await page.route(sessionsUrl, async (route) => {
      const url = new URL(route.request().url());
      if (url.searchParams.get('cursor') === 'page-2') {
        const rest = new URL(url);
        rest.searchParams.delete('cursor');
        const whole = (await (await fetch(rest)).json()) as { sessions: SessionJson[] };
        const json = {
          ...whole,
          sessions: whole.sessions.filter((s) => s.drift),
          nextCursor: null,
        };
        return route.fulfill({ json });
      }
      const whole = (await (await route.fetch()).json()) as { sessions: SessionJson[] };
      const json = {
        ...whole,
        sessions: whole.sessions.filter((s) => !s.drift),
        nextCursor: 'page-2',
      };
      return route.fulfill({ json });
    });
    try {
      await page.goto(`${engine.url}/dashboard#/fleet?window=24h`);
      await page.reload();
      await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
      const rows = await rowsOf('.fleet-view tbody tr', 'data-vehicle-id');
      expect(rows.find((r) => r.id === drifting.vehicleId)?.reasons).toBe('drift');
    } finally {
      await page.unroute(sessionsUrl);
    }
  });
});

describe('vehicle view with sessions', () => {
  test('when a faulty vehicle is opened, then its sessions are the API’s and one opens a drawn per-minute chart', async () => {
    const worst = (await rowsOf('.fleet-view tbody tr', 'data-vehicle-id'))[0].id;
    await page.click(`.fleet-view tbody tr[data-vehicle-id="${worst}"] a`);
    await page.waitForSelector('#sessions tbody tr');
    await page.waitForSelector('#efficiency .window-line time');
    const window = await shownWindow('#efficiency');
    const listed = await api<{ sessions: SessionJson[] }>(
      `/v1/vehicles/${worst}/sessions?from=${window.from}&to=${window.to}`,
    );
    expect(listed.sessions.length).toBeGreaterThan(0);
    const rows = await rowsOf('#sessions tbody tr', 'data-session-id');
    expect(rows.map((r) => r.id)).toEqual(listed.sessions.map((s) => s.id));
    listed.sessions.forEach((s, i) => {
      expect(s.source).toBe('ocpp');
      // The chart link comes right after the start, visible without scrolling sideways.
      expect(rows[i].cells[1]).toBe('Show chart');
      expect(rows[i].cells[3]).toBe(`OCPP transaction ${s.transactionId}`);
      expectRatioShown(rows[i].cells[7], s.efficiency);
      expect(rows[i].reasons).toBe(s.alert ? 'threshold' : '');
    });

    // At 1280 px the chart link shows inside the table's region, without scrolling sideways.
    const region = await page.locator('#sessions .table-scroll').boundingBox();
    const link = await page
      .locator('#sessions tbody tr')
      .first()
      .getByRole('link', { name: 'Show chart' })
      .boundingBox();
    expect(region && link && link.x + link.width <= region.x + region.width).toBe(true);

    // The newest session with a per-minute series worth drawing.
    const detailOf = (id: string) =>
      api<SessionJson & { series: unknown[] }>(`/v1/vehicles/${worst}/sessions/${id}`);
    let chosen = listed.sessions[0];
    for (const s of listed.sessions)
      if ((await detailOf(s.id)).series.length >= 10) {
        chosen = s;
        break;
      }
    const detail = await detailOf(chosen.id);
    await page
      .locator(`#sessions tbody tr[data-session-id="${chosen.id}"]`)
      .getByRole('link', { name: 'Show chart' })
      .click();
    await page.waitForSelector('#sessions .session-detail .chart canvas');
    expect(page.url()).toContain(`session=${chosen.id}`);
    const figures = await definitionList('#sessions .session-figures');
    expect(parseFigure(figures['AC consumed'])).toBeCloseTo(detail.acConsumedKwh ?? NaN, 2);
    expect(parseFigure(figures['DC delivered'])).toBeCloseTo(detail.dcDeliveredKwh ?? NaN, 2);
    expectRatioShown(figures['Efficiency (DC / AC)'], detail.efficiency);
    expect(parseFigure(figures['Mean AC power'])).toBeCloseTo(detail.meanAcPowerKw ?? NaN, 1);
    expect(parseFigure(figures['Minutes charted'])).toBe(detail.series.length);
    // Both charts (AC/DC power; SoC and temperature) drawn, not blank.
    for (const nth of [1, 2])
      expect(
        await drawnPixels(
          page,
          `#sessions .session-detail .chart-figure:nth-of-type(${nth}) canvas`,
        ),
      ).toBeGreaterThan(1000);
    expect(await seriousAxe()).toEqual([]);
    await page.locator('#sessions').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(DOCS, 'dashboard-vehicle.png'), fullPage: true });
  });

  test('when a link names a detected session by an older id (an instant inside it, as before a late reading moved its start), then the address and the table take its current id', async () => {
    const listed = await api<{ sessions: (SessionJson & { start: string; end: string })[] }>(
      `/v1/vehicles/${drifting.vehicleId}/sessions?hours=24`,
    );
    const session = listed.sessions.find(
      (s) => s.source === 'detected' && Date.parse(s.end) - Date.parse(s.start) > 60_000,
    );
    expect(session).toBeDefined();
    const olderId = `d-${Date.parse(session!.start) + 60_000}`;
    await page.goto(
      `${engine.url}/dashboard#/vehicles/${drifting.vehicleId}?window=24h&session=${olderId}`,
    );
    const opened = page.locator('#sessions tbody tr[aria-current="true"]');
    await opened.waitFor();
    expect(await opened.getAttribute('data-session-id')).toBe(session!.id);
    expect(page.url()).toContain(`session=${session!.id}`);
    expect(page.url()).not.toContain(olderId);
  });

  test('when the drifting vehicle is opened, then its last session is marked drift with the API’s figures', async () => {
    await page.goto(`${engine.url}/dashboard#/vehicles/${drifting.vehicleId}?window=24h`);
    await page.waitForSelector('#sessions tbody tr');
    const window = await shownWindow('#efficiency');
    const listed = await api<{ sessions: SessionJson[] }>(
      `/v1/vehicles/${drifting.vehicleId}/sessions?from=${window.from}&to=${window.to}`,
    );
    const rows = await rowsOf('#sessions tbody tr', 'data-session-id');
    expect(rows.map((r) => r.id)).toEqual(listed.sessions.map((s) => s.id));
    expect(rows).toHaveLength(1);
    expect(rows[0].cells[3]).toBe('detected from telemetry');
    expect(rows[0].reasons).toBe('drift');
    expect(rows[0].reasonText).toBe(
      `Drift: ${percent(drifting.degraded)} against its usual ${percent(drifting.usual)}`,
    );
    // The window's status says so too, as the fleet's line does.
    const totals = await definitionList('#efficiency .window-totals');
    expect(totals.Status).toMatch(/^Flagged .*1 session flagged/);
    await page.getByRole('link', { name: 'Show chart' }).click();
    await page.waitForSelector('#sessions .session-detail .chart canvas');
    const detail = await api<{ series: unknown[]; meanAcPowerKw: number }>(
      `/v1/vehicles/${drifting.vehicleId}/sessions/${listed.sessions[0].id}`,
    );
    const figures = await definitionList('#sessions .session-figures');
    expect(parseFigure(figures['Minutes charted'])).toBe(detail.series.length);
    expect(detail.series.length).toBeGreaterThanOrEqual(60);
    expect(parseFigure(figures['Mean AC power'])).toBeCloseTo(detail.meanAcPowerKw, 1);
    expect(
      await drawnPixels(page, '#sessions .session-detail .chart-figure:nth-of-type(1) canvas'),
    ).toBeGreaterThan(1000);
  });
});

describe('charge point view', () => {
  test('when a charge point is connected, then the list and its view show its connection, connectors and status', async () => {
    await page.waitForSelector('[data-nav-item="charge-points"]:not([hidden])');
    await page.getByRole('link', { name: 'Charge points' }).click();
    // The rows of the list, not those of the view it replaces.
    await page.waitForSelector('h1#view-title:text-is("Charge points")');
    await page.waitForSelector('.view tbody tr');
    const list = await api<{ chargePoints: ChargePointJson[] }>('/v1/charge-points');
    expect(list.chargePoints).toHaveLength(fleet.vehicles.length + 1);
    const rows = await page.$$eval('.view tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('th, td')].map((td) => td.textContent ?? '')),
    );
    expect(rows.map((r) => r[0])).toEqual(list.chargePoints.map((cp) => cp.id));
    list.chargePoints.forEach((cp, i) => {
      expect(rows[i][1]).toBe(cp.connected ? 'Connected' : 'Disconnected');
      const statuses = cp.connectors.map((c) => `${c.connectorId}: ${c.status}`).join(', ');
      // A disconnected charge point's statuses are what it last said, and say so.
      expect(rows[i][4]).toBe(cp.connected ? statuses : `${statuses} (last reported)`);
    });
    // The simulator's charge points hung up when their backfill ended; the live one is on.
    expect(list.chargePoints.filter((cp) => cp.connected).map((cp) => cp.id)).toEqual([LIVE_CP]);
    expect(rows[list.chargePoints.findIndex((cp) => cp.id === LIVE_CP)][4]).toBe(
      '1: Charging, 2: Faulted',
    );

    await page.getByRole('link', { name: LIVE_CP, exact: true }).click();
    await page.waitForSelector(`h1:has-text("Charge point ${LIVE_CP}")`);
    await page.waitForSelector('.view tbody tr');
    const cp = await api<ChargePointJson>(`/v1/charge-points/${LIVE_CP}`);
    const figures = await definitionList('.view dl.figures');
    expect(figures['Connection']).toBe('Connected');
    expect(figures['Model']).toBe('Acme Wallbox 22');
    const connectors = await page.$$eval('.view tbody tr', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('th, td')].map((td) => td.textContent ?? '')),
    );
    expect(connectors).toHaveLength(cp.connectors.length);
    const [charging, faulted] = cp.connectors;
    expect(charging).toMatchObject({
      connectorId: 1,
      status: 'Charging',
      registerKwh: live.registerKwh,
      openTransaction: { transactionId: live.transactionId, vehicleId: 'LIVE-V-1' },
    });
    expect(connectors[0][1]).toMatch(/^Charging, since \d{4}-\d{2}-\d{2} \d{2}:\d{2} \+0[12]:00$/);
    expect(connectors[0][2]).toBe('NoError');
    expect(connectors[0][3]).toBe(`${LIVE_CP}:1`);
    expect(parseFigure(connectors[0][4])).toBeCloseTo(live.registerKwh, 2);
    expect(connectors[0][5]).toMatch(
      new RegExp(`^transaction ${live.transactionId} \\(LIVE-V-1\\), since `),
    );
    // The open transaction's vehicle links to its view.
    const vehicleLink = page
      .locator('.view tbody tr')
      .first()
      .getByRole('link', { name: 'LIVE-V-1' });
    await expect(vehicleLink.getAttribute('href')).resolves.toBe('#/vehicles/LIVE-V-1?window=24h');
    expect(faulted).toMatchObject({
      connectorId: 2,
      status: 'Faulted',
      errorCode: 'GroundFailure',
      vendorErrorCode: 'E-RCD-30',
      info: 'RCD tripped',
    });
    expect(connectors[1].slice(2, 6)).toEqual([
      'GroundFailure (E-RCD-30): RCD tripped',
      `${LIVE_CP}:2`,
      'no reading',
      'none',
    ]);
    expect(await seriousAxe()).toEqual([]);
    await page.screenshot({ path: join(DOCS, 'dashboard-charge-point.png'), fullPage: true });
    await vehicleLink.click();
    await page.waitForSelector('#efficiency .window-line time');
    expect(page.url()).toContain('#/vehicles/LIVE-V-1?window=24h');
    await page.goBack();
    await page.waitForSelector(`h1:has-text("Charge point ${LIVE_CP}")`);
  });

  test('when the charge point hangs up, then its view says disconnected', async () => {
    await live.chargePoint.close();
    await waitFor(
      async () => !(await api<ChargePointJson>(`/v1/charge-points/${LIVE_CP}`)).connected,
      15_000,
      'the engine to see the charge point gone',
    );
    await page.reload();
    await page.waitForSelector('.view dl.figures');
    const figures = await definitionList('.view dl.figures');
    expect(figures['Connection']).toBe('Disconnected');
    expect(figures['Last seen']).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} \+0[12]:00$/);
    // Its connectors are what it said before it went, not their state now.
    await expect(page.locator('.view caption').textContent()).resolves.toBe(
      `Connectors of ${LIVE_CP}, as it last reported them before it disconnected`,
    );
    await expect(page.locator('.view thead th').nth(1).textContent()).resolves.toBe(
      'Last reported status',
    );
    expect(await cspViolations()).toEqual([]);
  });
});
