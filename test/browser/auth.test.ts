import type { Page } from 'playwright-core';
import { generateKey } from '../../src/auth/api-keys';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { loadSimulatedFleet } from './helpers/fleet-loader';
import { recordCspViolations, runAxe } from './helpers/page-checks';

const reader = generateKey('dashboard-reader', ['read']);
const loader = generateKey('fleet-loader', ['ingest', 'admin', 'read']);
const ingestOnly = generateKey('gateway', ['ingest']);

let engine: TestEngine;
let browser: DashboardBrowser;

beforeAll(async () => {
  engine = await startTestEngine({
    AUTH: 'on',
    API_KEYS: [reader.entry, loader.entry, ingestOnly.entry].join(','),
  });
  await loadSimulatedFleet(engine, { vehicles: 6, faulty: 0.34, backfill: '2h', key: loader.key });
  browser = await launchDashboardBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
});

const keyDialog = (page: Page) => page.locator('dialog.key-dialog');

async function enterKey(page: Page, key: string): Promise<void> {
  await page.getByLabel('API key (read scope)').fill(key);
  await page.getByRole('button', { name: 'Use key' }).click();
}

describe('dashboard with AUTH on', () => {
  test('when the page loads, then it needs no key itself but asks for one before showing data', async () => {
    expect((await fetch(`${engine.url}/dashboard`)).status).toBe(200);
    expect((await fetch(`${engine.url}/v1/analytics/fleet`)).status).toBe(401);
    const page = await browser.newPage();
    const cspViolations = await recordCspViolations(page);
    await page.goto(`${engine.url}/dashboard`);
    await keyDialog(page).waitFor({ state: 'visible' });
    await expect(page.locator('.key-message').textContent()).resolves.toMatch(
      /requires an API key with the read scope/,
    );
    // The open prompt is accessible too (labelled field, named dialog).
    const serious = (await runAxe(page)).filter(
      (v) => v.impact === 'serious' || v.impact === 'critical',
    );
    expect(serious).toEqual([]);

    await enterKey(page, 'not-a-key-this-engine-knows');
    await page.waitForFunction(() =>
      /The key was refused/.test(document.querySelector('.key-message')?.textContent ?? ''),
    );
    expect(await keyDialog(page).isVisible()).toBe(true);

    // Pasted with an invisible character: not a key, and asked for again (not "unreachable").
    await enterKey(page, `${reader.key}\u200b`);
    await page.waitForFunction(() =>
      /That is not a key/.test(document.querySelector('.key-message')?.textContent ?? ''),
    );
    expect(await keyDialog(page).isVisible()).toBe(true);

    await enterKey(page, ingestOnly.key);
    await page.waitForFunction(() =>
      /lacks the read scope/.test(document.querySelector('.key-message')?.textContent ?? ''),
    );

    await enterKey(page, reader.key);
    await page.waitForSelector('.fleet-view tbody tr');
    expect(await keyDialog(page).isVisible()).toBe(false);
    // Focus goes on from the screen's heading, not from the page's start.
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('H1');
    expect(await page.locator('.fleet-view tbody tr').count()).toBe(6);
    expect(await page.locator('.fleet-view tbody tr[data-flagged="true"]').count()).toBe(2);

    // Kept for the tab: a reload asks no more; the key is in sessionStorage, nowhere else.
    await page.reload();
    await page.waitForSelector('.fleet-view tbody tr');
    expect(await keyDialog(page).isVisible()).toBe(false);
    expect(await page.evaluate(() => Object.values(sessionStorage))).toContain(reader.key);
    expect(await page.evaluate(() => Object.values(localStorage))).not.toContain(reader.key);
    expect(await cspViolations()).toEqual([]);
    await page.close();
  });

  test('when the kept key is one the engine cannot read (two keys pasted together, far too long), then the page forgets it and asks again, saying what was wrong', async () => {
    const page = await browser.newPage();
    const keep = (key: string) =>
      page.evaluate((k) => sessionStorage.setItem('energy-dashboard:api-key', k), key);
    const kept = () => page.evaluate(() => sessionStorage.getItem('energy-dashboard:api-key'));
    const message = (pattern: RegExp) =>
      page.waitForFunction(
        (source) =>
          new RegExp(source).test(document.querySelector('.key-message')?.textContent ?? ''),
        pattern.source,
      );
    await page.goto(`${engine.url}/dashboard`);
    await keyDialog(page).waitFor({ state: 'visible' });

    await keep(`${reader.key},${reader.key}`);
    await page.reload();
    await message(/read it as several keys \(400 ambiguous_api_key\)/);
    expect(await kept()).toBeNull();
    // Forgotten: a reload asks for a key, rather than failing with it again.
    await page.reload();
    await message(/requires an API key with the read scope/);

    await keep('x'.repeat(20_000));
    await page.reload();
    await message(/too long for the engine to read \(431 headers_too_large\)/);
    expect(await kept()).toBeNull();

    // What can never be a key is refused at the field, before the engine sees it.
    await enterKey(page, `${reader.key},${reader.key}`);
    await message(/^That is not a key: it holds a comma/);
    await enterKey(page, 'x'.repeat(20_000));
    await message(/^That is not a key: it is 20,000 characters long, and a key is at most 1,024/);
    expect(await kept()).toBeNull();

    await enterKey(page, reader.key);
    await page.waitForSelector('.fleet-view tbody tr');
    expect(await kept()).toBe(reader.key);
    await page.close();
  });

  test('when the engine answers again after an outage but refuses the kept key, then no panel still says it could not be reached', async () => {
    const page = await browser.newPage();
    try {
      await page.clock.install();
      await page.route('**/v1/**', (route) => route.abort());
      await page.goto(`${engine.url}/dashboard#/vehicles/SIM-V-1`);
      const unreachable = page.locator('main .notice', { hasText: 'could not be reached' });
      await page.waitForFunction(
        () => document.querySelectorAll('main .notice-error').length === 4,
      );
      expect(await unreachable.count()).toBe(4);

      // The engine is back, without the key this tab kept (revoked, say).
      await page.evaluate(() =>
        sessionStorage.setItem('energy-dashboard:api-key', 'eie_revoked-key-the-engine-forgot'),
      );
      await page.unroute('**/v1/**');
      await page.clock.fastForward(30_000);
      await keyDialog(page).waitFor({ state: 'visible' });
      await expect(page.locator('.key-message').textContent()).resolves.toMatch(/was refused/);
      expect(await unreachable.count()).toBe(0);
      // One notice for the page, not one a section, each read out as a status.
      await expect(
        page.locator('main .notice', { hasText: 'Waiting for an API key' }).count(),
      ).resolves.toBe(1);
      expect(await page.locator('main .notice-error').count()).toBe(0);

      await enterKey(page, reader.key);
      await page.waitForSelector('#efficiency .window-line');
      expect(
        await page.locator('main .notice', { hasText: 'Waiting for an API key' }).count(),
      ).toBe(0);
    } finally {
      await page.close();
    }
  });

  test('when the engine answers again asking for a key while the page shows data from before an outage, then one notice says it waits for a key, and each section still says when its data were loaded', async () => {
    const page = await browser.newPage();
    const stale = page.locator('main .notice-error', { hasText: /^Could not refresh/ });
    try {
      await page.clock.install();
      await page.goto(`${engine.url}/dashboard#/vehicles/SIM-V-1`);
      await keyDialog(page).waitFor({ state: 'visible' });
      await enterKey(page, reader.key);
      await page.waitForSelector('#efficiency .window-totals');

      await page.route('**/v1/**', (route) => route.abort());
      await page.clock.fastForward(30_000);
      await page.waitForFunction(() =>
        /^Refresh failed/.test(document.querySelector('.refresh-status')?.textContent ?? ''),
      );
      const loadedAt = await stale.evaluateAll((notices) =>
        notices.map(
          (n) => / loaded at (.*)$/.exec(n.querySelector('.notice-title')?.textContent ?? '')?.[1],
        ),
      );
      expect(loadedAt.length).toBeGreaterThan(1);

      // The engine is back, without the key this tab kept (revoked, say).
      await page.evaluate(() =>
        sessionStorage.setItem('energy-dashboard:api-key', 'eie_revoked-key-the-engine-forgot'),
      );
      await page.unroute('**/v1/**');
      await page.clock.fastForward(30_000);
      await keyDialog(page).waitFor({ state: 'visible' });
      expect(await page.locator('main .notice-error').count()).toBe(0);
      // One read out for the page; what each section's data are says so quietly.
      expect(
        await page.locator('main .notice', { hasText: 'Waiting for an API key' }).count(),
      ).toBe(1);
      expect(
        await page
          .locator('main [role="status"], main [role="alert"]', { hasText: /loaded at/ })
          .count(),
      ).toBe(0);
      const notes = await page
        .locator('main .notice', { hasText: /^Showing .* loaded at / })
        .allTextContents();
      expect(notes.map((note) => / loaded at (.*)$/.exec(note)?.[1])).toEqual(loadedAt);
      expect(await page.locator('#efficiency .window-totals').count()).toBe(1);

      // The key given, the sections redraw: their data are fresh again.
      await enterKey(page, reader.key);
      await page.waitForFunction(
        () =>
          ![...document.querySelectorAll('main .notice')].some((n) =>
            /^(Waiting for an API key|Showing .* loaded at )/.test(n.textContent ?? ''),
          ),
      );
    } finally {
      await page.close();
    }
  });

  test('when the key is forgotten by the header’s button, then the tab keeps none and the page asks for one again; an accepted key is left in no field', async () => {
    const page = await browser.newPage();
    const forget = page.getByRole('button', { name: 'Forget API key' });
    try {
      await page.goto(`${engine.url}/dashboard`);
      await keyDialog(page).waitFor({ state: 'visible' });
      expect(await forget.isHidden()).toBe(true);
      await enterKey(page, reader.key);
      await page.waitForSelector('.fleet-view tbody tr');
      await expect(page.inputValue('#key-input')).resolves.toBe('');

      await forget.click();
      await keyDialog(page).waitFor({ state: 'visible' });
      await expect(page.locator('.key-message').textContent()).resolves.toMatch(
        /requires an API key with the read scope/,
      );
      expect(await page.evaluate(() => Object.values(sessionStorage))).not.toContain(reader.key);
      expect(await page.locator('.fleet-view tbody tr').count()).toBe(0);
      expect(await forget.isHidden()).toBe(true);
      // Another key may be given in its place.
      await enterKey(page, loader.key);
      await page.waitForSelector('.fleet-view tbody tr');
      expect(await forget.isVisible()).toBe(true);
    } finally {
      await page.close();
    }
  });

  test('when the prompt is declined, then the page says which key is missing instead of a blank', async () => {
    const page = await browser.newPage();
    await page.goto(`${engine.url}/dashboard`);
    await keyDialog(page).waitFor({ state: 'visible' });
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForSelector('.notice-error');
    await expect(page.locator('.notice-error').textContent()).resolves.toMatch(
      /Could not load the fleet report.*No accepted API key \(401 missing_api_key\)/,
    );
    await page.close();
  });
});
