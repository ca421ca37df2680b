import { Type } from '@sinclair/typebox';
import { AppError, notFound } from '../errors';
import { defineRoute, reply, type AnyRoute } from '../http/route-contract';
import type { Logger } from '../logger';
import {
  DeviceId,
  ErrorBody,
  Instant,
  instantMs,
  Nullable,
  PastTimestamp,
  Timestamp,
} from '../schema/primitives';
import type { MappingPeriod, MappingStore } from '../stores/mapping-store';
import type { ReadingValidator } from '../telemetry/validation';

const MappingRequest = Type.Object(
  { vehicleId: DeviceId, meterId: DeviceId, since: Type.Optional(Timestamp) },
  {
    $id: 'MappingRequest',
    description: 'From `since` (default now) on, the vehicle charges from this meter.',
    additionalProperties: false,
  },
);

const Period = Type.Object(
  { meterId: Type.String(), from: Instant, to: Nullable(Instant) },
  { additionalProperties: false },
);

const MappingResult = Type.Object(
  {
    vehicleId: Type.String(),
    meterId: Type.String(),
    since: Instant,
    changed: Type.Boolean({ description: 'false when the vehicle was already on this meter' }),
    previous: Nullable(Period),
  },
  { $id: 'MappingResult', additionalProperties: false },
);

const MappingHistory = Type.Object(
  { vehicleId: Type.String(), current: Nullable(Period), history: Type.Array(Period) },
  { $id: 'MappingHistory', additionalProperties: false },
);

const MappingEndRequest = Type.Object(
  { until: Type.Optional(PastTimestamp) },
  {
    $id: 'MappingEndRequest',
    description: 'From `until` (default now; no body: now) on, the vehicle charges from no meter.',
    additionalProperties: false,
  },
);

const MappingEnd = Type.Object(
  {
    vehicleId: Type.String(),
    ended: Period,
    changed: Type.Boolean({
      description:
        'false when the latest period had already ended (a retry): at `until`, or anywhere without one',
    }),
  },
  { $id: 'MappingEnd', additionalProperties: false },
);

const neverMapped = (vehicleId: string) =>
  notFound(`Vehicle ${vehicleId} has never been mapped to a meter`);

const periodJson = (p: MappingPeriod) => ({
  meterId: p.meterId,
  from: p.from.toISOString(),
  to: p.to ? p.to.toISOString() : null,
});

/** Which meter feeds which vehicle, with history: analytics counts each meter for its period. */
export function mappingRoutes({
  mappingStore,
  validator,
  logger,
  now = Date.now,
}: {
  mappingStore: MappingStore;
  validator: ReadingValidator;
  logger: Logger;
  now?: () => number;
}): AnyRoute[] {
  /** A request's instant (`since`, `until`), or now when it has none. */
  const instantOf = (value: string | undefined, name: string): number => {
    if (value === undefined) return now();
    const checked = validator.checkTimestamp(value, `/${name}`);
    if (!checked.ok) {
      throw new AppError(400, 'invalid_mapping', checked.failure.message, checked.failure.details);
    }
    return checked.value;
  };

  return [
    defineRoute({
      method: 'post',
      path: '/v1/telemetry/map',
      operationId: 'mapVehicleToMeter',
      summary: 'From `since` on, the vehicle charges from this meter',
      scope: 'admin',
      database: true,
      body: { schema: MappingRequest, name: 'mapping', read: 'json' },
      responses: {
        200: { description: 'the current mapping', schema: MappingResult },
        400: { description: 'invalid mapping', schema: ErrorBody },
        409: {
          description: 'since is not after the start of the current period',
          schema: ErrorBody,
        },
      },
      handler: async ({ body }) => {
        const { vehicleId, meterId, since } = body;
        const { current, previous, changed } = await mappingStore.assign(
          vehicleId,
          meterId,
          new Date(instantOf(since, 'since')),
          since === undefined ? { now } : {},
        );
        logger.info({ vehicleId, meterId, changed }, 'vehicle mapped to meter');
        return reply(200, {
          vehicleId,
          meterId: current.meterId,
          since: current.from.toISOString(),
          changed,
          previous: previous ? periodJson(previous) : null,
        });
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/telemetry/map/{vehicleId}',
      operationId: 'getVehicleMapping',
      summary: 'Current mapping and every past period of a vehicle',
      scope: 'read',
      database: true,
      params: Type.Object({ vehicleId: DeviceId }),
      responses: {
        200: {
          description:
            'mapping history; current is the period covering now (one whose since is ahead of the clock is in history only)',
          schema: MappingHistory,
        },
        404: { description: 'never mapped', schema: ErrorBody },
      },
      handler: async ({ params }) => {
        const periods = await mappingStore.history(params.vehicleId);
        if (periods.length === 0) throw neverMapped(params.vehicleId);
        // The period covering now: one whose since is ahead of the clock has not begun.
        const now = Date.now();
        const current =
          periods.find((p) => p.from.getTime() <= now && (p.to === null || p.to.getTime() > now)) ??
          null;
        return reply(200, {
          vehicleId: params.vehicleId,
          current: current ? periodJson(current) : null,
          history: periods.map(periodJson),
        });
      },
    }),
    defineRoute({
      method: 'post',
      path: '/v1/telemetry/map/{vehicleId}/end',
      operationId: 'endVehicleMapping',
      summary: 'From `until` on, the vehicle charges from no meter',
      description:
        'Ends the current period (a vehicle unplugged for good, decommissioned): readings of its meter after `until` count for no vehicle until it is mapped again. A retry of an end already made answers `changed: false`.',
      scope: 'admin',
      database: true,
      params: Type.Object({ vehicleId: DeviceId }),
      body: { schema: MappingEndRequest, name: 'mapping', read: 'json', optional: true },
      responses: {
        200: { description: 'the period ended', schema: MappingEnd },
        400: { description: 'invalid until', schema: ErrorBody },
        404: { description: 'never mapped', schema: ErrorBody },
        409: {
          description:
            'until is not after the start of the current period, or the latest period ended at another instant',
          schema: ErrorBody,
        },
      },
      handler: async ({ params, body }) => {
        const { vehicleId } = params;
        // An end ahead of the clock would keep the vehicle mapped until then, and refuse every
        // mapping meanwhile, an OCPP transaction's too (none may start before an end): refused
        // however far ahead, not only past the clock skew other instants are allowed.
        if (body.until !== undefined && instantMs(body.until) > now()) {
          throw new AppError(
            400,
            'invalid_mapping',
            '/until is in the future: a mapping ends now or earlier',
            [{ path: '/until', message: 'must not be in the future' }],
          );
        }
        const until = instantOf(body.until, 'until');
        const result = await mappingStore.end(
          vehicleId,
          new Date(until),
          body.until === undefined ? { now } : {},
        );
        if (!result) throw neverMapped(vehicleId);
        const { ended, changed } = result;
        logger.info({ vehicleId, meterId: ended.meterId, changed }, 'vehicle mapping ended');
        return reply(200, { vehicleId, ended: periodJson(ended), changed });
      },
    }),
  ];
}
