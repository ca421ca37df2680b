import uPlot from 'uplot';
import type { HourlyPoint } from '../api/types';
import {
  formatAcKwh,
  formatCelsius,
  formatDcKwh,
  formatPercent,
  formatRatioPercent,
} from '../format/numbers';
import { axis, ChartFrame, timeAxis, timeSeries } from './chart-frame';
import { palette, translucent } from './palette';

const HALF_HOUR_S = 1800;

/** Each hour is drawn at its middle, so its bars sit inside the hour they measure. */
const hourMiddles = (series: HourlyPoint[]) =>
  series.map((p) => Date.parse(p.hour) / 1000 + HALF_HOUR_S);

/** The x range covers whole hours, leaving room for the outermost bars. */
const hoursRange: uPlot.Scale = {
  time: true,
  range: (_u, min, max) => [min - HALF_HOUR_S, max + HALF_HOUR_S],
};

const show = (format: (n: number) => string) => (_u: uPlot, v: number | null) =>
  v === null || v === undefined ? '–' : format(v);

/** The efficiency series's index in the energy chart's data. */
const EFFICIENCY = 3;

/**
 * An hour's energy in the legend as the hourly table shows it, beside the hour's efficiency (in
 * %: only whether there is one, and above 0, matters).
 */
const showEnergy =
  (format: (kwh: number, efficiency: number | null | undefined) => string) =>
  (u: uPlot, v: number | null, _series: number, idx: number | null) =>
    v === null || v === undefined ? '–' : format(v, idx === null ? null : u.data[EFFICIENCY][idx]);

const bars = (align: -1 | 1) => uPlot.paths.bars?.({ size: [0.42, 48], align, gap: 1 });

/** An hour's efficiency in %; none in an idle hour (no DC: the API's null), a gap in the line. */
const efficiencyPercent = (p: HourlyPoint): number | null =>
  p.efficiency === null ? null : p.efficiency * 100;

/**
 * Where uPlot hides the points (closer than twice their size: a 7-day window), the charging hours
 * between idle ones still get theirs: idle hours are gaps, so those draw no line. Null: uPlot's.
 */
function lonePoints(u: uPlot, seriesIdx: number, shown: boolean): number[] | null {
  if (shown) return null;
  const values = u.data[seriesIdx];
  const lone: number[] = [];
  for (let i = 0; i < values.length; i++)
    if (values[i] != null && values[i - 1] == null && values[i + 1] == null) lone.push(i);
  return lone.length > 0 ? lone : null;
}

/** AC and DC energy per hour as bars, efficiency as a line against the threshold. */
export function createEnergyChart(container: HTMLElement): {
  frame: ChartFrame;
  data(series: HourlyPoint[], threshold: number): uPlot.AlignedData;
} {
  const frame = new ChartFrame(
    container,
    {
      scales: {
        x: hoursRange,
        kwh: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        percent: { range: (_u, min, max) => [Math.min(50, min - 5), Math.max(100, max + 5)] },
      },
      series: [
        timeSeries,
        {
          label: 'AC consumed',
          scale: 'kwh',
          stroke: palette.ac,
          fill: translucent(palette.ac),
          paths: bars(-1),
          points: { show: false },
          value: showEnergy(formatAcKwh),
        },
        {
          label: 'DC delivered',
          scale: 'kwh',
          stroke: palette.dc,
          fill: translucent(palette.dc),
          paths: bars(1),
          points: { show: false },
          value: showEnergy(formatDcKwh),
        },
        {
          label: 'Efficiency',
          scale: 'percent',
          stroke: palette.efficiency,
          width: 2,
          // Solid and ringed in the page's white, so a point stands out against a bar's edge.
          points: {
            size: 11,
            width: 1.5,
            fill: palette.efficiency,
            stroke: '#ffffff',
            filter: lonePoints,
          },
          value: show(formatRatioPercent),
        },
        {
          label: 'Threshold',
          scale: 'percent',
          stroke: palette.threshold,
          width: 1.5,
          dash: [6, 4],
          points: { show: false },
          value: show(formatRatioPercent),
        },
      ],
      axes: [
        timeAxis(),
        axis({ scale: 'kwh', label: 'Energy per hour (kWh)', digits: 1, size: 70 }),
        axis({
          scale: 'percent',
          side: 1,
          label: 'Efficiency (%)',
          grid: { show: false },
          size: 60,
        }),
      ],
    },
    'Chart of AC and DC energy per hour and, in hours the vehicle charged, the efficiency against the threshold; the figures are in the hourly table below',
  );
  return {
    frame,
    data: (series, threshold) => [
      hourMiddles(series),
      series.map((p) => p.acConsumedKwh),
      series.map((p) => p.dcDeliveredKwh),
      series.map(efficiencyPercent),
      series.map(() => threshold * 100),
    ],
  };
}

/** State of charge at the end of each hour and the hour's average battery temperature. */
export function createBatteryChart(container: HTMLElement): {
  frame: ChartFrame;
  data(series: HourlyPoint[]): uPlot.AlignedData;
} {
  const frame = new ChartFrame(
    container,
    {
      scales: {
        x: hoursRange,
        soc: { range: [0, 100] },
        celsius: { range: (_u, min, max) => [Math.floor(min - 2), Math.ceil(max + 2)] },
      },
      series: [
        timeSeries,
        {
          label: 'SoC (end of hour)',
          scale: 'soc',
          stroke: palette.soc,
          width: 2,
          spanGaps: true,
          value: show(formatPercent),
        },
        {
          label: 'Battery temperature (average)',
          scale: 'celsius',
          stroke: palette.temperature,
          width: 1.5,
          dash: [4, 3],
          value: show(formatCelsius),
        },
      ],
      axes: [
        timeAxis(),
        axis({ scale: 'soc', label: 'State of charge (%)', size: 60 }),
        axis({ scale: 'celsius', side: 1, label: 'Battery (°C)', grid: { show: false }, size: 60 }),
      ],
    },
    'Chart of the state of charge and battery temperature per hour; the figures are in the hourly table below',
  );
  return {
    frame,
    data: (series) => [
      hourMiddles(series),
      series.map((p) => p.socEnd),
      series.map((p) => p.avgTempC),
    ],
  };
}
