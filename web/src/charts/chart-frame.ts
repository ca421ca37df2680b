import uPlot from 'uplot';
import { palette } from './palette';
import { formatDateTime } from '../format/dates';

const CHART_HEIGHT = 260;

/** The x series of every chart: Unix seconds, shown in the browser's zone with its offset. */
export const timeSeries: uPlot.Series = {
  label: 'Time',
  value: (_u, seconds) => (seconds === null ? '–' : formatDateTime(seconds * 1000)),
};

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * Time ticks as the page writes times (24-hour, local zone), with the date under the first tick
 * of each day, rather than uPlot's US-style defaults.
 */
function timeTicks(_u: uPlot, ticks: number[]): string[] {
  let lastDay = '';
  return ticks.map((seconds) => {
    const d = new Date(seconds * 1000);
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    const label = day === lastDay ? time : `${time}\n${day}`;
    lastDay = day;
    return label;
  });
}

export const timeAxis = (): uPlot.Axis => axis({ values: timeTicks, space: 60 });

/** An axis in the page's colours; `unit` goes on its tick labels. */
export function axis(options: uPlot.Axis & { unit?: string; digits?: number }): uPlot.Axis {
  const { unit, digits = 0, ...rest } = options;
  return {
    stroke: palette.axis,
    grid: { stroke: palette.grid, width: 1 },
    ticks: { stroke: palette.grid, width: 1 },
    ...(unit
      ? { values: (_u: uPlot, ticks: number[]) => ticks.map((t) => `${t.toFixed(digits)} ${unit}`) }
      : {}),
    ...rest,
  };
}

/**
 * A uPlot chart that fills its container's width and follows it when the layout changes. The
 * plot is one image to assistive technology (`label`); the figures are in a table beside it.
 */
export class ChartFrame {
  private plot: uPlot | null = null;
  private readonly resize = new ResizeObserver(() => this.fit());

  constructor(
    private readonly container: HTMLElement,
    private readonly options: Omit<uPlot.Options, 'width' | 'height'>,
    private readonly label: string,
  ) {
    this.resize.observe(container);
  }

  setData(data: uPlot.AlignedData): void {
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    this.plot = new uPlot(
      { ...this.options, width: this.width(), height: CHART_HEIGHT },
      data,
      this.container,
    );
    this.plot.root.setAttribute('role', 'img');
    this.plot.root.setAttribute('aria-label', this.label);
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private width(): number {
    return Math.max(280, Math.floor(this.container.clientWidth));
  }

  private fit(): void {
    if (this.plot && this.plot.width !== this.width())
      this.plot.setSize({ width: this.width(), height: CHART_HEIGHT });
  }
}
