import { Type } from '@sinclair/typebox';
import { notFound } from '../errors';
import {
  defineRoute,
  reply,
  type AnyRoute,
  type ResponseDeclaration,
} from '../http/route-contract';
import { DEFAULT_PAGE_SIZE, nextCursorOf, pageQuery } from '../http/keyset-paging';
import { DeviceId, ErrorBody, Instant, Nullable } from '../schema/primitives';
import type { DeviceStatus, StatusStore } from '../stores/status-store';
import type { LiveStateStore } from '../telemetry/live-state';
import type { ChargePointRecord, ChargePointStore } from './charge-point-store';
import { connectorMeterId, type ChargePointState } from './charge-point-state';
import { CHARGE_POINT_ID_PATTERN, CHARGE_POINT_ID_RULE } from './charge-point-id';
import { OCPP_PATH, UPGRADE_REFUSALS } from './ocpp-endpoint';
import type { IdTag, IdTagStore } from './id-tag-store';
import type { Transaction, TransactionStore } from './transaction-store';

/**
 * OCPP idTags are CiString20: up to 20 characters, which a charge point sends as they are; here
 * printable ASCII, any of them (a card's or an app's token may hold spaces, # or /).
 */
const IdTagParam = Type.String({
  minLength: 1,
  maxLength: 20,
  // Not blank: a blank token identifies no one (Authorize answers Invalid).
  pattern: '^(?=.*[\\x21-\\x7E])[\\x20-\\x7E]{1,20}$',
  description:
    'an RFID card or app token: 1-20 printable ASCII characters, not spaces alone (in the path URL-encoded: a space %20, # %23, / %2F), compared case-insensitively',
});

const ChargePointIdParam = Type.String({
  pattern: CHARGE_POINT_ID_PATTERN,
  description: CHARGE_POINT_ID_RULE,
});

const IdTagBody = Type.Object(
  { vehicleId: DeviceId },
  { $id: 'IdTagRequest', additionalProperties: false },
);

const IdTag = Type.Object(
  { idTag: Type.String(), vehicleId: Type.String(), updatedAt: Instant },
  { $id: 'IdTag', additionalProperties: false },
);

const IdTagList = Type.Object(
  { idTags: Type.Array(IdTag), nextCursor: Nullable(Type.String()) },
  { $id: 'IdTagList', additionalProperties: false },
);

const OpenTransaction = Type.Object(
  {
    transactionId: Type.Integer(),
    idTag: Type.String(),
    vehicleId: Nullable(Type.String()),
    startedAt: Instant,
    meterStartKwh: Type.Number(),
  },
  { additionalProperties: false },
);

/** What a StatusNotification adds to its status and error code, as both responses show it. */
export const StatusDetails = {
  info: Nullable(Type.String({ description: 'free text the charge point added (OCPP info)' })),
  vendorErrorCode: Nullable(Type.String({ description: "the manufacturer's own error code" })),
};

const Connector = Type.Object(
  {
    connectorId: Type.Integer({ description: '0: the charge point as a whole' }),
    meterId: Type.String({
      description: 'the meter the connector reports as: {chargePointId}:{connectorId}',
    }),
    status: Nullable(Type.String({ description: 'the last StatusNotification status' })),
    errorCode: Nullable(Type.String()),
    ...StatusDetails,
    statusAt: Nullable(Instant),
    registerKwh: Nullable(Type.Number({ description: "the meter's latest register reading" })),
    registerAt: Nullable(Instant),
    openTransaction: Nullable(OpenTransaction),
  },
  { additionalProperties: false },
);

const ChargePoint = Type.Object(
  {
    id: Type.String(),
    connected: Type.Boolean(),
    connectedAt: Nullable(Instant),
    lastSeenAt: Nullable(Instant),
    lastBootAt: Nullable(Instant),
    vendor: Nullable(Type.String()),
    model: Nullable(Type.String()),
    firmwareVersion: Nullable(Type.String()),
    connectors: Type.Array(Connector),
  },
  { $id: 'ChargePoint', additionalProperties: false },
);

const ChargePointList = Type.Object(
  { chargePoints: Type.Array(ChargePoint), nextCursor: Nullable(Type.String()) },
  { $id: 'ChargePointList', additionalProperties: false },
);

/** A refusal of the WebSocket upgrade, as the API document lists it. */
const upgradeRefusal = (
  status: keyof typeof UPGRADE_REFUSALS,
  why: string,
  headers?: ResponseDeclaration['headers'],
) => ({
  [status]: {
    description: `the WebSocket upgrade refused, ${UPGRADE_REFUSALS[status].error}: ${why}`,
    schema: ErrorBody,
    ...(headers ? { headers } : {}),
  },
});

/** A connector meter's latest register reading: kWh, and the instant it was read (ms). */
interface Register {
  kwh: number;
  at: number;
}

const openTransactionJson = (t: Transaction) => ({
  transactionId: t.id,
  idTag: t.idTag,
  vehicleId: t.vehicleId,
  startedAt: t.startedAt.toISOString(),
  meterStartKwh: t.meterStartWh / 1000,
});

const idTagJson = (tag: IdTag) => ({ ...tag, updatedAt: tag.updatedAt.toISOString() });

const idTagNotRegistered = (idTag: string) =>
  notFound(`idTag ${idTag} is not registered to a vehicle`);

/** `/v1/id-tags/{idTag}`, `/v1/charge-points[/{id}]`, and plain HTTP at the OCPP endpoint. */
export function ocppRoutes({
  idTags,
  chargePoints,
  state,
  transactions,
  liveState,
  statusStore,
  registerIdTag,
  now = Date.now,
}: {
  idTags: IdTagStore;
  chargePoints: ChargePointStore;
  state: ChargePointState;
  transactions: TransactionStore;
  liveState: LiveStateStore;
  statusStore: StatusStore;
  /** Registers the tag (ChargePointService.registerIdTag). */
  registerIdTag: (idTag: string, vehicleId: string) => Promise<IdTag>;
  now?: () => number;
}): AnyRoute[] {
  const idTagParams = Type.Object({ idTag: IdTagParam });

  /**
   * Each connector meter's latest register: the newer of its live state and its status row, as
   * the meter's own status answers (live state lost with a Redis that restarted empty, or kept
   * under other keys by an older release, starts again from whatever arrives next, which may be a
   * queued older reading). One statement for all the meters.
   */
  async function registersOf(meterIds: string[]): Promise<Map<string, Register>> {
    const [live, stored] = await Promise.all([
      Promise.all(meterIds.map((m) => liveState.get('meter', m))),
      meterIds.length > 0
        ? statusStore.getMany('meter', meterIds)
        : new Map<string, DeviceStatus>(),
    ]);
    const registers = new Map<string, Register>();
    const consider = (meterId: string, at: number, values: Record<string, number>) => {
      const kwh = values.kwhConsumedAc;
      const known = registers.get(meterId);
      if (kwh !== undefined && (!known || at > known.at)) registers.set(meterId, { kwh, at });
    };
    meterIds.forEach((meterId, i) => {
      const reading = live[i];
      if (reading) consider(meterId, reading.ts, reading.values);
    });
    for (const [meterId, row] of stored) consider(meterId, row.ts.getTime(), row.values);
    return registers;
  }

  /**
   * Everything known of these charge points (boot record, live state, connectors), in their
   * order; null for one never seen. Their open transactions and registers are read together.
   */
  async function describeMany(ids: string[], knownRecords?: (ChargePointRecord | null)[]) {
    const at = new Date(now());
    const [records, lives, open] = await Promise.all([
      knownRecords ?? Promise.all(ids.map((id) => chargePoints.get(id))),
      Promise.all(ids.map((id) => state.get(id, at))),
      transactions.openOnAny(ids),
    ]);
    // Newest first: a connector shows its latest open transaction.
    open.sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime() || b.id - a.id);
    const openOn = new Map<string, Transaction>(); // by connector meter
    const withOpen = new Map<string, number[]>(); // charge point -> its connectors with one
    for (const t of open) {
      const meterId = connectorMeterId(t.chargePointId, t.connectorId);
      if (openOn.has(meterId)) continue;
      openOn.set(meterId, t);
      withOpen.set(t.chargePointId, [...(withOpen.get(t.chargePointId) ?? []), t.connectorId]);
    }
    const connectorIds = ids.map((id, i) =>
      [
        ...new Set([
          ...(lives[i]?.connectors.map((c) => c.connectorId) ?? []),
          ...(withOpen.get(id) ?? []),
        ]),
      ].sort((a, b) => a - b),
    );
    const registers = await registersOf(
      ids.flatMap((id, i) => connectorIds[i].map((c) => connectorMeterId(id, c))),
    );
    return ids.map((id, i) => {
      const [record, live] = [records[i], lives[i]];
      if (!record && !live) return null;
      const connectors = connectorIds[i].map((connectorId) => {
        const meterId = connectorMeterId(id, connectorId);
        const status = live?.connectors.find((c) => c.connectorId === connectorId)?.status;
        const register = registers.get(meterId);
        const transaction = openOn.get(meterId);
        return {
          connectorId,
          meterId,
          status: status?.status ?? null,
          errorCode: status?.errorCode ?? null,
          info: status?.info ?? null,
          vendorErrorCode: status?.vendorErrorCode ?? null,
          statusAt: status?.at ?? null,
          registerKwh: register?.kwh ?? null,
          registerAt: register ? new Date(register.at).toISOString() : null,
          openTransaction: transaction ? openTransactionJson(transaction) : null,
        };
      });
      return {
        id,
        connected: live?.connected ?? false,
        connectedAt: live?.connectedAt ?? null,
        lastSeenAt: live?.lastSeenAt ?? null,
        lastBootAt: record?.lastBootAt?.toISOString() ?? live?.lastBootAt ?? null,
        vendor: record?.vendor ?? null,
        model: record?.model ?? null,
        firmwareVersion: record?.firmwareVersion ?? null,
        connectors,
      };
    });
  }

  return [
    defineRoute({
      method: 'put',
      path: '/v1/id-tags/{idTag}',
      operationId: 'registerIdTag',
      summary: 'Registers which vehicle an idTag (RFID card, app token) identifies',
      description:
        'A charging transaction started with this idTag maps the vehicle to the connector from its start; so does one still open that started with it while it was unknown.',
      scope: 'admin',
      database: true,
      params: idTagParams,
      body: { schema: IdTagBody, name: 'id tag', read: 'json' },
      responses: { 200: { description: 'registered', schema: IdTag } },
      handler: async ({ params, body }) => {
        return reply(200, idTagJson(await registerIdTag(params.idTag, body.vehicleId)));
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/id-tags',
      operationId: 'listIdTags',
      summary: 'Registered idTags and their vehicles, in idTag order (upper-case), paged',
      scope: 'read',
      database: true,
      query: pageQuery(IdTagParam),
      responses: { 200: { description: 'a page of idTags', schema: IdTagList } },
      handler: async ({ query }) => {
        const limit = query.limit ?? DEFAULT_PAGE_SIZE;
        const tags = await idTags.list(limit, query.cursor ?? null);
        return reply(200, {
          idTags: tags.map(idTagJson),
          nextCursor: nextCursorOf(tags, limit, (t) => t.idTag),
        });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/id-tags/{idTag}',
      operationId: 'getIdTag',
      summary: 'The vehicle an idTag identifies',
      scope: 'read',
      database: true,
      params: idTagParams,
      responses: {
        200: { description: 'the registration', schema: IdTag },
        404: { description: 'not registered', schema: ErrorBody },
      },
      handler: async ({ params }) => {
        const tag = await idTags.get(params.idTag);
        if (!tag) throw idTagNotRegistered(params.idTag);
        return reply(200, idTagJson(tag));
      },
    }),
    defineRoute({
      method: 'delete',
      path: '/v1/id-tags/{idTag}',
      operationId: 'deleteIdTag',
      summary: 'Forgets an idTag',
      scope: 'admin',
      database: true,
      params: idTagParams,
      responses: {
        204: { description: 'forgotten' },
        404: { description: 'not registered', schema: ErrorBody },
      },
      handler: async ({ params }) => {
        if (!(await idTags.delete(params.idTag))) throw idTagNotRegistered(params.idTag);
        return reply(204, undefined);
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/charge-points',
      operationId: 'listChargePoints',
      summary: 'OCPP charge points that have connected, in id order, paged',
      scope: 'read',
      database: true,
      query: pageQuery(ChargePointIdParam),
      responses: { 200: { description: 'a page of charge points', schema: ChargePointList } },
      handler: async ({ query }) => {
        const limit = query.limit ?? DEFAULT_PAGE_SIZE;
        const records = await chargePoints.list(limit, query.cursor ?? null);
        const described = await describeMany(
          records.map((r) => r.id),
          records,
        );
        return reply(200, {
          chargePoints: described.filter((d): d is NonNullable<typeof d> => d !== null),
          nextCursor: nextCursorOf(records, limit, (r) => r.id),
        });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/charge-points/{chargePointId}',
      operationId: 'getChargePoint',
      summary:
        'Connection state, last boot, connectors with their status, register and open transaction',
      scope: 'read',
      database: true,
      params: Type.Object({ chargePointId: ChargePointIdParam }),
      responses: {
        200: { description: 'the charge point', schema: ChargePoint },
        404: { description: 'never connected', schema: ErrorBody },
      },
      handler: async ({ params }) => {
        const [described] = await describeMany([params.chargePointId]);
        if (!described) throw notFound(`Charge point ${params.chargePointId} has never connected`);
        return reply(200, described);
      },
    }),
    defineRoute({
      method: 'get',
      path: `${OCPP_PATH}/{chargePointId}`,
      operationId: 'ocppEndpoint',
      summary: 'The OCPP 1.6J WebSocket endpoint of a charge point',
      description:
        'Charge points connect here with a WebSocket upgrade and the subprotocol ocpp1.6 (with AUTH=on, HTTP Basic: see the README). A plain HTTP request (an installer checking the URL) is told so. A refused upgrade has the JSON error body (its statuses below).',
      params: Type.Object({ chargePointId: ChargePointIdParam }),
      responses: {
        426: { description: 'not a WebSocket upgrade', schema: ErrorBody },
        // Answers of the upgrade itself (ocpp-endpoint.ts), which this handler never sees.
        ...upgradeRefusal(400, 'no ocpp1.6 subprotocol offered'),
        ...upgradeRefusal(401, 'with AUTH=on, no valid charge point key', {
          'WWW-Authenticate': `Basic: ${UPGRADE_REFUSALS[401].message}`,
        }),
        ...upgradeRefusal(404, 'an id the engine does not take'),
        ...upgradeRefusal(503, 'the engine is shutting down'),
      },
      handler: ({ params }) =>
        reply(
          426,
          {
            error: 'upgrade_required',
            message: `${OCPP_PATH}/${params.chargePointId} is an OCPP 1.6J endpoint: a charge point connects with a WebSocket upgrade and the subprotocol ocpp1.6 (ws://, or wss:// behind TLS)`,
            details: [],
          },
          { Upgrade: 'websocket' },
        ),
    }),
  ];
}
