import request from 'supertest';
import { startTestEngine, waitForDrained, type TestEngine } from './helpers/engine';

let e: TestEngine;

beforeAll(async () => {
  e = await startTestEngine();
});
afterAll(() => e.stop());

const list = (path: string) => request(e.api.api.app).get(path);

async function ingest(readings: object[]): Promise<void> {
  await request(e.api.api.app).post('/v1/telemetry/ingest').send(readings).expect(202);
  await waitForDrained(e.queue);
}

const meter = (meterId: string, timestamp: string, extra: object = {}) => ({
  meterId,
  kwhConsumedAc: 1.5,
  voltage: 230,
  timestamp,
  ...extra,
});

describe('device lists', () => {
  beforeAll(async () => {
    await ingest([
      meter('M-b', '2024-03-20T10:00:00Z'),
      meter('M-b', '2024-03-20T11:00:00Z', { kwhConsumedAc: 2 }),
      meter('M-a', '2024-03-20T09:00:00Z'),
      meter('M-c', '2024-03-20T12:00:00Z'),
      meter('M-d', '2024-03-20T08:00:00Z'),
      {
        vehicleId: 'V-1',
        soc: 50,
        kwhDeliveredDc: 1.2,
        batteryTemp: 30,
        timestamp: '2024-03-20T10:00:00Z',
      },
    ]);
  });

  test('when meters have reported, then GET /v1/meters lists each once with its latest reading, in id order', async () => {
    const res = await list('/v1/meters').expect(200);
    expect(res.body.meters.map((m: { meterId: string }) => m.meterId)).toEqual([
      'M-a',
      'M-b',
      'M-c',
      'M-d',
    ]);
    expect(res.body.meters[1]).toEqual({
      meterId: 'M-b',
      timestamp: '2024-03-20T11:00:00.000Z',
      kwhConsumedAc: 2,
      voltage: 230,
      energyReadings: 'interval',
    });
    expect(res.body.nextCursor).toBeNull();
    const vehicles = await list('/v1/vehicles').expect(200);
    expect(vehicles.body).toEqual({
      vehicles: [
        {
          vehicleId: 'V-1',
          timestamp: '2024-03-20T10:00:00.000Z',
          soc: 50,
          kwhDeliveredDc: 1.2,
          batteryTemp: 30,
          energyReadings: 'interval',
        },
      ],
      nextCursor: null,
    });
  });

  test('when the list is paged, then each page continues after the cursor and the last names none', async () => {
    const seen: string[] = [];
    let path = '/v1/meters?limit=3';
    for (;;) {
      const res = await list(path).expect(200);
      seen.push(...res.body.meters.map((m: { meterId: string }) => m.meterId));
      if (res.body.nextCursor === null) break;
      path = `/v1/meters?limit=3&cursor=${encodeURIComponent(res.body.nextCursor)}`;
    }
    expect(seen).toEqual(['M-a', 'M-b', 'M-c', 'M-d']);
    // A full last page has a cursor; the page after it is empty.
    const two = await list('/v1/meters?limit=2&cursor=M-b').expect(200);
    expect(two.body).toMatchObject({ nextCursor: 'M-d' });
    const after = await list('/v1/meters?cursor=M-d').expect(200);
    expect(after.body).toEqual({ meters: [], nextCursor: null });
  });

  test('when silentSince is given, then only devices whose latest reading is older are listed', async () => {
    const res = await list('/v1/meters?silentSince=2024-03-20T10:30:00Z').expect(200);
    // M-b's older reading (10:00) does not count: its latest is 11:00.
    expect(res.body.meters.map((m: { meterId: string }) => m.meterId)).toEqual(['M-a', 'M-d']);
    // In another offset, the same instant.
    const offset = await list(
      `/v1/meters?silentSince=${encodeURIComponent('2024-03-20T11:30:00+01:00')}`,
    ).expect(200);
    expect(offset.body.meters.map((m: { meterId: string }) => m.meterId)).toEqual(['M-a', 'M-d']);
    // Exactly at a latest reading: that device reported at it, so it is not silent.
    const at = await list('/v1/meters?silentSince=2024-03-20T09:00:00Z').expect(200);
    expect(at.body.meters.map((m: { meterId: string }) => m.meterId)).toEqual(['M-d']);
  });

  test('when a reading left out an optional field, then the list shows it as null', async () => {
    await ingest([{ meterId: 'M-e', kwhConsumedAc: 1, timestamp: '2024-03-20T10:00:00Z' }]);
    const res = await list('/v1/meters?cursor=M-d').expect(200);
    expect(res.body.meters).toEqual([
      {
        meterId: 'M-e',
        timestamp: '2024-03-20T10:00:00.000Z',
        kwhConsumedAc: 1,
        voltage: null,
        energyReadings: 'interval',
      },
    ]);
  });

  test.each([
    ['limit=0', '/limit'],
    ['limit=1001', '/limit'],
    ['cursor=bad%20id', '/cursor'],
    ['silentSince=yesterday', '/silentSince'],
    ['silentSince=2024-02-30T00:00:00Z', '/silentSince'],
    ['from=2024-03-20T00:00:00Z', '/from'],
  ])('when the list is asked with %s, then 400 names %s', async (query, path) => {
    const res = await list(`/v1/meters?${query}`).expect(400);
    expect(res.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
  });
});

describe('device lists and energy semantics', () => {
  test("when a device has its own energy semantics, then the list says each device's, so a register's running total is not read as one reading's energy", async () => {
    await ingest([
      meter('M-register', '2024-03-21T10:00:00Z', { kwhConsumedAc: 1024 }),
      meter('M-plain', '2024-03-21T10:00:00Z'),
    ]);
    await request(e.api.api.app)
      .put('/v1/meters/M-register/settings')
      .send({ energyReadings: 'cumulative' })
      .expect(200);
    const res = await list('/v1/meters?cursor=M-e').expect(200);
    expect(
      res.body.meters.map((m: { meterId: string; energyReadings: string }) => [
        m.meterId,
        m.energyReadings,
      ]),
    ).toEqual([
      ['M-plain', 'interval'],
      ['M-register', 'cumulative'],
    ]);
  });
});
