import { Type } from '@sinclair/typebox';
import type { EnergyReadingsMode } from '../config';
import { conflict } from '../errors';
import { defineRoute, reply, type AnyRoute } from '../http/route-contract';
import { DeviceId, EnergyMode, ErrorBody, Nullable } from '../schema/primitives';
import type { DeviceSettingsStore } from '../stores/device-settings-store';
import { DEVICE_KINDS, type DeviceKind } from '../devices/device-kinds';

const SettingsRequest = Type.Object(
  {
    energyReadings: Nullable({
      ...EnergyMode,
      description: 'interval or cumulative (a register); null: back to ENERGY_READINGS',
    }),
  },
  { $id: 'DeviceSettingsRequest', additionalProperties: false },
);

const settingsSchema = (kind: DeviceKind) =>
  Type.Object(
    {
      [kind.idField]: Type.String(),
      energyReadings: EnergyMode,
      source: Type.Union([Type.Literal('device'), Type.Literal('default')], {
        description: "device: this device's own setting; default: ENERGY_READINGS",
      }),
    },
    { $id: `${kind.name}Settings`, additionalProperties: false },
  );

/**
 * `GET|PUT /v1/{meters|vehicles}/{id}/settings`: a device's energy semantics. Devices that post
 * over HTTP follow ENERGY_READINGS unless set here; OCPP connectors are registers on their own.
 */
export function settingsRoutes({
  settings,
  config,
  connectorOf,
}: {
  settings: DeviceSettingsStore;
  config: { energyReadings: EnergyReadingsMode };
  /** The OCPP charge point a meter is a connector of, or null. */
  connectorOf: (meterId: string) => Promise<string | null>;
}): AnyRoute[] {
  return DEVICE_KINDS.flatMap((kind) => {
    const path = `/v1/${kind.plural}/{${kind.idField}}/settings`;
    const params = Type.Object({ [kind.idField]: DeviceId });
    const answer = async (id: string) => {
      const own = await settings.energyReadings(kind.type, id);
      return reply(200, {
        [kind.idField]: id,
        energyReadings: own ?? config.energyReadings,
        source: own ? ('device' as const) : ('default' as const),
      });
    };
    const responses = { 200: { description: 'the settings', schema: settingsSchema(kind) } };
    return [
      defineRoute({
        method: 'get',
        path,
        operationId: `get${kind.name}Settings`,
        summary: `Settings of a ${kind.type}`,
        scope: 'read',
        database: true,
        params,
        responses,
        handler: ({ params: p }) => answer((p as Record<string, string>)[kind.idField]),
      }),
      defineRoute({
        method: 'put',
        path,
        operationId: `set${kind.name}Settings`,
        summary: `Sets how a ${kind.type}'s energy values are read`,
        scope: 'admin',
        database: true,
        params,
        body: { schema: SettingsRequest, name: 'settings', read: 'json' },
        responses: {
          200: responses[200],
          409: { description: "an OCPP connector's meter: a register by OCPP", schema: ErrorBody },
          503: {
            description:
              'PostgreSQL unavailable, too slow or too busy, or not migrated (database_unavailable, database_timeout, database_busy, database_not_migrated), or Redis unavailable to tell whether the meter is an OCPP connector (redis_unavailable); see Retry-After',
            schema: ErrorBody,
          },
        },
        handler: async ({ params: p, body }) => {
          const id = (p as Record<string, string>)[kind.idField];
          const chargePoint = kind.type === 'meter' ? await connectorOf(id) : null;
          if (chargePoint !== null) {
            throw conflict(
              'ocpp_connector',
              `Meter ${id} is a connector of OCPP charge point ${chargePoint}: its readings are the connector's register (cumulative), which no setting changes`,
            );
          }
          await settings.setEnergyReadings(kind.type, id, body.energyReadings);
          return answer(id);
        },
      }),
    ];
  });
}
