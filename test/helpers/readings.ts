import type { Reading, ReadingOf } from '../../src/devices/device-kinds';

type MeterReading = ReadingOf<'meter'>;
type VehicleReading = ReadingOf<'vehicle'>;

/** The two seed payloads of the product brief, as a client sends them. */
export const SEED_METER = {
  meterId: 'M-123',
  kwhConsumedAc: 150.5,
  voltage: 230,
  timestamp: '2024-03-20T10:00:00Z',
};
export const SEED_VEHICLE = {
  vehicleId: 'V-456',
  soc: 85,
  kwhDeliveredDc: 120.2,
  batteryTemp: 35.5,
  timestamp: '2024-03-20T10:00:00Z',
};

export const meterReading = (
  id: string,
  ts: number,
  kwhConsumedAc = 1,
  voltage = 230,
): MeterReading => ({
  type: 'meter',
  id,
  ts,
  kwhConsumedAc,
  voltage,
});

export const vehicleReading = (
  id: string,
  ts: number,
  soc = 50,
  kwhDeliveredDc = 0.9,
  batteryTemp = 30,
): VehicleReading => ({
  type: 'vehicle',
  id,
  ts,
  soc,
  kwhDeliveredDc,
  batteryTemp,
});

/** A deterministic pseudo-random generator, so a failing shuffle can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  const copy = items.slice();
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/** `devices` meters and vehicles each reporting every minute for `minutes`, from `startMs`. */
export function fleetReadings(devices: number, minutes: number, startMs: number): Reading[] {
  const readings: Reading[] = [];
  for (let m = 0; m < minutes; m++) {
    for (let d = 0; d < devices; d++) {
      const ts = startMs + m * 60_000;
      readings.push(meterReading(`M-${d}`, ts, 0.5 + m / 100, 230));
      readings.push(vehicleReading(`V-${d}`, ts, Math.min(100, 20 + m), 0.45 + m / 100, 30));
    }
  }
  return readings;
}
