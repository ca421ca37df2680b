import type { Logger } from '../logger';
import type { ChargePointState } from './charge-point-state';
import type { ChargePointStore } from './charge-point-store';

/** Charge points marked per round trip to each store. */
const PAGE = 1000;

/** After PostgreSQL (or Redis) failed, the next try. */
const RETRY_MS = 5000;

export interface ConnectorGuardRestore {
  /** Stops watching Redis; waits for a restore in progress to stop. */
  stop(): Promise<void>;
}

/**
 * Ingest refuses another source's readings for an OCPP connector's meter once its charge point has
 * connected (connectorMetersAmong), by the charge point's record in Redis. A Redis that restarts
 * without its data forgets every record, and the connectors of a charge point not connected since
 * took HTTP and MQTT readings into the energy its transactions bill. So each time Redis is ready
 * (at the start, and again after an outage), every charge point PostgreSQL recorded is marked in
 * Redis anew (ChargePointState.markRecorded); PostgreSQL away, it tries again every RETRY_MS.
 * A Redis Cluster's client says nothing when one master comes back empty: there, only its replica
 * taking over (which keeps the data) or a restart of the API restores the marks.
 */
export function startConnectorGuardRestore({
  state,
  chargePoints,
  logger,
  retryMs = RETRY_MS,
}: {
  state: Pick<ChargePointState, 'onReady' | 'markRecorded'>;
  chargePoints: Pick<ChargePointStore, 'ids'>;
  logger: Logger;
  retryMs?: number;
}): ConnectorGuardRestore {
  let stopped = false;
  let running: Promise<void> | null = null;
  let again = false;
  let retry: NodeJS.Timeout | null = null;
  /** Failed since the last restore: said once, and its end said too. */
  let failing = false;

  async function restore(): Promise<void> {
    let marked = 0;
    for (let after: string | null = null; !stopped;) {
      const ids = await chargePoints.ids(PAGE, after);
      if (ids.length === 0) break;
      await state.markRecorded(ids);
      marked += ids.length;
      after = ids[ids.length - 1];
    }
    if (stopped) return;
    const message = "charge points' connectors guarded again in Redis";
    if (failing) logger.info({ chargePoints: marked }, message);
    else logger.debug({ chargePoints: marked }, message);
    failing = false;
  }

  function failed(err: unknown): void {
    if (stopped) return;
    if (!failing) {
      logger.warn(
        { err },
        "charge points' connectors not guarded again in Redis yet (PostgreSQL or Redis failed): readings for them from other sources are not refused until then; retrying",
      );
    }
    failing = true;
    retry = setTimeout(run, retryMs).unref();
  }

  function run(): void {
    if (stopped) return;
    if (running) {
      again = true; // Redis was ready again meanwhile: what was marked may be gone
      return;
    }
    if (retry) clearTimeout(retry);
    retry = null;
    running = restore()
      .catch(failed)
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          run();
        }
      });
  }

  const stopWatching = state.onReady(run);
  run();
  return {
    async stop() {
      stopped = true;
      stopWatching();
      if (retry) clearTimeout(retry);
      await running;
    },
  };
}
