import request from 'supertest';
import { RPCClient } from 'ocpp-rpc';
import { startTestEngine, waitForDrained, type TestEngine } from './helpers/engine';

async function chargePoint(e: Pick<TestEngine, 'url'>, identity: string): Promise<RPCClient> {
  const client = new RPCClient({
    endpoint: `${e.url.replace('http', 'ws')}/ocpp`,
    identity,
    protocols: ['ocpp1.6'],
    strictMode: true,
    reconnect: false,
  } as ConstructorParameters<typeof RPCClient>[0]);
  await client.connect();
  return client;
}

const wh = (value: number) => ({ value: String(value) });
const meterValues = (connectorId: number, timestamp: string, ...sampledValue: object[]) => ({
  connectorId,
  meterValue: [{ timestamp, sampledValue }],
});

async function startTransaction(
  cp: RPCClient,
  req: { connectorId: number; idTag: string; meterStart: number; timestamp: string },
): Promise<number> {
  return ((await cp.call('StartTransaction', req)) as { transactionId: number }).transactionId;
}

const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
const tick = () => new Promise((r) => setTimeout(r, 30));

describe('review: lost-clock starts', () => {
  let e: TestEngine;
  const clients: RPCClient[] = [];
  const connect = async (identity: string) => {
    const client = await chargePoint(e, identity);
    clients.push(client);
    return client;
  };
  beforeAll(async () => {
    e = await startTestEngine();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close({ force: true })));
    await e.stop();
  });
  const registerIdTags = async (tags: [string, string][]) => {
    for (const [idTag, vehicleId] of tags) {
      await request(e.api.api.app).put(`/v1/id-tags/${idTag}`).send({ vehicleId }).expect(200);
    }
  };
  const rows = async (cpId: string) =>
    (
      await e.ctx.db.raw(
        `SELECT id, connector_id, id_tag, meter_start_wh::int AS ms, meter_stop_wh::int AS me,
                started_at, stopped_at, reported_started_at, stop_reason
         FROM ocpp_transactions WHERE charge_point_id = ? ORDER BY id`,
        [cpId],
      )
    ).rows;
  const sessions = async (vehicle: string, from: string) => {
    await waitForDrained(e.queue);
    const window = `from=${from}&to=${new Date(Date.now() + 60_000).toISOString()}`;
    return (
      await request(e.api.api.app).get(`/v1/vehicles/${vehicle}/sessions?${window}`).expect(200)
    ).body.sessions;
  };
  const dump = (label: string, x: unknown) => console.log(label, JSON.stringify(x, null, 1));

  async function withYesterday(id: string, tag: string, connectorId = 1) {
    await registerIdTags([[tag, `V-${id}`]]);
    const cp = await connect(id);
    const yesterday = await startTransaction(cp, {
      connectorId,
      idTag: tag,
      meterStart: 10_000,
      timestamp: ago(26 * 60),
    });
    await cp.call('StopTransaction', {
      transactionId: yesterday,
      meterStop: 30_000,
      timestamp: ago(25 * 60),
    });
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    return { cp, yesterday };
  }

  /** Today's charge 30 -> 34 kWh under a lost clock; returns its id. */
  async function lostCharge(cp: RPCClient, tag: string, ts: string, meterStart = 30_000, connectorId = 1) {
    const today = await startTransaction(cp, { connectorId, idTag: tag, meterStart, timestamp: ts });
    await tick();
    await cp.call('StopTransaction', {
      transactionId: today,
      meterStop: meterStart + 4_000,
      timestamp: new Date(Date.parse(ts) + 3_600_000).toISOString(),
    });
    return today;
  }

  test('S1: a charge point whose first start was kept in 2000 (or any 2000 row from before the fix): a later lost-clock start is billed to nobody', async () => {
    await registerIdTags([['TAG-S1', 'V-S1']]);
    const cp = await connect('CP-S1');
    // Its first ever start, from a lost clock (kept at its date: "nothing tells it apart").
    const first = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S1',
      meterStart: 5_000,
      timestamp: '2000-01-01T00:00:00Z',
    });
    await cp.call('StopTransaction', {
      transactionId: first,
      meterStop: 10_000,
      timestamp: '2000-01-01T01:00:00Z',
    });
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    const y = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S1',
      meterStart: 10_000,
      timestamp: ago(26 * 60),
    });
    await cp.call('StopTransaction', { transactionId: y, meterStop: 30_000, timestamp: ago(25 * 60) });
    // Reboot, clock lost again: a start 10 minutes after the reboot.
    await lostCharge(cp, 'TAG-S1', '2000-01-01T00:10:00Z');
    dump('S1 rows', await rows('CP-S1'));
    dump('S1 sessions', await sessions('V-S1', ago(27 * 60)));
  });

  test('S2: lost-clock start on a connector with no stored register (its first use), vehicle charged yesterday on connector 1', async () => {
    const { cp } = await withYesterday('CP-S2', 'TAG-S2');
    await lostCharge(cp, 'TAG-S2', '2000-01-01T00:10:00Z', 50_000, 2);
    dump('S2 rows', await rows('CP-S2'));
    dump('S2 sessions', await sessions('V-CP-S2', ago(27 * 60)));
    dump(
      'S2 mapping',
      (await e.ctx.db.raw(`SELECT * FROM vehicle_meter_map WHERE vehicle_id = 'V-CP-S2' ORDER BY valid_from`)).rows,
    );
  });

  test('S3a: new charge point, queued first transactions delivered out of order, the earlier one 0 kWh (same register)', async () => {
    await registerIdTags([
      ['TAG-S3A', 'V-S3A'],
      ['TAG-S3B', 'V-S3B'],
    ]);
    const cp = await connect('CP-S3');
    const t2 = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S3B',
      meterStart: 5_000,
      timestamp: ago(120),
    });
    await tick();
    const t1 = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S3A',
      meterStart: 5_000,
      timestamp: ago(180),
    });
    await cp.call('StopTransaction', { transactionId: t1, meterStop: 5_000, timestamp: ago(170) });
    await cp.call('StopTransaction', { transactionId: t2, meterStop: 9_000, timestamp: ago(90) });
    dump('S3a rows', await rows('CP-S3'));
    dump('S3a sessions B', await sessions('V-S3B', ago(240)));
    dump('S3a sessions A', await sessions('V-S3A', ago(240)));
  });

  test('S3b: new charge point, queued first transactions out of order across a meter replacement', async () => {
    await registerIdTags([
      ['TAG-S3C', 'V-S3C'],
      ['TAG-S3D', 'V-S3D'],
    ]);
    const cp = await connect('CP-S3B');
    // After the replacement (100 Wh), open while the earlier one comes.
    const t2 = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S3D',
      meterStart: 100,
      timestamp: ago(120),
    });
    await tick();
    // Before the replacement (old meter 30 kWh).
    const t1 = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S3C',
      meterStart: 30_000,
      timestamp: ago(180),
    });
    await tick();
    dump('S3b rows after late start', await rows('CP-S3B'));
    dump('S3b sessions D (before its own stop)', await sessions('V-S3D', ago(240)));
    await cp.call('StopTransaction', { transactionId: t1, meterStop: 32_000, timestamp: ago(170) });
    await cp.call('StopTransaction', { transactionId: t2, meterStop: 4_100, timestamp: ago(90) });
    dump('S3b rows', await rows('CP-S3B'));
    dump('S3b sessions D', await sessions('V-S3D', ago(240)));
    dump('S3b sessions C', await sessions('V-S3C', ago(240)));
    // Next charge on the new meter.
    await registerIdTags([['TAG-S3E', 'V-S3E']]);
    await tick();
    const t3 = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S3E',
      meterStart: 4_100,
      timestamp: new Date().toISOString(),
    });
    await tick();
    await cp.call('MeterValues', { ...meterValues(1, new Date().toISOString(), wh(5_000)), transactionId: t3 });
    await tick();
    await cp.call('StopTransaction', { transactionId: t3, meterStop: 6_100, timestamp: new Date().toISOString() });
    dump('S3b sessions E', await sessions('V-S3E', ago(240)));
  });

  test('S4: power-loss reboot: register restored from flash slightly below the last sample', async () => {
    const { cp } = await withYesterday('CP-S4', 'TAG-S4');
    await cp.call('MeterValues', meterValues(1, ago(25 * 60 - 1), wh(30_400)));
    await lostCharge(cp, 'TAG-S4', '2000-01-01T00:10:00Z', 30_200);
    dump('S4 rows', await rows('CP-S4'));
    dump('S4 sessions', await sessions('V-CP-S4', ago(27 * 60)));
  });

  test('S5: a start ahead of the clock dated at a leap second', async () => {
    await registerIdTags([['TAG-S5', 'V-S5']]);
    const cp = await connect('CP-S5');
    let outcome: unknown;
    try {
      outcome = await cp.call('StartTransaction', {
        connectorId: 1,
        idTag: 'TAG-S5',
        meterStart: 0,
        timestamp: '2030-06-30T23:59:60Z',
      });
    } catch (err) {
      outcome = { error: (err as { rpcErrorCode: string }).rpcErrorCode, message: String(err) };
    }
    dump('S5', outcome);
    dump('S5 rows', await rows('CP-S5'));
  });

  test('S6: MeterValues dated by the lost clock during a transaction taken as of now', async () => {
    const { cp } = await withYesterday('CP-S6', 'TAG-S6');
    const today = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-S6',
      meterStart: 30_000,
      timestamp: '2000-01-01T00:10:00Z',
    });
    await tick();
    await cp.call('MeterValues', {
      ...meterValues(1, '2000-01-01T00:30:00Z', wh(32_000)),
      transactionId: today,
    });
    await cp.call('StopTransaction', {
      transactionId: today,
      meterStop: 34_000,
      timestamp: '2000-01-01T01:10:00Z',
    });
    await waitForDrained(e.queue);
    dump('S6 rows', await rows('CP-S6'));
    dump(
      'S6 history',
      (
        await e.ctx.db.raw(
          `SELECT ts, kwh_consumed_ac FROM telemetry_history WHERE device_id = 'CP-S6:1' ORDER BY ts`,
        )
      ).rows,
    );
    dump('S6 sessions', await sessions('V-CP-S6', ago(27 * 60)));
  });

  test('S7: an old replica (code before this commit) inserting a start after the migration', async () => {
    let err: unknown = null;
    try {
      await e.ctx.db.raw(
        `INSERT INTO ocpp_transactions (charge_point_id, connector_id, id_tag, id_tag_status, vehicle_id, meter_start_wh, started_at)
         VALUES ('CP-S7', 1, 'T', 'Accepted', NULL, 0, now())
         ON CONFLICT (charge_point_id, connector_id, id_tag, started_at, meter_start_wh)
           DO UPDATE SET id_tag_status = ocpp_transactions.id_tag_status
         RETURNING *, (xmax = 0) AS created`,
      );
    } catch (error) {
      err = String(error);
    }
    dump('S7', err);
  });
});
