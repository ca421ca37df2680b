/**
 * The dashboard's types of the responses whose schemas the engine keeps inside its route files
 * (web/src/api/types.ts: status, device lists, mapping, charge points) against the API document the engine
 * serves: the same properties, the same nullable ones, all required. The other types are the
 * schemas' own TypeBox Static<> and need no check.
 */
import type {
  ChargePoint,
  ChargePointList,
  Connector,
  MappingHistory,
  MappingPeriod,
  MeterList,
  MeterListing,
  OpenTransaction,
  VehicleList,
  VehicleListing,
  VehicleStatus,
} from '../../web/src/api/types';
import { startTestEngine, type TestEngine } from '../helpers/engine';

type Json = Record<string, unknown> & {
  $ref?: string;
  anyOf?: Json[];
  items?: Json;
  type?: string;
  properties?: Record<string, Json>;
  required?: string[];
};

/** The keys of T whose value may be null. */
type NullableKeys<T> = { [K in keyof T]-?: null extends T[K] ? K : never }[keyof T];

/**
 * A type's shape as a value: every key (the compiler refuses a missing or an extra one) and
 * every nullable key, so the test can hold it against the document.
 */
const shape = <T>(keys: Record<keyof T, true>, nullable: Record<NullableKeys<T>, true>) => ({
  keys: Object.keys(keys).sort(),
  nullable: Object.keys(nullable).sort(),
});

let engine: TestEngine;
let schemas: Record<string, Json>;

beforeAll(async () => {
  engine = await startTestEngine();
  const doc = (await (await fetch(`${engine.url}/openapi.json`)).json()) as {
    components: { schemas: Record<string, Json> };
  };
  schemas = doc.components.schemas;
});

afterAll(async () => {
  await engine?.stop();
});

const isNull = (s: Json) => s.type === 'null';
const resolve = (s: Json): Json => (s.$ref ? schemas[s.$ref.split('/').pop() ?? ''] : s);
/** The object schema inside a `$ref`, a nullable union or an array. */
const objectIn = (s: Json): Json => {
  const resolved = resolve(s);
  if (resolved.anyOf) return objectIn(resolved.anyOf.find((a) => !isNull(a)) ?? {});
  if (resolved.type === 'array' && resolved.items) return objectIn(resolved.items);
  return resolved;
};

function shapeOf(schema: Json) {
  const properties = schema.properties ?? {};
  return {
    keys: Object.keys(properties).sort(),
    nullable: Object.entries(properties)
      .filter(([, p]) => (resolve(p).anyOf ?? []).some(isNull))
      .map(([name]) => name)
      .sort(),
  };
}

const expectSameShape = (schema: Json, declared: { keys: string[]; nullable: string[] }) => {
  expect(shapeOf(schema)).toEqual(declared);
  expect([...(schema.required ?? [])].sort()).toEqual(declared.keys);
};

describe('the dashboard’s own response types', () => {
  test('when the API document describes a vehicle status, then VehicleStatus has its fields', () => {
    expectSameShape(
      schemas.VehicleStatus,
      shape<VehicleStatus>(
        {
          vehicleId: true,
          timestamp: true,
          soc: true,
          kwhDeliveredDc: true,
          batteryTemp: true,
          energyReadings: true,
          source: true,
        },
        { energyReadings: true },
      ),
    );
  });

  test('when the API document describes a mapping history, then MappingHistory has its fields', () => {
    const history = schemas.MappingHistory;
    expectSameShape(
      history,
      shape<MappingHistory>({ vehicleId: true, current: true, history: true }, { current: true }),
    );
    const period = shape<MappingPeriod>({ meterId: true, from: true, to: true }, { to: true });
    expectSameShape(objectIn(history.properties?.current ?? {}), period);
    expectSameShape(objectIn(history.properties?.history ?? {}), period);
  });

  test('when the API document describes charge points, then ChargePoint, Connector and OpenTransaction have their fields', () => {
    const list = schemas.ChargePointList;
    expectSameShape(
      list,
      shape<ChargePointList>({ chargePoints: true, nextCursor: true }, { nextCursor: true }),
    );
    const chargePoint = objectIn(list.properties?.chargePoints ?? {});
    expect(chargePoint).toBe(schemas.ChargePoint);
    expectSameShape(
      chargePoint,
      shape<ChargePoint>(
        {
          id: true,
          connected: true,
          connectedAt: true,
          lastSeenAt: true,
          lastBootAt: true,
          vendor: true,
          model: true,
          firmwareVersion: true,
          connectors: true,
        },
        {
          connectedAt: true,
          lastSeenAt: true,
          lastBootAt: true,
          vendor: true,
          model: true,
          firmwareVersion: true,
        },
      ),
    );
    const connector = objectIn(chargePoint.properties?.connectors ?? {});
    expectSameShape(
      connector,
      shape<Connector>(
        {
          connectorId: true,
          meterId: true,
          status: true,
          errorCode: true,
          info: true,
          vendorErrorCode: true,
          statusAt: true,
          registerKwh: true,
          registerAt: true,
          openTransaction: true,
        },
        {
          status: true,
          errorCode: true,
          info: true,
          vendorErrorCode: true,
          statusAt: true,
          registerKwh: true,
          registerAt: true,
          openTransaction: true,
        },
      ),
    );
    expectSameShape(
      objectIn(connector.properties?.openTransaction ?? {}),
      shape<OpenTransaction>(
        {
          transactionId: true,
          idTag: true,
          vehicleId: true,
          startedAt: true,
          meterStartKwh: true,
        },
        { vehicleId: true },
      ),
    );
  });

  test('when the API document describes the device lists, then MeterList and VehicleList have their fields', () => {
    const meters = schemas.MeterList;
    expectSameShape(
      meters,
      shape<MeterList>({ meters: true, nextCursor: true }, { nextCursor: true }),
    );
    expectSameShape(
      objectIn(meters.properties?.meters ?? {}),
      shape<MeterListing>(
        {
          meterId: true,
          timestamp: true,
          kwhConsumedAc: true,
          voltage: true,
          energyReadings: true,
        },
        { voltage: true },
      ),
    );
    const vehicles = schemas.VehicleList;
    expectSameShape(
      vehicles,
      shape<VehicleList>({ vehicles: true, nextCursor: true }, { nextCursor: true }),
    );
    expectSameShape(
      objectIn(vehicles.properties?.vehicles ?? {}),
      shape<VehicleListing>(
        {
          vehicleId: true,
          timestamp: true,
          soc: true,
          kwhDeliveredDc: true,
          batteryTemp: true,
          energyReadings: true,
        },
        {},
      ),
    );
  });
});
