import Redis from 'ioredis';
import { warnIfReplicasLack } from '../../src/telemetry/ingest-pipeline';
import { capturingLogger } from '../helpers/capturing-logger';
import { waitFor } from '../helpers/engine';

describe('the start-up warning about REDIS_WAIT_REPLICAS', () => {
  test('when the replicas cannot be counted (INFO fails), then it says so, not that every reading is refused', async () => {
    // Nothing listens there and nothing is queued: INFO fails at once, as a timed-out one does.
    const redis = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false });
    const { logger, lines } = capturingLogger();
    try {
      warnIfReplicasLack(redis, 1, logger);
      await waitFor(async () => lines.length > 0, 5_000, 'the warning');
      expect(lines.map((l) => l.msg)).toEqual([
        'could not count the Redis replicas at start (REDIS_WAIT_REPLICAS): /health/ready says whether readings are refused for lack of them',
      ]);
    } finally {
      redis.disconnect();
    }
  });
});
