import type uPlot from 'uplot';
import type { SessionMinute } from '../api/types';
import { formatCelsius, formatKw, formatPercent } from '../format/numbers';
import { axis, ChartFrame, timeAxis, timeSeries } from './chart-frame';
import { palette } from './palette';

const minutes = (series: SessionMinute[]) => series.map((p) => Date.parse(p.minute) / 1000);
const show = (format: (n: number) => string) => (_u: uPlot, v: number | null) =>
  v === null || v === undefined ? '–' : format(v);

/** A session's AC and DC power per minute. */
export function createSessionPowerChart(container: HTMLElement): {
  frame: ChartFrame;
  data(series: SessionMinute[]): uPlot.AlignedData;
} {
  const frame = new ChartFrame(
    container,
    {
      scales: { x: { time: true }, kw: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      series: [
        timeSeries,
        { label: 'AC power', scale: 'kw', stroke: palette.ac, width: 2, value: show(formatKw) },
        { label: 'DC power', scale: 'kw', stroke: palette.dc, width: 2, value: show(formatKw) },
      ],
      axes: [timeAxis(), axis({ scale: 'kw', label: 'Power (kW)', digits: 1, size: 70 })],
    },
    'Chart of the session’s AC and DC power per minute',
  );
  return {
    frame,
    data: (series) => [
      minutes(series),
      series.map((p) => p.acPowerKw),
      series.map((p) => p.dcPowerKw),
    ],
  };
}

/** A session's state of charge and battery temperature per minute. */
export function createSessionBatteryChart(container: HTMLElement): {
  frame: ChartFrame;
  data(series: SessionMinute[]): uPlot.AlignedData;
} {
  const frame = new ChartFrame(
    container,
    {
      scales: {
        x: { time: true },
        soc: { range: [0, 100] },
        celsius: { range: (_u, min, max) => [Math.floor(min - 2), Math.ceil(max + 2)] },
      },
      series: [
        timeSeries,
        { label: 'SoC', scale: 'soc', stroke: palette.soc, width: 2, value: show(formatPercent) },
        {
          label: 'Battery temperature',
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
    'Chart of the session’s state of charge and battery temperature per minute',
  );
  return {
    frame,
    data: (series) => [
      minutes(series),
      series.map((p) => p.soc),
      series.map((p) => p.batteryTempC),
    ],
  };
}
