import type { ChargingSession, SessionDetail } from '../../api/types';
import { createSessionBatteryChart, createSessionPowerChart } from '../../charts/session-charts';
import { h, replaceContent } from '../../dom/h';
import {
  formatCelsius,
  formatCount,
  formatKw,
  formatAcKwh,
  formatDcKwh,
  formatPercent,
  formatRatio,
} from '../../format/numbers';
import { dataTable, idList } from '../data-table';
import { flagBadge, sessionFlagOf } from '../flag';
import { errorNotice, notice, warningList } from '../notices';
import { timeText } from '../time-text';
import { Section } from './section';

const dash = (value: number | null, format: (n: number) => string) =>
  value === null ? h('span', { class: 'missing' }, '–') : format(value);

const sourceText = (s: ChargingSession) =>
  s.source === 'ocpp'
    ? `OCPP${s.transactionId === null ? '' : ` transaction ${s.transactionId}`}`
    : 'detected from telemetry';

/** The session's totals beside its chart: the same figures as the API's. */
function sessionFigures(s: SessionDetail): HTMLElement {
  const row = (label: string, value: Node | string | (Node | string)[]) =>
    h('div', null, h('dt', null, label), h('dd', null, value));
  return h(
    'dl',
    { class: 'figures session-figures' },
    row(
      'AC consumed',
      dash(s.acConsumedKwh, (kwh) => formatAcKwh(kwh, s.efficiency)),
    ),
    row(
      'DC delivered',
      dash(s.dcDeliveredKwh, (kwh) => formatDcKwh(kwh, s.efficiency)),
    ),
    row('Efficiency (DC / AC)', dash(s.efficiency, formatRatio)),
    row('Status', flagBadge(sessionFlagOf(s))),
    row('Mean AC power', dash(s.meanAcPowerKw, formatKw)),
    row('Peak AC power', dash(s.peakAcPowerKw, formatKw)),
    row('Battery temperature (mean / max)', [
      dash(s.batteryTempMeanC, formatCelsius),
      ' / ',
      dash(s.batteryTempMaxC, formatCelsius),
    ]),
    row('Minutes charted', formatCount(s.series.length)),
  );
}

/**
 * The vehicle's charging sessions in the window (GET /v1/vehicles/:id/sessions), each opening its
 * per-minute chart. Hidden altogether while the engine has no sessions endpoint.
 */
export class SessionsSection extends Section {
  private readonly detail = h('div', { class: 'session-detail' });
  private powerChart: ReturnType<typeof createSessionPowerChart> | null = null;
  private batteryChart: ReturnType<typeof createSessionBatteryChart> | null = null;
  private detailFor: string | null = null;

  constructor(
    private readonly links: {
      open(sessionId: string): string;
      close(): string;
    },
  ) {
    super('sessions', 'Charging sessions', 'the charging sessions');
  }

  /** `null`: the engine has no sessions endpoint (an older engine): the section goes. */
  render(sessions: ChargingSession[] | null, selected: string | null): void {
    this.root.hidden = sessions === null;
    if (sessions === null) return;
    if (sessions.length === 0) {
      this.show(notice('empty', 'No charging sessions in this window'));
      return;
    }
    const ordered = [...sessions].sort((a, b) => Date.parse(b.start) - Date.parse(a.start));
    this.show(
      dataTable<ChargingSession>({
        caption: 'Sessions, newest first',
        columns: [
          { header: 'Start', cell: (s) => timeText(s.start) },
          // Early, so it shows without scrolling sideways: the only way to a session's chart.
          {
            header: 'Chart',
            cell: (s) =>
              s.id === selected
                ? h(
                    'a',
                    { attrs: { href: this.links.close(), 'data-focus-key': `session:${s.id}` } },
                    'Hide chart',
                  )
                : h(
                    'a',
                    { attrs: { href: this.links.open(s.id), 'data-focus-key': `session:${s.id}` } },
                    'Show chart',
                  ),
          },
          {
            header: 'End',
            cell: (s) => (s.open ? h('strong', null, 'open') : timeText(s.end)),
          },
          { header: 'Source', cell: sourceText },
          {
            header: 'Meters',
            cell: (s) =>
              s.meters.length > 0 ? idList(s.meters) : h('span', { class: 'missing' }, 'none'),
          },
          {
            header: 'AC consumed',
            numeric: true,
            cell: (s) => dash(s.acConsumedKwh, (kwh) => formatAcKwh(kwh, s.efficiency)),
          },
          {
            header: 'DC delivered',
            numeric: true,
            cell: (s) => dash(s.dcDeliveredKwh, (kwh) => formatDcKwh(kwh, s.efficiency)),
          },
          { header: 'Efficiency', numeric: true, cell: (s) => dash(s.efficiency, formatRatio) },
          { header: 'Status', cell: (s) => flagBadge(sessionFlagOf(s)) },
          {
            header: 'SoC',
            numeric: true,
            cell: (s) =>
              s.socStart === null || s.socEnd === null
                ? h('span', { class: 'missing' }, '–')
                : `${formatPercent(s.socStart)} → ${formatPercent(s.socEnd)}`,
          },
          {
            header: 'AC power (mean / peak)',
            numeric: true,
            cell: (s) => [dash(s.meanAcPowerKw, formatKw), ' / ', dash(s.peakAcPowerKw, formatKw)],
          },
        ],
        rows: ordered,
        rowAttrs: (s) => ({
          'aria-current': s.id === selected ? 'true' : undefined,
          'data-session-id': s.id,
          'data-flag-reasons': sessionFlagOf(s).reasons.join(' ') || undefined,
        }),
      }),
      this.detail,
    );
  }

  renderDetail(session: SessionDetail | null): void {
    if (!session) {
      this.closeDetail();
      return;
    }
    if (this.detailFor !== session.id) this.closeDetail();
    this.detailFor = session.id;
    if (!this.powerChart || !this.batteryChart) {
      const powerPlot = h('div', { class: 'chart' });
      const batteryPlot = h('div', { class: 'chart' });
      replaceContent(
        this.detail,
        h(
          'h3',
          null,
          'Session from ',
          timeText(session.start),
          ' to ',
          session.open ? 'now (open)' : timeText(session.end),
        ),
        sessionFigures(session),
        warningList(session.warnings),
        session.series.length === 0
          ? notice('empty', 'No per-minute readings for this session')
          : [
              h(
                'figure',
                { class: 'chart-figure' },
                h('figcaption', null, 'AC and DC power per minute'),
                powerPlot,
              ),
              h(
                'figure',
                { class: 'chart-figure' },
                h('figcaption', null, 'State of charge and battery temperature per minute'),
                batteryPlot,
              ),
            ],
        h('p', null, h('a', { attrs: { href: this.links.close() } }, 'Close the session chart')),
      );
      if (session.series.length === 0) return;
      this.powerChart = createSessionPowerChart(powerPlot);
      this.batteryChart = createSessionBatteryChart(batteryPlot);
    }
    this.powerChart.frame.setData(this.powerChart.data(session.series));
    this.batteryChart.frame.setData(this.batteryChart.data(session.series));
  }

  renderDetailError(err: unknown): void {
    this.closeDetail();
    replaceContent(this.detail, errorNotice('the session’s per-minute series', err));
  }

  override forget(forWhat: string): void {
    this.closeDetail();
    super.forget(forWhat);
  }

  destroy(): void {
    this.closeDetail();
  }

  private closeDetail(): void {
    this.powerChart?.frame.destroy();
    this.batteryChart?.frame.destroy();
    this.powerChart = null;
    this.batteryChart = null;
    this.detailFor = null;
    this.detail.replaceChildren();
  }
}
