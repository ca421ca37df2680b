import { createReadingValidator } from '../../src/telemetry/validation';
import { retainedFrom } from '../../src/stores/retention';

const NOW = Date.parse('2024-03-20T10:17:00Z');
const reading = (timestamp: string) => ({ meterId: 'M-1', kwhConsumedAc: 1, timestamp });

describe('RETENTION_DAYS', () => {
  test('keeps whole UTC days from the start of the day that many days ago; 0 keeps everything', () => {
    expect(new Date(retainedFrom(NOW, 3) as number).toISOString()).toBe('2024-03-17T00:00:00.000Z');
    expect(retainedFrom(NOW, 0)).toBeNull();
  });

  test('when a reading is older than history keeps, then it is refused by name; a mapping instant is not', () => {
    const validator = createReadingValidator({
      maxClockSkewS: 300,
      retentionDays: 3,
      now: () => NOW,
    });
    const old = validator.validateReading(reading('2024-03-16T23:59:59.999Z'));
    expect(old).toEqual({
      ok: false,
      failure: {
        error: 'timestamp_before_retention',
        message:
          '/timestamp is before 2024-03-17T00:00:00.000Z, the oldest day history keeps (RETENTION_DAYS=3)',
        details: [
          {
            path: '/timestamp',
            message: 'must not be before 2024-03-17T00:00:00.000Z (RETENTION_DAYS=3)',
          },
        ],
      },
    });
    expect(validator.validateReading(reading('2024-03-17T00:00:00Z')).ok).toBe(true);
    // A vehicle may have charged from a meter since long before what history keeps.
    expect(validator.checkTimestamp('2024-01-01T00:00:00Z', '/since').ok).toBe(true);
  });
});
