/**
 * Bundled into a blank page by test/browser/time-axis.test.ts: draws the dashboard's own charts
 * (hourly energy, a session's power per minute) at a given width over a given span and reports
 * the time axis's tick labels as drawn on the canvas, each with its width in the axis's font.
 */
import type { HourlyPoint, SessionMinute } from '../../../web/src/api/types';
import { createEnergyChart } from '../../../web/src/charts/hourly-charts';
import { createSessionPowerChart } from '../../../web/src/charts/session-charts';

export interface AxisCase {
  chart: 'hourly' | 'minute';
  /** The span charted: whole hours (hourly) or minutes (minute), from inclusive, to exclusive. */
  fromMs: number;
  toMs: number;
  /** The chart's container, CSS px. */
  width: number;
}

export interface DrawnTick {
  /** Its middle, CSS px from the canvas's left. */
  x: number;
  lines: string[];
  /** Its widest line, CSS px. */
  width: number;
}

declare global {
  interface Window {
    drawTimeAxis(c: AxisCase): Promise<DrawnTick[]>;
  }
}

/** A time axis label's line: a time or a date (the other axes draw plain numbers). */
const TIME_LABEL = /^(\d\d:\d\d|\d{4}-\d\d-\d\d)$/;

interface Drawn {
  canvas: HTMLCanvasElement;
  text: string;
  x: number;
  width: number;
}
let drawn: Drawn[] = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, maxWidth) {
  if (TIME_LABEL.test(text)) {
    const m = this.getTransform();
    drawn.push({
      canvas: this.canvas,
      text,
      x: m.a * x + m.e,
      width: this.measureText(text).width,
    });
  }
  fillText.call(this, text, x, y, maxWidth);
};

type Chart = ReturnType<typeof createEnergyChart> | ReturnType<typeof createSessionPowerChart>;
/** One chart per kind and width, given each span in turn, as a refresh does. */
const charts = new Map<string, { container: HTMLElement; chart: Chart }>();

function chartFor(kind: AxisCase['chart'], width: number) {
  const key = `${kind} ${width}`;
  let found = charts.get(key);
  if (!found) {
    const container = document.createElement('div');
    container.style.width = `${width}px`;
    document.body.append(container);
    const chart =
      kind === 'hourly' ? createEnergyChart(container) : createSessionPowerChart(container);
    found = { container, chart };
    charts.set(key, found);
  }
  return found;
}

window.drawTimeAxis = async ({ chart: kind, fromMs, toMs, width }) => {
  const { container, chart } = chartFor(kind, width);
  const step = kind === 'hourly' ? 3_600_000 : 60_000;
  const times = Array.from(
    { length: Math.round((toMs - fromMs) / step) },
    (_, i) => fromMs + i * step,
  );
  drawn = [];
  if (kind === 'hourly') {
    const energy = chart as ReturnType<typeof createEnergyChart>;
    // Only the fields the chart draws.
    const series = times.map((ms) => ({
      hour: new Date(ms).toISOString(),
      acConsumedKwh: 1,
      dcDeliveredKwh: 0.9,
      efficiency: 0.9,
    }));
    energy.frame.setData(energy.data(series as unknown as HourlyPoint[], 0.85));
  } else {
    const power = chart as ReturnType<typeof createSessionPowerChart>;
    const series = times.map((ms) => ({
      minute: new Date(ms).toISOString(),
      acPowerKw: 11,
      dcPowerKw: 10,
    }));
    power.frame.setData(power.data(series as unknown as SessionMinute[]));
  }
  // uPlot draws in a microtask.
  await new Promise<void>((resolve) => queueMicrotask(resolve));
  const canvas = container.querySelector('canvas');
  const ratio = window.devicePixelRatio;
  const ticks = new Map<number, DrawnTick>();
  for (const d of drawn.filter((t) => t.canvas === canvas)) {
    const x = Math.round(d.x / ratio);
    const tick = ticks.get(x) ?? { x, lines: [], width: 0 };
    tick.lines.push(d.text);
    tick.width = Math.max(tick.width, d.width / ratio);
    ticks.set(x, tick);
  }
  return [...ticks.values()].sort((a, b) => a.x - b.x);
};
