import type { EnergyReadingsMode } from '../config';
import { encodeCursor } from '../reports/paging';
import type { RedisKeys } from '../redis-keys';
import type { EnergyReportStore, FleetRow } from './energy-report-store';
import type { ReportCache } from '../reports/report-cache';
import type { Session } from '../sessions/session-schemas';
import type { FleetReport, FleetVehicle, WorstSession } from './report-schemas';
import { isBelow, roundFigure as round } from '../reports/rounding';
import { windowEfficiency } from '../reports/efficiency';
import { retentionWarnings } from '../reports/retention-warning';

/**
 * A vehicle as the snapshot keeps it: `exactEfficiency` unrounded, so `alert` compares what the
 * vehicle's own report compares (0.84996 is below 0.85 though it is shown as 0.85).
 */
type SnapshotVehicle = FleetVehicle & { exactEfficiency: number | null };

/** Which fleet report: its window, its alert threshold and its order (what its cursors carry). */
export interface FleetScope {
  from: Date;
  to: Date;
  below: number;
  rank: 'efficiency' | 'session';
}

export interface FleetSnapshot {
  vehicles: SnapshotVehicle[];
  withoutMapping: string[];
  withoutMeterData: string[];
  sharedMeters: FleetReport['sharedMeters'];
}

/**
 * Meters mapped to two or more of the vehicles at once within the window (their periods, clipped
 * to it, overlap): each such vehicle's AC counts the meter's whole energy. By meter, the vehicles
 * sorted. Every mapped vehicle counts, also one whose meters sent nothing in the window (listed
 * under withoutMeterData): its own report warns of the sharing all the same.
 */
export function sharedMeters(
  vehicles: Pick<FleetRow, 'vehicleId' | 'meters'>[],
): FleetReport['sharedMeters'] {
  const periods = new Map<string, { vehicleId: string; from: number; to: number }[]>();
  for (const v of vehicles) {
    for (const m of v.meters) {
      const list = periods.get(m.meterId) ?? [];
      list.push({ vehicleId: v.vehicleId, from: m.from.getTime(), to: m.to.getTime() });
      periods.set(m.meterId, list);
    }
  }
  const shared: FleetReport['sharedMeters'] = [];
  for (const [meterId, list] of periods) {
    const sharing = new Set<string>();
    for (const a of list) {
      for (const b of list) {
        if (a.vehicleId !== b.vehicleId && a.from < b.to && b.from < a.to) sharing.add(a.vehicleId);
      }
    }
    if (sharing.size > 0) shared.push({ meterId, vehicles: [...sharing].sort() });
  }
  return shared.sort((a, b) => (a.meterId < b.meterId ? -1 : a.meterId > b.meterId ? 1 : 0));
}

/**
 * Which chargers are losing energy: every vehicle mapped or active in the window, with the same
 * AC, DC and efficiency as its own performance report, worst efficiency first, paged. One SQL
 * statement computes the fleet; the result is cached per window so paging through it is consistent.
 */
export class FleetService {
  constructor(
    private readonly deps: {
      store: EnergyReportStore;
      cache: ReportCache<FleetSnapshot>;
      keys: RedisKeys;
      config: {
        energyReadings: EnergyReadingsMode;
        /** RETENTION_DAYS: a window reaching before what history keeps is said to. */
        retentionDays: number;
      };
      /** The fleet's charging sessions in a window, for ranking by the worst one. */
      sessions: { ofFleetComputed(from: Date, to: Date): Promise<Session[]> };
    },
  ) {}

  /** Each vehicle's worst session of the window (lowest efficiency), by vehicle, worst first. */
  private async worstSessions(from: Date, to: Date): Promise<Map<string, WorstSession>> {
    const worst = new Map<string, WorstSession>();
    // Sessions come worst first: the first one seen of each vehicle is its worst.
    for (const s of await this.deps.sessions.ofFleetComputed(from, to)) {
      if (s.efficiency === null || worst.has(s.vehicleId)) continue;
      worst.set(s.vehicleId, {
        id: s.id,
        efficiency: s.efficiency,
        threshold: s.threshold,
        alert: s.alert,
        drift: s.drift,
      });
    }
    return worst;
  }

  /**
   * The window's snapshot in the rank asked for, from the cache or made and cached: a ranking by
   * session is cached whole as well, so the pages of one are cut from it, as those of the
   * efficiency ranking are. Ranked at each page from the fleet's sessions, cached apart and on a
   * clock of their own, a page could follow another ranking than the page before (a vehicle
   * listed twice, another never).
   */
  private async snapshot(
    from: Date,
    to: Date,
    rank: FleetScope['rank'],
  ): Promise<{ snapshot: FleetSnapshot; cache: FleetReport['cache'] }> {
    const { config, cache } = this.deps;
    const variant = `fleet:${config.energyReadings}${rank === 'session' ? ':by-session' : ''}`;
    const key = this.deps.keys.analyticsCache('fleet', from.getTime(), to.getTime(), variant);
    const { value, cache: outcome } = await cache.through(key, () =>
      rank === 'session' ? this.rankedBySession(from, to) : this.computed(from, to),
    );
    return { snapshot: value, cache: outcome };
  }

  /**
   * The fleet in its vehicles' worst sessions' order, each with that session. Both computed now,
   * not taken from the caches of the efficiency ranking and of the fleet's sessions: made of
   * those, this ranking, cached in turn, was served up to twice the cache's lifetime after they
   * were computed. (So the two rankings of one window may be a cache lifetime apart.)
   */
  private async rankedBySession(from: Date, to: Date): Promise<FleetSnapshot> {
    const [snapshot, worst] = await Promise.all([
      this.computed(from, to),
      this.worstSessions(from, to),
    ]);
    // In the sessions' own order (by efficiency before rounding); vehicles without one last.
    const rankOf = new Map([...worst.keys()].map((vehicleId, i) => [vehicleId, i]));
    const vehicles = snapshot.vehicles
      .map((v) => ({ ...v, worstSession: worst.get(v.vehicleId) ?? null }))
      .sort(
        (a, b) =>
          (rankOf.get(a.vehicleId) ?? Infinity) - (rankOf.get(b.vehicleId) ?? Infinity) ||
          (a.vehicleId < b.vehicleId ? -1 : 1),
      );
    return { ...snapshot, vehicles };
  }

  /** The efficiency snapshot of the window, from PostgreSQL. */
  private async computed(from: Date, to: Date): Promise<FleetSnapshot> {
    return this.toSnapshot(await this.deps.store.fleet(from, to, this.deps.config.energyReadings));
  }

  async report(
    { from, to, below, rank }: FleetScope,
    page: { limit: number; offset: number },
  ): Promise<FleetReport> {
    const { config } = this.deps;
    const { snapshot, cache } = await this.snapshot(from, to, rank);
    const withAlerts: FleetVehicle[] = snapshot.vehicles.map(({ exactEfficiency, ...v }) => ({
      ...v,
      alert: exactEfficiency === null ? null : isBelow(exactEfficiency, below),
    }));
    const next = page.offset + page.limit;
    return {
      window: { from: from.toISOString(), to: to.toISOString() },
      mode: config.energyReadings,
      below,
      totals: {
        vehiclesChecked:
          withAlerts.length + snapshot.withoutMapping.length + snapshot.withoutMeterData.length,
        vehiclesFlagged: withAlerts.filter((v) => v.alert === true).length,
        withoutMapping: snapshot.withoutMapping.length,
        withoutMeterData: snapshot.withoutMeterData.length,
      },
      vehicles: withAlerts.slice(page.offset, next),
      withoutMapping: snapshot.withoutMapping,
      withoutMeterData: snapshot.withoutMeterData,
      sharedMeters: snapshot.sharedMeters,
      warnings: retentionWarnings(from, config.retentionDays, Date.now()),
      nextCursor:
        next < withAlerts.length
          ? encodeCursor(
              next,
              { from: from.toISOString(), to: to.toISOString(), below, rank },
              page.limit,
            )
          : null,
      cache,
    };
  }

  private toSnapshot(rows: FleetRow[]): FleetSnapshot {
    const snapshot: FleetSnapshot = {
      vehicles: [],
      withoutMapping: [],
      withoutMeterData: [],
      sharedMeters: [],
    };
    for (const row of rows) {
      if (row.meters.length === 0) {
        snapshot.withoutMapping.push(row.vehicleId);
        continue;
      }
      if (row.metersWithData === 0) {
        snapshot.withoutMeterData.push(row.vehicleId);
        continue;
      }
      const ac = row.ac;
      const dc = row.vehicleReadings > 0 ? row.dc : null;
      const efficiency = windowEfficiency(ac, dc);
      snapshot.vehicles.push({
        vehicleId: row.vehicleId,
        meters: row.meters.map((m) => ({
          meterId: m.meterId,
          from: m.from.toISOString(),
          to: m.to.toISOString(),
          energyReadings: m.energyReadings,
        })),
        acConsumedKwh: round(ac, 4),
        dcDeliveredKwh: round(dc, 4),
        efficiency: round(efficiency, 4),
        exactEfficiency: efficiency,
        alert: null,
        counts: { vehicleReadings: row.vehicleReadings, meterReadings: row.meterReadings },
      });
    }
    // Worst first; vehicles whose efficiency is undefined (AC 0, no vehicle readings) last.
    snapshot.vehicles.sort(
      (a, b) =>
        (a.exactEfficiency ?? Infinity) - (b.exactEfficiency ?? Infinity) ||
        (a.vehicleId < b.vehicleId ? -1 : 1),
    );
    snapshot.withoutMapping.sort();
    snapshot.withoutMeterData.sort();
    snapshot.sharedMeters = sharedMeters(rows);
    return snapshot;
  }
}
