import type { EnergyReadingsMode } from '../config';
import type { RedisKeys } from '../redis-keys';
import type { AnalyticsMetrics } from '../metrics';
import type { EnergyReportStore, WindowRow } from './energy-report-store';
import type { Freshness, ReportCache } from '../reports/report-cache';
import type { SessionSummary } from '../sessions/session-schemas';
import type { HourlyPoint, PerformanceReport } from './report-schemas';
import { isBelow, roundFigure as round } from '../reports/rounding';
import { HOUR_MS } from '../time-units';
import { atChargerPower, efficiencyWarnings, windowEfficiency } from '../reports/efficiency';
import { sharedMeterWarning, unmappedStretches } from '../reports/mapping-warnings';
import { retentionWarnings } from '../reports/retention-warning';

type ComputedReport = Omit<PerformanceReport, 'cache'>;

/** AC of the meter windows that had readings, summed; null when none had any. */
function acOf(meters: WindowRow[]): number | null {
  const known = meters.filter((m) => m.energy !== null);
  return known.length > 0 ? known.reduce((sum, m) => sum + (m.energy ?? 0), 0) : null;
}

/**
 * The performance report of one vehicle over any window: DC energy stored, AC energy drawn by the
 * meters it was mapped to (each only for its mapping period), efficiency and battery behaviour,
 * computed by one statement (energy-report-store.ts) and cached for a short while.
 */
export class PerformanceService {
  constructor(
    private readonly deps: {
      store: EnergyReportStore;
      /** The window's charging sessions, summed up for the report. */
      sessions: {
        summary(
          vehicleId: string,
          from: Date,
          to: Date,
        ): Promise<{ summary: SessionSummary; anyMisread: boolean }>;
      };
      cache: ReportCache<ComputedReport>;
      /** The 404 for a vehicle with nothing stored, saying whether it sent readings not stored yet. */
      unknownVehicleError: (vehicleId: string) => Promise<Error>;
      keys: RedisKeys;
      config: {
        energyReadings: EnergyReadingsMode;
        efficiencyThreshold: number;
        /** RETENTION_DAYS: a window reaching before what history keeps is said to. */
        retentionDays: number;
      };
      metrics?: AnalyticsMetrics;
    },
  ) {}

  async report(
    vehicleId: string,
    from: Date,
    to: Date,
    options: { bucket?: 'hour' } & Freshness = {},
  ): Promise<PerformanceReport> {
    const { config } = this.deps;
    const cacheKey = this.deps.keys.analyticsCache(
      { vehicleId },
      from.getTime(),
      to.getTime(),
      `perf:${config.energyReadings}:${options.bucket ?? 'none'}`,
    );
    const { value, cache } = await this.deps.cache.through(
      cacheKey,
      async () => {
        const report = await this.compute(vehicleId, from, to, options.bucket);
        this.deps.metrics?.onReport(report.energy.alert);
        return report;
      },
      options,
    );
    return { ...value, cache };
  }

  /**
   * Runs the report path `waves` times, `concurrency` reports at once, for a vehicle that does not
   * exist: each PostgreSQL connection's first statements load its catalog caches and plan them
   * (100-200 ms), and V8 compiles the code, which otherwise the first real reports after a start
   * would wait for (at 100 uncached reports/s: p95 150-310 ms over the first 5 s, 12-14 ms after).
   */
  async warmUp({ waves, concurrency }: { waves: number; concurrency: number }): Promise<void> {
    const to = new Date();
    const from = new Date(to.getTime() - 24 * HOUR_MS);
    for (let wave = 0; wave < waves; wave++) {
      await Promise.all(
        Array.from({ length: concurrency }, (_, i) =>
          this.compute(`warm-up-${wave}-${i}`, from, to).catch(() => undefined),
        ),
      );
    }
  }

  /**
   * The stretches of the window mapped to no meter in which the vehicle took DC energy (it charged
   * from a meter the engine does not know of). Driving between an OCPP charge point's transactions,
   * or before a new fleet's vehicles existed, is not worth a word. A window with such a stretch
   * costs a scan of the vehicle's readings in it; others none.
   */
  private async chargedUnmapped(
    vehicleId: string,
    from: Date,
    to: Date,
    mode: EnergyReadingsMode,
    meters: WindowRow[],
  ): Promise<{ from: Date; to: Date }[]> {
    const stretches = unmappedStretches(from, to, meters);
    if (stretches.length === 0) return [];
    const charged = await Promise.all(
      stretches.map((s) => this.deps.store.vehicleChargedBetween(vehicleId, s.from, s.to, mode)),
    );
    return stretches.filter((_, i) => charged[i]);
  }

  private async compute(
    vehicleId: string,
    from: Date,
    to: Date,
    bucket?: 'hour',
  ): Promise<ComputedReport> {
    const { config, store } = this.deps;
    // The sessions take three statements one after another, the report one: theirs is sent first.
    const [{ summary: sessions, anyMisread }, rows] = await Promise.all([
      this.deps.sessions.summary(vehicleId, from, to),
      store.vehicleWindows(vehicleId, from, to, config.energyReadings, {
        hours: bucket === 'hour',
      }),
    ]);
    const whole = rows.filter((r) => r.hour === null);
    const vehicle = whole.find((r) => r.role === 'dc') as WindowRow;
    const meters = whole.filter((r) => r.role === 'ac');
    if (meters.length === 0 && vehicle.readings === 0 && !(await store.vehicleExists(vehicleId))) {
      throw await this.deps.unknownVehicleError(vehicleId);
    }

    const warnings = retentionWarnings(from, config.retentionDays, Date.now());
    if (meters.length === 0) {
      warnings.push(
        `Vehicle ${vehicleId} is mapped to no meter in this window, so AC energy is unknown`,
      );
    }
    for (const gap of await this.chargedUnmapped(vehicleId, from, to, vehicle.mode, meters)) {
      warnings.push(
        `Vehicle ${vehicleId} took DC energy between ${gap.from.toISOString()} and ${gap.to.toISOString()}, when it was mapped to no meter: the AC energy of that charging is unknown, while its DC counts`,
      );
    }
    for (const m of meters.filter((w) => w.readings === 0)) {
      warnings.push(
        `Meter ${m.deviceId} sent no readings between ${m.from.toISOString()} and ${m.to.toISOString()}`,
      );
    }
    for (const m of meters) {
      for (const other of m.sharedWith)
        warnings.push(sharedMeterWarning(m.deviceId, other, 'reports'));
    }
    const ac = acOf(meters);
    const dc = vehicle.energy;
    if (vehicle.readings === 0)
      warnings.push(`Vehicle ${vehicleId} sent no readings in this window`);
    if (ac === 0 && dc !== null)
      warnings.push('AC energy in this window is 0, so efficiency is undefined');
    if (dc === 0 && ac !== null && ac > 0) {
      warnings.push(
        `Vehicle ${vehicleId} took no DC energy in this window, so efficiency is undefined: it did not charge, and the ${round(ac, 4)} kWh of AC is its meters' standby (or its DC readings are wrong)`,
      );
    }
    const efficiency = windowEfficiency(ac, dc);
    // A charge of minutes in a day's window averages little over the window: a session in it
    // that looks misread by its own power says the same (the warning must not depend on the
    // window's length), where a healthy charge reaching into the window says nothing.
    const windowHours = (to.getTime() - from.getTime()) / HOUR_MS;
    const drawnAtChargerPower = atChargerPower(ac === null ? null : ac / windowHours) || anyMisread;
    warnings.push(...efficiencyWarnings(efficiency, drawnAtChargerPower));

    return {
      vehicleId,
      window: { from: from.toISOString(), to: to.toISOString() },
      meters: meters.map((m) => ({
        meterId: m.deviceId,
        from: m.from.toISOString(),
        to: m.to.toISOString(),
        energyReadings: m.mode,
      })),
      energy: {
        acConsumedKwh: round(ac, 4),
        dcDeliveredKwh: round(dc, 4),
        efficiency: round(efficiency, 4),
        threshold: config.efficiencyThreshold,
        alert: efficiency === null ? null : isBelow(efficiency, config.efficiencyThreshold),
        mode: vehicle.mode,
      },
      battery: {
        avgTempC:
          vehicle.tempCount > 0 ? round((vehicle.tempSum ?? 0) / vehicle.tempCount, 2) : null,
        minTempC: round(vehicle.tempMin, 2),
        maxTempC: round(vehicle.tempMax, 2),
        socStart: round(vehicle.socStart, 2),
        socEnd: round(vehicle.socEnd, 2),
        socMin: round(vehicle.socMin, 2),
        socMax: round(vehicle.socMax, 2),
      },
      counts: {
        vehicleReadings: vehicle.readings,
        meterReadings: meters.reduce((sum, m) => sum + m.readings, 0),
      },
      warnings,
      sessions,
      ...(bucket === 'hour' ? { series: hourlySeries(from, to, rows) } : {}),
    };
  }
}

/** One entry per hour touching the window: AC of the meters mapped then, DC, temperature, SoC. */
function hourlySeries(from: Date, to: Date, rows: WindowRow[]): HourlyPoint[] {
  const byHour = new Map<number, { dc?: WindowRow; ac: WindowRow[] }>();
  for (const row of rows) {
    if (row.hour === null) continue;
    const entry = byHour.get(row.hour.getTime()) ?? { ac: [] };
    if (row.role === 'dc') entry.dc = row;
    else entry.ac.push(row);
    byHour.set(row.hour.getTime(), entry);
  }
  const series: HourlyPoint[] = [];
  const first = Math.floor(from.getTime() / HOUR_MS) * HOUR_MS;
  for (let hour = first; hour < to.getTime(); hour += HOUR_MS) {
    const { dc, ac: meters } = byHour.get(hour) ?? { ac: [] };
    const ac = acOf(meters);
    const dcKwh = dc?.energy ?? null;
    series.push({
      hour: new Date(hour).toISOString(),
      acConsumedKwh: round(ac, 4),
      dcDeliveredKwh: round(dcKwh, 4),
      efficiency: round(windowEfficiency(ac, dcKwh), 4),
      avgTempC: dc && dc.tempCount > 0 ? round((dc.tempSum ?? 0) / dc.tempCount, 2) : null,
      socEnd: round(dc?.socEnd ?? null, 2),
    });
  }
  return series;
}
