import uPlot from 'uplot';
import { palette } from './palette';
import { formatDateTime, formatDay, timeTickLabels } from '../format/dates';

const CHART_HEIGHT = 260;

/** The x series of every chart: Unix seconds, shown in the browser's zone with its offset. */
export const timeSeries: uPlot.Series = {
  label: 'Time',
  value: (_u, seconds) => (seconds === null ? '–' : formatDateTime(seconds * 1000)),
};

/** Every axis's labels: uPlot's own font, named here so the time axis can measure its dates. */
export const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif';
/** The least room between two neighbouring tick labels, px. */
const LABEL_GAP_PX = 12;

let measuring: CanvasRenderingContext2D | null | undefined;
/** A label's width in the axis font (CSS px), or an estimate where no canvas can measure it. */
function labelWidth(text: string): number {
  measuring ??= document.createElement('canvas').getContext('2d');
  if (!measuring) return text.length * 8;
  measuring.font = AXIS_FONT;
  return measuring.measureText(text).width;
}

const HALF_DAY_S = 43_200;

/**
 * The least spacing of time ticks, so that neighbouring labels never touch. Ticks whole days
 * apart are all dated: a date's width apart. Closer ticks are times with a date under a day's
 * first, never two dated side by side (timeTickLabels): half a date's and half a time's width
 * apart. Ticks are closer than a day when half a day fits at that spacing.
 */
function timeTickSpace(_u: uPlot, _axis: number, min: number, max: number, plotPx: number): number {
  const date = Math.max(labelWidth(formatDay(min * 1000)), labelWidth(formatDay(max * 1000)));
  const hours = Math.ceil((date + labelWidth('00:00')) / 2) + LABEL_GAP_PX;
  return (HALF_DAY_S * plotPx) / (max - min) >= hours ? hours : Math.ceil(date) + LABEL_GAP_PX;
}

/** Time ticks as the page writes times (24-hour, local zone), rather than uPlot's US style. */
const timeTicks = (_u: uPlot, ticks: number[], _axis: number, _space: number, step: number) =>
  timeTickLabels(
    ticks.map((s) => s * 1000),
    step * 1000,
  );

export const timeAxis = (): uPlot.Axis => axis({ values: timeTicks, space: timeTickSpace });

/** An axis in the page's colours; `unit` goes on its tick labels. */
export function axis(options: uPlot.Axis & { unit?: string; digits?: number }): uPlot.Axis {
  const { unit, digits = 0, ...rest } = options;
  return {
    stroke: palette.axis,
    font: AXIS_FONT,
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
