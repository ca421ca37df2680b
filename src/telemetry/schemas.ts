/**
 * JSON Schemas of everything a client sends. They are the single source of truth: the validators
 * are compiled from them once at start-up, and the API document publishes them as they are.
 */
export const DEVICE_ID_PATTERN = '^[A-Za-z0-9._:-]{1,64}$';

const deviceId = {
  type: 'string',
  minLength: 1,
  maxLength: 64,
  pattern: DEVICE_ID_PATTERN,
  description: '1-64 characters from A-Z a-z 0-9 . _ : -',
} as const;

const timestamp = {
  type: 'string',
  format: 'date-time',
  maxLength: 64,
  description:
    'RFC 3339 with a zone offset, e.g. 2024-03-20T10:00:00Z; at most MAX_CLOCK_SKEW_S in the future',
} as const;

const finiteNumber = (minimum: number, maximum?: number, description?: string) =>
  ({
    type: 'number', // ajv's number excludes Infinity and NaN (JSON.parse makes 1e400 Infinity)
    minimum,
    ...(maximum === undefined ? {} : { maximum }),
    ...(description ? { description } : {}),
  }) as const;

export const meterReadingSchema = {
  $id: 'MeterReading',
  type: 'object',
  description: 'A smart meter (grid side, AC) heartbeat.',
  required: ['meterId', 'kwhConsumedAc', 'voltage', 'timestamp'],
  additionalProperties: false,
  properties: {
    meterId: deviceId,
    kwhConsumedAc: finiteNumber(0, undefined, 'kWh drawn from the grid (see ENERGY_READINGS)'),
    voltage: finiteNumber(0, 1000, 'volts'),
    timestamp,
  },
} as const;

export const vehicleReadingSchema = {
  $id: 'VehicleReading',
  type: 'object',
  description: 'An electric vehicle (DC side) heartbeat.',
  required: ['vehicleId', 'soc', 'kwhDeliveredDc', 'batteryTemp', 'timestamp'],
  additionalProperties: false,
  properties: {
    vehicleId: deviceId,
    soc: finiteNumber(0, 100, 'state of charge, percent'),
    kwhDeliveredDc: finiteNumber(0, undefined, 'kWh stored in the battery (see ENERGY_READINGS)'),
    batteryTemp: finiteNumber(-50, 100, 'degrees Celsius'),
    timestamp,
  },
} as const;

export const mappingRequestSchema = {
  $id: 'MappingRequest',
  type: 'object',
  description: 'From `since` (default now) on, the vehicle charges from this meter.',
  required: ['vehicleId', 'meterId'],
  additionalProperties: false,
  properties: {
    vehicleId: deviceId,
    meterId: deviceId,
    since: timestamp,
  },
} as const;

export const deviceIdSchema = deviceId;
