import type { ReportCache } from './report-cache';
import { roundFigure } from './rounding';
import type { EnergyReadingsMode } from '../config';
import { notFound } from '../errors';
import type { RedisKeys } from '../redis-keys';
import type { MappingStore } from '../stores/mapping-store';
import type { DeviceType } from '../telemetry/readings';
import type { AnalyticsStore, HourlyRollup, RawPoint, TimeRange } from './analytics-store';
import { summarizeByHour, summarizeWindow, type WindowStats } from './window-stats';

const HOUR_MS = 3_600_000;
const floorHour = (d: Date) => new Date(Math.floor(d.getTime() / HOUR_MS) * HOUR_MS);
const ceilHour = (d: Date) => new Date(Math.ceil(d.getTime() / HOUR_MS) * HOUR_MS);

const round = roundFigure;

export interface PerformanceReport {
  vehicleId: string;
  window: { from: string; to: string };
  meters: { meterId: string; from: string; to: string }[];
  energy: {
    acConsumedKwh: number | null;
    dcDeliveredKwh: number | null;
    efficiency: number | null;
    threshold: number;
    alert: boolean | null;
    mode: EnergyReadingsMode;
  };
  battery: {
    avgTempC: number | null;
    minTempC: number | null;
    maxTempC: number | null;
    socStart: number | null;
    socEnd: number | null;
    socMin: number | null;
    socMax: number | null;
  };
  counts: { vehicleReadings: number; meterReadings: number };
  warnings: string[];
  /** With `bucket=hour`: one entry per hour of the window (the first and last may be partial). */
  series?: HourlyPoint[];
  cache: 'hit' | 'miss' | 'off';
}

/** A device's readings over a window, in time order, and what they add up to. */
export interface DeviceWindow {
  stats: WindowStats;
  points: (RawPoint | HourlyRollup)[];
  /** The energy register before the window (cumulative mode), or null. */
  prior: number | null;
}

export interface HourlyPoint {
  hour: string;
  acConsumedKwh: number | null;
  dcDeliveredKwh: number | null;
  efficiency: number | null;
  avgTempC: number | null;
  socEnd: number | null;
}

export interface AnalyticsMetrics {
  onCache(result: 'hit' | 'miss' | 'error'): void;
  /** A report computed from PostgreSQL, with its efficiency alert. */
  onReport(alert: boolean | null): void;
}

/**
 * The 24-hour (or any window's) performance report of one vehicle: DC energy stored, AC energy
 * drawn by the meters it was mapped to (each only for its mapping period), efficiency and battery
 * behaviour. Reads rollups for whole hours and raw rows for the partial hours at the edges.
 */
export class PerformanceService {
  constructor(
    private readonly deps: {
      store: AnalyticsStore;
      mappingStore: MappingStore;
      cache: ReportCache<Omit<PerformanceReport, 'cache'>>;
      keys: RedisKeys;
      config: {
        energyReadings: EnergyReadingsMode;
        efficiencyThreshold: number;
        analyticsCacheTtlS: number;
      };
      metrics?: AnalyticsMetrics;
    },
  ) {}

  async report(
    vehicleId: string,
    from: Date,
    to: Date,
    options: { bucket?: 'hour' } = {},
  ): Promise<PerformanceReport> {
    const { config } = this.deps;
    const cacheKey = this.deps.keys.analyticsCache(
      vehicleId,
      from.getTime(),
      to.getTime(),
      `perf:${config.energyReadings}:${options.bucket ?? 'none'}`,
    );
    const cached = await this.deps.cache.get(cacheKey);
    if (cached) return { ...cached, cache: 'hit' };
    const report = await this.compute(vehicleId, from, to, options.bucket);
    this.deps.metrics?.onReport(report.energy.alert);
    await this.deps.cache.set(cacheKey, report);
    return { ...report, cache: this.deps.cache.enabled ? 'miss' : 'off' };
  }

  /** One device over [from, to): rollups for whole hours, raw rows at the edges, folded to stats. */
  async deviceWindow(type: DeviceType, id: string, from: Date, to: Date): Promise<DeviceWindow> {
    const { store } = this.deps;
    const mode = this.deps.config.energyReadings;
    const firstFullHour = ceilHour(from);
    const endOfFullHours = floorHour(to);
    const hasFullHours = firstFullHour < endOfFullHours;
    const rawRanges: TimeRange[] = hasFullHours
      ? [
          { from, to: firstFullHour },
          { from: endOfFullHours, to },
        ]
      : [{ from, to }];
    const [items, prior] = await Promise.all([
      store.windowItems(type, id, firstFullHour, endOfFullHours, rawRanges),
      mode === 'cumulative'
        ? store.lastEnergyBefore(type, id, from, floorHour(from))
        : Promise.resolve(null),
    ]);
    const points = await this.withStaleHoursRaw(type, id, items, mode);
    return { stats: summarizeWindow(points, mode, prior), points, prior };
  }

  /**
   * An hour whose register increase is still pending recomputation is read raw instead (rare: only
   * right after a reading arrived inside an already covered span).
   */
  private async withStaleHoursRaw(
    type: DeviceType,
    id: string,
    items: (RawPoint | HourlyRollup)[],
    mode: EnergyReadingsMode,
  ): Promise<(RawPoint | HourlyRollup)[]> {
    if (mode !== 'cumulative' || !items.some((i) => 'hour' in i && i.registerIncrease === null))
      return items;
    const result: (RawPoint | HourlyRollup)[] = [];
    for (const item of items) {
      if ('hour' in item && item.registerIncrease === null) {
        const end = new Date(item.hour.getTime() + HOUR_MS);
        result.push(...(await this.deps.store.rawPoints(type, id, [{ from: item.hour, to: end }])));
      } else {
        result.push(item);
      }
    }
    return result;
  }

  private async compute(
    vehicleId: string,
    from: Date,
    to: Date,
    bucket?: 'hour',
  ): Promise<Omit<PerformanceReport, 'cache'>> {
    const { config, store, mappingStore } = this.deps;
    const [periods, vehicleWindow] = await Promise.all([
      mappingStore.periodsWithin(vehicleId, from, to),
      this.deviceWindow('vehicle', vehicleId, from, to),
    ]);
    const vehicle = vehicleWindow.stats;
    if (periods.length === 0 && vehicle.readings === 0 && !(await store.vehicleExists(vehicleId))) {
      throw notFound(`Vehicle ${vehicleId} has sent no readings and is mapped to no meter`);
    }
    const meterWindows = await Promise.all(
      periods.map((p) => this.deviceWindow('meter', p.meterId, p.from, p.to)),
    );
    const meterStats = meterWindows.map((w) => w.stats);

    const warnings: string[] = [];
    let ac: number | null = null;
    if (periods.length === 0) {
      warnings.push(
        `Vehicle ${vehicleId} is mapped to no meter in this window, so AC energy is unknown`,
      );
    } else {
      periods.forEach((p, i) => {
        if (meterStats[i].readings === 0) {
          warnings.push(
            `Meter ${p.meterId} sent no readings between ${p.from.toISOString()} and ${p.to.toISOString()}`,
          );
        }
      });
      const known = meterStats.filter((s) => s.energyKwh !== null);
      ac = known.length > 0 ? known.reduce((sum, s) => sum + (s.energyKwh ?? 0), 0) : null;
    }
    const dc = vehicle.energyKwh;
    if (vehicle.readings === 0)
      warnings.push(`Vehicle ${vehicleId} sent no readings in this window`);
    let efficiency: number | null = null;
    if (ac !== null && dc !== null) {
      if (ac > 0) efficiency = dc / ac;
      else warnings.push('AC energy in this window is 0, so efficiency is undefined');
    }
    if (efficiency !== null && efficiency > 1) {
      warnings.push(
        'DC delivered exceeds AC consumed: check the meter mapping and the energy mode',
      );
    }

    return {
      vehicleId,
      window: { from: from.toISOString(), to: to.toISOString() },
      meters: periods.map((p) => ({
        meterId: p.meterId,
        from: p.from.toISOString(),
        to: p.to.toISOString(),
      })),
      energy: {
        acConsumedKwh: round(ac, 4),
        dcDeliveredKwh: round(dc, 4),
        efficiency: round(efficiency, 4),
        threshold: config.efficiencyThreshold,
        alert: efficiency === null ? null : efficiency < config.efficiencyThreshold,
        mode: config.energyReadings,
      },
      battery: {
        avgTempC: vehicle.tempCount > 0 ? round(vehicle.tempSum / vehicle.tempCount, 2) : null,
        minTempC: round(vehicle.tempMin, 2),
        maxTempC: round(vehicle.tempMax, 2),
        socStart: round(vehicle.socStart, 2),
        socEnd: round(vehicle.socEnd, 2),
        socMin: round(vehicle.socMin, 2),
        socMax: round(vehicle.socMax, 2),
      },
      counts: {
        vehicleReadings: vehicle.readings,
        meterReadings: meterStats.reduce((sum, s) => sum + s.readings, 0),
      },
      warnings,
      ...(bucket === 'hour'
        ? { series: this.hourlySeries(from, to, vehicleWindow, meterWindows) }
        : {}),
    };
  }

  /** One entry per hour touching the window: AC of the meters mapped then, DC, temperature, SoC. */
  private hourlySeries(
    from: Date,
    to: Date,
    vehicle: DeviceWindow,
    meters: DeviceWindow[],
  ): HourlyPoint[] {
    const mode = this.deps.config.energyReadings;
    const dcByHour = summarizeByHour(vehicle.points, mode, vehicle.prior);
    const acByHour = meters.map((m) => summarizeByHour(m.points, mode, m.prior));
    const series: HourlyPoint[] = [];
    for (let hour = floorHour(from).getTime(); hour < to.getTime(); hour += HOUR_MS) {
      const dc = dcByHour.get(hour);
      const acParts = acByHour
        .map((m) => m.get(hour)?.energyKwh)
        .filter((e): e is number => e != null);
      const ac = acParts.length > 0 ? acParts.reduce((sum, e) => sum + e, 0) : null;
      const dcKwh = dc?.energyKwh ?? null;
      series.push({
        hour: new Date(hour).toISOString(),
        acConsumedKwh: round(ac, 4),
        dcDeliveredKwh: round(dcKwh, 4),
        efficiency: ac !== null && ac > 0 && dcKwh !== null ? round(dcKwh / ac, 4) : null,
        avgTempC: dc && dc.tempCount > 0 ? round(dc.tempSum / dc.tempCount, 2) : null,
        socEnd: round(dc?.socEnd ?? null, 2),
      });
    }
    return series;
  }
}
