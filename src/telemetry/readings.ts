/** A validated reading as the engine carries it: built field by field, never from the raw body. */
export type DeviceType = 'meter' | 'vehicle';

export interface MeterReading {
  type: 'meter';
  id: string;
  /** Epoch milliseconds (readings are stored with millisecond precision). */
  ts: number;
  kwhConsumedAc: number;
  voltage: number;
}

export interface VehicleReading {
  type: 'vehicle';
  id: string;
  ts: number;
  soc: number;
  kwhDeliveredDc: number;
  batteryTemp: number;
}

export type Reading = MeterReading | VehicleReading;

/** The payload of one BullMQ job: a batch of readings and when the API accepted them. */
export interface IngestJobData {
  acceptedAt: number;
  readings: Reading[];
}
