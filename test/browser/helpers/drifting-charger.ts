import type { TestEngine } from '../../helpers/engine';
import { waitForDrained } from '../../helpers/engine';
import { post } from './requests';

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 3_600_000;
/** DC power while charging, as the simulated fleet's chargers give it. */
const DC_KW = 11;

export interface DriftingCharger {
  vehicleId: string;
  meterId: string;
  /** The charger's efficiency in the days before, and in its last session. */
  usual: number;
  degraded: number;
  /** The last (degraded) session's start: its first reading minus one minute. */
  lastSessionStartMs: number;
}

/**
 * A vehicle charging one hour a day at the same charger, per-minute readings over HTTP: `days`
 * sessions at `usual` efficiency, then one at `degraded` starting `lastSessionStartMs`. With at
 * least 5 sessions before it, the engine's drift rule compares the last one with their median.
 */
export async function loadDriftingCharger(
  engine: TestEngine,
  options: {
    vehicleId: string;
    meterId: string;
    usual: number;
    degraded: number;
    days: number;
    lastSessionStartMs: number;
  },
): Promise<DriftingCharger> {
  const { vehicleId, meterId, usual, degraded, days, lastSessionStartMs } = options;
  const starts = [
    ...Array.from({ length: days }, (_, i) => lastSessionStartMs - (days - i) * DAY_MS),
    lastSessionStartMs,
  ];
  await post(engine, '/v1/telemetry/map', {
    vehicleId,
    meterId,
    since: new Date(starts[0] - MINUTE_MS).toISOString(),
  });
  const dcPerMinute = DC_KW / 60;
  const readings = starts.flatMap((start, session) => {
    const efficiency = start === lastSessionStartMs ? degraded : usual;
    // A reading that adds nothing at the start, then 60 charging minutes.
    return Array.from({ length: 61 }, (_, m) => {
      const timestamp = new Date(start + m * MINUTE_MS).toISOString();
      const dc = m === 0 ? 0 : dcPerMinute;
      return [
        {
          vehicleId,
          soc: 30 + session + m * 0.5,
          kwhDeliveredDc: dc,
          batteryTemp: 25 + m * 0.2,
          timestamp,
        },
        { meterId, kwhConsumedAc: dc / efficiency, voltage: 230, timestamp },
      ];
    }).flat();
  });
  await post(engine, '/v1/telemetry/ingest', readings);
  await waitForDrained(engine.queue, 60_000);
  return { vehicleId, meterId, usual, degraded, lastSessionStartMs };
}
