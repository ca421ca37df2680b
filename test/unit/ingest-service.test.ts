import { createLogger } from '../../src/logger';
import type { IngestAdmission } from '../../src/telemetry/admission';
import { IngestService } from '../../src/telemetry/ingest-service';
import { createReadingValidator } from '../../src/telemetry/validation';
import { DeadlineError } from '../../src/with-timeout';
import { capturingLogger } from '../helpers/capturing-logger';

const valid = { meterId: 'M-1', kwhConsumedAc: 1, voltage: 230, timestamp: '2024-04-01T00:00:00Z' };

/** An ingest service that admits everything and stores with `deps.storeBatches`. */
const serviceWith = (
  deps: Pick<ConstructorParameters<typeof IngestService>[0], 'storeBatches' | 'logger' | 'metrics'>,
) =>
  new IngestService({
    validator: createReadingValidator({ maxClockSkewS: 300 }),
    admission: {
      check: () => undefined,
      noteStored: () => undefined,
    } as unknown as IngestAdmission,
    config: { maxBatchReadings: 10, queueBatchReadings: 10 },
    ...deps,
  });

test('when a batch with an invalid reading is tried again after its store was refused for now, then the invalid reading is counted once', async () => {
  const rejected: string[] = [];
  let stores = 0;
  const service = serviceWith({
    // Redis refuses the first store, takes the second (as the MQTT intake's retry meets it).
    storeBatches: async () => {
      stores += 1;
      if (stores === 1) throw new Error('Redis connection is reconnecting');
    },
    logger: createLogger({ level: 'silent', name: 'unit' }),
    metrics: {
      onAccepted: () => undefined,
      onRejected: (reason, count) => rejected.push(`${reason} x${count}`),
      onBatchStored: () => undefined,
      onUnavailable: () => undefined,
    },
  });
  const input = { kind: 'batch' as const, items: [{ value: valid }, { value: { bad: 1 } }] };
  await expect(service.ingest(input)).rejects.toMatchObject({ statusCode: 503 });
  expect(await service.ingest(input)).toMatchObject({ kind: 'batch', accepted: 1 });
  expect(rejected).toEqual(['unrecognised_reading x1']);
});

test('when Redis refuses every store under load, then the refusals are one warning an interval, not one a request', async () => {
  const { logger, lines } = capturingLogger();
  const service = serviceWith({
    storeBatches: () => Promise.reject(new Error('Redis connection is reconnecting')),
    logger,
  });
  for (let i = 0; i < 50; i += 1) {
    await expect(service.ingest({ kind: 'single', value: valid })).rejects.toMatchObject({
      statusCode: 503,
    });
  }
  expect(lines.map((l) => l.msg)).toEqual([
    'enqueue failed: refused as unavailable (HTTP 503; MQTT tries again)',
  ]);
});

test('when a store passes its deadline, then the 503 says the readings may have been stored and to send them again, not that Redis is unavailable', async () => {
  const service = serviceWith({
    // A write sent to a slow Redis lands after the deadline: the client must not take it as lost.
    storeBatches: () => Promise.reject(new DeadlineError('enqueue took longer than 1000 ms')),
    logger: createLogger({ level: 'silent', name: 'unit' }),
  });
  await expect(service.ingest({ kind: 'single', value: valid })).rejects.toMatchObject({
    statusCode: 503,
    code: 'redis_unavailable',
    message:
      'The ingest queue (Redis) did not answer within 1000 ms: the readings may have been stored or not; send them again as they are (a reading sent twice is stored once)',
  });
});
