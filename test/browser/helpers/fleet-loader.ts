import { parseArgs, simulate } from '../../../scripts/simulate';
import type { Fleet } from '../../../scripts/fleet-model';
import { waitForDrained, type TestEngine } from '../../helpers/engine';

/**
 * Loads a simulated fleet into a real engine through its API (mapping, then batch ingest of the
 * last `backfill`), as `npm run simulate -- --backfill` does, and waits until PostgreSQL has it.
 * The fleet knows which of its chargers it made faulty.
 */
export async function loadSimulatedFleet(
  engine: TestEngine,
  options: {
    vehicles: number;
    faulty: number;
    backfill: string;
    interval?: number;
    key?: string;
    /** Chargers are OCPP charge points ({prefix}CP-n), as `--ocpp` makes them. */
    ocpp?: boolean;
  },
): Promise<Fleet> {
  const fleet = await simulate(
    {
      ...parseArgs([
        '--meters',
        String(options.vehicles),
        '--vehicles',
        String(options.vehicles),
        '--faulty',
        String(options.faulty),
        '--backfill',
        options.backfill,
        '--interval',
        String(options.interval ?? 60),
        '--quiet',
        ...(options.ocpp ? ['--ocpp'] : []),
      ]),
      url: engine.url,
      key: options.key ?? null,
    },
    () => undefined,
  );
  await waitForDrained(engine.queue, 120_000);
  return fleet;
}
