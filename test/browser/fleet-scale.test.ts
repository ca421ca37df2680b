import type { Page, Request } from 'playwright-core';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { launchDashboardBrowser, type DashboardBrowser } from './helpers/chromium';
import { loadSimulatedFleet } from './helpers/fleet-loader';
import { MAX_TRAIL } from '../../web/src/routing/routes';

const VEHICLES = 1000;

let engine: TestEngine;
let browser: DashboardBrowser;

beforeAll(async () => {
  engine = await startTestEngine();
  // 1,000 vehicles and their meters, a reading every 5 minutes for 3 hours: 74,000 readings.
  await loadSimulatedFleet(engine, {
    vehicles: VEHICLES,
    faulty: 0.05,
    backfill: '3h',
    interval: 300,
  });
  browser = await launchDashboardBrowser();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await engine?.stop();
});

/**
 * Milliseconds from navigation start to the fleet table on screen (the page's own performance
 * mark), to the page's scripts having run (DOMContentLoaded), and the fleet request's share; then
 * to the flagged sessions (drift) marking the table, and that request's share.
 */
async function firstRender(page: Page): Promise<{
  renderedMs: number;
  scriptsMs: number;
  apiMs: number;
  flagsMs: number;
  sessionsApiMs: number;
}> {
  await page.waitForFunction(
    () => performance.getEntriesByName('fleet-session-flags-rendered').length > 0,
    undefined,
    { timeout: 120_000 },
  );
  return page.evaluate(() => {
    const mark = (name: string) => performance.getEntriesByName(name)[0].startTime;
    const requestMs = (path: string) => {
      const request = performance
        .getEntriesByType('resource')
        .find((r) => r.name.includes(path)) as PerformanceResourceTiming;
      return request.responseEnd - request.requestStart;
    };
    const navigation = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
    return {
      renderedMs: mark('fleet-table-rendered'),
      scriptsMs: navigation.domContentLoadedEventEnd,
      apiMs: requestMs('/v1/analytics/fleet'),
      flagsMs: mark('fleet-session-flags-rendered'),
      sessionsApiMs: requestMs('/v1/analytics/sessions'),
    };
  });
}

const firstRowId = (page: Page) =>
  page.locator('.fleet-view tbody tr').first().getAttribute('data-vehicle-id');

describe(`dashboard with a fleet of ${VEHICLES} vehicles`, () => {
  test('when the fleet view first opens, then the time to the rendered table is measured', async () => {
    const lines: string[] = [];
    // A browser that has shown the dashboard before, as an operator's has: the first page a fresh
    // headless Chromium opens pays its own start-up (~0.4 s here), which is not the page's.
    const warmUp = await browser.newPage();
    await warmUp.goto(`${engine.url}/dashboard#/charge-points`);
    await warmUp.waitForSelector('#view-title');
    await warmUp.close();
    for (const [label, hash] of [
      ['default page, 50 rows (uncached report)', '#/fleet?window=24h'],
      ['default page, 50 rows (cached report)', '#/fleet?window=24h'],
      ['all 1,000 rows on one page', '#/fleet?window=24h&limit=1000'],
    ] as const) {
      const page = await browser.newPage();
      await page.goto(`${engine.url}/dashboard${hash}`);
      const { renderedMs, scriptsMs, apiMs, flagsMs, sessionsApiMs } = await firstRender(page);
      expect(await page.locator('.fleet-view tbody tr').count()).toBe(
        hash.includes('limit=1000') ? VEHICLES : 50,
      );
      lines.push(
        `  ${label}: ${Math.round(renderedMs)} ms from navigation to the table ` +
          `(page and scripts ready at ${Math.round(scriptsMs)} ms, fleet API ${Math.round(apiMs)} ms); ` +
          `drift marks at ${Math.round(flagsMs)} ms (flagged sessions API ${Math.round(sessionsApiMs)} ms)`,
      );
      await page.close();
    }
    process.stdout.write(
      `\nFleet view first render, ${VEHICLES} vehicles (headless Chromium):\n${lines.join('\n')}\n`,
    );
  });

  test('when all 1,000 rows show and their drift marks arrive, then only the rows they change are built again, and a refresh 30 s on builds none that did not change (main thread time printed)', async () => {
    const page = await browser.newPage();
    try {
      await page.clock.install();
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Performance.enable');
      /** Chromium's own counters: ms of the main thread's tasks, of script, layout and style. */
      const counters = async () => {
        const { metrics } = (await cdp.send('Performance.getMetrics')) as {
          metrics: { name: string; value: number }[];
        };
        const of = (name: string) => (metrics.find((m) => m.name === name)?.value ?? 0) * 1000;
        return {
          tasks: of('TaskDuration'),
          script: of('ScriptDuration'),
          layout: of('LayoutDuration'),
          style: of('RecalcStyleDuration'),
        };
      };
      type Counters = Awaited<ReturnType<typeof counters>>;
      // And the page's long tasks (50 ms or more: what holds it still), as it observes them.
      await page.addInitScript(() => {
        const tasks: number[] = [];
        (window as unknown as { longTasks: number[] }).longTasks = tasks;
        new PerformanceObserver((list) => {
          for (const entry of list.getEntries()) tasks.push(entry.duration);
        }).observe({ type: 'longtask' });
      });
      const longTasks = () =>
        page.evaluate(() => [...((window as unknown as { longTasks?: number[] }).longTasks ?? [])]);
      type Mark = { counters: Counters; longTasks: number };
      const mark = async (): Promise<Mark> => ({
        counters: await counters(),
        longTasks: (await longTasks()).length,
      });
      const spent = async (from: Mark, to: Mark) => {
        const long = (await longTasks()).slice(from.longTasks, to.longTasks);
        const sum = long.reduce((a, b) => a + b, 0);
        const chromium = (Object.keys(from.counters) as (keyof Counters)[])
          .map((k) => `${k} ${Math.round(to.counters[k] - from.counters[k])} ms`)
          .join(', ');
        return `longest task ${Math.round(Math.max(0, ...long))} ms, long tasks ${Math.round(sum)} ms (${chromium})`;
      };
      /** The rows on screen now, to tell later which of them were built again. */
      const remember = () =>
        page.evaluate(() => {
          (window as unknown as { rowsSeen: unknown }).rowsSeen = new Map(
            [...document.querySelectorAll('.fleet-view tbody tr')].map((tr) => [
              tr.getAttribute('data-vehicle-id'),
              { tr, html: tr.outerHTML },
            ]),
          );
        });
      /** Rows kept, built again, and built again although they show the same as before. */
      const rebuilt = () =>
        page.evaluate(() => {
          const seen = (
            window as unknown as { rowsSeen: Map<string, { tr: Element; html: string }> }
          ).rowsSeen;
          const counts = { rows: 0, kept: 0, rebuilt: 0, rebuiltUnchanged: 0 };
          for (const tr of document.querySelectorAll('.fleet-view tbody tr')) {
            const before = seen.get(tr.getAttribute('data-vehicle-id') ?? '');
            counts.rows += 1;
            if (before?.tr === tr) counts.kept += 1;
            else {
              counts.rebuilt += 1;
              if (before?.html === tr.outerHTML) counts.rebuiltUnchanged += 1;
            }
          }
          return counts;
        });
      // The flagged sessions are held, so the table's first drawing and the marks' are apart.
      let releaseFlags = () => {};
      const flagsHeld = new Promise<void>((resolve) => (releaseFlags = resolve));
      let flagsAnswered = 0;
      await page.route('**/v1/analytics/sessions?*', async (route) => {
        await flagsHeld;
        await route.continue();
        flagsAnswered += 1;
      });
      /** Until the main thread has had nothing to do for a while (real time). */
      const settled = async () => {
        let last = await counters();
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, 300));
          const now = await counters();
          if (now.tasks - last.tasks < 5) return mark();
          last = now;
        }
      };

      const start = await mark();
      await page.goto(`${engine.url}/dashboard#/fleet?window=24h&limit=1000`);
      await page.waitForSelector('.fleet-view tbody tr');
      const tableShown = await settled();
      await remember();
      const flagsAsked = await mark();
      releaseFlags();
      await page.waitForSelector('.fleet-content[data-session-flags="loaded"]');
      const flagsShown = await settled();
      const byFlags = await rebuilt();

      await remember();
      const statusBefore = await page.textContent('.refresh-status');
      const refreshing = await mark();
      await page.clock.fastForward(30_000);
      await page.waitForFunction(
        (previous) => document.querySelector('.refresh-status')?.textContent !== previous,
        statusBefore,
      );
      while (flagsAnswered < 2) await new Promise((resolve) => setTimeout(resolve, 20));
      const refreshed = await settled();
      const byRefresh = await rebuilt();
      process.stdout.write(
        `\nMain thread, 1,000 rows (headless Chromium, Performance.getMetrics):\n` +
          `  navigation to the table: ${await spent(start, tableShown)}\n` +
          `  drift marks arriving (${byFlags.rebuilt} rows built again): ${await spent(flagsAsked, flagsShown)}\n` +
          `  a refresh 30 s on, report and marks (${byRefresh.rebuilt} rows built again): ${await spent(refreshing, refreshed)}\n`,
      );
      expect(byFlags).toMatchObject({ rows: VEHICLES, rebuiltUnchanged: 0 });
      // The faulty chargers' vehicles gain their sessions' flags.
      expect(byFlags.rebuilt).toBeGreaterThan(0);
      expect(byRefresh).toMatchObject({ rows: VEHICLES, rebuiltUnchanged: 0 });
    } finally {
      await page.close();
    }
  });

  test('when the page turns, the reader scrolls before its drift marks arrive and 30 s pass, then the page, scroll and focus stay; a reload too', async () => {
    const page = await browser.newPage();
    await page.clock.install();
    // The flagged sessions (drift marks) are held until the reader has scrolled page 2 and the
    // refresh has fetched the report, as a slow sessions query would hold them: their arrival,
    // the earlier pages' included, must not move the reader.
    let releaseFlags = () => {};
    const flagsHeld = new Promise<void>((resolve) => (releaseFlags = resolve));
    let flagsAsked = 0;
    let flagsAnswered = 0;
    await page.route('**/v1/analytics/sessions?*', async (route) => {
      flagsAsked += 1;
      await flagsHeld;
      await route.continue();
    });
    const countSettled = (request: Request) => {
      if (request.url().includes('/v1/analytics/sessions?')) flagsAnswered += 1;
    };
    page.on('requestfinished', countSettled);
    page.on('requestfailed', countSettled);
    await page.goto(`${engine.url}/dashboard#/fleet?window=7d&limit=25`);
    await page.waitForSelector('.fleet-view tbody tr');
    await page.getByRole('link', { name: 'Next page', exact: true }).click();
    await page.waitForFunction(
      () => document.querySelector('.pager-page')?.textContent === 'Page 2',
    );
    expect(page.url()).toMatch(/#\/fleet\?window=7d&limit=25&trail=[\w-]+$/);
    const hash = new URL(page.url()).hash;

    // Page 2 is the engine's second page of the same report.
    const res = await fetch(`${engine.url}/v1/analytics/fleet?hours=168&limit=25`);
    const firstPage = (await res.json()) as { vehicles: { vehicleId: string }[] };
    const secondPage = (await (
      await fetch(
        `${engine.url}/v1/analytics/fleet?hours=168&limit=25&cursor=${new URLSearchParams(hash.split('?')[1]).get('trail')}`,
      )
    ).json()) as { vehicles: { vehicleId: string }[] };
    expect(await firstRowId(page)).toBe(secondPage.vehicles[0].vehicleId);
    expect(secondPage.vehicles[0].vehicleId).not.toBe(firstPage.vehicles[0].vehicleId);

    await page.evaluate(() => window.scrollTo(0, 700));
    await page.getByRole('link', { name: 'Next page', exact: true }).focus();
    const scrollBefore = await page.evaluate(() => window.scrollY);
    const refreshed = page.waitForResponse((r) => r.url().includes('/v1/analytics/fleet'));
    await page.clock.fastForward(30_000);
    await refreshed;
    releaseFlags();
    while (flagsAnswered < flagsAsked) await new Promise((resolve) => setTimeout(resolve, 20));
    await page.waitForSelector('.fleet-content[data-session-flags="loaded"] tbody tr');
    await page.waitForFunction(() =>
      /^Updated /.test(document.querySelector('.refresh-status')?.textContent ?? ''),
    );
    expect(new URL(page.url()).hash).toBe(hash);
    expect(await page.evaluate(() => window.scrollY)).toBe(scrollBefore);
    expect(await page.isChecked('#fleet-window-7d')).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-focus-key'))).toBe(
      'next',
    );
    expect(await firstRowId(page)).toBe(secondPage.vehicles[0].vehicleId);

    await page.reload();
    await page.waitForSelector('.fleet-view tbody tr');
    await page.waitForFunction((y) => Math.abs(window.scrollY - y) < 2, scrollBefore);
    expect(await firstRowId(page)).toBe(secondPage.vehicles[0].vehicleId);
    expect(await page.locator('.pager-page').textContent()).toBe('Page 2');
    await page.close();
  });

  test('when the reader pages far into the report, then the address keeps a bounded trail, and the pager and the browser’s Back still lead through the pages', async () => {
    const page = await browser.newPage();
    const shown = async () => ({
      page: await page.textContent('.fleet-view .pager-page'),
      caption: await page.textContent('.fleet-view caption'),
    });
    const turn = async (name: string, to: number) => {
      await page.getByRole('link', { name, exact: true }).click();
      await page.waitForFunction(
        (n) => document.querySelector('.fleet-view .pager-page')?.textContent === `Page ${n}`,
        to,
      );
      await page.waitForSelector('.fleet-view tbody tr');
    };
    try {
      await page.goto(`${engine.url}/dashboard#/fleet?window=7d&limit=25`);
      await page.waitForSelector('.fleet-view tbody tr');
      for (let n = 2; n <= 15; n++) await turn('Next page', n);
      const params = new URLSearchParams(new URL(page.url()).hash.split('?')[1]);
      expect(params.get('page')).toBe('15');
      expect(params.get('trail')?.split(',')).toHaveLength(MAX_TRAIL);
      const fifteenth = await shown();
      expect(fifteenth.caption).toMatch(/: 351–375 of /);

      await turn('Previous page', 14);
      expect((await shown()).caption).toMatch(/: 326–350 of /);
      await page.goBack();
      await page.waitForFunction(
        () => document.querySelector('.fleet-view .pager-page')?.textContent === 'Page 15',
      );
      await page.waitForSelector('.fleet-view tbody tr');
      expect(await shown()).toEqual(fifteenth);

      // Back by the pager as far as the address's cursors reach, then to the first page.
      for (let n = 14; n >= 15 - MAX_TRAIL + 1; n--) await turn('Previous page', n);
      expect(await page.locator('.fleet-view .pager .pager-disabled').textContent()).toBe(
        '← Previous page',
      );
      await turn('First page', 1);
      expect((await shown()).caption).toMatch(/: 1–25 of /);
      expect(new URL(page.url()).hash).toBe('#/fleet?window=7d&limit=25');
    } finally {
      await page.close();
    }
  });

  test('when a fleet link names a page its cursors cannot lead to, or one past the report’s end, then the page says so once, numbers the page it shows, and the address follows', async () => {
    const page = await browser.newPage();
    const problem = page.locator('#fleet-window-link-problem');
    const saysProblem = (pattern: RegExp) =>
      page.waitForFunction(
        (source) =>
          new RegExp(source).test(
            document.querySelector('#fleet-window-link-problem')?.textContent ?? '',
          ),
        pattern.source,
      );
    const shown = async () => ({
      page: await page.textContent('.fleet-view .pager-page'),
      caption: await page.textContent('.fleet-view caption'),
      address: new URL(page.url()).hash,
    });
    try {
      await page.goto(`${engine.url}/dashboard#/fleet?window=7d`);
      await page.waitForSelector('.fleet-view tbody tr');
      const secondPage =
        (await page.getByRole('link', { name: 'Next page', exact: true }).getAttribute('href')) ??
        '';
      // As the address writes it: `trail=` and the second page's cursor.
      const trail = secondPage.split('&').find((param) => param.startsWith('trail=')) ?? '';
      expect(trail).not.toBe('');

      // A forged page number: its report has no such page.
      await page.goto(`${engine.url}/dashboard#/fleet?window=7d&${trail}&page=400`);
      await saysProblem(/^Page 400 is past the end of the report/);
      await expect(problem.textContent()).resolves.toMatch(
        /^Page 400 is past the end of the report \([\d,]+ vehicles, \d+ pages of 50\): showing its first page\.$/,
      );
      await page.waitForSelector('.fleet-view tbody tr');
      expect(await shown()).toEqual({
        page: 'Page 1',
        caption: expect.stringMatching(/: 1–50 of /),
        address: '#/fleet?window=7d',
      });

      // A page number below what its cursors count: the page they lead to, numbered by them.
      await page.goto(`${engine.url}/dashboard#/fleet?window=7d&${trail}&page=1`);
      await saysProblem(/^The link's page number "1" cannot be right/);
      await page.waitForFunction(
        () => document.querySelector('.fleet-view .pager-page')?.textContent === 'Page 2',
      );
      expect(await shown()).toEqual({
        page: 'Page 2',
        caption: expect.stringMatching(/: 51–100 of /),
        address: `#/fleet?window=7d&${trail}`,
      });
      expect(await page.getByRole('link', { name: 'Previous page', exact: true }).count()).toBe(1);
      // Said once: the address no longer carries it.
      await page.reload();
      await page.waitForSelector('.fleet-view tbody tr');
      expect(await problem.isHidden()).toBe(true);
      expect((await shown()).page).toBe('Page 2');

      // A later page named without the cursors to reach it, or no number: the first page.
      for (const named of ['3', 'abc']) {
        await page.goto(`${engine.url}/dashboard#/fleet?window=7d&page=${named}`);
        await saysProblem(new RegExp(`^The link's page number "${named}" cannot be right`));
        await page.waitForFunction(
          () => document.querySelector('.fleet-view .pager-page')?.textContent === 'Page 1',
        );
        expect(await shown()).toEqual({
          page: 'Page 1',
          caption: expect.stringMatching(/: 1–50 of /),
          address: '#/fleet?window=7d',
        });
      }
    } finally {
      await page.close();
    }
  });
});
