import { Type, type TSchema } from '@sinclair/typebox';
import { notFound, redisUnavailable } from '../errors';
import { withTimeout } from '../with-timeout';
import { defineRoute, reply, type AnyRoute } from '../http/route-contract';
import type { Logger } from '../logger';
import { RepeatedErrorLog } from '../repeated-errors';
import {
  DeviceId,
  EnergyMode,
  ErrorBody,
  Instant,
  Nullable,
  Timestamp,
} from '../schema/primitives';
import { DEFAULT_PAGE_SIZE, nextCursorOf, pageQuery } from '../http/keyset-paging';
import { instantParam } from '../http/instant-param';
import type { DeviceSettingsStore } from '../stores/device-settings-store';
import type { DeviceStatus, StatusStore } from '../stores/status-store';
import type { LiveState, LiveStateStore } from './live-state';
import {
  DEVICE_KINDS,
  type DeviceKind,
  type DeviceType,
  type FieldDeclaration,
} from '../devices/device-kinds';

const Source = Type.Union([Type.Literal('live'), Type.Literal('database')], {
  description: 'live: Redis; database: the status tables',
});

/**
 * More a status may tell about some devices, from elsewhere than their readings: e.g. an OCPP
 * connector's last StatusNotification, under `connector` in its meter's status.
 */
export interface StatusExtension {
  type: DeviceType;
  name: string;
  schema: TSchema;
  /** Its value for the device, or null when there is none (it is then left out). */
  load(id: string): Promise<unknown>;
}

/** `{ <idField>, timestamp, <fields> }` of a device's latest reading, from the kind's declaration. */
function readingProperties(kind: DeviceKind) {
  const fields = Object.fromEntries(
    Object.entries(kind.fields as Record<string, FieldDeclaration>).map(([name, field]) => [
      name,
      field.optional ? Nullable(Type.Number()) : Type.Number(),
    ]),
  );
  return { [kind.idField]: Type.String(), timestamp: Instant, ...fields };
}

/** The reading's part of a status: every field of the kind, null when the reading left it out. */
const readingJson = (kind: DeviceKind, id: string, ts: number, values: Record<string, number>) => ({
  [kind.idField]: id,
  timestamp: new Date(ts).toISOString(),
  ...Object.fromEntries(kind.fieldNames.map((n) => [n, values[n] ?? null])),
});

/** `{ <idField>, timestamp, <fields>, energyReadings, source }`, from the kind's declaration. */
function statusSchema(kind: DeviceKind, extensions: StatusExtension[]): TSchema {
  return Type.Object(
    {
      ...readingProperties(kind),
      energyReadings: Nullable({
        ...EnergyMode,
        description: 'how its energy values are read; null when PostgreSQL cannot tell',
      }),
      source: Source,
      ...Object.fromEntries(extensions.map((e) => [e.name, Type.Optional(e.schema)])),
    },
    { $id: `${kind.name}Status`, additionalProperties: false },
  );
}

/** How long a status answered from live state waits for PostgreSQL's row, which may be newer. */
const DATABASE_CHECK_MS = 200;

/**
 * `GET /v1/{meters|vehicles|...}/{id}/status`: the latest reading, from Redis or PostgreSQL;
 * `GET /v1/{meters|vehicles|...}`: every device that has reported, from PostgreSQL.
 */
export function statusRoutes({
  liveState,
  statusStore,
  settings,
  config,
  logger,
  extensions = [],
}: {
  liveState: LiveStateStore;
  statusStore: StatusStore;
  settings: DeviceSettingsStore;
  config: {
    /** RETENTION_DAYS: a device whose readings were all dropped is not said never to have sent. */
    retentionDays: number;
  };
  logger: Logger;
  extensions?: StatusExtension[];
}): AnyRoute[] {
  // While Redis or PostgreSQL is away every status read meets it: once an interval, not a read.
  const unavailable = new RepeatedErrorLog({ logger, level: 'warn' });

  /** The device's extensions that have a value; best effort, like the settings. */
  async function extras(type: DeviceType, id: string) {
    const mine = extensions.filter((e) => e.type === type);
    const values = await Promise.all(
      mine.map((e) =>
        e.load(id).catch((err: unknown) => {
          unavailable.log(err, { extension: e.name }, 'status extension unavailable');
          return null;
        }),
      ),
    );
    return Object.fromEntries(
      mine.flatMap((e, i) => (values[i] === null ? [] : [[e.name, values[i]]])),
    );
  }

  /** Best effort: live status must answer while PostgreSQL is down. */
  async function energyReadings(type: DeviceType, id: string) {
    try {
      const [mode] = await settings.energyReadingsOf(type, [id]);
      return mode;
    } catch (err) {
      unavailable.log(err, {}, 'device settings unavailable: status without energyReadings');
      return null;
    }
  }

  /**
   * The newer of the live state and the status row: live state lost (a Redis restarted without
   * its data) starts again from whatever arrives next, which may be older than the stored status.
   * With live state at hand, PostgreSQL is waited for only a moment (live status answers while it
   * is down or slow); without, its answer decides, and a device is unknown only when both could
   * answer (while Redis is away its readings may still be waiting there for the flusher).
   */
  async function latest(type: DeviceType, id: string) {
    const stored = statusStore.get(type, id);
    stored.catch(() => undefined); // awaited below, or given up on when live state answers
    let live: LiveState | null | undefined; // undefined: Redis did not answer
    try {
      live = await liveState.get(type, id);
    } catch (err) {
      unavailable.log(err, {}, 'live state unavailable: answering from PostgreSQL');
    }
    const fromDatabase = (row: DeviceStatus) => ({
      ts: row.ts.getTime(),
      values: row.values,
      source: 'database' as const,
    });
    if (live) {
      const row = await withTimeout(stored, DATABASE_CHECK_MS).catch(() => null);
      if (row && row.ts.getTime() > live.ts) return fromDatabase(row);
      return { ts: live.ts, values: live.values, source: 'live' as const };
    }
    const row = await stored;
    if (row) return fromDatabase(row);
    if (live === undefined) {
      throw redisUnavailable(
        `Redis is not available and PostgreSQL has no reading of ${type} ${id} yet; retry shortly`,
      );
    }
    return null;
  }

  const statusRoute = (kind: DeviceKind) =>
    defineRoute({
      method: 'get',
      path: `/v1/${kind.plural}/{${kind.idField}}/status`,
      operationId: `get${kind.name}Status`,
      summary: `Latest reading of a ${kind.type}`,
      scope: 'read',
      database: true,
      params: Type.Object({ [kind.idField]: DeviceId }),
      responses: {
        200: {
          description: 'latest reading',
          schema: statusSchema(
            kind,
            extensions.filter((e) => e.type === kind.type),
          ),
        },
        404: { description: 'never seen', schema: ErrorBody },
      },
      handler: async ({ params }) => {
        const id = (params as Record<string, string>)[kind.idField];
        const [state, mode, more] = await Promise.all([
          latest(kind.type, id),
          energyReadings(kind.type, id),
          extras(kind.type, id),
        ]);
        if (!state) {
          throw notFound(
            config.retentionDays > 0
              ? `No reading of ${kind.type} ${id} is kept: none has been received, or the newest is older than the ${config.retentionDays} days RETENTION_DAYS keeps`
              : `No reading has been received from ${kind.type} ${id}`,
          );
        }
        return reply(200, {
          ...readingJson(kind, id, state.ts, state.values),
          energyReadings: mode,
          source: state.source,
          ...more,
        });
      },
    });

  /** `GET /v1/{meters|vehicles|...}`: the devices that have reported, with their latest reading. */
  const listRoute = (kind: DeviceKind) =>
    defineRoute({
      method: 'get',
      path: `/v1/${kind.plural}`,
      operationId: `list${kind.name}s`,
      summary: `Every ${kind.type} that has reported, with its latest stored reading, in id order, paged`,
      description: `A ${kind.type} is listed once a reading of it is stored in PostgreSQL, in the order of the database's collation; its status route adds a newer reading still in Redis. \`silentSince\` keeps those whose latest stored reading is older: the ones that went quiet, or, while the flusher lags behind ingest (energy_oldest_unflushed_reading_age_seconds), those whose newer readings are still queued.`,
      scope: 'read',
      database: true,
      query: pageQuery(DeviceId, {
        silentSince: Type.Optional({
          ...Timestamp,
          description: 'only devices with no reading at or after this instant',
        }),
      }),
      responses: {
        200: {
          description: `a page of ${kind.plural}`,
          schema: Type.Object(
            {
              [kind.plural]: Type.Array(
                Type.Object(
                  {
                    ...readingProperties(kind),
                    energyReadings: {
                      ...EnergyMode,
                      description:
                        'how its energy values are read: interval (each reading the energy since the one before) or cumulative (a register, its running total)',
                    },
                  },
                  { additionalProperties: false },
                ),
              ),
              nextCursor: Nullable(Type.String()),
            },
            { $id: `${kind.name}List`, additionalProperties: false },
          ),
        },
      },
      handler: async ({ query }) => {
        const limit = query.limit ?? DEFAULT_PAGE_SIZE;
        const { silentSince } = query;
        const page = await statusStore.list(kind.type, {
          limit,
          after: query.cursor ?? null,
          silentSince: silentSince === undefined ? null : instantParam('silentSince', silentSince),
        });
        const modes = await settings.energyReadingsOf(
          kind.type,
          page.map(([id]) => id),
        );
        return reply(200, {
          [kind.plural]: page.map(([id, s], i) => ({
            ...readingJson(kind, id, s.ts.getTime(), s.values),
            energyReadings: modes[i],
          })),
          nextCursor: nextCursorOf(page, limit, ([id]) => id),
        });
      },
    });

  return DEVICE_KINDS.flatMap((kind) => [listRoute(kind), statusRoute(kind)]);
}
