/**
 * JSON Schemas of every response body. The API document publishes them and a test validates real
 * responses against them, so the document cannot drift from what the server sends.
 */
const timestamp = { type: 'string', format: 'date-time' } as const;
const nullableNumber = { type: ['number', 'null'] } as const;

const errorDetail = {
  type: 'object',
  required: ['path', 'message'],
  additionalProperties: false,
  properties: {
    path: {
      type: 'string',
      description: 'JSON pointer of the offending field ("/" for the whole value)',
    },
    message: { type: 'string' },
  },
} as const;

const itemError = {
  type: 'object',
  required: ['index', 'error', 'message', 'details'],
  additionalProperties: false,
  properties: {
    index: {
      type: 'integer',
      description: 'position of the reading in the array or NDJSON lines (blank lines skipped)',
    },
    error: { type: 'string' },
    message: { type: 'string' },
    details: { type: 'array', items: errorDetail },
  },
} as const;

export const errorResponseSchema = {
  type: 'object',
  required: ['error', 'message', 'details'],
  properties: {
    error: { type: 'string', description: 'a stable machine-readable code, e.g. invalid_reading' },
    message: { type: 'string', description: 'a sentence a person understands' },
    details: { type: 'array', items: errorDetail },
    accepted: { type: 'integer', description: 'no_valid_readings only: 0' },
    rejected: { type: 'integer', description: 'no_valid_readings only' },
    errors: {
      type: 'array',
      items: itemError,
      description: 'no_valid_readings only: each reading and why',
    },
  },
} as const;

export const ingestSingleResponseSchema = {
  type: 'object',
  required: ['accepted', 'type', 'id'],
  additionalProperties: false,
  properties: {
    accepted: { const: 1 },
    type: { enum: ['meter', 'vehicle'] },
    id: { type: 'string' },
  },
} as const;

export const ingestBatchResponseSchema = {
  type: 'object',
  required: ['accepted', 'rejected'],
  additionalProperties: false,
  properties: {
    accepted: { type: 'integer', minimum: 0 },
    rejected: { type: 'integer', minimum: 0 },
    errors: { type: 'array', items: itemError },
  },
} as const;

const period = {
  type: 'object',
  required: ['meterId', 'from', 'to'],
  additionalProperties: false,
  properties: {
    meterId: { type: 'string' },
    from: timestamp,
    to: { anyOf: [timestamp, { type: 'null' }] },
  },
} as const;

export const mappingResponseSchema = {
  type: 'object',
  required: ['vehicleId', 'meterId', 'since', 'changed', 'previous'],
  additionalProperties: false,
  properties: {
    vehicleId: { type: 'string' },
    meterId: { type: 'string' },
    since: timestamp,
    changed: { type: 'boolean', description: 'false when the vehicle was already on this meter' },
    previous: { anyOf: [period, { type: 'null' }] },
  },
} as const;

export const mappingHistorySchema = {
  type: 'object',
  required: ['vehicleId', 'current', 'history'],
  additionalProperties: false,
  properties: {
    vehicleId: { type: 'string' },
    current: { anyOf: [period, { type: 'null' }] },
    history: { type: 'array', items: period },
  },
} as const;

const source = {
  enum: ['live', 'database'],
  description: 'live: Redis; database: the status tables',
} as const;

export const meterStatusSchema = {
  type: 'object',
  required: ['meterId', 'timestamp', 'kwhConsumedAc', 'voltage', 'source'],
  additionalProperties: false,
  properties: {
    meterId: { type: 'string' },
    timestamp,
    kwhConsumedAc: { type: 'number' },
    voltage: { type: 'number' },
    source,
  },
} as const;

export const vehicleStatusSchema = {
  type: 'object',
  required: ['vehicleId', 'timestamp', 'soc', 'kwhDeliveredDc', 'batteryTemp', 'source'],
  additionalProperties: false,
  properties: {
    vehicleId: { type: 'string' },
    timestamp,
    soc: { type: 'number' },
    kwhDeliveredDc: { type: 'number' },
    batteryTemp: { type: 'number' },
    source,
  },
} as const;

export const performanceReportSchema = {
  type: 'object',
  required: ['vehicleId', 'window', 'meters', 'energy', 'battery', 'counts', 'warnings', 'cache'],
  additionalProperties: false,
  properties: {
    vehicleId: { type: 'string' },
    window: {
      type: 'object',
      required: ['from', 'to'],
      additionalProperties: false,
      properties: { from: timestamp, to: timestamp },
    },
    meters: {
      type: 'array',
      description:
        'the meters the vehicle was mapped to, each clipped to the part of the window it held',
      items: {
        type: 'object',
        required: ['meterId', 'from', 'to'],
        additionalProperties: false,
        properties: { meterId: { type: 'string' }, from: timestamp, to: timestamp },
      },
    },
    energy: {
      type: 'object',
      required: ['acConsumedKwh', 'dcDeliveredKwh', 'efficiency', 'threshold', 'alert', 'mode'],
      additionalProperties: false,
      properties: {
        acConsumedKwh: nullableNumber,
        dcDeliveredKwh: nullableNumber,
        efficiency: {
          type: ['number', 'null'],
          description: 'DC / AC, 4 decimals; null when AC is 0 or unknown',
        },
        threshold: { type: 'number' },
        alert: { type: ['boolean', 'null'], description: 'efficiency below threshold' },
        mode: { enum: ['interval', 'cumulative'] },
      },
    },
    battery: {
      type: 'object',
      required: ['avgTempC', 'minTempC', 'maxTempC', 'socStart', 'socEnd', 'socMin', 'socMax'],
      additionalProperties: false,
      properties: {
        avgTempC: nullableNumber,
        minTempC: nullableNumber,
        maxTempC: nullableNumber,
        socStart: nullableNumber,
        socEnd: nullableNumber,
        socMin: nullableNumber,
        socMax: nullableNumber,
      },
    },
    counts: {
      type: 'object',
      required: ['vehicleReadings', 'meterReadings'],
      additionalProperties: false,
      properties: { vehicleReadings: { type: 'integer' }, meterReadings: { type: 'integer' } },
    },
    warnings: { type: 'array', items: { type: 'string' } },
    series: {
      type: 'array',
      description:
        'with bucket=hour: one entry per hour of the window (the first and last may be partial)',
      items: {
        type: 'object',
        required: ['hour', 'acConsumedKwh', 'dcDeliveredKwh', 'efficiency', 'avgTempC', 'socEnd'],
        additionalProperties: false,
        properties: {
          hour: timestamp,
          acConsumedKwh: nullableNumber,
          dcDeliveredKwh: nullableNumber,
          efficiency: nullableNumber,
          avgTempC: nullableNumber,
          socEnd: nullableNumber,
        },
      },
    },
    cache: { enum: ['hit', 'miss', 'off'] },
  },
} as const;

export const healthSchema = {
  type: 'object',
  required: ['status'],
  additionalProperties: false,
  properties: {
    status: { enum: ['live', 'ready', 'not_ready'] },
    reason: { type: 'string' },
    checks: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

export const fleetReportSchema = {
  type: 'object',
  required: [
    'window',
    'mode',
    'below',
    'totals',
    'vehicles',
    'withoutMapping',
    'withoutMeterData',
    'nextCursor',
    'cache',
  ],
  additionalProperties: false,
  properties: {
    window: {
      type: 'object',
      required: ['from', 'to'],
      additionalProperties: false,
      properties: { from: timestamp, to: timestamp },
    },
    mode: { enum: ['interval', 'cumulative'] },
    below: { type: 'number', description: 'efficiency below this raises an alert' },
    totals: {
      type: 'object',
      required: ['vehiclesChecked', 'vehiclesFlagged', 'withoutMapping', 'withoutMeterData'],
      additionalProperties: false,
      properties: {
        vehiclesChecked: { type: 'integer' },
        vehiclesFlagged: { type: 'integer' },
        withoutMapping: { type: 'integer' },
        withoutMeterData: { type: 'integer' },
      },
    },
    vehicles: {
      type: 'array',
      description: 'worst efficiency first; undefined efficiency (AC 0, no vehicle readings) last',
      items: {
        type: 'object',
        required: [
          'vehicleId',
          'meters',
          'acConsumedKwh',
          'dcDeliveredKwh',
          'efficiency',
          'alert',
          'counts',
        ],
        additionalProperties: false,
        properties: {
          vehicleId: { type: 'string' },
          meters: performanceReportSchema.properties.meters,
          acConsumedKwh: nullableNumber,
          dcDeliveredKwh: nullableNumber,
          efficiency: nullableNumber,
          alert: { type: ['boolean', 'null'] },
          counts: performanceReportSchema.properties.counts,
        },
      },
    },
    withoutMapping: {
      type: 'array',
      items: { type: 'string' },
      description: 'vehicles with readings but no meter mapping in the window',
    },
    withoutMeterData: {
      type: 'array',
      items: { type: 'string' },
      description: 'vehicles whose mapped meters sent nothing in the window',
    },
    nextCursor: {
      type: ['string', 'null'],
      description: 'pass as cursor for the next page; null on the last',
    },
    cache: { enum: ['hit', 'miss', 'off'] },
  },
} as const;
