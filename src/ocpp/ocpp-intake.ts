import { Type } from '@sinclair/typebox';
import type { Knex } from 'knex';
import { redisUnavailable } from '../errors';
import type { RedisClient } from '../redis';
import { withTimeout } from '../with-timeout';
import type { Registry } from 'prom-client';
import type { ApiKey } from '../auth/api-keys';
import type { StatusExtension } from '../telemetry/status-routes';
import type { AnyRoute } from '../http/route-contract';
import type { Logger } from '../logger';
import { createOcppMetrics } from '../metrics';
import type { RedisKeys } from '../redis-keys';
import { Instant } from '../schema/primitives';
import type { DeviceSettingsStore } from '../stores/device-settings-store';
import type { MappingStore } from '../stores/mapping-store';
import type { StatusStore } from '../stores/status-store';
import type { IngestService } from '../telemetry/ingest-service';
import type { ReadingValidator } from '../telemetry/validation';
import type { LiveStateStore } from '../telemetry/live-state';
import { ChargePointRecorder } from './charge-point-recorder';
import { ChargePointService } from './charge-point-service';
import {
  ChargePointState,
  CONNECTOR_CHECK_MS,
  connectorMetersAmong,
  connectorOfMeterId,
} from './charge-point-state';
import { ChargePointStore } from './charge-point-store';
import { startConnectorGuardRestore } from './connector-guard-restore';
import { ConnectorRegisters } from './connector-registers';
import { IdTagRegistrations } from './id-tag-registrations';
import { IdTagStore } from './id-tag-store';
import { OCPP_ACTIONS, createOcppEndpoint, type OcppEndpoint } from './ocpp-endpoint';
import { StatusDetails, ocppRoutes } from './ocpp-routes';
import { TransactionStore } from './transaction-store';

const PING_INTERVAL_MS = 30_000;

/** An OCPP connector's last StatusNotification, in its meter's status. */
const ConnectorStatus = Type.Object(
  {
    status: Type.String(),
    errorCode: Type.String(),
    ...StatusDetails,
    at: Instant,
  },
  { additionalProperties: false, description: "the OCPP connector's last StatusNotification" },
);

export interface OcppIntake {
  endpoint: OcppEndpoint;
  routes: AnyRoute[];
  statusExtensions: StatusExtension[];
  /**
   * The charge point a meter is a connector of, or null: recorded in PostgreSQL (see
   * ChargePointStore.connectorOf) or live in Redis (connectorMetersAmong).
   */
  connectorOf(meterId: string): Promise<string | null>;
}

/**
 * The charge point a meter is a connector of: recorded in PostgreSQL, else live in Redis as
 * ingest's guard reads it (one that connected while PostgreSQL was away is there alone until its
 * record is written). Redis not answering in CONNECTOR_CHECK_MS refuses for now (503).
 */
async function connectorOf(
  chargePoints: ChargePointStore,
  redis: RedisClient,
  keys: RedisKeys,
  meterId: string,
): Promise<string | null> {
  const recorded = await chargePoints.connectorOf(meterId);
  const shape = connectorOfMeterId(meterId);
  if (recorded !== null || shape === null) return recorded;
  const live = await withTimeout(
    connectorMetersAmong(redis, keys, [meterId]),
    CONNECTOR_CHECK_MS,
    'connector check',
  ).catch(() => {
    throw redisUnavailable(
      `Redis is not available to tell whether meter ${meterId} is an OCPP connector; retry shortly`,
    );
  });
  return live.has(meterId) ? shape.chargePointId : null;
}

/** Charge points over OCPP 1.6J: the WebSocket endpoint, its stores and its HTTP routes. */
export function createOcppIntake({
  config,
  db,
  redis,
  keys,
  ingestService,
  validator,
  liveState,
  statusStore,
  mappingStore,
  settings,
  registry,
  logger,
}: {
  config: {
    auth: 'on' | 'off';
    apiKeys: readonly ApiKey[];
    ocppUnknownIdTags: 'accept' | 'reject';
    maxBatchReadings: number;
    bodyLimitBytes: number;
  };
  db: Knex;
  redis: RedisClient;
  keys: RedisKeys;
  ingestService: IngestService;
  validator: ReadingValidator;
  liveState: LiveStateStore;
  statusStore: StatusStore;
  mappingStore: MappingStore;
  settings: DeviceSettingsStore;
  registry: Registry;
  logger: Logger;
}): OcppIntake {
  // A charge point reads as disconnected once no replica has vouched for it in two pings.
  const state = new ChargePointState(redis, keys, 2 * PING_INTERVAL_MS + 5000);
  const chargePoints = new ChargePointStore(db);
  const transactions = new TransactionStore(db);
  const idTags = new IdTagStore(db);
  const metrics = createOcppMetrics(registry, OCPP_ACTIONS);
  const service = new ChargePointService({
    ingestService,
    state,
    recorder: new ChargePointRecorder({ store: chargePoints, logger }),
    transactions,
    idTags,
    registrations: new IdTagRegistrations(db),
    mapping: mappingStore,
    registers: ConnectorRegisters.using({
      settings,
      knownConnectors: (connectors) => state.knownConnectors(connectors),
    }),
    storedRegister: async (meterId) => {
      const live = await liveState.get('meter', meterId);
      const kwh = live?.values.kwhConsumedAc;
      return live && kwh !== undefined ? { kwh, atMs: live.ts } : null;
    },
    registersAround: (meterId, span) => transactions.registersAround(meterId, span),
    config,
    checkTimestamp: validator.checkTimestamp,
    metrics,
    logger,
  });
  const endpoint = createOcppEndpoint({
    service,
    state,
    config,
    metrics,
    logger,
    pingIntervalMs: PING_INTERVAL_MS,
  });
  const guardRestore = startConnectorGuardRestore({ state, chargePoints, logger });
  return {
    endpoint: {
      ...endpoint,
      async close() {
        await guardRestore.stop();
        await endpoint.close();
      },
    },
    routes: ocppRoutes({
      idTags,
      chargePoints,
      state,
      transactions,
      liveState,
      statusStore,
      registerIdTag: (idTag, vehicleId) => service.registerIdTag(idTag, vehicleId),
    }),
    connectorOf: (meterId) => connectorOf(chargePoints, redis, keys, meterId),
    statusExtensions: [
      {
        type: 'meter',
        name: 'connector',
        schema: ConnectorStatus,
        load: (meterId) => state.statusOf(meterId),
      },
    ],
  };
}
