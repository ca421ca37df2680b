import type { HourlyPoint, PerformanceReport } from '../../api/types';
import { createBatteryChart, createEnergyChart } from '../../charts/hourly-charts';
import { h } from '../../dom/h';
import {
  formatCelsius,
  formatCount,
  formatAcKwh,
  formatDcKwh,
  formatPercent,
  formatRatio,
} from '../../format/numbers';
import { dataTable } from '../data-table';
import { flagBadge, vehicleFlagOf, withFlaggedSessions } from '../flag';
import { notice, warningList } from '../notices';
import { timeText, windowText } from '../time-text';
import { Section } from './section';

const orMissing = (value: number | null, format: (n: number) => string, missing: string) =>
  value === null ? h('span', { class: 'missing' }, missing) : format(value);

const hasData = (series: HourlyPoint[]) =>
  series.some((p) => p.acConsumedKwh !== null || p.dcDeliveredKwh !== null || p.socEnd !== null);

/**
 * The vehicle's report for the window (GET /v1/analytics/performance/:id?bucket=hour): totals,
 * the hourly energy and efficiency chart, SoC over time, and the same figures as a table.
 */
export class EfficiencySection extends Section {
  private readonly energyFigure: HTMLElement;
  private readonly batteryFigure: HTMLElement;
  private readonly energyChart: ReturnType<typeof createEnergyChart>;
  private readonly batteryChart: ReturnType<typeof createBatteryChart>;

  constructor() {
    super('efficiency', 'Charging efficiency', 'the performance report');
    const energyPlot = h('div', { class: 'chart' });
    const batteryPlot = h('div', { class: 'chart' });
    this.energyFigure = h(
      'figure',
      { class: 'chart-figure' },
      h(
        'figcaption',
        null,
        'AC and DC energy per hour (bars) and efficiency against the threshold (lines)',
      ),
      energyPlot,
    );
    this.batteryFigure = h(
      'figure',
      { class: 'chart-figure' },
      h('figcaption', null, 'State of charge and battery temperature over time'),
      batteryPlot,
    );
    this.energyChart = createEnergyChart(energyPlot);
    this.batteryChart = createBatteryChart(batteryPlot);
  }

  /** The engine has nothing on the vehicle at all (its 404, which says why). */
  renderMissing(reason: string): void {
    this.show(notice('empty', 'No report for this vehicle', reason));
  }

  render(report: PerformanceReport): void {
    const series = report.series ?? [];
    const charted = hasData(series);
    // The figures stay the same elements across refreshes, so uPlot only swaps its data.
    this.show(
      h('p', { class: 'window-line' }, 'Window: ', windowText(report.window)),
      this.totals(report),
      warningList(report.warnings),
      charted
        ? [this.energyFigure, this.batteryFigure]
        : notice(
            'empty',
            'No readings in this window',
            'Nothing to chart: the vehicle and its meters sent no readings between these times.',
          ),
      charted ? this.hourlyTable(series) : null,
    );
    if (charted) {
      this.energyChart.frame.setData(this.energyChart.data(series, report.energy.threshold));
      this.batteryChart.frame.setData(this.batteryChart.data(series));
    }
  }

  destroy(): void {
    this.energyChart.frame.destroy();
    this.batteryChart.frame.destroy();
  }

  private totals(report: PerformanceReport): HTMLElement {
    const { energy, battery, counts } = report;
    const row = (label: string, value: Node | string) =>
      h('div', null, h('dt', null, label), h('dd', null, value));
    return h(
      'dl',
      { class: 'figures window-totals', attrs: { 'aria-label': 'Window totals' } },
      row(
        'AC consumed',
        orMissing(
          energy.acConsumedKwh,
          (kwh) => formatAcKwh(kwh, energy.efficiency),
          'unknown (see warnings)',
        ),
      ),
      row(
        'DC delivered',
        orMissing(
          energy.dcDeliveredKwh,
          (kwh) => formatDcKwh(kwh, energy.efficiency),
          'no vehicle readings',
        ),
      ),
      row('Efficiency (DC / AC)', orMissing(energy.efficiency, formatRatio, 'n/a (see warnings)')),
      row('Threshold', formatRatio(energy.threshold)),
      row(
        'Status',
        flagBadge(
          withFlaggedSessions(vehicleFlagOf(energy, energy.threshold, []), report.sessions.flagged),
        ),
      ),
      row(
        'State of charge',
        battery.socStart === null || battery.socEnd === null
          ? h('span', { class: 'missing' }, 'no readings')
          : `${formatPercent(battery.socStart)} → ${formatPercent(battery.socEnd)}`,
      ),
      row('Battery temperature (avg)', orMissing(battery.avgTempC, formatCelsius, 'no readings')),
      row(
        'Readings (vehicle / meter)',
        `${formatCount(counts.vehicleReadings)} / ${formatCount(counts.meterReadings)}`,
      ),
    );
  }

  private hourlyTable(series: HourlyPoint[]): HTMLElement {
    const dash = (value: number | null, format: (n: number) => string) =>
      value === null ? h('span', { class: 'missing' }, '–') : format(value);
    return h(
      'details',
      { class: 'hourly', attrs: { 'data-state-key': 'hourly' } },
      h('summary', null, `Hourly figures (${formatCount(series.length)} hours)`),
      dataTable<HourlyPoint>({
        // An idle hour has readings and no efficiency (no energy delivered): said apart.
        caption:
          'Energy, efficiency and battery per hour (–: no readings that hour; an efficiency –: no energy delivered that hour, or no AC to compare)',
        columns: [
          { header: 'Hour', cell: (p) => timeText(p.hour) },
          {
            header: 'AC consumed',
            numeric: true,
            cell: (p) => dash(p.acConsumedKwh, (kwh) => formatAcKwh(kwh, p.efficiency)),
          },
          {
            header: 'DC delivered',
            numeric: true,
            cell: (p) => dash(p.dcDeliveredKwh, (kwh) => formatDcKwh(kwh, p.efficiency)),
          },
          { header: 'Efficiency', numeric: true, cell: (p) => dash(p.efficiency, formatRatio) },
          { header: 'Battery (avg)', numeric: true, cell: (p) => dash(p.avgTempC, formatCelsius) },
          { header: 'SoC (end)', numeric: true, cell: (p) => dash(p.socEnd, formatPercent) },
        ],
        rows: series,
      }),
    );
  }
}
