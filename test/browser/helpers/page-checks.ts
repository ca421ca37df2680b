import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';

/**
 * Records every Content-Security-Policy violation the page reports (the event and the console
 * line Chromium prints), from before the first script runs.
 */
export async function recordCspViolations(page: Page): Promise<() => Promise<string[]>> {
  const consoleLines: string[] = [];
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) consoleLines.push(message.text());
  });
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { __cspViolations: string[] }).__cspViolations = seen;
    document.addEventListener('securitypolicyviolation', (event) => {
      seen.push(`${event.violatedDirective} blocked ${event.blockedURI || 'inline'}`);
    });
  });
  return async () => [
    ...consoleLines,
    ...(await page.evaluate(
      () => (window as unknown as { __cspViolations?: string[] }).__cspViolations ?? [],
    )),
  ];
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core in the page. It is evaluated over the DevTools protocol, which the page's CSP
 * does not govern (a <script> tag would be refused: the dashboard allows no inline script).
 */
export async function runAxe(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: { run(context: Document, options: object): Promise<{ violations: AxeViolation[] }> };
      }
    ).axe;
    const result = await axe.run(document, {
      runOnly: {
        type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],
      },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target })),
    }));
  });
}

/** How many pixels of a canvas have been drawn on (alpha above 0). */
export function drawnPixels(page: Page, selector: string): Promise<number> {
  return page.$eval(selector, (canvas) => {
    const c = canvas as HTMLCanvasElement;
    const context = c.getContext('2d');
    if (!context || c.width === 0 || c.height === 0) return 0;
    const { data } = context.getImageData(0, 0, c.width, c.height);
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn += 1;
    return drawn;
  });
}

/**
 * Pixels of a canvas within a small distance of one colour (`#rrggbb`), antialiased edges aside;
 * in `columns` only (CSS px from the canvas's left edge), if given.
 */
export function pixelsOfColour(
  page: Page,
  selector: string,
  hex: string,
  columns?: { from: number; to: number },
): Promise<number> {
  return page.$eval(
    selector,
    (canvas, { colour, columns }) => {
      const c = canvas as HTMLCanvasElement;
      const context = c.getContext('2d');
      if (!context || c.width === 0 || c.height === 0) return 0;
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
      const scale = c.width / c.getBoundingClientRect().width;
      const from = columns ? Math.max(0, Math.round(columns.from * scale)) : 0;
      const to = columns ? Math.min(c.width, Math.round(columns.to * scale)) : c.width;
      if (to <= from) return 0;
      const { data } = context.getImageData(from, 0, to - from, c.height);
      let found = 0;
      for (let i = 0; i < data.length; i += 4) {
        const near =
          Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 40;
        if (near && data[i + 3] > 200) found += 1;
      }
      return found;
    },
    { colour: hex, columns },
  );
}

/** "1,234.56 kWh" / "87.3 %" → 1234.56 / 87.3 (the page's en-US format, no-break space). */
export function parseFigure(text: string): number {
  const match = /-?[\d,]+(?:\.\d+)?/.exec(text.replace(/\u00a0/g, ' '));
  if (!match) throw new Error(`no figure in "${text}"`);
  return Number(match[0].replace(/,/g, ''));
}
