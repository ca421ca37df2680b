import net from 'node:net';
import request from 'supertest';
import { sampleValue } from './helpers/mqtt';
import { RPCClient } from 'ocpp-rpc';
import WebSocket from 'ws';
import { generateKey, hashKey } from '../src/auth/api-keys';
import { ChargePointStore } from '../src/ocpp/charge-point-store';
import { ChargePointState } from '../src/ocpp/charge-point-state';
import { createRedisKeys } from '../src/redis-keys';
import {
  serveTestApiWithOcpp,
  startTestApi,
  startTestEngine,
  waitFor,
  waitForDrained,
  type TestEngine,
} from './helpers/engine';
import { capturingLogger } from './helpers/capturing-logger';
import { OwnRedis } from './helpers/own-redis';
import { TcpProxy } from './helpers/tcp-proxy';
import { createTestContext } from './helpers/test-env';

/** A charge point: ocpp-rpc's own client, validating what it sends and gets (strict mode). */
async function chargePoint(
  e: Pick<TestEngine, 'url'>,
  identity: string,
  options: {
    password?: string | Buffer;
    protocols?: string[];
    strict?: boolean;
    /** Calls it sends without waiting for answers (OCPP-J: 1). */
    callConcurrency?: number;
  } = {},
): Promise<RPCClient> {
  const client = new RPCClient({
    endpoint: `${e.url.replace('http', 'ws')}/ocpp`,
    identity,
    protocols: options.protocols ?? ['ocpp1.6'],
    strictMode: options.strict ?? true,
    reconnect: false,
    callConcurrency: options.callConcurrency ?? 1,
    ...(options.password ? { password: options.password } : {}),
  } as ConstructorParameters<typeof RPCClient>[0]);
  await client.connect();
  return client;
}

/** What the charge point got back for a CALL that failed: the CALLERROR's code. */
async function callError(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    return (err as { rpcErrorCode: string }).rpcErrorCode;
  }
  throw new Error('the call was answered with a .conf');
}

const wh = (value: number, extra: Record<string, string> = {}) => ({
  value: String(value),
  ...extra,
});

const meterValues = (connectorId: number, timestamp: string, ...sampledValue: object[]) => ({
  connectorId,
  meterValue: [{ timestamp, sampledValue }],
});

/** A StartTransaction: the transaction id it was given. */
async function startTransaction(
  cp: RPCClient,
  req: { connectorId: number; idTag: string; meterStart: number; timestamp: string },
): Promise<number> {
  return ((await cp.call('StartTransaction', req)) as { transactionId: number }).transactionId;
}

/**
 * StartTransactions on connectors 1..count sent at once: each one's transaction id, or its
 * CALLERROR's message.
 */
const startsAtOnce = (cp: RPCClient, count: number, idTag: string) =>
  Array.from({ length: count }, (_, i) =>
    startTransaction(cp, {
      connectorId: i + 1,
      idTag,
      meterStart: 0,
      timestamp: new Date(Date.now() - 60_000 + i).toISOString(),
    }).catch((err: Error) => err.message),
  );

/** Statements of this database waiting for a lock: the calls a locked table holds up. */
async function waitingOnLocks(e: TestEngine): Promise<number> {
  const { rows } = await e.ctx.db.raw(
    `SELECT count(*) AS n FROM pg_stat_activity
     WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  );
  return Number(rows[0].n);
}

async function history(e: TestEngine, meterId: string) {
  return (
    await e.ctx.db.raw(
      `SELECT to_char(ts AT TIME ZONE 'UTC', 'HH24:MI') AS at, kwh_consumed_ac AS kwh, voltage
       FROM telemetry_history WHERE device_type = 'meter' AND device_id = ? ORDER BY ts`,
      [meterId],
    )
  ).rows as { at: string; kwh: number; voltage: number | null }[];
}

describe('OCPP 1.6J charge points', () => {
  let e: TestEngine;
  const clients: RPCClient[] = [];
  /**
   * A charge point connected; `knownSince`: first connected then (its queue may deliver starts
   * that old, out of order: see LOST_CLOCK_BEFORE_MS).
   */
  const connect = async (identity: string, { knownSince }: { knownSince?: string } = {}) => {
    if (knownSince) {
      await e.ctx.db('charge_points').insert({ id: identity, created_at: knownSince });
    }
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
  /** StartTransaction on connector 1 of `cp`: its transaction id. */
  const startsOnConnector1 =
    (cp: RPCClient) => (idTag: string, meterStart: number, timestamp: string) =>
      cp.call('StartTransaction', { connectorId: 1, idTag, meterStart, timestamp }) as Promise<{
        transactionId: number;
      }>;

  test('when a charge point boots and beats, then it is accepted with a 60 s interval and the time', async () => {
    const cp = await connect('CP-BOOT');
    const boot = (await cp.call('BootNotification', {
      chargePointVendor: 'Acme',
      chargePointModel: 'Wallbox 11',
    })) as { currentTime: string };
    expect(boot).toMatchObject({ status: 'Accepted', interval: 60 });
    expect(Math.abs(Date.parse(boot.currentTime) - Date.now())).toBeLessThan(5000);
    expect(await cp.call('Heartbeat', {})).toEqual({ currentTime: expect.any(String) });
    const res = await request(e.api.api.app).get('/v1/charge-points/CP-BOOT').expect(200);
    expect(res.body).toMatchObject({ id: 'CP-BOOT', connected: true, vendor: 'Acme' });
  });

  test('when a charge point sends many calls without waiting for answers, then they are handled one at a time, 100 wait their turn, the rest are refused at once, and a heartbeat is not held up', async () => {
    const cp = await chargePoint(e, 'CP-PIPELINE', { callConcurrency: 200 });
    clients.push(cp);
    // Each start waits on this lock, holding whatever it took: the calls being handled show.
    const lock = await e.ctx.db.transaction();
    let starts: Promise<number | string>[] = [];
    try {
      await lock.raw('LOCK TABLE ocpp_transactions IN ACCESS EXCLUSIVE MODE');
      starts = startsAtOnce(cp, 110, 'TAG-PIPE');
      await waitFor(async () => (await waitingOnLocks(e)) >= 1, 10_000, 'the first call');
      // The others wait their turn in the process: still 1 a second later, not 110.
      await new Promise((r) => setTimeout(r, 1000));
      expect(await waitingOnLocks(e)).toBe(1);
      // Beyond 100 waiting, a call is answered at once, saying why.
      expect(await Promise.all(starts.slice(101))).toEqual(
        Array(9).fill(expect.stringMatching(/^100 calls of this charge point are waiting/)),
      );
      expect(await cp.call('Heartbeat', {})).toEqual({ currentTime: expect.any(String) });
    } finally {
      await lock.rollback();
    }
    const ids = await Promise.all(starts.slice(0, 101));
    expect(ids.every((id) => typeof id === 'number')).toBe(true);
    expect(new Set(ids).size).toBe(101);
  });

  test("when a charger sends a call again before its answer came (a resend after its own timeout), then it gets one answer, the call's own, not a refusal before it", async () => {
    const socket = new WebSocket(`${e.url.replace('http', 'ws')}/ocpp/CP-RESEND`, ['ocpp1.6']);
    await new Promise((resolve) => socket.once('open', resolve));
    const frames: unknown[] = [];
    socket.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString())));
    const start =
      '[2,"resend-1","StartTransaction",{"connectorId":1,"idTag":"TAG-RESEND","meterStart":0,"timestamp":"2024-05-02T10:00:00Z"}]';
    const lock = await e.ctx.db.transaction();
    try {
      await lock.raw('LOCK TABLE ocpp_transactions IN ACCESS EXCLUSIVE MODE');
      socket.send(start);
      await waitFor(async () => (await waitingOnLocks(e)) >= 1, 10_000, 'the first call');
      // Twice more: ocpp-rpc refuses the first copy itself, and hands the next to the engine.
      socket.send(start);
      socket.send(start);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await lock.rollback();
    }
    await waitFor(async () => frames.length > 0, 10_000, 'the answer');
    await new Promise((r) => setTimeout(r, 300));
    socket.terminate();
    expect(frames).toEqual([
      [3, 'resend-1', { transactionId: expect.any(Number), idTagInfo: { status: 'Accepted' } }],
    ]);
  });

  test("when a charge point sends two MeterValues of one connector without waiting for the first's answer, then they are handled in turn: a sample below the register the first stored is left out, as when sent one after the other", async () => {
    const cp = await chargePoint(e, 'CP-OVERLAP', { callConcurrency: 2 });
    clients.push(cp);
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-OVERLAP',
      meterStart: 5_000,
      timestamp: '2024-05-01T10:00:00Z',
    });
    // The second is the register rounded down to kWh: below what the first stores.
    await Promise.all([
      cp.call('MeterValues', {
        ...meterValues(1, '2024-05-01T10:05:00Z', wh(5_456)),
        transactionId,
      }),
      cp.call('MeterValues', {
        ...meterValues(1, '2024-05-01T10:06:00Z', { value: '5', unit: 'kWh' }),
        transactionId,
      }),
    ]);
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-OVERLAP:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 5],
      ['10:05', 5.456],
    ]);
  });

  test('when the API shuts down while a charge point has calls waiting their turn, then the calls in progress are answered and stored, and the waiting ones are answered InternalError unstarted', async () => {
    const other = await startTestApi(e.ctx);
    const served = await serveTestApiWithOcpp(other);
    const cp = await chargePoint(served, 'CP-SHUTDOWN-QUEUE', { callConcurrency: 20 });
    const lock = await e.ctx.db.transaction();
    try {
      await lock.raw('LOCK TABLE ocpp_transactions IN ACCESS EXCLUSIVE MODE');
      const starts = startsAtOnce(cp, 12, 'TAG-SHUT');
      await waitFor(async () => (await waitingOnLocks(e)) >= 1, 10_000, 'the first call');
      const closed = served.close();
      await new Promise((r) => setTimeout(r, 200));
      await lock.commit();
      await closed;
      const answers = await Promise.all(starts);
      expect(typeof answers[0]).toBe('number');
      expect(answers.slice(1)).toEqual(
        Array(11).fill(expect.stringMatching(/^The central system is shutting down/)),
      );
      const stored = await e.ctx
        .db('ocpp_transactions')
        .where({ charge_point_id: 'CP-SHUTDOWN-QUEUE' });
      expect(stored).toHaveLength(1);
    } finally {
      await lock.rollback().catch(() => undefined);
      await cp.close({ force: true });
      await other.close();
    }
  });

  test("when a connector's register is not in live state (Redis restarted empty, or an upgrade from a release that kept it elsewhere), then the charge point shows the newer of it and the stored one", async () => {
    const cp = await connect('CP-REGLOST');
    await cp.call('MeterValues', meterValues(1, '2024-04-09T10:00:00Z', wh(12_345)));
    await waitForDrained(e.queue);
    const keys = createRedisKeys(e.ctx.config.redisPrefix);
    await e.ctx.redis.del(keys.liveState('meter', 'CP-REGLOST:1'));
    const res = await request(e.api.api.app).get('/v1/charge-points/CP-REGLOST').expect(200);
    expect(res.body.connectors).toEqual([
      expect.objectContaining({
        meterId: 'CP-REGLOST:1',
        registerKwh: 12.345,
        registerAt: '2024-04-09T10:00:00.000Z',
      }),
    ]);
    // A queued older reading arriving then starts live state again: the stored one is newer.
    await cp.call('MeterValues', meterValues(1, '2024-04-09T09:00:00Z', wh(11_000)));
    const older = await request(e.api.api.app).get('/v1/charge-points/CP-REGLOST').expect(200);
    expect(older.body.connectors[0]).toMatchObject({
      registerKwh: 12.345,
      registerAt: '2024-04-09T10:00:00.000Z',
    });
    // A newer one is what it shows.
    await cp.call('MeterValues', meterValues(1, '2024-04-09T10:15:00Z', wh(12_500)));
    const next = await request(e.api.api.app).get('/v1/charge-points/CP-REGLOST').expect(200);
    expect(next.body.connectors[0]).toMatchObject({
      registerKwh: 12.5,
      registerAt: '2024-04-09T10:15:00.000Z',
    });
  });

  test('when the OCPP URL is requested over plain HTTP (an installer checking it), then 426 says it is a WebSocket endpoint', async () => {
    const plain = await request(e.api.api.app).get('/ocpp/CP-PLAIN').expect(426);
    expect(plain.headers.upgrade).toBe('websocket');
    expect(plain.body).toMatchObject({
      error: 'upgrade_required',
      message: expect.stringContaining('WebSocket upgrade and the subprotocol ocpp1.6'),
    });
    // The same URL still takes the charge point's upgrade.
    const cp = await connect('CP-PLAIN');
    expect(await cp.call('Heartbeat', {})).toHaveProperty('currentTime');
  });

  test('when a charge point connects without booting (it reconnected after a network drop), then the list shows it, its boot record empty', async () => {
    const cp = await connect('CP-NOBOOT');
    await cp.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'NoError',
      status: 'Available',
    });
    const listed = async () =>
      (
        (await request(e.api.api.app).get('/v1/charge-points?limit=1000').expect(200)).body
          .chargePoints as { id: string }[]
      ).find((c) => c.id === 'CP-NOBOOT');
    await waitFor(async () => (await listed()) !== undefined, 15_000, 'CP-NOBOOT listed');
    expect(await listed()).toMatchObject({
      connected: true,
      lastBootAt: null,
      vendor: null,
      model: null,
      connectors: [{ connectorId: 1, status: 'Available' }],
    });
    // A fault, with the charge point's own code and words: shown with the connector.
    await cp.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'OtherError',
      status: 'Faulted',
      vendorErrorCode: 'E-42',
      info: 'contactor welded',
    });
    expect((await listed()) as unknown).toMatchObject({
      connectors: [{ status: 'Faulted', vendorErrorCode: 'E-42', info: 'contactor welded' }],
    });
    // Its boot, when it comes, fills the record in.
    await cp.call('BootNotification', { chargePointVendor: 'Acme', chargePointModel: 'W' });
    expect(await listed()).toMatchObject({ vendor: 'Acme', lastBootAt: expect.any(String) });
  });

  test('when a charge point id connects again while connected, then the older connection is closed, counted as replaced, and the newer one answered', async () => {
    const replaced = async () => {
      const text = (await request(e.api.api.app).get('/metrics').expect(200)).text;
      return sampleValue(text, 'energy_ocpp_connections_replaced_total');
    };
    const before = await replaced();
    expect(before).toBeGreaterThanOrEqual(0); // the counter is there (NaN if not)
    const older = await connect('CP-TWIN');
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      older.once('close', (event: { code: number; reason: Buffer | string }) =>
        resolve({ code: event.code, reason: String(event.reason) }),
      ),
    );
    const newer = await connect('CP-TWIN');
    await expect(closed).resolves.toEqual({ code: 1000, reason: 'Replaced by a new connection' });
    expect(await newer.call('Heartbeat', {})).toEqual({ currentTime: expect.any(String) });
    expect(await replaced()).toBe(before + 1);
  });

  test('when a charge point id is connected to two replicas and one connection closes, then the one still open is shown connected again at its next refresh', async () => {
    const state = new ChargePointState(
      e.ctx.redis,
      createRedisKeys(e.ctx.config.redisPrefix),
      60_000,
    );
    const here = { chargePointId: 'CP-TWICE-LIVE', connection: 'here', connectedAt: new Date() };
    await state.connected(here.chargePointId, here.connection, here.connectedAt);
    // The same id connects to another replica (recorded last), then that connection closes.
    await state.connected(here.chargePointId, 'there', new Date());
    await state.disconnected(here.chargePointId, 'there', new Date());
    expect(await state.get(here.chargePointId, new Date())).toMatchObject({ connected: false });
    // This replica's refresh of its connections records the one still open, and says so.
    expect(await state.seen([here], new Date())).toEqual([here]);
    expect(await state.get(here.chargePointId, new Date())).toMatchObject({
      connected: true,
      connectedAt: here.connectedAt.toISOString(),
    });
    // A refresh does not take over a connection recorded since (the newest stays recorded).
    await state.connected(here.chargePointId, 'newest', new Date());
    expect(await state.seen([here], new Date())).toEqual([]);
    await state.disconnected(here.chargePointId, 'here', new Date());
    expect(await state.get(here.chargePointId, new Date())).toMatchObject({ connected: true });
  });

  test('when a refresh of a connection arrives after its close (a command retried across a failover), then the charge point stays disconnected', async () => {
    const state = new ChargePointState(
      e.ctx.redis,
      createRedisKeys(e.ctx.config.redisPrefix),
      60_000,
    );
    const gone = { chargePointId: 'CP-LATE-SEEN', connection: 'gone', connectedAt: new Date() };
    await state.connected(gone.chargePointId, gone.connection, gone.connectedAt);
    await state.disconnected(gone.chargePointId, gone.connection, new Date());
    await state.seen([gone], new Date());
    expect(await state.get(gone.chargePointId, new Date())).toMatchObject({
      connected: false,
      connectedAt: null,
    });
    // A later connection of the same id is refreshed as before.
    const next = { ...gone, connection: 'next' };
    await state.connected(next.chargePointId, next.connection, next.connectedAt);
    await state.seen([next], new Date());
    expect(await state.get(next.chargePointId, new Date())).toMatchObject({ connected: true });
  });

  /** A charge point's bare WebSocket, for frames no OCPP library would send; `answer` sends one. */
  async function rawChargePoint(id: string) {
    const socket = new WebSocket(`${e.url.replace('http', 'ws')}/ocpp/${id}`, ['ocpp1.6']);
    await new Promise<void>((resolve) => socket.once('open', () => resolve()));
    const answer = (frame: string) =>
      new Promise<unknown[]>((resolve) => {
        socket.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()) as unknown[]));
        socket.send(frame);
      });
    return { socket, answer };
  }

  test('when a frame is not a CALL it can read, then the CALLERROR carries an OCPP 1.6 code', async () => {
    const { socket, answer } = await rawChargePoint('CP-RAW');
    expect((await answer('hello {')).slice(0, 3)).toEqual([4, '-1', 'FormationViolation']);
    expect((await answer('[2,"x1"]')).slice(0, 3)).toEqual([4, 'x1', 'FormationViolation']);
    // A message of a type OCPP-J does not know is ignored (OCPP-J 1.6, 4.1.3): the next answer
    // is the next CALL's.
    socket.send('[5,"x4","Heartbeat",{}]');
    // A required field missing: 1.6's code (ocpp-rpc spells it as 2.0.1 does), counted as sent.
    const missing = await answer('[2,"x5","BootNotification",{"chargePointVendor":"V"}]');
    expect(missing.slice(0, 3)).toEqual([4, 'x5', 'OccurenceConstraintViolation']);
    const metrics = await request(e.api.api.app).get('/metrics').expect(200);
    expect(metrics.text).toContain(
      'energy_ocpp_callerrors_total{code="OccurenceConstraintViolation",process="api"} 1',
    );
    expect(metrics.text).not.toContain('code="OccurrenceConstraintViolation"');
    // The frames that were no readable CALL are counted too, by the code they got; the ignored
    // one as ignored.
    expect(metrics.text).toContain(
      'energy_ocpp_messages_total{action="unreadable",outcome="callerror",process="api"} 2',
    );
    expect(metrics.text).toContain(
      'energy_ocpp_messages_total{action="unreadable",outcome="ignored",process="api"} 1',
    );
    expect(metrics.text).toContain(
      'energy_ocpp_callerrors_total{code="FormationViolation",process="api"} 2',
    );
    expect(metrics.text).not.toContain('code="GenericError"');
    // A field nested 5,000 levels deep (10 KB): refused by its schema, not echoed back.
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const nested = await answer(`[2,"x6","Heartbeat",{"x":${deep}}]`);
    expect(nested.slice(0, 3)).toEqual([4, 'x6', 'FormationViolation']);
    expect(JSON.stringify(nested[4])).not.toContain('[[[');
    expect(await answer('[2,"x7","Heartbeat",{}]')).toEqual([3, 'x7', expect.any(Object)]);
    // A CALL without its payload, or with one that is no object, does not fit the PDU (§4.2.3):
    // there is no field to be of a wrong type.
    const bare = await answer('[2,"x8","Heartbeat"]');
    expect(bare.slice(0, 4)).toEqual([
      4,
      'x8',
      'FormationViolation',
      'The CALL has no payload: an OCPP-J CALL is [2, messageId, action, payload]',
    ]);
    expect((await answer('[2,"x9","Heartbeat",5]')).slice(0, 3)).toEqual([
      4,
      'x9',
      'FormationViolation',
    ]);
    socket.close();
  });

  test('when a message id is longer than the 36 characters OCPP-J allows, or holds NUL, then the call gets FormationViolation', async () => {
    const raw = await rawChargePoint('CP-LONG-ID');
    const answer = (id: string) => raw.answer(JSON.stringify([2, id, 'Heartbeat', {}]));
    const guid = 'a'.repeat(36);
    expect(await answer(guid)).toEqual([3, guid, expect.any(Object)]);
    const long = 'b'.repeat(37);
    expect(await answer(long)).toEqual([
      4,
      long,
      'FormationViolation',
      'The message id is 37 characters long; OCPP-J allows at most 36',
      {},
    ]);
    expect((await answer('c\u0000')).slice(2, 4)).toEqual([
      'FormationViolation',
      'The message id holds the character U+0000 (NUL), which no text may hold',
    ]);
    raw.socket.close();
  });

  test('when a charge point sends and never reads its answers, then its connection is closed once 1 MB of them waits unread', async () => {
    const { socket } = await rawChargePoint('CP-NO-READ');
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    // Each refusal echoes its 1 MB message id: past what the sockets' buffers take, answers wait
    // in the API's memory.
    const id = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 24; i++) socket.send(JSON.stringify([2, id, 'Heartbeat', {}]));
    await waitFor(
      async () =>
        (await request(e.api.api.app).get('/v1/charge-points/CP-NO-READ')).body.connected === false,
      20_000,
      'the connection closed',
    );
    socket.terminate();
  });

  test("when an operator sets a connector's energy semantics, then 409: OCPP makes it a register; a meter named like a connector of no charge point can be set", async () => {
    const cp = await connect('CP-SET');
    await cp.call('BootNotification', { chargePointVendor: 'Acme', chargePointModel: 'W' });
    const res = await request(e.api.api.app)
      .put('/v1/meters/CP-SET:1/settings')
      .send({ energyReadings: 'interval' })
      .expect(409);
    expect(res.body).toMatchObject({ error: 'ocpp_connector' });
    expect(res.body.message).toContain('OCPP charge point CP-SET');
    // Only a connector's exact meter id is one (as ingest's guard reads it): CP-SET:01 is not.
    for (const meterId of ['NOT-A-CP:1', 'CP-SET:01']) {
      await request(e.api.api.app)
        .put(`/v1/meters/${meterId}/settings`)
        .send({ energyReadings: 'interval' })
        .expect(200);
    }
  });

  test('when an action the engine does not answer arrives, then NotSupported for one of OCPP 1.6, NotImplemented for one 1.6 does not know; DataTransfer and the notifications get their answers', async () => {
    const cp = await connect('CP-NI');
    expect(await cp.call('DataTransfer', { vendorId: 'x', messageId: 'y', data: 'z' })).toEqual({
      status: 'UnknownVendorId',
    });
    expect(await cp.call('DiagnosticsStatusNotification', { status: 'Idle' })).toEqual({});
    expect(await cp.call('FirmwareStatusNotification', { status: 'Installed' })).toEqual({});
    const event = { type: 'TamperDetectionActivated', timestamp: '2026-12-05T09:00:00Z' };
    expect(await cp.call('SecurityEventNotification', event)).toEqual({});
    expect(await cp.call('LogStatusNotification', { status: 'Idle' })).toEqual({});
    const firmware = { status: 'Installed' };
    expect(await cp.call('SignedFirmwareStatusNotification', firmware)).toEqual({});
    const loose = await chargePoint(e, 'CP-NI-2', { strict: false });
    clients.push(loose);
    const unknown = await loose.call('FooBar', {}).catch((err: unknown) => err);
    expect(unknown).toMatchObject({
      rpcErrorCode: 'NotImplemented',
      message: 'FooBar is not an action of ocpp1.6',
    });
    // A central system's own action, sent by a charge point: recognised, not supported.
    const reset = await loose.call('Reset', { type: 'Hard' }).catch((err: unknown) => err);
    expect(reset).toMatchObject({ rpcErrorCode: 'NotSupported' });
    expect((reset as Error).message).toContain('Reset is an OCPP 1.6 action');
    expect(await callError(loose.call('SignCertificate', { csr: 'x' }))).toBe('NotSupported');
  });

  test('when an idTag is registered, then Authorize accepts it, case-insensitively, and unknown ones by default too', async () => {
    await request(e.api.api.app)
      .put('/v1/id-tags/Card-1')
      .send({ vehicleId: 'V-auth' })
      .expect(200);
    const got = await request(e.api.api.app).get('/v1/id-tags/CARD-1').expect(200);
    expect(got.body).toMatchObject({ idTag: 'CARD-1', vehicleId: 'V-auth' });
    const cp = await connect('CP-AUTH');
    expect(await cp.call('Authorize', { idTag: 'card-1' })).toEqual({
      idTagInfo: { status: 'Accepted' },
    });
    expect(await cp.call('Authorize', { idTag: 'nobody' })).toEqual({
      idTagInfo: { status: 'Accepted' },
    });
    // An empty token names no one.
    expect(await cp.call('Authorize', { idTag: '' })).toEqual({
      idTagInfo: { status: 'Invalid' },
    });
    // Nor does a blank one: it cannot be registered, and is Invalid however it is spelled.
    const blank = await request(e.api.api.app)
      .put('/v1/id-tags/%20%20')
      .send({ vehicleId: 'V-blank' })
      .expect(400);
    expect(blank.body.message).toContain('not spaces alone');
    // One registered before blank ones were refused is not looked up.
    await e.ctx.db('id_tags').insert({ id_tag: '  ', vehicle_id: 'V-blank' });
    expect(await cp.call('Authorize', { idTag: '  ' })).toEqual({
      idTagInfo: { status: 'Invalid' },
    });
    await request(e.api.api.app).delete('/v1/id-tags/card-1').expect(204);
    await request(e.api.api.app).get('/v1/id-tags/card-1').expect(404);
    // Any printable ASCII a charge point may send, URL-encoded in the path.
    await request(e.api.api.app)
      .put(`/v1/id-tags/${encodeURIComponent('App #7/b x')}`)
      .send({ vehicleId: 'V-app' })
      .expect(200);
    const app = await request(e.api.api.app).get('/v1/id-tags/APP%20%237%2FB%20X').expect(200);
    expect(app.body).toMatchObject({ idTag: 'APP #7/B X', vehicleId: 'V-app' });
  });

  test('when idTags are listed, then every registered one comes in order, upper-case, page by page, a cursor in any case', async () => {
    const app = request(e.api.api.app);
    for (const [idTag, vehicleId] of [
      ['list-b', 'V-list-b'],
      ['LIST-A', 'V-list-a'],
      ['List-C', 'V-list-c'],
    ]) {
      await app.put(`/v1/id-tags/${idTag}`).send({ vehicleId }).expect(200);
    }
    const seen: { idTag: string; vehicleId: string }[] = [];
    let cursor: string | null = null;
    do {
      const page = await app
        .get('/v1/id-tags')
        .query({ limit: 2, ...(cursor ? { cursor } : {}) })
        .expect(200);
      expect(page.body.idTags.length).toBeLessThanOrEqual(2);
      seen.push(...(page.body.idTags as { idTag: string; vehicleId: string }[]));
      cursor = page.body.nextCursor as string | null;
    } while (cursor !== null);
    expect(seen.filter((t) => t.idTag.startsWith('LIST-'))).toEqual([
      expect.objectContaining({ idTag: 'LIST-A', vehicleId: 'V-list-a' }),
      expect.objectContaining({ idTag: 'LIST-B', vehicleId: 'V-list-b' }),
      expect.objectContaining({ idTag: 'LIST-C', vehicleId: 'V-list-c' }),
    ]);
    const after = await app.get('/v1/id-tags').query({ cursor: 'list-a', limit: 1 }).expect(200);
    expect(after.body.idTags[0].idTag).toBe('LIST-B');
    const refused = await app.get('/v1/id-tags').query({ limit: 0 }).expect(400);
    expect(refused.body.details).toEqual([expect.objectContaining({ path: '/limit' })]);
  });

  test("when an unknown idTag is registered while a transaction started with it is open, then that transaction is the vehicle's from its start; one already stopped stays unmapped", async () => {
    const cp = await connect('CP-LATETAG');
    const stopped = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'tag-late',
      meterStart: 1_000,
      timestamp: '2024-04-12T08:00:00Z',
    });
    await cp.call('StopTransaction', {
      transactionId: stopped,
      meterStop: 2_000,
      timestamp: '2024-04-12T09:00:00Z',
    });
    const open = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'tag-late',
      meterStart: 2_000,
      timestamp: '2024-04-12T10:00:00Z',
    });
    await cp.call('MeterValues', meterValues(1, '2024-04-12T10:30:00Z', wh(7_000)));
    // Before: no vehicle charges from the connector.
    expect((await request(e.api.api.app).get('/v1/telemetry/map/V-late')).status).toBe(404);

    await request(e.api.api.app)
      .put('/v1/id-tags/TAG-LATE')
      .send({ vehicleId: 'V-late' })
      .expect(200);
    const point = await request(e.api.api.app).get('/v1/charge-points/CP-LATETAG').expect(200);
    expect(point.body.connectors[0].openTransaction).toMatchObject({
      transactionId: open,
      vehicleId: 'V-late',
    });
    const map = async () =>
      (await request(e.api.api.app).get('/v1/telemetry/map/V-late').expect(200)).body.history;
    expect(await map()).toEqual([
      { meterId: 'CP-LATETAG:1', from: '2024-04-12T10:00:00.001Z', to: null },
    ]);
    // Its stop ends the vehicle's period, as for a tag known at the start.
    await cp.call('StopTransaction', {
      transactionId: open,
      meterStop: 9_000,
      timestamp: '2024-04-12T11:00:00Z',
    });
    expect(await map()).toEqual([
      {
        meterId: 'CP-LATETAG:1',
        from: '2024-04-12T10:00:00.001Z',
        to: '2024-04-12T11:00:00.001Z',
      },
    ]);
    // Registered again, nothing changes: no transaction of the tag is open and without a vehicle.
    await request(e.api.api.app)
      .put('/v1/id-tags/TAG-LATE')
      .send({ vehicleId: 'V-late' })
      .expect(200);
    expect(await map()).toHaveLength(1);
  });

  test("when an idTag is registered at the moment a transaction starts with it, then the transaction is the vehicle's whichever comes first", async () => {
    const cp = await connect('CP-TAGRACE');
    const app = request(e.api.api.app);
    for (let round = 0; round < 30; round++) {
      const [idTag, vehicleId] = [`TAG-RACE-${round}`, `V-race-${round}`];
      const connectorId = 1 + (round % 2);
      const timestamp = new Date(Date.UTC(2024, 3, 13, 8, round)).toISOString();
      const [transactionId] = await Promise.all([
        startTransaction(cp, { connectorId, idTag, meterStart: round * 1000, timestamp }),
        app.put(`/v1/id-tags/${idTag}`).send({ vehicleId }).expect(200),
      ]);
      const map = await app.get(`/v1/telemetry/map/${vehicleId}`).expect(200);
      expect({ round, history: map.body.history }).toEqual({
        round,
        history: [
          {
            meterId: `CP-TAGRACE:${connectorId}`,
            from: new Date(Date.parse(timestamp) + 1).toISOString(),
            to: null,
          },
        ],
      });
      await cp.call('StopTransaction', {
        transactionId,
        meterStop: round * 1000 + 500,
        timestamp: new Date(Date.parse(timestamp) + 30_000).toISOString(),
      });
    }
  });

  test('when a vehicle charges through a whole transaction, then the register in Wh and kWh, phased-only, lands as kWh and the transaction maps the vehicle', async () => {
    await request(e.api.api.app).put('/v1/id-tags/TAG-OC').send({ vehicleId: 'V-oc' }).expect(200);
    const cp = await connect('CP-R');
    await cp.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'NoError',
      status: 'Preparing',
    });
    const start = {
      connectorId: 1,
      idTag: 'tag-oc',
      meterStart: 1_000_000,
      timestamp: '2024-04-01T10:00:00Z',
    };
    type Started = { transactionId: number; idTagInfo: { status: string } };
    const started = (await cp.call('StartTransaction', start)) as Started;
    expect(started.idTagInfo).toEqual({ status: 'Accepted' });
    // Retransmitted (its .conf was lost): the same transaction, not a second one.
    const again = (await cp.call('StartTransaction', start)) as Started;
    expect(again.transactionId).toBe(started.transactionId);

    await cp.call('MeterValues', meterValues(1, '2024-04-01T10:15:00Z', wh(1_002_500)));
    const inKwh = meterValues(1, '2024-04-01T10:30:00Z', {
      value: '1005',
      unit: 'kWh',
      measurand: 'Energy.Active.Import.Register',
    });
    await cp.call('MeterValues', inKwh);
    await cp.call('MeterValues', inKwh); // retransmitted: stored once
    await cp.call(
      'MeterValues',
      meterValues(
        1,
        '2024-04-01T10:45:00Z',
        wh(335_000, { phase: 'L1' }),
        wh(335_000, { phase: 'L2' }),
        wh(337_500, { phase: 'L3' }),
        { value: '231', measurand: 'Voltage', phase: 'L1-N', unit: 'V' },
        { value: '229', measurand: 'Voltage', phase: 'L2-N', unit: 'V' },
        { value: '41.5', measurand: 'Temperature', unit: 'Celsius' },
      ),
    );
    await cp.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'NoError',
      status: 'Charging',
    });
    await cp.call('StopTransaction', {
      transactionId: started.transactionId,
      meterStop: 1_010_000,
      timestamp: '2024-04-01T11:00:00Z',
      reason: 'EVDisconnected',
      transactionData: [{ timestamp: '2024-04-01T10:55:00Z', sampledValue: [wh(1_009_000)] }],
    });
    await waitForDrained(e.queue);

    expect(await history(e, 'CP-R:1')).toEqual([
      { at: '10:00', kwh: 1000, voltage: null },
      { at: '10:15', kwh: 1002.5, voltage: null },
      { at: '10:30', kwh: 1005, voltage: null },
      { at: '10:45', kwh: 1007.5, voltage: 230 },
      { at: '10:55', kwh: 1009, voltage: null },
      { at: '11:00', kwh: 1010, voltage: null },
    ]);
    const mapping = await request(e.api.api.app).get('/v1/telemetry/map/V-oc').expect(200);
    expect(mapping.body.history).toEqual([
      { meterId: 'CP-R:1', from: '2024-04-01T10:00:00.001Z', to: '2024-04-01T11:00:00.001Z' },
    ]);
    const status = await request(e.api.api.app).get('/v1/meters/CP-R:1/status').expect(200);
    expect(status.body).toMatchObject({
      kwhConsumedAc: 1010,
      energyReadings: 'cumulative',
      connector: { status: 'Charging', errorCode: 'NoError' },
    });
  });

  test('when the vehicle posts its DC over HTTP, then its report uses the connector register for AC: hand-computed efficiency and alert', async () => {
    await request(e.api.api.app)
      .post('/v1/telemetry/ingest')
      .send([
        {
          vehicleId: 'V-oc',
          soc: 40,
          kwhDeliveredDc: 3,
          batteryTemp: 30,
          timestamp: '2024-04-01T10:20:00Z',
        },
        {
          vehicleId: 'V-oc',
          soc: 55,
          kwhDeliveredDc: 3,
          batteryTemp: 31,
          timestamp: '2024-04-01T10:40:00Z',
        },
        {
          vehicleId: 'V-oc',
          soc: 68,
          kwhDeliveredDc: 2.4,
          batteryTemp: 32,
          timestamp: '2024-04-01T10:59:00Z',
        },
      ])
      .expect(202);
    await waitForDrained(e.queue);
    const res = await request(e.api.api.app)
      .get('/v1/analytics/performance/V-oc?from=2024-04-01T09:00:00Z&to=2024-04-01T12:00:00Z')
      .expect(200);
    // AC: the register from meterStart 1000 kWh to meterStop 1010 kWh; DC: 3 + 3 + 2.4.
    expect(res.body.meters).toEqual([
      {
        meterId: 'CP-R:1',
        from: '2024-04-01T10:00:00.001Z',
        to: '2024-04-01T11:00:00.001Z',
        energyReadings: 'cumulative',
      },
    ]);
    expect(res.body.energy).toEqual({
      acConsumedKwh: 10,
      dcDeliveredKwh: 8.4,
      efficiency: 0.84,
      threshold: 0.85,
      alert: true,
      mode: 'interval',
    });
  });

  test('when the vehicle charged in that transaction, then the transaction is its charging session', async () => {
    const res = await request(e.api.api.app)
      .get('/v1/vehicles/V-oc/sessions?from=2024-04-01T00:00:00Z&to=2024-04-02T00:00:00Z')
      .expect(200);
    expect(res.body.sessions).toEqual([
      expect.objectContaining({
        source: 'ocpp',
        id: expect.stringMatching(/^tx-\d+$/),
        start: '2024-04-01T10:00:00.000Z',
        end: '2024-04-01T11:00:00.000Z',
        open: false,
        meters: ['CP-R:1'],
        acConsumedKwh: 10,
        dcDeliveredKwh: 8.4,
        efficiency: 0.84,
        meanAcPowerKw: 10,
        socEnd: 68,
        alert: true,
      }),
    ]);
  });

  test("when a running transaction's charger goes quiet, then its mean AC power is over the time its readings cover, not until now", async () => {
    await registerIdTags([['CARD-QUIET', 'V-quiet']]);
    const cp = await connect('CP-QUIET');
    const wh = (value: string) => ({ value, unit: 'Wh', context: 'Sample.Periodic' });
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'CARD-QUIET',
      meterStart: 20_000,
      timestamp: '2024-04-06T10:00:00Z',
    });
    await cp.call('MeterValues', meterValues(1, '2024-04-06T10:30:00Z', wh('25500')));
    await cp.call('MeterValues', meterValues(1, '2024-04-06T11:00:00Z', wh('31000')));
    await waitForDrained(e.queue);
    // Not stopped: the session runs until now, long after its last reading.
    const res = await request(e.api.api.app)
      .get('/v1/vehicles/V-quiet/sessions?from=2024-04-06T00:00:00Z&to=2024-04-07T00:00:00Z')
      .expect(200);
    expect(res.body.sessions).toEqual([
      expect.objectContaining({
        id: `tx-${transactionId}`,
        open: true,
        acConsumedKwh: 11,
        meanAcPowerKw: 11, // 11 kWh over the hour its readings cover
      }),
    ]);
  });

  test('when samples between start and stop are rounded to kWh or share the stop instant, then the session bills meterStop - meterStart exactly', async () => {
    await registerIdTags([['CARD-BILL', 'V-bill']]);
    const cp = await connect('CP-BILL');
    const kwh = (value: string) => ({ value, unit: 'kWh', context: 'Sample.Clock' });
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'CARD-BILL',
      meterStart: 100_456,
      timestamp: '2024-04-05T10:00:00Z',
    });
    // The charger's clock-aligned samples, truncated to 0.1 kWh; the last at the stop's instant.
    await cp.call('MeterValues', meterValues(1, '2024-04-05T10:10:00Z', kwh('100.4')));
    await cp.call('MeterValues', meterValues(1, '2024-04-05T10:20:00Z', kwh('105.2')));
    await cp.call('MeterValues', meterValues(1, '2024-04-05T10:40:00Z', kwh('110.1')));
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 110_000,
      timestamp: '2024-04-05T10:40:00Z',
    });
    await waitForDrained(e.queue);
    const res = await request(e.api.api.app)
      .get('/v1/vehicles/V-bill/sessions?from=2024-04-05T00:00:00Z&to=2024-04-06T00:00:00Z')
      .expect(200);
    // 110,000 - 100,456 Wh; the samples' own steps (100.456 -> 100.4 -> ... -> 110.1) say 9.7.
    expect(res.body.sessions).toEqual([
      expect.objectContaining({
        id: `tx-${transactionId}`,
        acConsumedKwh: 9.544,
        meanAcPowerKw: 14.316, // 9.544 kWh over 40 minutes
      }),
    ]);
  });

  /** The AC the report of `V-{id}` counts over 10:00-11:00 of `day`, connector 1 of `id` mapped. */
  const reportedAcOver = async (id: string, day: string) => {
    await waitForDrained(e.queue);
    await request(e.api.api.app)
      .post('/v1/telemetry/map')
      .send({ vehicleId: `V-${id}`, meterId: `${id}:1`, since: `${day}T10:00:00.001Z` })
      .expect(200);
    const res = await request(e.api.api.app)
      .get(`/v1/analytics/performance/V-${id}?from=${day}T10:00:00Z&to=${day}T11:00:00Z`)
      .expect(200);
    return res.body.energy.acConsumedKwh as number;
  };

  /**
   * A transaction on connector 1 of `id` from 10:00 of `day`, its register samples (Wh) ten
   * minutes apart: the AC its vehicle's report counts over the hour.
   */
  const reportedAcOf = async (id: string, day: string, meterStart: number, samples: number[]) => {
    const cp = await connect(id);
    await cp.call('StartTransaction', {
      connectorId: 1,
      idTag: 'any',
      meterStart,
      timestamp: `${day}T10:00:00Z`,
    });
    for (const [i, value] of samples.entries()) {
      await cp.call('MeterValues', meterValues(1, `${day}T10:${i + 1}0:00Z`, wh(value)));
    }
    return reportedAcOver(id, day);
  };

  test('when the register resets mid-transaction, then the new value counts as the increase', async () => {
    // 500 -> 502 (+2), reset to 1.5 (+1.5), -> 4 (+2.5)
    expect(await reportedAcOf('CP-RESET', '2024-04-02', 500_000, [502_000, 1_500, 4_000])).toBe(6);
  });

  test('when a register sample of 0 comes inside a transaction that started above 0, then it is left out as a glitch, not read as a reset', async () => {
    // Read as a reset, the 0 would make 50,020 of the last sample.
    const ac = await reportedAcOf('CP-ZERO', '2024-04-03', 50_000_000, [50_010_000, 0, 50_020_000]);
    expect(ac).toBe(20);
    expect((await history(e, 'CP-ZERO:1')).map((r) => r.kwh)).toEqual([50_000, 50_010, 50_020]);
    const metrics = await request(e.api.api.app).get('/metrics').expect(200);
    expect(metrics.text).toContain(
      'energy_ocpp_samples_rejected_total{reason="zero register in a transaction",process="api"} 1',
    );
  });

  test("when a StopTransaction's meterStop is below its meterStart, then it is left out of history as such a sample is, and counted; the transaction keeps it", async () => {
    const reason = "below its transaction's meterStart";
    const rejected = async () =>
      sampleValue(
        (await request(e.api.api.app).get('/metrics').expect(200)).text,
        'energy_ocpp_samples_rejected_total',
        { reason },
      ) || 0;
    const before = await rejected();
    const cp = await connect('CP-STOPLOW');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 5_000,
      timestamp: '2024-04-05T13:00:00Z',
    });
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 4_000,
      timestamp: '2024-04-05T13:30:00Z',
    });
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-STOPLOW:1')).map((r) => [r.at, r.kwh])).toEqual([['13:00', 5]]);
    expect(await rejected()).toBe(before + 1);
    const [kept] = await e.ctx.db('ocpp_transactions').where({ id: transactionId });
    expect(Number(kept.meter_stop_wh)).toBe(4_000);
  });

  test('when register samples inside a transaction fall below its meterStart (rounded down to kWh, some phases only), then they are left out, not read as drops or resets', async () => {
    const reasons = ["below its transaction's meterStart", 'incomplete phases'];
    const rejected = async () => {
      const text = (await request(e.api.api.app).get('/metrics').expect(200)).text;
      return reasons.map(
        (reason) => sampleValue(text, 'energy_ocpp_samples_rejected_total', { reason }) || 0,
      );
    };
    const before = await rejected();
    // Rounded down: 100.456 -> 100 read as a dip made each later kWh step count from 100 (3 for 2.544).
    expect(
      await reportedAcOf('CP-ROUND', '2024-04-04', 100_456, [100_000, 101_000, 102_000, 103_000]),
    ).toBe(2.544);
    // Some phases only: L1 alone (10,001 of 30,001.5 kWh) read as a reset counted 30,004.5 whole.
    const cp = await connect('CP-PHASES');
    await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 30_001_500,
      timestamp: '2024-04-05T10:00:00Z',
    });
    const phases = (...values: number[]) =>
      values.map((value, i) => wh(value, { phase: `L${i + 1}` }));
    await cp.call('MeterValues', meterValues(1, '2024-04-05T10:10:00Z', ...phases(10_001_000)));
    await cp.call(
      'MeterValues',
      meterValues(1, '2024-04-05T10:20:00Z', ...phases(10_001_500, 10_001_500, 10_001_500)),
    );
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-PHASES:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 30_001.5],
      ['10:20', 30_004.5],
    ]);
    expect(await rejected()).toEqual(before.map((n) => n + 1));
  });

  test('when samples inside a transaction dip below an earlier sample of it (the register in Wh beside it rounded down to kWh, some phases only), then they are left out and the report counts what the transaction billed', async () => {
    const earlier = 'below an earlier register of its transaction';
    const rejected = async (reason: string) =>
      sampleValue(
        (await request(e.api.api.app).get('/metrics').expect(200)).text,
        'energy_ocpp_samples_rejected_total',
        { reason },
      ) || 0;
    const before = await rejected(earlier);
    const kwh = (value: string) => ({ value, unit: 'kWh', context: 'Sample.Clock' });
    // Across messages: 101 after 101.456 read as a dip made the rise after it count again.
    const cp = await connect('CP-DIP');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 100_456,
      timestamp: '2024-04-08T10:00:00Z',
    });
    const samples: [string, object][] = [
      ['10:05', kwh('100')],
      ['10:10', wh(100_956)],
      ['10:15', kwh('101')],
      ['10:20', wh(101_456)],
      ['10:25', kwh('101')],
      ['10:30', wh(101_956)],
    ];
    for (const [at, sample] of samples) {
      await cp.call('MeterValues', meterValues(1, `2024-04-08T${at}:00Z`, sample));
    }
    // In one StopTransaction's transactionData, in no particular order: the same.
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 102_956,
      timestamp: '2024-04-08T10:50:00Z',
      transactionData: [
        { timestamp: '2024-04-08T10:45:00Z', sampledValue: [kwh('102')] },
        { timestamp: '2024-04-08T10:40:00Z', sampledValue: [wh(102_456)] },
        { timestamp: '2024-04-08T10:35:00Z', sampledValue: [kwh('101')] },
      ],
    });
    // 102.956 - 100.456; the dips read as such counted 3.5.
    expect(await reportedAcOver('CP-DIP', '2024-04-08')).toBe(2.5);
    expect(await rejected(earlier)).toBe(before + 3);

    // A small meterStart, and every other message without L3.
    const phased = await connect('CP-DIP3');
    const phases = (...values: number[]) =>
      values.map((value, i) => wh(value, { phase: `L${i + 1}` }));
    const phasedTransaction = await startTransaction(phased, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 300,
      timestamp: '2024-04-09T10:00:00Z',
    });
    const sums = [
      [1_000, 1_000, 1_000],
      [1_400, 1_400],
      [2_000, 2_000, 2_000],
    ];
    for (const [i, values] of sums.entries()) {
      await phased.call(
        'MeterValues',
        meterValues(1, `2024-04-09T10:${i + 1}0:00Z`, ...phases(...values)),
      );
    }
    await phased.call('StopTransaction', {
      transactionId: phasedTransaction,
      meterStop: 6_300,
      timestamp: '2024-04-09T10:40:00Z',
    });
    // 6.3 - 0.3; L1 and L2 alone (2.8 after 3) read as a dip counted 6.2.
    expect(await reportedAcOver('CP-DIP3', '2024-04-09')).toBe(6);
  });

  test('when a transaction starts on another replica (the charge point reconnected there, or is connected to both), then its samples rounded down are left out on this one too', async () => {
    const other = await startTestApi(e.ctx);
    const served = await serveTestApiWithOcpp(other);
    const kwh = (value: string) => ({ value, unit: 'kWh', context: 'Sample.Clock' });
    /** Rounded samples of a transaction from 100.456 kWh (`named`: naming it), then its stop. */
    const samplesAndStop = async (
      cp: RPCClient,
      day: string,
      transactionId: number,
      { named }: { named: boolean },
    ) => {
      for (const [at, sample] of [
        ['10:10', kwh('100')],
        ['10:20', wh(101_456)],
        ['10:30', kwh('101')],
      ] as const) {
        await cp.call('MeterValues', {
          ...meterValues(1, `${day}T${at}:00Z`, sample),
          ...(named ? { transactionId } : {}),
        });
      }
      await cp.call('StopTransaction', {
        transactionId,
        meterStop: 102_956,
        timestamp: `${day}T10:50:00Z`,
      });
    };
    const idle = (cp: RPCClient, day: string) =>
      cp.call('MeterValues', meterValues(1, `${day}T09:00:00Z`, wh(100_456)));
    const start = (cp: RPCClient, day: string) =>
      startTransaction(cp, {
        connectorId: 1,
        idTag: 'any',
        meterStart: 100_456,
        timestamp: `${day}T10:00:00Z`,
      });
    try {
      // Here while idle, then on the other replica for its start, then back here (within a
      // minute): samples naming no transaction.
      const first = await connect('CP-MOVED');
      await idle(first, '2024-07-01');
      await first.close({ force: true });
      const there = await chargePoint(served, 'CP-MOVED');
      const transactionId = await start(there, '2024-07-01');
      await there.close({ force: true });
      const back = await connect('CP-MOVED');
      await samplesAndStop(back, '2024-07-01', transactionId, { named: false });
      expect(await reportedAcOver('CP-MOVED', '2024-07-01')).toBe(2.5);

      // Connected to both at once (two chargers with one id, an old socket not closed): started
      // on the other replica, its samples here name it.
      const here = await connect('CP-BOTH');
      await idle(here, '2024-07-02');
      const both = await chargePoint(served, 'CP-BOTH');
      const started = await start(both, '2024-07-02');
      await samplesAndStop(here, '2024-07-02', started, { named: true });
      await both.close({ force: true });
      expect(await reportedAcOver('CP-BOTH', '2024-07-02')).toBe(2.5);
    } finally {
      await served.close();
      await other.close();
    }
  });

  test('when a sample rounded down arrives after newer ones were stored (a queue delivered late), then it is held to the register stored just before it and left out', async () => {
    const cp = await connect('CP-DELAYED');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 10_000,
      timestamp: '2024-04-12T10:00:00Z',
    });
    const kwh = (value: string) => ({ value, unit: 'kWh', context: 'Sample.Periodic' });
    // 15.0 at 10:30, then late: 12.4 at 10:20, and 12 at 10:25 (12.4 rounded down).
    for (const [at, value] of [
      ['10:30', '15.0'],
      ['10:20', '12.4'],
      ['10:25', '12'],
    ]) {
      await cp.call('MeterValues', meterValues(1, `2024-04-12T${at}:00Z`, kwh(value)));
      await waitForDrained(e.queue); // in history before the next one comes
    }
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 16_000,
      timestamp: '2024-04-12T10:35:00Z',
    });
    // 16 - 10, what the transaction billed; the 12 read as a dip counted 6.4.
    expect(await reportedAcOver('CP-DELAYED', '2024-04-12')).toBe(6);

    // The same sample in a StopTransaction's transactionData, dated before what was stored.
    const stopping = await connect('CP-DELAYED2');
    const second = await startTransaction(stopping, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 10_000,
      timestamp: '2024-04-13T10:00:00Z',
    });
    for (const [at, value] of [
      ['10:20', '12.4'],
      ['10:30', '15.0'],
    ]) {
      await stopping.call('MeterValues', meterValues(1, `2024-04-13T${at}:00Z`, kwh(value)));
    }
    await waitForDrained(e.queue);
    await stopping.call('StopTransaction', {
      transactionId: second,
      meterStop: 16_000,
      timestamp: '2024-04-13T10:35:00Z',
      transactionData: [{ timestamp: '2024-04-13T10:25:00Z', sampledValue: [kwh('12')] }],
    });
    expect(await reportedAcOver('CP-DELAYED2', '2024-04-13')).toBe(6);
    expect((await history(e, 'CP-DELAYED:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 10],
      ['10:20', 12.4],
      ['10:30', 15],
      ['10:35', 16],
    ]);
  });

  test('when MeterValues of a transaction come after its StopTransaction (a queue delivered late), then a sample rounded down is held to that transaction and left out', async () => {
    const cp = await connect('CP-AFTERSTOP');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 10_000,
      timestamp: '2024-04-14T10:00:00Z',
    });
    const kwh = (value: string) => ({ value, unit: 'kWh', context: 'Sample.Periodic' });
    await cp.call('MeterValues', meterValues(1, '2024-04-14T10:10:00Z', kwh('12.5')));
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 15_000,
      timestamp: '2024-04-14T10:30:00Z',
    });
    await waitForDrained(e.queue);
    // Late, naming the stopped transaction: 12 at 10:20 is 12.5 rounded down.
    await cp.call('MeterValues', {
      ...meterValues(1, '2024-04-14T10:20:00Z', kwh('12')),
      transactionId,
    });
    // 15 - 10, what the transaction billed; the 12 read as a dip counted 5.5.
    expect(await reportedAcOver('CP-AFTERSTOP', '2024-04-14')).toBe(5);
    expect((await history(e, 'CP-AFTERSTOP:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 10],
      ['10:10', 12.5],
      ['10:30', 15],
    ]);
  });

  test('when MeterValues without a transactionId come after the StopTransaction, dated inside it (a clock-aligned sample queued offline), then a sample rounded down is held to that transaction and left out', async () => {
    const cp = await connect('CP-AFTERSTOP2');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 10_000,
      timestamp: '2024-04-15T10:00:00Z',
    });
    const kwh = (value: string) => ({ value, unit: 'kWh', context: 'Sample.Clock' });
    await cp.call('MeterValues', meterValues(1, '2024-04-15T10:10:00Z', kwh('12.5')));
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 15_000,
      timestamp: '2024-04-15T10:30:00Z',
    });
    await waitForDrained(e.queue);
    // Late and naming no transaction: 12 at 10:20 is 12.5 rounded down. 13 at 10:25 is kept.
    await cp.call('MeterValues', {
      connectorId: 1,
      meterValue: [
        { timestamp: '2024-04-15T10:20:00Z', sampledValue: [kwh('12')] },
        { timestamp: '2024-04-15T10:25:00Z', sampledValue: [kwh('13')] },
      ],
    });
    // After the stop, idle: stored as it is.
    await cp.call('MeterValues', meterValues(1, '2024-04-15T11:00:00Z', kwh('15')));
    expect(await reportedAcOver('CP-AFTERSTOP2', '2024-04-15')).toBe(5);
    expect((await history(e, 'CP-AFTERSTOP2:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 10],
      ['10:10', 12.5],
      ['10:25', 13],
      ['10:30', 15],
      ['11:00', 15],
    ]);
  });

  test('when the register resets mid-transaction, then the samples after the reset count from it, not from meterStart', async () => {
    const cp = await connect('CP-RESET2');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 10_000,
      timestamp: '2024-04-10T10:00:00Z',
    });
    for (const [i, value] of [10_500, 1_000, 6_000, 8_000].entries()) {
      await cp.call('MeterValues', meterValues(1, `2024-04-10T10:${i + 1}0:00Z`, wh(value)));
    }
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 9_000,
      timestamp: '2024-04-10T10:50:00Z',
    });
    // 10 -> 10.5 (+0.5), reset to 1 (+1), 6 (+5), 8 (+2), 9 (+1). Held to meterStart, 6 and 8
    // were left out: the same total, but no power in their minutes.
    expect(await reportedAcOver('CP-RESET2', '2024-04-10')).toBe(9.5);
    expect((await history(e, 'CP-RESET2:1')).map((r) => r.kwh)).toEqual([10, 10.5, 1, 6, 8, 9]);
  });

  test('when the register resets mid-transaction and ends above meterStart, then the session counts the reset as the report does, not meterStop - meterStart', async () => {
    await registerIdTags([['TAG-RESET3', 'V-reset3']]);
    const cp = await connect('CP-RESET3');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-RESET3',
      meterStart: 1_000,
      timestamp: '2024-04-12T10:00:00Z',
    });
    for (const [i, value] of [1_800, 200, 900].entries()) {
      await cp.call('MeterValues', {
        ...meterValues(1, `2024-04-12T10:${i + 1}0:00Z`, wh(value)),
        transactionId,
      });
    }
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 1_500,
      timestamp: '2024-04-12T10:40:00Z',
    });
    await waitForDrained(e.queue);
    // 1 -> 1.8 (+0.8), reset to 0.2 (+0.2), 0.9 (+0.7), 1.5 (+0.6): 2.3, where the bill says 0.5.
    const window = 'from=2024-04-12T00:00:00Z&to=2024-04-13T00:00:00Z';
    const sessions = await request(e.api.api.app)
      .get(`/v1/vehicles/V-reset3/sessions?${window}`)
      .expect(200);
    expect(sessions.body.sessions.map((x: { acConsumedKwh: number }) => x.acConsumedKwh)).toEqual([
      2.3,
    ]);
    const report = await request(e.api.api.app)
      .get(`/v1/analytics/performance/V-reset3?${window}`)
      .expect(200);
    expect(report.body.energy.acConsumedKwh).toBe(2.3);
  });

  test.each([
    // One glitched sample: 1 -> 3, 0.2 (a "reset" worth 0.2), 4, 5: folded 7 kWh.
    ['a glitched sample', 'CP-GLITCH', 1_000, ['3000', '200', '4000'], 'Wh', 5_000, 4],
    // kWh sent without its unit (read as Wh): 120 -> 0.1255, 0.131, 0.1365, 142: folded 142.
    [
      'samples in kWh sent as Wh',
      'CP-KWHUNIT',
      120_000,
      ['125.5', '131.0', '136.5'],
      undefined,
      142_000,
      22,
    ],
    // A register that restarts from 0 and climbs past where it dropped from: a reset all the
    // same (0 -> 10, 0.1 (+0.1), 2, 5, 9, 12, 15: 25 folded), not billed as 15.
    [
      'a reset early in the session',
      'CP-EARLYRESET',
      0,
      ['10000', '100', '2000', '5000', '9000', '12000'],
      'Wh',
      15_000,
      25,
    ],
  ])(
    'when a transaction holds %s below half its register, then the session bills meterStop - meterStart only if the register came back in one step',
    async (_what, id, meterStart, samples, unit, meterStop, billedKwh) => {
      const idTag = `TAG-${id}`;
      const vehicle = `V-${id}`;
      await registerIdTags([[idTag, vehicle]]);
      const cp = await connect(id);
      const transactionId = await startTransaction(cp, {
        connectorId: 1,
        idTag,
        meterStart,
        timestamp: '2024-04-13T10:00:00Z',
      });
      for (const [i, value] of samples.entries()) {
        await cp.call('MeterValues', {
          connectorId: 1,
          transactionId,
          meterValue: [
            {
              timestamp: `2024-04-13T10:${String(5 + i * 8).padStart(2, '0')}:00Z`,
              sampledValue: [
                {
                  value,
                  measurand: 'Energy.Active.Import.Register',
                  ...(unit ? { unit } : {}),
                },
              ],
            },
          ],
        });
      }
      await cp.call('StopTransaction', {
        transactionId,
        meterStop,
        timestamp: '2024-04-13T11:00:00Z',
      });
      await waitForDrained(e.queue);
      const sessions = await request(e.api.api.app)
        .get(`/v1/vehicles/${vehicle}/sessions?from=2024-04-13T00:00:00Z&to=2024-04-14T00:00:00Z`)
        .expect(200);
      expect(sessions.body.sessions.map((x: { acConsumedKwh: number }) => x.acConsumedKwh)).toEqual(
        [billedKwh],
      );
    },
  );

  test('when a transaction without meterStop (running, or left open and superseded) holds a glitched sample, then its session bills its newest sample - meterStart, not the glitch as a reset, nor a newest sample that drops below half', async () => {
    await registerIdTags([['TAG-OPENGLITCH', 'V-OPENGLITCH']]);
    const sample = (transactionId: number, at: string, value: string) => ({
      connectorId: 1,
      transactionId,
      meterValue: [
        {
          timestamp: `2024-04-14T${at}:00Z`,
          sampledValue: [{ value, measurand: 'Energy.Active.Import.Register', unit: 'Wh' }],
        },
      ],
    });
    const sessionsAc = async () => {
      await waitForDrained(e.queue);
      const res = await request(e.api.api.app)
        .get(
          '/v1/vehicles/V-OPENGLITCH/sessions?from=2024-04-14T00:00:00Z&to=2024-04-15T00:00:00Z&fresh=true',
        )
        .expect(200);
      return res.body.sessions.map((x: { transactionId: number; acConsumedKwh: number }) => [
        x.transactionId,
        x.acConsumedKwh,
      ]);
    };
    const first = await connect('CP-OPENGLITCH-A');
    const running = await startTransaction(first, {
      connectorId: 1,
      idTag: 'TAG-OPENGLITCH',
      meterStart: 500_000,
      timestamp: '2024-04-14T10:00:00Z',
    });
    // 500 -> 500.2, a glitch of 166.733, back at 500.3: folded as a reset it was 500.3 kWh.
    // While the glitch is the newest sample, a reset or a glitch, the register stands at 500.2.
    for (const [at, value, billed] of [
      ['10:10', '500200', 0.2],
      ['10:20', '166733', 0.2],
      ['10:30', '500300', 0.3],
      ['10:40', '1000', 0.3],
    ] as const) {
      await first.call('MeterValues', sample(running, at, value));
      expect({ at, sessions: await sessionsAc() }).toEqual({ at, sessions: [[running, billed]] });
    }
    // The vehicle starts elsewhere: the first transaction is closed without a meterStop.
    const second = await connect('CP-OPENGLITCH-B');
    const next = await startTransaction(second, {
      connectorId: 1,
      idTag: 'TAG-OPENGLITCH',
      meterStart: 7_000,
      timestamp: '2024-04-14T11:00:00Z',
    });
    const [closed] = await e.ctx.db('ocpp_transactions').where({ id: running });
    expect([closed.stop_reason, closed.meter_stop_wh]).toEqual(['SupersededElsewhere', null]);
    expect(await sessionsAc()).toEqual([
      [next, 0],
      [running, 0.3],
    ]);
  });

  test('when one idTag starts on two connectors at the same instant, then the vehicle is mapped to the one kept open, not to the one stopped', async () => {
    await registerIdTags([['TAG-TWIN', 'V-TWIN']]);
    const cp = await connect('CP-TWIN');
    const at = '2024-04-15T10:00:00.000Z';
    for (const connectorId of [2, 3]) {
      await startTransaction(cp, { connectorId, idTag: 'TAG-TWIN', meterStart: 0, timestamp: at });
    }
    const periods = await e.ctx
      .db('vehicle_meter_map')
      .where({ vehicle_id: 'V-TWIN' })
      .orderBy('valid_from');
    expect(periods.map((p) => [p.meter_id, p.valid_from.toISOString(), p.valid_to])).toEqual([
      ['CP-TWIN:3', '2024-04-15T10:00:00.001Z', null],
    ]);
  });

  test("when a sample dated before its connector's transaction started comes late (a charger's queue), then it is kept: the register was lower then", async () => {
    const cp = await connect('CP-LATEQ');
    await startTransaction(cp, {
      connectorId: 1,
      idTag: 'any',
      meterStart: 100_000,
      timestamp: '2024-04-07T10:00:00Z',
    });
    await cp.call('MeterValues', meterValues(1, '2024-04-07T09:50:00Z', wh(99_000)));
    await cp.call('MeterValues', meterValues(1, '2024-04-07T10:10:00Z', wh(99_500)));
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-LATEQ:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['09:50', 99],
      ['10:00', 100],
    ]);
  });

  test("when an element carries the inlet's register beside the outlet's, then the outlet's is the connector's register", async () => {
    const cp = await connect('CP-INLET');
    await cp.call('MeterValues', {
      connectorId: 1,
      meterValue: [10, 20].map((minute, i) => ({
        timestamp: `2024-04-06T10:${minute}:00Z`,
        sampledValue: [
          wh(5_101_000 + i * 500, { location: 'Inlet' }),
          wh(5_000_500 + i * 1000, { location: 'Outlet' }),
        ],
      })),
    });
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-INLET:1')).map((r) => r.kwh)).toEqual([5_000.5, 5_001.5]);
  });

  test("when an element carries the vehicle's voltage beside the outlet's, then the outlet's is the connector's voltage", async () => {
    const cp = await connect('CP-EVVOLT');
    await cp.call('MeterValues', {
      connectorId: 1,
      meterValue: [
        {
          timestamp: '2024-04-06T10:10:00Z',
          sampledValue: [
            wh(1_000),
            { value: '398', measurand: 'Voltage', unit: 'V', location: 'EV' },
            { value: '231', measurand: 'Voltage', unit: 'V', phase: 'L1-N' },
          ],
        },
        {
          timestamp: '2024-04-06T10:20:00Z',
          sampledValue: [wh(2_000), { value: '229', measurand: 'Voltage', location: 'Inlet' }],
        },
      ],
    });
    await waitForDrained(e.queue);
    // The battery's 398 V (and the inlet's) is not the outlet's voltage.
    expect((await history(e, 'CP-EVVOLT:1')).map((r) => [r.kwh, r.voltage])).toEqual([
      [1, 231],
      [2, null],
    ]);
  });

  test('when a sample has a unit wrong for its measurand or a negative value, then it is refused and the rest of the message kept', async () => {
    const cp = await connect('CP-UNIT');
    await cp.call('MeterValues', {
      connectorId: 1,
      meterValue: [
        { timestamp: '2024-04-03T10:00:00Z', sampledValue: [{ value: '7', unit: 'kW' }] },
        { timestamp: '2024-04-03T10:01:00Z', sampledValue: [wh(-5)] },
        { timestamp: '2024-04-03T10:02:00Z', sampledValue: [wh(12_000)] },
      ],
    });
    await waitForDrained(e.queue);
    expect(await history(e, 'CP-UNIT:1')).toEqual([{ at: '10:02', kwh: 12, voltage: null }]);
    const metrics = await request(e.api.api.app).get('/metrics').expect(200);
    expect(metrics.text).toMatch(
      /energy_ocpp_samples_rejected_total\{reason="unknown unit"[^}]*\} 1/,
    );
    expect(metrics.text).toMatch(/energy_ocpp_samples_rejected_total\{reason="negative value"/);
  });

  test('when a message holds thousands of unusable samples, then each is counted and the good ones stored', async () => {
    const rejected = async () =>
      sampleValue(
        (await request(e.api.api.app).get('/metrics').expect(200)).text,
        'energy_ocpp_samples_rejected_total',
        { reason: 'non-numeric value' },
      ) || 0;
    const before = await rejected();
    const cp = await connect('CP-MANYBAD');
    const bad = { timestamp: '2024-04-03T10:00:00Z', sampledValue: [{ value: 'x' }] };
    expect(
      await cp.call('MeterValues', {
        connectorId: 1,
        meterValue: [
          ...Array.from({ length: 3_000 }, () => bad),
          { timestamp: '2024-04-03T10:01:00Z', sampledValue: [wh(12_000)] },
        ],
      }),
    ).toEqual({});
    await waitForDrained(e.queue);
    expect(await history(e, 'CP-MANYBAD:1')).toEqual([{ at: '10:01', kwh: 12, voltage: null }]);
    expect((await rejected()) - before).toBe(3_000);
  });

  test('when a message breaks the OCPP schema, then the engine refuses it with the schema violation and stores nothing', async () => {
    // A charge point that does not check what it sends (strict mode would refuse to send it).
    const cp = await chargePoint(e, 'CP-BAD', { strict: false });
    clients.push(cp);
    expect(
      await callError(
        cp.call('MeterValues', {
          connectorId: 'one',
          meterValue: [{ timestamp: '2024-04-05T10:00:00Z', sampledValue: [wh(1)] }],
        }),
      ),
    ).toBe('TypeConstraintViolation');
    // OCPP-J 1.6 §4.2.3: a field the PDU has not is a FormationViolation, a value out of its
    // field's rule (an enum, a length) a PropertyConstraintViolation, a missing field an
    // OccurenceConstraintViolation. ocpp-rpc's table (2.0's) answered the first and the enum wrong.
    expect(
      await callError(cp.call('MeterValues', { connectorId: 1, meterValue: [], extra: true })),
    ).toBe('FormationViolation');
    const status = { connectorId: 1, errorCode: 'NoError', status: 'Available' };
    expect(await callError(cp.call('StatusNotification', { ...status, status: 'Occupied' }))).toBe(
      'PropertyConstraintViolation',
    );
    expect(
      await callError(cp.call('StatusNotification', { ...status, info: 'x'.repeat(51) })),
    ).toBe('PropertyConstraintViolation');
    expect(
      await callError(cp.call('StatusNotification', { connectorId: 1, status: 'Available' })),
    ).toBe('OccurenceConstraintViolation');
    await waitForDrained(e.queue);
    expect(await history(e, 'CP-BAD:1')).toEqual([]);
  });

  test("when a message breaks the engine's limits (connector id, register), then PropertyConstraintViolation names it and nothing is recorded", async () => {
    const cp = await connect('CP-LIMITS');
    const start = {
      connectorId: 1,
      idTag: 'TAG-L',
      meterStart: 1000,
      timestamp: '2024-04-06T10:00:00Z',
    };
    for (const bad of [
      { ...start, connectorId: 3_000_000_000 },
      { ...start, connectorId: 0 },
      { ...start, meterStart: -100 },
      { ...start, meterStart: 1e20 },
    ]) {
      expect(await callError(cp.call('StartTransaction', bad))).toBe('PropertyConstraintViolation');
    }
    expect(
      await callError(cp.call('MeterValues', meterValues(-1, start.timestamp, wh(1000)))),
    ).toBe('PropertyConstraintViolation');
    const stored = await e.ctx.db('ocpp_transactions').where({ charge_point_id: 'CP-LIMITS' });
    expect(stored).toEqual([]);
  });

  test('when timestamps carry an hour-only offset, no zone or a space for the T, then each is the instant it names', async () => {
    const cp = await connect('CP-ZONE');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-ZONE',
      meterStart: 1_000,
      timestamp: '2024-04-13T11:00:00+01',
    });
    await cp.call('MeterValues', meterValues(1, '2024-04-13T12:10:00+02', wh(2_000)));
    await cp.call('MeterValues', meterValues(1, '2024-04-13 10:20:00', wh(3_000)));
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 4_000,
      timestamp: '2024-04-13T09:30:00-01',
    });
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-ZONE:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 1],
      ['10:10', 2],
      ['10:20', 3],
      ['10:30', 4],
    ]);
  });

  test('when a charge point whose clock runs an hour fast starts and stops a transaction, then both are taken as of now, with their registers', async () => {
    await registerIdTags([['TAG-FAST', 'V-fast']]);
    const cp = await connect('CP-FAST');
    const ahead = () => new Date(Date.now() + 3600_000).toISOString();
    const before = Date.now();
    const start = ahead();
    const { transactionId } = await startsOnConnector1(cp)('TAG-FAST', 5000, start);
    // Sent again (its answer lost): the same transaction.
    expect(await startsOnConnector1(cp)('TAG-FAST', 5000, start)).toMatchObject({ transactionId });
    await cp.call('StopTransaction', { transactionId, meterStop: 7500, timestamp: ahead() });
    const after = Date.now();
    const row = await e.ctx.db('ocpp_transactions').where({ id: transactionId }).first();
    for (const at of [row.started_at, row.stopped_at]) {
      expect(at.getTime()).toBeGreaterThanOrEqual(before);
      expect(at.getTime()).toBeLessThanOrEqual(after);
    }
    await waitForDrained(e.queue);
    const registers = await e.ctx
      .db('telemetry_history')
      .where({ device_type: 'meter', device_id: 'CP-FAST:1' })
      .orderBy('ts')
      .pluck('kwh_consumed_ac');
    expect(registers).toEqual([5, 7.5]);
  });

  test('when a voltage is out of range or the neutral phase is sent, then the register is kept from the line phases', async () => {
    const cp = await connect('CP-PHASES');
    await cp.call('MeterValues', {
      connectorId: 2,
      meterValue: [
        {
          timestamp: '2024-04-07T10:00:00Z',
          sampledValue: [wh(7000), { value: '1200', measurand: 'Voltage' }],
        },
        {
          timestamp: '2024-04-07T10:01:00Z',
          sampledValue: [
            wh(1000, { phase: 'L1-N' }),
            wh(1000, { phase: 'L2-N' }),
            wh(1000, { phase: 'L3-N' }),
            wh(100, { phase: 'N' }),
            { value: '230', measurand: 'Voltage', phase: 'L1-N' },
            { value: '5', measurand: 'Voltage', phase: 'N' },
          ],
        },
      ],
    });
    await waitForDrained(e.queue);
    expect(await history(e, 'CP-PHASES:2')).toEqual([
      { at: '10:00', kwh: 7, voltage: null },
      { at: '10:01', kwh: 3, voltage: 230 },
    ]);
    const metrics = await request(e.api.api.app).get('/metrics').expect(200);
    expect(metrics.text).toMatch(/energy_ocpp_samples_rejected_total\{reason="out of range"/);
  });

  test('when a connector gets a transaction while one is open on it, then no vehicle stays mapped to the connector', async () => {
    await registerIdTags([
      ['TAG-A', 'V-a'],
      ['TAG-B', 'V-b'],
      ['TAG-C', 'V-c'],
    ]);
    const cp = await connect('CP-SEQ');
    const startOf = startsOnConnector1(cp);
    // A's StopTransaction never arrives: B's start on the same connector ends A's transaction.
    const a = await startOf('TAG-A', 1000, '2024-04-08T10:00:00Z');
    const b = await startOf('TAG-B', 5000, '2024-04-08T11:00:00Z');
    await cp.call('StopTransaction', {
      transactionId: b.transactionId,
      meterStop: 9000,
      timestamp: '2024-04-08T11:30:00Z',
    });
    // A second stop with other values does not move the first.
    await cp.call('StopTransaction', {
      transactionId: b.transactionId,
      meterStop: 9500,
      timestamp: '2024-04-08T11:30:00Z',
    });
    await startOf('TAG-C', 9500, '2024-04-08T12:00:00Z');

    const map = async (vehicleId: string) =>
      (await request(e.api.api.app).get(`/v1/telemetry/map/${vehicleId}`).expect(200)).body;
    expect((await map('V-a')).history).toEqual([
      { meterId: 'CP-SEQ:1', from: '2024-04-08T10:00:00.001Z', to: '2024-04-08T11:00:00.001Z' },
    ]);
    expect((await map('V-b')).history).toEqual([
      { meterId: 'CP-SEQ:1', from: '2024-04-08T11:00:00.001Z', to: '2024-04-08T11:30:00.001Z' },
    ]);
    expect((await map('V-c')).current).toMatchObject({ meterId: 'CP-SEQ:1', to: null });
    const stops = await e.ctx
      .db('ocpp_transactions')
      .whereIn('id', [a.transactionId, b.transactionId])
      .orderBy('id')
      .select('meter_stop_wh', 'stopped_at', 'stop_reason');
    expect(stops.map((t) => [Number(t.meter_stop_wh), t.stopped_at.toISOString()])).toEqual([
      [5000, '2024-04-08T11:00:00.000Z'],
      [9000, '2024-04-08T11:30:00.000Z'],
    ]);
    const point = await request(e.api.api.app).get('/v1/charge-points/CP-SEQ').expect(200);
    expect(point.body.connectors).toEqual([
      expect.objectContaining({
        connectorId: 1,
        openTransaction: expect.objectContaining({ idTag: 'TAG-C' }),
      }),
    ]);
  });

  test("when a charger that lost its clock at a reboot stops a transaction with a date before its start, then it is taken as of now, its well-dated samples kept, and the vehicle's report counts what the session bills", async () => {
    await registerIdTags([['TAG-LOSTCLOCK', 'V-lostclock']]);
    const cp = await connect('CP-LOSTCLOCK');
    const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-LOSTCLOCK',
      meterStart: 1_000,
      timestamp: ago(60),
    });
    await cp.call('MeterValues', meterValues(1, ago(30), wh(2_000)));
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    const before = Date.now();
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 3_000,
      timestamp: '2000-01-01T00:00:00Z',
      reason: 'PowerLoss',
      transactionData: [
        // Taken before the reboot: kept. Dated by the lost clock: left out.
        { timestamp: ago(15), sampledValue: [wh(2_500)] },
        { timestamp: '2000-01-01T00:00:01Z', sampledValue: [wh(2_900)] },
      ],
    });
    const after = Date.now();
    await waitForDrained(e.queue);
    const window = `from=${ago(120)}&to=${new Date(after + 60_000).toISOString()}`;
    const sessions = await request(e.api.api.app)
      .get(`/v1/vehicles/V-lostclock/sessions?${window}`)
      .expect(200);
    const [session] = sessions.body.sessions;
    expect(session.acConsumedKwh).toBe(2);
    expect(session.peakAcPowerKw).toBeLessThan(2.1); // 0.5 to 1 kWh a quarter or half hour
    expect(Date.parse(session.end)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(session.end)).toBeLessThanOrEqual(after);
    // Ended at its start, the report had no mapping period at all (404 beside a 2 kWh session);
    // ended just after its last sample, the rest of the charge took 1 ms (millions of kW).
    const report = await request(e.api.api.app)
      .get(`/v1/analytics/performance/V-lostclock?${window}`)
      .expect(200);
    expect(report.body.energy.acConsumedKwh).toBe(2);
    expect((await history(e, 'CP-LOSTCLOCK:1')).map((r) => r.kwh)).toEqual([1, 2, 2.5, 3]);
  });

  describe('a StartTransaction dated by a clock lost at a reboot', () => {
    const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
    const now = () => new Date().toISOString();
    const tick = () => new Promise((r) => setTimeout(r, 20));

    /**
     * A charge point with yesterday's transaction (10 to 30 kWh) on connector 1, then a reboot;
     * `booted`: when the engine heard of the boot.
     */
    async function withYesterday(id: string, tag: string) {
      await registerIdTags([[tag, `V-${id}`]]);
      const cp = await connect(id);
      const yesterday = await startTransaction(cp, {
        connectorId: 1,
        idTag: tag,
        meterStart: 10_000,
        timestamp: ago(26 * 60),
      });
      await cp.call('StopTransaction', {
        transactionId: yesterday,
        meterStop: 30_000,
        timestamp: ago(25 * 60),
      });
      const booted = Date.now();
      await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
      return { cp, yesterday, booted };
    }

    const lostStart = (tag: string, connectorId = 1) => ({
      connectorId,
      idTag: tag,
      meterStart: 30_000,
      timestamp: '2000-01-01T00:00:00Z',
    });

    /** The vehicle's sessions of the last two hours: [id, AC kWh]. */
    const sessionsOf = async (vehicleId: string) => {
      const window = `from=${ago(120)}&to=${new Date(Date.now() + 60_000).toISOString()}`;
      const res = await request(e.api.api.app)
        .get(`/v1/vehicles/${vehicleId}/sessions?${window}`)
        .expect(200);
      return (res.body.sessions as { id: string; acConsumedKwh: number }[]).map((s) => [
        s.id,
        s.acConsumedKwh,
      ]);
    };

    test('when the charge point has a later transaction, then it starts at the boot that set the clock again, a resend (also after its stop) is the same transaction, and the session bills the charge', async () => {
      const { cp, booted } = await withYesterday('CP-LOSTSTART', 'TAG-LOSTSTART');
      const start = lostStart('TAG-LOSTSTART');
      const today = await startTransaction(cp, start);
      expect(await startTransaction(cp, start)).toBe(today);
      const point = await request(e.api.api.app).get('/v1/charge-points/CP-LOSTSTART').expect(200);
      expect(point.body.connectors[0].openTransaction).toMatchObject({ transactionId: today });
      await tick();
      await cp.call('MeterValues', { ...meterValues(1, now(), wh(32_000)), transactionId: today });
      await tick();
      await cp.call('StopTransaction', {
        transactionId: today,
        meterStop: 34_000,
        timestamp: now(),
      });
      // Sent again after its stop (its answer lost, the charge point's queue): the same one.
      expect(await startTransaction(cp, start)).toBe(today);
      await waitForDrained(e.queue);
      const stored = await e.ctx
        .db('ocpp_transactions')
        .where({ charge_point_id: 'CP-LOSTSTART' })
        .orderBy('id');
      expect(stored).toHaveLength(2);
      expect(stored[1].started_at.getTime()).toBeGreaterThanOrEqual(booted);
      expect(Number(stored[1].meter_stop_wh)).toBe(34_000);
      expect(await sessionsOf('V-CP-LOSTSTART')).toEqual([[`tx-${today}`, 4]]);
    });

    test('when the charge point already has a transaction dated by the lost clock (its very first, kept as dated), then the next such start is still taken for a lost clock', async () => {
      await registerIdTags([['TAG-LOSTTWICE', 'V-losttwice']]);
      const cp = await connect('CP-LOSTTWICE');
      // Its first start ever: nothing later to tell the clock was lost, so it keeps its date.
      const first = await startTransaction(cp, {
        ...lostStart('TAG-LOSTTWICE'),
        meterStart: 5_000,
      });
      await cp.call('StopTransaction', {
        transactionId: first,
        meterStop: 10_000,
        timestamp: '2000-01-01T01:00:00Z',
      });
      const yesterday = await startTransaction(cp, {
        connectorId: 1,
        idTag: 'TAG-LOSTTWICE',
        meterStart: 10_000,
        timestamp: ago(26 * 60),
      });
      await cp.call('StopTransaction', {
        transactionId: yesterday,
        meterStop: 30_000,
        timestamp: ago(25 * 60),
      });
      await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
      const today = await startTransaction(cp, {
        ...lostStart('TAG-LOSTTWICE'),
        timestamp: '2000-01-01T00:10:00Z',
      });
      await tick();
      await cp.call('StopTransaction', {
        transactionId: today,
        meterStop: 34_000,
        timestamp: now(),
      });
      await waitForDrained(e.queue);
      expect(await sessionsOf('V-losttwice')).toEqual([[`tx-${today}`, 4]]);
    });

    test('when it is delivered late (queued through a PostgreSQL outage) with the transactions after it, then it starts at the boot, before them, and each bills its own charge', async () => {
      const { cp } = await withYesterday('CP-LOSTQUEUED', 'TAG-LOSTQUEUED-A');
      await registerIdTags([['TAG-LOSTQUEUED-B', 'V-lostqueued-b']]);
      // The boot was 45 minutes ago; what the charge point queued since is delivered now.
      await e.ctx
        .db('charge_points')
        .where({ id: 'CP-LOSTQUEUED' })
        .update({ last_boot_at: ago(45) });
      const a = await startTransaction(cp, {
        ...lostStart('TAG-LOSTQUEUED-A'),
        timestamp: '2000-01-01T00:00:40Z',
      });
      await cp.call('StopTransaction', { transactionId: a, meterStop: 34_000, timestamp: ago(40) });
      const b = await startTransaction(cp, {
        connectorId: 1,
        idTag: 'TAG-LOSTQUEUED-B',
        meterStart: 34_000,
        timestamp: ago(30),
      });
      await cp.call('MeterValues', { ...meterValues(1, ago(20), wh(35_000)), transactionId: b });
      await cp.call('StopTransaction', { transactionId: b, meterStop: 40_000, timestamp: now() });
      await waitForDrained(e.queue);
      expect(await sessionsOf('V-CP-LOSTQUEUED')).toEqual([[`tx-${a}`, 4]]);
      expect(await sessionsOf('V-lostqueued-b')).toEqual([[`tx-${b}`, 6]]);
    });

    test("when a charge point first connecting delivers a backlog over 30 days old, in order, while the vehicle charges elsewhere, then the backlog keeps its dates and the vehicle's charge elsewhere is billed", async () => {
      await registerIdTags([['TAG-BACKLOG', 'V-backlog']]);
      const depot = await connect('CP-DEPOT', { knownSince: ago(300 * 24 * 60) });
      const charging = await startTransaction(depot, {
        connectorId: 1,
        idTag: 'TAG-BACKLOG',
        meterStart: 50_000,
        timestamp: ago(60),
      });
      const fresh = await connect('CP-FRESH');
      const oldAt = ago(40 * 24 * 60);
      const old = await startTransaction(fresh, {
        connectorId: 1,
        idTag: 'TAG-BACKLOG',
        meterStart: 1_000,
        timestamp: oldAt,
      });
      await fresh.call('StopTransaction', {
        transactionId: old,
        meterStop: 21_000,
        timestamp: ago(40 * 24 * 60 - 60),
      });
      await depot.call('StopTransaction', {
        transactionId: charging,
        meterStop: 60_000,
        timestamp: now(),
      });
      await waitForDrained(e.queue);
      const row = await e.ctx.db('ocpp_transactions').where({ id: old }).first();
      expect(row.started_at.toISOString()).toBe(oldAt);
      expect(await sessionsOf('V-backlog')).toEqual([[`tx-${charging}`, 10]]);
    });

    test("when it comes on a connector with no register yet while the vehicle's later transaction is on another, then it is taken for a lost clock and bills its charge", async () => {
      const { cp } = await withYesterday('CP-LOSTOTHER', 'TAG-LOSTOTHER');
      const today = await startTransaction(cp, lostStart('TAG-LOSTOTHER', 2));
      await tick();
      // The boot's answer set the clock meanwhile: its stop is dated right.
      await cp.call('StopTransaction', {
        transactionId: today,
        meterStop: 34_000,
        timestamp: now(),
      });
      await waitForDrained(e.queue);
      expect(await sessionsOf('V-CP-LOSTOTHER')).toEqual([[`tx-${today}`, 4]]);
    });

    test("when a new charge point's first starts arrive out of order, hours apart (the later one first), then each keeps its date and bills its own charge", async () => {
      await registerIdTags([
        ['TAG-FIRSTS-A', 'V-firsts-a'],
        ['TAG-FIRSTS-B', 'V-firsts-b'],
      ]);
      const cp = await connect('CP-FIRSTS');
      // The meter was replaced between the two: the later one starts at 100 Wh.
      const later = await startTransaction(cp, {
        connectorId: 1,
        idTag: 'TAG-FIRSTS-B',
        meterStart: 100,
        timestamp: ago(60),
      });
      const earlierAt = ago(180);
      const earlier = await startTransaction(cp, {
        connectorId: 1,
        idTag: 'TAG-FIRSTS-A',
        meterStart: 30_000,
        timestamp: earlierAt,
      });
      await cp.call('StopTransaction', {
        transactionId: earlier,
        meterStop: 32_000,
        timestamp: ago(170),
      });
      await cp.call('StopTransaction', {
        transactionId: later,
        meterStop: 4_100,
        timestamp: now(),
      });
      // The later one bills what its charger billed (4 kWh); the earlier one keeps its date.
      const rows = await e.ctx
        .db('ocpp_transactions')
        .whereIn('id', [earlier, later])
        .orderBy('id')
        .select('started_at', 'meter_stop_wh');
      expect(rows.map((r) => [r.started_at.toISOString(), Number(r.meter_stop_wh)])).toEqual([
        [expect.any(String), 4_100],
        [earlierAt, expect.any(Number)],
      ]);
    });

    test("when a start delivered late from the queue is dated before the connector's later ones, its charge point known since, then it keeps its date whatever its register (a meter replaced, the same register as the next)", async () => {
      const { cp, yesterday } = await withYesterday('CP-LATEQUEUE', 'TAG-LATEQUEUE');
      // The meter was replaced this morning: today's transaction starts at a register of 100 Wh.
      const today = await startTransaction(cp, {
        connectorId: 1,
        idTag: 'TAG-LATEQUEUE',
        meterStart: 100,
        timestamp: ago(60),
      });
      // Queued before the replacement, dated between the two: its register is past today's.
      const lateAt = ago(24 * 60);
      const late = await startTransaction(cp, {
        connectorId: 1,
        idTag: 'TAG-LATEQUEUE',
        meterStart: 30_000,
        timestamp: lateAt,
      });
      // Queued and delivered after today's, with today's tag and register: not the same one.
      const twinAt = ago(90);
      const twin = await startTransaction(cp, {
        connectorId: 1,
        idTag: 'TAG-LATEQUEUE',
        meterStart: 100,
        timestamp: twinAt,
      });
      expect(new Set([yesterday, today, late, twin]).size).toBe(4);
      const rows = await e.ctx
        .db('ocpp_transactions')
        .whereIn('id', [late, twin])
        .orderBy('id')
        .select('started_at');
      expect(rows.map((r) => r.started_at.toISOString())).toEqual([lateAt, twinAt]);
    });

    test('when a start ahead of the clock is dated at a leap second, then it is taken as of now and a resend is the same transaction', async () => {
      const cp = await connect('CP-LEAPSTART');
      const start = {
        connectorId: 1,
        idTag: 'TAG-LEAP',
        meterStart: 1_000,
        timestamp: '2030-06-30T23:59:60Z',
      };
      const first = await startTransaction(cp, start);
      expect(await startTransaction(cp, start)).toBe(first);
    });
  });

  test('when two transactions start on one connector at the same instant, or a vehicle starts one while its last is open on another charger, then only the newest stays open and no energy counts twice', async () => {
    await registerIdTags([
      ['TAG-T1', 'V-t1'],
      ['TAG-T2', 'V-t2'],
      ['TAG-M', 'V-m'],
    ]);
    const k = await connect('CP-TIE');
    const first = await startsOnConnector1(k)('TAG-T1', 10_000, '2024-04-10T10:00:00Z');
    const second = await startsOnConnector1(k)('TAG-T2', 10_000, '2024-04-10T10:00:00Z');
    // The vehicle's stop on CP-G never arrives; it starts again on CP-H.
    const g = await connect('CP-G');
    const h = await connect('CP-H');
    const onG = await startsOnConnector1(g)('TAG-M', 0, '2024-04-10T10:00:00Z');
    await g.call('MeterValues', meterValues(1, '2024-04-10T10:30:00Z', wh(3000)));
    const onH = await startsOnConnector1(h)('TAG-M', 70_000, '2024-04-10T11:00:00Z');
    await h.call('StopTransaction', {
      transactionId: onH.transactionId,
      meterStop: 76_000,
      timestamp: '2024-04-10T12:00:00Z',
    });

    const rows = await e.ctx
      .db('ocpp_transactions')
      .whereIn(
        'id',
        [first, second, onG, onH].map((t) => t.transactionId),
      )
      .orderBy('id')
      .select('stopped_at', 'stop_reason', 'meter_stop_wh');
    expect(rows.map((r) => [r.stopped_at?.toISOString() ?? null, r.stop_reason])).toEqual([
      ['2024-04-10T10:00:00.000Z', 'SupersededByNewTransaction'],
      [null, null],
      ['2024-04-10T11:00:00.000Z', 'SupersededElsewhere'],
      // Its StopTransaction gave no reason: OCPP 1.6 leaves it out only for Local.
      ['2024-04-10T12:00:00.000Z', 'Local'],
    ]);
    // Stopped elsewhere, its register there is unknown: not the other charger's.
    expect(rows[2].meter_stop_wh).toBeNull();
    await waitForDrained(e.queue);
    const sessions = await request(e.api.api.app)
      .get('/v1/vehicles/V-m/sessions?from=2024-04-10T00:00:00Z&to=2024-04-11T00:00:00Z')
      .expect(200);
    expect(
      sessions.body.sessions.map(
        (s: { meters: string[]; acConsumedKwh: number; open: boolean }) => [
          s.meters,
          s.acConsumedKwh,
          s.open,
        ],
      ),
    ).toEqual([
      [['CP-H:1'], 6, false],
      [['CP-G:1'], 3, false],
    ]);
    // CP-G's own stop, queued while it was offline, comes at last: its register is kept, and its
    // time too, as it is before the vehicle's start on CP-H.
    await g.call('StopTransaction', {
      transactionId: onG.transactionId,
      meterStop: 3000,
      timestamp: '2024-04-10T10:40:00Z',
      reason: 'EVDisconnected',
    });
    const stoppedOnG = await e.ctx.db('ocpp_transactions').where({ id: onG.transactionId }).first();
    expect([
      Number(stoppedOnG.meter_stop_wh),
      stoppedOnG.stopped_at.toISOString(),
      stoppedOnG.stop_reason,
    ]).toEqual([3000, '2024-04-10T10:40:00.000Z', 'EVDisconnected']);
    // The vehicle's period on CP-G ends there too, so the next driver's energy there is not its.
    const onGNext = await startsOnConnector1(g)('TAG-T1', 3000, '2024-04-10T10:45:00Z');
    await g.call('StopTransaction', {
      transactionId: onGNext.transactionId,
      meterStop: 5000,
      timestamp: '2024-04-10T10:55:00Z',
    });
    const periods = await request(e.api.api.app).get('/v1/telemetry/map/V-m').expect(200);
    expect(periods.body.history).toEqual([
      { meterId: 'CP-G:1', from: '2024-04-10T10:00:00.001Z', to: '2024-04-10T10:40:00.001Z' },
      { meterId: 'CP-H:1', from: '2024-04-10T11:00:00.001Z', to: '2024-04-10T12:00:00.001Z' },
    ]);
    await waitForDrained(e.queue);
    const report = await request(e.api.api.app)
      .get('/v1/analytics/performance/V-m?from=2024-04-10T10:00:00Z&to=2024-04-10T13:00:00Z')
      .expect(200);
    expect(report.body.energy.acConsumedKwh).toBe(9); // 3 on CP-G, 6 on CP-H
  });

  test("when a client other than the charge point sends readings for one of its connectors' meters, then they are refused (409, or the item's error) and nothing of them is stored", async () => {
    const cp = await connect('CP-GUARD');
    await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-GUARD',
      meterStart: 1000,
      timestamp: '2024-04-13T10:00:00Z',
    });
    const reading = (meterId: string, minute: number) => ({
      meterId,
      kwhConsumedAc: 0.001,
      voltage: 230,
      timestamp: `2024-04-13T10:${String(minute).padStart(2, '0')}:00Z`,
    });
    const app = request(e.api.api.app);
    const single = await app
      .post('/v1/telemetry/ingest')
      .send(reading('CP-GUARD:1', 5))
      .expect(409);
    expect(single.body).toMatchObject({
      error: 'ocpp_connector',
      message:
        'Meter CP-GUARD:1 is a connector of an OCPP charge point: its readings come from the charge point alone',
    });
    // In a list: those items are refused, also a connector the charge point has not used yet
    // (posted there first, a reading counted in every later transaction on it: 1,000 kWh for 1);
    // a meter merely named like one (CP-GUARD:01, NO-SUCH-CP:1) and any other meter are stored.
    const batch = await app
      .post('/v1/telemetry/ingest')
      .send([
        reading('M-GUARD', 6),
        reading('CP-GUARD:1', 6),
        reading('CP-GUARD:2', 6),
        reading('CP-GUARD:01', 6),
        reading('NO-SUCH-CP:1', 6),
      ])
      .expect(207);
    expect(batch.body.accepted).toBe(3);
    expect(batch.body.errors).toEqual([
      expect.objectContaining({ index: 1, error: 'ocpp_connector' }),
      expect.objectContaining({ index: 2, error: 'ocpp_connector' }),
    ]);
    await waitForDrained(e.queue);
    // The connector's history holds its charge point's register only.
    expect((await history(e, 'CP-GUARD:1')).map((r) => [r.at, r.kwh])).toEqual([['10:00', 1]]);

    // A charge point that has connected but used no connector yet: its connectors are its own too.
    const fresh = await connect('CP-GUARD-NEW');
    await fresh.call('BootNotification', { chargePointVendor: 'Acme', chargePointModel: 'W' });
    const refused = await app
      .post('/v1/telemetry/ingest')
      .send(reading('CP-GUARD-NEW:1', 7))
      .expect(409);
    expect(refused.body).toMatchObject({ error: 'ocpp_connector' });
  });

  test("when a vehicle's start arrives late, after its next one on another connector, then each of its transactions ends where its next one starts, and none stays open beside another", async () => {
    await registerIdTags([['TAG-LATE', 'V-late']]);
    const cp = await connect('CP-OUT-OF-ORDER', { knownSince: '2024-01-01T00:00:00Z' });
    const on = (connectorId: number, timestamp: string) =>
      startTransaction(cp, { connectorId, idTag: 'TAG-LATE', meterStart: 1000, timestamp });
    // Started at 13:00, 13:20, then the one of 13:10 (a queue delivered out of order).
    const first = await on(1, '2024-04-12T13:00:00Z');
    const third = await on(3, '2024-04-12T13:20:00Z');
    const second = await on(2, '2024-04-12T13:10:00Z');
    const rows = await e.ctx
      .db('ocpp_transactions')
      .whereIn('id', [first, second, third])
      .orderBy('started_at')
      .select('connector_id', 'stopped_at', 'stop_reason', 'meter_stop_wh');
    expect(
      rows.map((r) => [
        r.connector_id,
        r.stopped_at?.toISOString() ?? null,
        r.stop_reason,
        r.meter_stop_wh,
      ]),
    ).toEqual([
      [1, '2024-04-12T13:10:00.000Z', 'SupersededElsewhere', null],
      [2, '2024-04-12T13:20:00.000Z', 'SupersededElsewhere', null],
      [3, null, null, null],
    ]);
    const sessions = await request(e.api.api.app)
      .get('/v1/vehicles/V-late/sessions?from=2024-04-12T00:00:00Z&to=2024-04-13T00:00:00Z')
      .expect(200);
    expect(sessions.body.sessions.filter((s: { open: boolean }) => s.open)).toHaveLength(1);
    // The late one's own stop, when it comes, is kept: its register, and its time before 13:20.
    await cp.call('StopTransaction', {
      transactionId: second,
      meterStop: 1500,
      timestamp: '2024-04-12T13:15:00Z',
    });
    const stopped = await e.ctx.db('ocpp_transactions').where({ id: second }).first();
    expect([Number(stopped.meter_stop_wh), stopped.stopped_at.toISOString()]).toEqual([
      1500,
      '2024-04-12T13:15:00.000Z',
    ]);
  });

  test("when a transaction's own stop arrives after the connector's next start, dated before it, then it replaces the stop made at that start: the session bills what the charger billed", async () => {
    await registerIdTags([
      ['TAG-SUP1', 'V-sup1'],
      ['TAG-SUP2', 'V-sup2'],
    ]);
    const cp = await connect('CP-SUP');
    /** V-sup1's transaction, V-sup2's next one on the connector, then the first one's own stop. */
    const supersededThenStopped = async (
      start: { meterStart: number; timestamp: string },
      next: { meterStart: number; timestamp: string },
      stop: { meterStop: number; timestamp: string },
    ) => {
      const id = await startTransaction(cp, { connectorId: 1, idTag: 'TAG-SUP1', ...start });
      await startTransaction(cp, { connectorId: 1, idTag: 'TAG-SUP2', ...next });
      await cp.call('StopTransaction', { transactionId: id, ...stop });
      const row = await e.ctx.db('ocpp_transactions').where({ id }).first();
      return [Number(row.meter_stop_wh), row.stopped_at.toISOString(), row.stop_reason];
    };
    // The next vehicle starts at 10:20; the first one's stop (10:15, 3,800 Wh) was queued.
    expect(
      await supersededThenStopped(
        { meterStart: 1_000, timestamp: '2024-04-16T10:00:00Z' },
        { meterStart: 4_000, timestamp: '2024-04-16T10:20:00Z' },
        { meterStop: 3_800, timestamp: '2024-04-16T10:15:00Z' },
      ),
    ).toEqual([3_800, '2024-04-16T10:15:00.000Z', 'Local']);
    await waitForDrained(e.queue);
    const sessions = await request(e.api.api.app)
      .get('/v1/vehicles/V-sup1/sessions?from=2024-04-16T00:00:00Z&to=2024-04-17T00:00:00Z')
      .expect(200);
    expect(
      sessions.body.sessions.map((s: { end: string; acConsumedKwh: number }) => [
        s.end,
        s.acConsumedKwh,
      ]),
    ).toEqual([['2024-04-16T10:15:00.000Z', 2.8]]);
    // The vehicle's mapping to the connector ends at that stop too.
    const periods = await e.ctx
      .db('vehicle_meter_map')
      .where({ vehicle_id: 'V-sup1', meter_id: 'CP-SUP:1' })
      .select('valid_to');
    expect(periods.map((p) => p.valid_to.toISOString())).toEqual(['2024-04-16T10:15:00.001Z']);

    // A stop dated after the next start is not the register there: the stop made at it stays.
    expect(
      await supersededThenStopped(
        { meterStart: 6_000, timestamp: '2024-04-16T11:00:00Z' },
        { meterStart: 7_000, timestamp: '2024-04-16T11:20:00Z' },
        { meterStop: 7_500, timestamp: '2024-04-16T11:30:00Z' },
      ),
    ).toEqual([7_000, '2024-04-16T11:20:00.000Z', 'SupersededByNewTransaction']);
    // Nor one registered above the next start's meterStart: that energy is the next one's.
    expect(
      await supersededThenStopped(
        { meterStart: 8_000, timestamp: '2024-04-16T12:00:00Z' },
        { meterStart: 9_000, timestamp: '2024-04-16T12:20:00Z' },
        { meterStop: 9_500, timestamp: '2024-04-16T12:15:00Z' },
      ),
    ).toEqual([9_000, '2024-04-16T12:20:00.000Z', 'SupersededByNewTransaction']);
  });

  test('when a StartTransaction that ends an open one on its connector fails after it was recorded, then its retry ends that one, as the first delivery would have', async () => {
    const cp = await connect('CP-RESTART');
    const startOf = startsOnConnector1(cp);
    const first = await startOf('TAG-RA', 1000, '2024-04-08T10:00:00Z');
    // PostgreSQL refuses to stop it once (a deadlock, a failover): the start is recorded, the
    // charge point told InternalError, and it sends the same StartTransaction again.
    await e.ctx.db.raw(`
      CREATE FUNCTION refuse_stop() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected: stop refused'; END $$;
      CREATE TRIGGER refuse_stop BEFORE UPDATE ON ocpp_transactions
        FOR EACH ROW WHEN (OLD.charge_point_id = 'CP-RESTART') EXECUTE FUNCTION refuse_stop()`);
    try {
      expect(await callError(startOf('TAG-RB', 4000, '2024-04-08T10:30:00Z'))).toBe(
        'InternalError',
      );
    } finally {
      await e.ctx.db.raw(
        `DROP TRIGGER refuse_stop ON ocpp_transactions; DROP FUNCTION refuse_stop()`,
      );
    }
    const retried = await startOf('TAG-RB', 4000, '2024-04-08T10:30:00Z');
    const rows = await e.ctx
      .db('ocpp_transactions')
      .where({ charge_point_id: 'CP-RESTART' })
      .orderBy('id');
    expect(
      rows.map((t) => [t.id, t.stopped_at?.toISOString() ?? null, t.meter_stop_wh, t.stop_reason]),
    ).toEqual([
      [first.transactionId, '2024-04-08T10:30:00.000Z', 4000, 'SupersededByNewTransaction'],
      [retried.transactionId, null, null, null],
    ]);
  });

  test('when a start is sent again after it was stopped, then its stop and every mapping period stay as they were', async () => {
    // Two starts of one vehicle at the same instant (two cards): the first, sent again, must not
    // end the second's open period.
    await registerIdTags([
      ['TAG-SAME-CARD', 'V-same'],
      ['TAG-SAME-APP', 'V-same'],
      ['TAG-OWN-A', 'V-own-a'],
      ['TAG-OWN-B', 'V-own-b'],
    ]);
    const periods = async (vehicleId: string) =>
      (await request(e.api.api.app).get(`/v1/telemetry/map/${vehicleId}`).expect(200)).body.history;
    const same = startsOnConnector1(await connect('CP-SAME'));
    await same('TAG-SAME-CARD', 1000, '2024-05-07T10:00:00Z');
    await same('TAG-SAME-APP', 1000, '2024-05-07T10:00:00Z'); // stops the first there
    const open = [{ meterId: 'CP-SAME:1', from: '2024-05-07T10:00:00.001Z', to: null }];
    expect(await periods('V-same')).toEqual(open);
    await same('TAG-SAME-CARD', 1000, '2024-05-07T10:00:00Z');
    expect(await periods('V-same')).toEqual(open);

    // Its own stop dated after a later start delivered late: sent again, it keeps its period.
    const cp = await connect('CP-OWN');
    const own = startsOnConnector1(cp);
    const a = await own('TAG-OWN-A', 1000, '2024-05-08T10:00:00Z');
    await cp.call('StopTransaction', {
      transactionId: a.transactionId,
      meterStop: 5000,
      timestamp: '2024-05-08T10:40:00Z',
    });
    await own('TAG-OWN-B', 4000, '2024-05-08T10:30:00Z');
    const before = await periods('V-own-a');
    await own('TAG-OWN-A', 1000, '2024-05-08T10:00:00Z');
    expect(await periods('V-own-a')).toEqual(before);
  });

  test('when a start delivered late falls inside a transaction the engine stopped at a later start, then that one ends where the late one starts: no energy is billed twice', async () => {
    await registerIdTags([
      ['TAG-X1', 'V-x1'],
      ['TAG-X2', 'V-x2'],
      ['TAG-X3', 'V-x3'],
    ]);
    const cp = await connect('CP-ACROSS', { knownSince: '2024-01-01T00:00:00Z' });
    const startOn =
      (connectorId: number) => (idTag: string, meterStart: number, timestamp: string) =>
        startTransaction(cp, { connectorId, idTag, meterStart, timestamp });
    const start = startOn(1);
    // A at 10:00, C at 10:40 (stops A there), then B of 10:20, delivered late.
    const a = await start('TAG-X1', 1_000, '2024-04-18T10:00:00Z');
    const c = await start('TAG-X3', 4_000, '2024-04-18T10:40:00Z');
    const b = await start('TAG-X2', 2_000, '2024-04-18T10:20:00Z');
    const rows = await e.ctx
      .db('ocpp_transactions')
      .whereIn('id', [a, b, c])
      .orderBy('started_at')
      .select('stopped_at', 'meter_stop_wh', 'stop_reason');
    expect(
      rows.map((r) => [r.stopped_at?.toISOString() ?? null, r.meter_stop_wh, r.stop_reason]),
    ).toEqual([
      ['2024-04-18T10:20:00.000Z', 2000, 'SupersededByNewTransaction'],
      ['2024-04-18T10:40:00.000Z', 4000, 'SupersededByNewTransaction'],
      [null, null, null],
    ]);
    await waitForDrained(e.queue);
    const billed = async (vehicleId: string) =>
      (
        await request(e.api.api.app)
          .get(
            `/v1/vehicles/${vehicleId}/sessions?from=2024-04-18T00:00:00Z&to=2024-04-19T00:00:00Z`,
          )
          .expect(200)
      ).body.sessions.map((s: { acConsumedKwh: number }) => s.acConsumedKwh);
    expect([await billed('V-x1'), await billed('V-x2')]).toEqual([[1], [2]]);

    // More late starts, one inside A, one inside B: each transaction ends where the next begins.
    const d = await start('TAG-X1', 1_500, '2024-04-18T10:10:00Z');
    const f = await start('TAG-X2', 3_000, '2024-04-18T10:30:00Z');
    // And one before them all, on connector 2 (A2 at 10:00, C2 at 10:40, then B2 of 09:50), of
    // cards naming no vehicle (so no vehicle is at two connectors).
    const onTwo = startOn(2);
    const a2 = await onTwo('TAG-Y1', 1_000, '2024-04-18T10:00:00Z');
    const c2 = await onTwo('TAG-Y3', 4_000, '2024-04-18T10:40:00Z');
    const b2 = await onTwo('TAG-Y2', 500, '2024-04-18T09:50:00Z');
    const spans = await e.ctx
      .db('ocpp_transactions')
      .whereIn('id', [a, d, b, f, c, b2, a2, c2])
      .orderBy(['connector_id', 'started_at'])
      .select('started_at', 'stopped_at', 'meter_start_wh', 'meter_stop_wh');
    expect(
      spans.map((r) => [
        r.started_at.toISOString().slice(11, 16),
        r.stopped_at?.toISOString().slice(11, 16) ?? null,
        r.meter_start_wh,
        r.meter_stop_wh,
      ]),
    ).toEqual([
      ['10:00', '10:10', 1_000, 1_500],
      ['10:10', '10:20', 1_500, 2_000],
      ['10:20', '10:30', 2_000, 3_000],
      ['10:30', '10:40', 3_000, 4_000],
      ['10:40', null, 4_000, null],
      ['09:50', '10:00', 500, 1_000],
      ['10:00', '10:40', 1_000, 4_000],
      ['10:40', null, 4_000, null],
    ]);
  });

  test("when a transaction's late own stop is dated inside a start that itself arrived late, or is sent again, then no energy or sample of another transaction is its", async () => {
    await registerIdTags([['TAG-SUP3', 'V-sup3']]);
    const cp = await connect('CP-SUP2', { knownSince: '2024-01-01T00:00:00Z' });
    const on = (connectorId: number, meterStart: number, timestamp: string) =>
      startTransaction(cp, { connectorId, idTag: 'TAG-SUP3', meterStart, timestamp });
    // Connector 1: A at 10:00, C at 10:40 (stops A there), then B of 10:20, delivered late.
    const a = await on(1, 1_000, '2024-04-17T10:00:00Z');
    await on(1, 4_000, '2024-04-17T10:40:00Z');
    await on(1, 2_000, '2024-04-17T10:20:00Z');
    // A's own stop at 10:30 is inside B: the stop made at C's start stays.
    await cp.call('StopTransaction', {
      transactionId: a,
      meterStop: 3_000,
      timestamp: '2024-04-17T10:30:00Z',
    });
    const insideB = await e.ctx.db('ocpp_transactions').where({ id: a }).first();
    expect(insideB.stop_reason).toBe('SupersededByNewTransaction');

    // Connector 2: D at 11:00, E at 11:20; D's stop (11:15) with a sample inside E, sent twice.
    const d = await on(2, 1_000, '2024-04-17T11:00:00Z');
    await on(2, 4_000, '2024-04-17T11:20:00Z');
    const stopD = {
      transactionId: d,
      meterStop: 3_800,
      timestamp: '2024-04-17T11:15:00Z',
      transactionData: [
        { timestamp: '2024-04-17T11:05:00Z', sampledValue: [wh(2_000)] },
        { timestamp: '2024-04-17T11:25:00Z', sampledValue: [wh(4_100)] },
      ],
    };
    await cp.call('StopTransaction', stopD);
    await cp.call('StopTransaction', stopD);
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-SUP2:2')).map((r) => [r.at, r.kwh])).toEqual([
      ['11:00', 1],
      ['11:05', 2],
      ['11:15', 3.8],
      ['11:20', 4],
    ]);
  });

  test('when a vehicle starts a transaction inside its last one, already stopped, on another connector, then each session counts its own connector only', async () => {
    await registerIdTags([['TAG-OV', 'V-ov']]);
    const cp = await connect('CP-OV');
    const on = (connectorId: number, idTag: string, meterStart: number, timestamp: string) =>
      startTransaction(cp, { connectorId, idTag, meterStart, timestamp });
    // Connector 1 from 10:00 to 11:00, 20 kWh; then connector 2 from 10:30 (an offline queue, or
    // a stop sent late), 2 kWh: the vehicle cannot have charged at both, so its mapping to
    // connector 2 is refused (a past period is never rewritten).
    const first = await on(1, 'TAG-OV', 0, '2024-04-11T10:00:00Z');
    await cp.call('MeterValues', meterValues(1, '2024-04-11T10:30:00Z', wh(10_000)));
    await cp.call('StopTransaction', {
      transactionId: first,
      meterStop: 20_000,
      timestamp: '2024-04-11T11:00:00Z',
    });
    const second = await on(2, 'TAG-OV', 5_000, '2024-04-11T10:30:00Z');
    await cp.call('MeterValues', meterValues(2, '2024-04-11T11:30:00Z', wh(6_000)));
    await cp.call('StopTransaction', {
      transactionId: second,
      meterStop: 7_000,
      timestamp: '2024-04-11T12:00:00Z',
    });
    await waitForDrained(e.queue);
    const sessions = await request(e.api.api.app)
      .get('/v1/vehicles/V-ov/sessions?from=2024-04-11T00:00:00Z&to=2024-04-12T00:00:00Z')
      .expect(200);
    expect(
      sessions.body.sessions.map(
        (s: { transactionId: number; meters: string[]; acConsumedKwh: number }) => [
          s.transactionId,
          s.meters,
          s.acConsumedKwh,
        ],
      ),
    ).toEqual([
      [second, ['CP-OV:2'], 2],
      [first, ['CP-OV:1'], 20],
    ]);
  });

  test('when a transaction has only just started (no sample yet), then its session counts 0 kWh of AC, not unknown', async () => {
    await registerIdTags([['TAG-NEW', 'V-new']]);
    const cp = await connect('CP-NEW');
    const started = new Date(Date.now() - 60_000).toISOString();
    const { transactionId } = await startsOnConnector1(cp)('TAG-NEW', 7_000, started);
    await waitForDrained(e.queue);
    const res = await request(e.api.api.app).get('/v1/vehicles/V-new/sessions?hours=1').expect(200);
    expect(res.body.sessions).toEqual([
      expect.objectContaining({ id: `tx-${transactionId}`, open: true, acConsumedKwh: 0 }),
    ]);
  });

  test("when a StopTransaction's transactionData holds a sample at the stop's instant, then meterStop is the register stored there", async () => {
    await registerIdTags([['TAG-SD', 'V-sd']]);
    const cp = await connect('CP-STOPDATA');
    const { transactionId } = await startsOnConnector1(cp)(
      'TAG-SD',
      20_000,
      '2024-04-12T10:00:00Z',
    );
    await cp.call('MeterValues', {
      ...meterValues(1, '2024-04-12T10:10:00Z', wh(22_000)),
      transactionId,
    });
    const kwh = (value: string, context: string) => ({ value, unit: 'kWh', context });
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 28_000,
      timestamp: '2024-04-12T10:40:00Z',
      transactionData: [
        { timestamp: '2024-04-12T10:00:00Z', sampledValue: [kwh('20.0', 'Transaction.Begin')] },
        { timestamp: '2024-04-12T10:40:00Z', sampledValue: [kwh('27.9', 'Transaction.End')] },
      ],
    });
    await waitForDrained(e.queue);
    expect(await history(e, 'CP-STOPDATA:1')).toEqual([
      { at: '10:00', kwh: 20, voltage: null },
      { at: '10:10', kwh: 22, voltage: null },
      { at: '10:40', kwh: 28, voltage: null },
    ]);
  });

  test('when a StopTransaction carries 12 hours offline of samples (over 256 KB), then it is answered and every register stored', async () => {
    const cp = await connect('CP-OFFLINE');
    const { transactionId } = await startsOnConnector1(cp)('any', 0, '2024-04-16T00:00:00Z');
    const minute = (i: number) => new Date(Date.parse('2024-04-16T00:00:00Z') + i * 60_000);
    // A common StopTxnSampledData set: the register, power, current and voltage, every minute.
    const transactionData = Array.from({ length: 720 }, (_, i) => ({
      timestamp: minute(i + 1).toISOString(),
      sampledValue: [
        {
          ...wh((i + 1) * 100),
          context: 'Sample.Periodic',
          measurand: 'Energy.Active.Import.Register',
        },
        { value: '6000', context: 'Sample.Periodic', measurand: 'Power.Active.Import', unit: 'W' },
        { value: '26.1', context: 'Sample.Periodic', measurand: 'Current.Import', unit: 'A' },
        { value: '230.4', context: 'Sample.Periodic', measurand: 'Voltage', unit: 'V' },
      ],
    }));
    const stop = {
      transactionId,
      meterStop: 72_050,
      timestamp: minute(721).toISOString(),
      transactionData,
    };
    expect(JSON.stringify(stop).length).toBeGreaterThan(256 * 1024);
    // Before, the connection was closed (1009) at every resend, and the transaction stayed open.
    await cp.call('StopTransaction', stop);
    await waitForDrained(e.queue);
    const stored = await history(e, 'CP-OFFLINE:1');
    expect(stored).toHaveLength(722); // the start, 720 samples, the stop
    expect(stored.at(-1)).toEqual({ at: '12:01', kwh: 72.05, voltage: null });
  });

  test("when a MeterValues sample of the transaction's end comes before the StopTransaction, then meterStop is the register stored at the stop", async () => {
    await registerIdTags([['TAG-END', 'V-end']]);
    const cp = await connect('CP-ENDSAMPLE');
    const { transactionId } = await startsOnConnector1(cp)(
      'TAG-END',
      100_456,
      '2024-04-13T10:00:00Z',
    );
    const kwh = (value: string, extra: Record<string, string> = {}) => ({
      value,
      unit: 'kWh',
      ...extra,
    });
    await cp.call('MeterValues', {
      ...meterValues(1, '2024-04-13T10:30:00Z', kwh('105.2')),
      transactionId,
    });
    // Rounded to kWh, sent just before the stop, at its instant.
    await cp.call('MeterValues', {
      ...meterValues(1, '2024-04-13T11:00:00Z', kwh('110', { context: 'Transaction.End' })),
      transactionId,
    });
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 110_956,
      timestamp: '2024-04-13T11:00:00Z',
    });
    await waitForDrained(e.queue);
    expect(await history(e, 'CP-ENDSAMPLE:1')).toEqual([
      { at: '10:00', kwh: 100.456, voltage: null },
      { at: '10:30', kwh: 105.2, voltage: null },
      { at: '11:00', kwh: 110.956, voltage: null },
    ]);
    const sessions = await request(e.api.api.app)
      .get('/v1/vehicles/V-end/sessions?from=2024-04-13T00:00:00Z&to=2024-04-14T00:00:00Z')
      .expect(200);
    expect(sessions.body.sessions.map((x: { acConsumedKwh: number }) => x.acConsumedKwh)).toEqual([
      10.5,
    ]);
    // Counted under its measurand and context, whole.
    const metrics = await request(e.api.api.app).get('/metrics').expect(200);
    expect(metrics.text).toMatch(
      /energy_ocpp_samples_ignored_total\{measurand="Energy.Active.Import.Register \(Transaction.End\)",process="api"\} [1-9]/,
    );
  });

  test("when a charge point's own stop comes after a start stopped its transaction, then its readings are stored up to the connector's next transaction and the stop kept keeps its own register", async () => {
    await registerIdTags([
      ['TAG-CARD', 'V-card'],
      ['TAG-N1', 'V-n1'],
      ['TAG-N2', 'V-n2'],
    ]);
    // One card on two chargers: A's transaction is stopped at B's start, its register unknown;
    // A's own stop, dated later, comes last.
    const a = await connect('CP-CARD-A');
    const b = await connect('CP-CARD-B');
    const onA = await startsOnConnector1(a)('TAG-CARD', 1000, '2024-04-14T10:00:00Z');
    await startsOnConnector1(b)('TAG-CARD', 500, '2024-04-14T10:10:00Z');
    await a.call('MeterValues', meterValues(1, '2024-04-14T10:20:00Z', wh(3000)));
    expect(
      await a.call('StopTransaction', {
        transactionId: onA.transactionId,
        meterStop: 5000,
        timestamp: '2024-04-14T10:40:00Z',
        transactionData: [{ timestamp: '2024-04-14T10:30:00Z', sampledValue: [wh(4000)] }],
      }),
    ).toEqual({});
    const stoppedA = await e.ctx.db('ocpp_transactions').where({ id: onA.transactionId }).first();
    expect([
      stoppedA.stopped_at.toISOString(),
      stoppedA.meter_stop_wh,
      stoppedA.stop_reason,
    ]).toEqual(['2024-04-14T10:10:00.000Z', null, 'SupersededElsewhere']);

    // One connector: N1 is stopped where N2 starts (10:40); N1's own stop (10:30) comes after.
    const n = await connect('CP-NEXT');
    const n1 = await startsOnConnector1(n)('TAG-N1', 1000, '2024-04-14T10:00:00Z');
    await startsOnConnector1(n)('TAG-N2', 4000, '2024-04-14T10:40:00Z');
    await n.call('StopTransaction', {
      transactionId: n1.transactionId,
      meterStop: 4000,
      timestamp: '2024-04-14T10:30:00Z',
      transactionData: [
        { timestamp: '2024-04-14T10:15:00Z', sampledValue: [wh(2500)] },
        // Dated in N2's transaction: it would count there.
        { timestamp: '2024-04-14T10:50:00Z', sampledValue: [wh(9999)] },
      ],
    });
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-CARD-A:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 1],
      ['10:20', 3],
      ['10:30', 4],
      ['10:40', 5],
    ]);
    expect((await history(e, 'CP-NEXT:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 1],
      ['10:15', 2.5],
      ['10:30', 4],
      ['10:40', 4],
    ]);
  });

  test("when a charge point sends a second, different stop of a transaction a start stopped, then that one's readings are not stored; its first, sent again, changes nothing", async () => {
    await registerIdTags([['TAG-TWICE', 'V-twice']]);
    const c = await connect('CP-TWICE-C');
    const d = await connect('CP-TWICE-D');
    const onC = await startsOnConnector1(c)('TAG-TWICE', 1000, '2024-04-15T10:00:00Z');
    await startsOnConnector1(d)('TAG-TWICE', 500, '2024-04-15T10:10:00Z');
    const first = {
      transactionId: onC.transactionId,
      meterStop: 5000,
      timestamp: '2024-04-15T10:40:00Z',
      transactionData: [{ timestamp: '2024-04-15T10:30:00Z', sampledValue: [wh(4000)] }],
    };
    expect(await c.call('StopTransaction', first)).toEqual({});
    expect(await c.call('StopTransaction', first)).toEqual({});
    // Another stop, with other values: before, its register landed on the connector's history.
    expect(
      await c.call('StopTransaction', {
        transactionId: onC.transactionId,
        meterStop: 9999,
        timestamp: '2024-04-15T10:50:00Z',
        transactionData: [{ timestamp: '2024-04-15T10:45:00Z', sampledValue: [wh(9000)] }],
      }),
    ).toEqual({});
    // And one dated before the engine's stop (10:10), which a first stop of its own replaces.
    expect(
      await c.call('StopTransaction', {
        transactionId: onC.transactionId,
        meterStop: 3000,
        timestamp: '2024-04-15T10:05:00Z',
        transactionData: [{ timestamp: '2024-04-15T10:02:00Z', sampledValue: [wh(2000)] }],
      }),
    ).toEqual({});
    await waitForDrained(e.queue);
    expect((await history(e, 'CP-TWICE-C:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 1],
      ['10:30', 4],
      ['10:40', 5],
    ]);
    const row = await e.ctx.db('ocpp_transactions').where({ id: onC.transactionId }).first();
    expect([
      row.stop_reason,
      row.stopped_at.toISOString(),
      row.meter_stop_wh,
      row.charger_stop_wh,
    ]).toEqual(['SupersededElsewhere', '2024-04-15T10:10:00.000Z', null, 5000]);
  });

  test('when a message holds a NUL character or a lone surrogate, or a transaction id no transaction can have, then it is refused or answered for good, never InternalError', async () => {
    const cp = await connect('CP-ODD');
    for (const [action, params] of [
      ['Authorize', { idTag: 'A\u0000B' }],
      ['BootNotification', { chargePointVendor: 'V\u0000', chargePointModel: 'M' }],
      [
        'StartTransaction',
        { connectorId: 1, idTag: 'A\u0000B', meterStart: 0, timestamp: '2024-04-10T10:00:00Z' },
      ],
    ] as const) {
      const error = await cp.call(action, params).then(
        () => null,
        (err: { rpcErrorCode: string; message: string }) => [err.rpcErrorCode, err.message],
      );
      expect(error).toEqual([
        'PropertyConstraintViolation',
        expect.stringMatching(/holds the character U\+0000 \(NUL\), which no text may hold$/),
      ]);
    }
    // A lone surrogate would be stored as U+FFFD: two cards' idTags read as one.
    for (const idTag of ['A\ud800', '\udc00B']) {
      const error = await cp.call('Authorize', { idTag }).then(
        () => null,
        (err: { rpcErrorCode: string; message: string }) => [err.rpcErrorCode, err.message],
      );
      expect(error).toEqual([
        'PropertyConstraintViolation',
        '/idTag holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair), which is no character',
      ]);
    }
    // A pair is a character like any other.
    expect(await cp.call('Authorize', { idTag: 'A\ud83d\ude00' })).toMatchObject({
      idTagInfo: expect.any(Object),
    });
    // Never issued (above PostgreSQL's integer): an unknown transaction, answered.
    expect(
      await cp.call('StopTransaction', {
        transactionId: 99_999_999_999,
        meterStop: 0,
        timestamp: '2024-04-10T10:00:00Z',
      }),
    ).toEqual({});
  });

  test('when a stop is not the one kept, or a start arrives after a later one, then no reading of it lands in another transaction and no vehicle stays mapped', async () => {
    await registerIdTags([
      ['TAG-D', 'V-d'],
      ['TAG-E', 'V-e'],
      ['TAG-F', 'V-f'],
    ]);
    const cp = await connect('CP-LATE', { knownSince: '2024-01-01T00:00:00Z' });
    const startOf = startsOnConnector1(cp);
    const stop = (transactionId: number, meterStop: number, timestamp: string) =>
      cp.call('StopTransaction', { transactionId, meterStop, timestamp });
    // D charges 0 -> 10 kWh and stops; E starts; a second stop of D with another register comes.
    const d = await startOf('TAG-D', 0, '2024-04-09T10:00:00Z');
    await stop(d.transactionId, 10_000, '2024-04-09T11:00:00Z');
    const e2 = await startOf('TAG-E', 10_000, '2024-04-09T12:00:00Z');
    await stop(d.transactionId, 50_000, '2024-04-09T12:30:00Z');
    await stop(e2.transactionId, 20_000, '2024-04-09T13:00:00Z');
    // F's start (dated before a start already recorded, G's) arrives after it: F stops at G's.
    await registerIdTags([['TAG-G', 'V-g']]);
    await startOf('TAG-G', 30_000, '2024-04-09T15:00:00Z');
    await startOf('TAG-F', 20_000, '2024-04-09T14:00:00Z');
    await waitForDrained(e.queue);

    expect((await history(e, 'CP-LATE:1')).map((r) => [r.at, r.kwh])).toEqual([
      ['10:00', 0],
      ['11:00', 10],
      ['12:00', 10],
      ['13:00', 20],
      ['14:00', 20],
      ['15:00', 30],
    ]);
    const sessions = async (vehicleId: string) =>
      (
        await request(e.api.api.app)
          .get(
            `/v1/vehicles/${vehicleId}/sessions?from=2024-04-09T00:00:00Z&to=2024-04-10T00:00:00Z`,
          )
          .expect(200)
      ).body.sessions as { acConsumedKwh: number; open: boolean; end: string }[];
    expect((await sessions('V-e')).map((x) => x.acConsumedKwh)).toEqual([10]);
    expect(await sessions('V-f')).toEqual([
      expect.objectContaining({ open: false, end: '2024-04-09T15:00:00.000Z', acConsumedKwh: 10 }),
    ]);
    const mapF = await request(e.api.api.app).get('/v1/telemetry/map/V-f').expect(200);
    expect(mapF.body.current).toBeNull();
  });

  test('when a StatusNotification is dated ahead of the clock, then it counts as of now and later statuses replace it', async () => {
    const cp = await connect('CP-CLOCK');
    const status = (status: string, timestamp?: string) =>
      cp.call('StatusNotification', {
        connectorId: 2,
        errorCode: 'NoError',
        status,
        ...(timestamp ? { timestamp } : {}),
      });
    await status('Faulted', '2099-01-01T00:00:00Z');
    const faulted = await request(e.api.api.app).get('/v1/charge-points/CP-CLOCK').expect(200);
    expect(faulted.body.connectors[0].status).toBe('Faulted');
    await new Promise((r) => setTimeout(r, 5));
    await status('Available');
    const now = await request(e.api.api.app).get('/v1/charge-points/CP-CLOCK').expect(200);
    expect(now.body.connectors[0].status).toBe('Available');
    // Ahead by less than MAX_CLOCK_SKEW_S too: a later status without a timestamp replaces it.
    await status('SuspendedEV', new Date(Date.now() + 120_000).toISOString());
    await new Promise((r) => setTimeout(r, 5));
    await status('Finishing');
    const last = await request(e.api.api.app).get('/v1/charge-points/CP-CLOCK').expect(200);
    expect(last.body.connectors[0].status).toBe('Finishing');
  });

  test('when a charge point reboots with its clock behind, then its first status after the boot replaces the stored one, and an older one after it does not', async () => {
    const cp = await connect('CP-REBOOT');
    const statusAt = (status: string, timestamp: string) =>
      cp.call('StatusNotification', { connectorId: 1, errorCode: 'NoError', status, timestamp });
    const shown = async () =>
      (await request(e.api.api.app).get('/v1/charge-points/CP-REBOOT').expect(200)).body
        .connectors[0].status;
    await statusAt('Faulted', '2024-04-10T12:00:00Z');
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    await statusAt('Available', '2024-04-09T00:00:00Z'); // the clock lost a day
    expect(await shown()).toBe('Available');
    await statusAt('Faulted', '2024-04-08T00:00:00Z'); // a queued older one: still ordered
    expect(await shown()).toBe('Available');
  });

  test('when a client offers no ocpp1.6 subprotocol, or the path is not /ocpp/{id}, then no socket opens and it is told why', async () => {
    await expect(chargePoint(e, 'CP-NOPROTO', { protocols: [] })).rejects.toThrow();
    // Told which subprotocol to offer, whatever else it offered.
    for (const offered of [undefined, '', 'ocpp2.0.1', 'ocpp1.5, ocpp2.0']) {
      const refused = await request(e.url)
        .get('/ocpp/CP-NOPROTO')
        .set({
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
          ...(offered !== undefined ? { 'Sec-WebSocket-Protocol': offered } : {}),
        });
      expect({ offered, status: refused.status, body: refused.body }).toEqual({
        offered,
        status: 400,
        body: expect.objectContaining({
          error: 'subprotocol_required',
          message: expect.stringContaining('Offer the WebSocket subprotocol ocpp1.6'),
        }),
      });
    }
    // A list the WebSocket library cannot read is told so too (it answered a bare 500).
    for (const offered of ['ocpp1.6, ocpp1.6', 'ocpp1.6,,', 'ocpp1.6;q=1']) {
      const refused = await request(e.url).get('/ocpp/CP-NOPROTO').set({
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Protocol': offered,
      });
      expect({ offered, status: refused.status, body: refused.body }).toEqual({
        offered,
        status: 400,
        body: expect.objectContaining({
          error: 'subprotocol_required',
          message: expect.stringMatching(
            /^Sec-WebSocket-Protocol is not a list of subprotocols \(.+\)\. Offer the WebSocket subprotocol ocpp1\.6/,
          ),
        }),
      });
    }
    const offeredAmongOthers = await chargePoint(e, 'CP-SEVERAL', {
      protocols: ['ocpp2.0.1', 'ocpp1.6'],
    });
    expect(offeredAmongOthers.protocol).toBe('ocpp1.6');
    await offeredAmongOthers.close();
    // RFC 6455 asks HTTP/1.1 and a Host of an upgrade; the WebSocket library switched without.
    const { port } = new URL(e.url);
    const handshake = (line: string, host: string) =>
      new Promise<string>((resolve) => {
        const socket = net.connect(Number(port), '127.0.0.1', () =>
          socket.write(
            `GET /ocpp/CP-NOHOST ${line}\r\n${host}Connection: Upgrade\r\nUpgrade: websocket\r\n` +
              'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
              'Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n',
          ),
        );
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString()));
        socket.on('close', () => resolve(text));
        setTimeout(() => socket.destroy(), 3000);
      });
    const withoutHost = 'A WebSocket upgrade is an HTTP/1.1 request with a Host header';
    for (const [line, host, message] of [
      ['HTTP/1.1', '', withoutHost],
      ['HTTP/1.0', 'Host: x\r\n', withoutHost],
      ['HTTP/1.1', 'Host: x\r\nHost: y\r\n', 'A request has one Host header; this one has 2'],
    ]) {
      const answer = await handshake(line, host);
      expect({ line, host, status: answer.split('\r\n')[0] }).toEqual({
        line,
        host,
        status: 'HTTP/1.1 400 Bad Request',
      });
      expect(JSON.parse(answer.split('\r\n\r\n')[1])).toMatchObject({ message });
    }
    // A handshake the WebSocket library refuses is told so in JSON (it answered text/html).
    for (const [headers, message] of [
      [{ 'Sec-WebSocket-Version': '13' }, /needs a Sec-WebSocket-Key/],
      [
        { 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'short' },
        /needs a Sec-WebSocket-Key/,
      ],
      [
        { 'Sec-WebSocket-Version': '99', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
        /^Sec-WebSocket-Version "99" is not supported: send 13/,
      ],
    ] as const) {
      const refused = await request(e.url)
        .get('/ocpp/CP-BADSHAKE')
        .set({
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Protocol': 'ocpp1.6',
          ...headers,
        });
      expect({ headers, status: refused.status, type: refused.type }).toEqual({
        headers,
        status: 400,
        type: 'application/json',
      });
      expect(refused.body).toMatchObject({
        error: 'bad_request',
        message: expect.stringMatching(message),
      });
      expect(refused.headers['sec-websocket-version']).toBe('13');
    }
    const res = await request(e.url).get('/ocpp/a%E0%A4%A').set({
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    });
    expect(res.status).not.toBe(101);
    // An id the engine cannot take is told what an id may be.
    const upgrade = {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Protocol': 'ocpp1.6',
    };
    for (const path of ['/ocpp/A%20B', `/ocpp/${'x'.repeat(49)}`]) {
      const refused = await request(e.url).get(path).set(upgrade);
      // As every error of the API: JSON naming it.
      expect({ path, status: refused.status, body: refused.body }).toEqual({
        path,
        status: 404,
        body: {
          error: 'not_found',
          message: expect.stringContaining(
            'Charge points connect to /ocpp/{chargePointId}, the id 1-48',
          ),
          details: [],
        },
      });
    }
  });
});

describe('OCPP with AUTH on', () => {
  let e: TestEngine;
  /** CP-1's WebSocket upgrade as a bare HTTP request, to read a refusal. */
  const upgrade = () =>
    request(e.url).get('/ocpp/CP-1').set({
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Protocol': 'ocpp1.6',
    });
  const basic = (password: string) => `Basic ${Buffer.from(`CP-1:${password}`).toString('base64')}`;
  const cp1 = generateKey('CP-1', ['charge-point']);
  const other = generateKey('CP-2', ['charge-point']);
  const reader = generateKey('reader', ['read', 'admin']);
  // A charger set up with a password of its own, admitted by an entry hashing it (README).
  const ownPassword = 'its-own-password';
  const ownEntry = `CP-3:charge-point:${hashKey(ownPassword).toString('hex')}`;

  beforeAll(async () => {
    e = await startTestEngine({
      AUTH: 'on',
      API_KEYS: [cp1.entry, other.entry, reader.entry, ownEntry].join(','),
      OCPP_UNKNOWN_ID_TAGS: 'reject',
    });
  });
  afterAll(() => e.stop());

  test('when an idTag refused at a start (OCPP_UNKNOWN_ID_TAGS=reject) is registered later, then that transaction is not given to the vehicle', async () => {
    const cp = await chargePoint(e, 'CP-1', { password: cp1.key });
    const started = (await cp.call('StartTransaction', {
      connectorId: 1,
      idTag: 'TAG-REFUSED',
      meterStart: 0,
      timestamp: '2024-04-14T10:00:00Z',
    })) as { transactionId: number; idTagInfo: { status: string } };
    expect(started.idTagInfo.status).toBe('Invalid');
    const admin = { Authorization: `Bearer ${reader.key}` };
    await request(e.api.api.app)
      .put('/v1/id-tags/TAG-REFUSED')
      .set(admin)
      .send({ vehicleId: 'V-refused' })
      .expect(200);
    await request(e.api.api.app).get('/v1/telemetry/map/V-refused').set(admin).expect(404);
    await cp.close();
  });

  test('when an idTag differs from a registered one by a letter outside ASCII that upper-cases into it, then it is not that tag', async () => {
    const admin = { Authorization: `Bearer ${reader.key}` };
    await request(e.api.api.app)
      .put('/v1/id-tags/STAGE')
      .set(admin)
      .send({ vehicleId: 'V-stage' })
      .expect(200);
    const cp = await chargePoint(e, 'CP-1', { password: cp1.key });
    expect(await cp.call('Authorize', { idTag: 'stage' })).toEqual({
      idTagInfo: { status: 'Accepted' },
    });
    // 'ſ' (long s) and 'ﬆ' (the st ligature) upper-case into 'S' and 'ST' in JavaScript.
    for (const idTag of ['ſTAGE', 'ﬆAGE'])
      expect(await cp.call('Authorize', { idTag })).toEqual({ idTagInfo: { status: 'Invalid' } });
    const started = (await cp.call('StartTransaction', {
      connectorId: 2,
      idTag: 'ſtage',
      meterStart: 0,
      timestamp: '2024-04-14T11:00:00Z',
    })) as { idTagInfo: { status: string } };
    expect(started.idTagInfo.status).toBe('Invalid');
    await cp.close();
  });

  test("when the Basic password is the charge point's own key, then it connects", async () => {
    const cp = await chargePoint(e, 'CP-1', { password: cp1.key });
    expect(await cp.call('Authorize', { idTag: 'unknown' })).toEqual({
      idTagInfo: { status: 'Invalid' },
    });
    await cp.close();
  });

  test('when the Basic password is the key as the bytes its hex digits stand for (OCPP 1.6 security profile 1, OCTT TC_085_CS), or its hex in capitals, then it connects', async () => {
    for (const password of [Buffer.from(cp1.key, 'hex'), cp1.key.toUpperCase()]) {
      const cp = await chargePoint(e, 'CP-1', { password });
      expect(await cp.call('Heartbeat', {})).toMatchObject({ currentTime: expect.any(String) });
      await cp.close();
    }
    // Another charge point's key in those forms is still another's.
    for (const password of [Buffer.from(other.key, 'hex'), other.key.toUpperCase()]) {
      const err = await chargePoint(e, 'CP-1', { password }).then(
        () => null,
        (error: unknown) => error as { code?: number },
      );
      expect(err?.code).toBe(401);
    }
  });

  test('when a charger sends a password of its own, as written, that an entry hashes, then it connects', async () => {
    const cp = await chargePoint(e, 'CP-3', { password: ownPassword });
    expect(await cp.call('Heartbeat', {})).toMatchObject({ currentTime: expect.any(String) });
    await cp.close();
  });

  test.each([
    ['no password', undefined],
    ['a wrong key', 'eie_not-a-key'],
    ["another charge point's key", other.key],
    ['a key without the charge-point scope', reader.key],
  ])(
    'when it sends %s, then the upgrade is refused with 401 and no socket',
    async (_n, password) => {
      const err = await chargePoint(e, 'CP-1', { password }).then(
        () => null,
        (error: unknown) => error as { code?: number },
      );
      expect(err?.code).toBe(401);
      const refused = await upgrade().set(password ? { Authorization: basic(password) } : {});
      expect(refused.status).toBe(401);
      expect(refused.headers['www-authenticate']).toMatch(/^Basic realm=/);
      expect(refused.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(refused.body.error).toBe('invalid_charge_point_key');
      expect(refused.body.message).toContain(
        'a key with the charge-point scope named after that id',
      );
    },
  );

  test('when the upgrade carries two Authorization headers, then it is refused with 401, though one holds the key', async () => {
    for (const passwords of [
      [cp1.key, other.key],
      [other.key, cp1.key],
    ]) {
      // Two header lines (superagent's types allow a list for Cookie only).
      const refused = await upgrade().set(
        'Authorization',
        passwords.map(basic) as unknown as string,
      );
      expect([refused.status, refused.body.error]).toEqual([401, 'invalid_charge_point_key']);
    }
  });
});

describe('OCPP with MAX_BATCH_READINGS below what a message holds', () => {
  let e: TestEngine;
  beforeAll(async () => {
    e = await startTestEngine({ MAX_BATCH_READINGS: '10' });
  });
  afterAll(() => e.stop());

  test("when a StopTransaction's transactionData holds more samples than one ingest call takes, then every one is stored, meterStop included", async () => {
    const cp = await chargePoint(e, 'CP-MANY');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-MANY',
      meterStart: 0,
      timestamp: '2024-04-12T10:00:00Z',
    });
    // 25 samples, a minute apart, 500 Wh each (a charge point's queue while it was offline).
    const transactionData = Array.from({ length: 25 }, (_, i) => ({
      timestamp: new Date(Date.parse('2024-04-12T10:01:00Z') + i * 60_000).toISOString(),
      sampledValue: [wh((i + 1) * 500)],
    }));
    await cp.call('StopTransaction', {
      transactionId,
      meterStop: 20_000,
      timestamp: '2024-04-12T10:30:00Z',
      transactionData,
    });
    await waitForDrained(e.queue);
    const stored = await history(e, 'CP-MANY:1');
    expect(stored).toHaveLength(27); // the start, 25 samples, the stop
    expect(stored.at(-1)).toEqual({ at: '10:30', kwh: 20, voltage: null });
    await cp.close({ force: true });
  });
});

describe('OCPP stops sent again once their timestamp is no longer ahead of the clock', () => {
  let redis: OwnRedis;
  let e: TestEngine;

  beforeAll(async () => {
    redis = await OwnRedis.create();
    e = await startTestEngine({ REDIS_URL: redis.url, MAX_CLOCK_SKEW_S: '1' });
  });
  afterAll(async () => {
    await e.stop();
    await redis.kill();
  });

  test("when a charge point's own stop of a transaction a start stopped was dated ahead of the clock and its store failed, then the same stop sent once the clock passed its date stores its readings", async () => {
    await request(e.api.api.app).put('/v1/id-tags/TAG-AHEAD').send({ vehicleId: 'V-ahead' });
    const [c, d] = [await chargePoint(e, 'CP-AHEAD-C'), await chargePoint(e, 'CP-AHEAD-D')];
    const now = Date.now();
    const at = (ms: number) => new Date(ms).toISOString();
    const started = (await c.call('StartTransaction', {
      connectorId: 1,
      idTag: 'TAG-AHEAD',
      meterStart: 1000,
      timestamp: at(now - 20 * 60_000),
    })) as { transactionId: number };
    // The vehicle starts elsewhere: the engine stops the first transaction there.
    await d.call('StartTransaction', {
      connectorId: 1,
      idTag: 'TAG-AHEAD',
      meterStart: 500,
      timestamp: at(now - 10 * 60_000),
    });
    const stop = {
      transactionId: started.transactionId,
      meterStop: 5000,
      timestamp: at(Date.now() + 3000), // ahead of the clock: taken as of now
      transactionData: [{ timestamp: at(now - 15 * 60_000), sampledValue: [wh(3000)] }],
    };
    await redis.kill();
    try {
      await expect(c.call('StopTransaction', stop)).rejects.toBeDefined();
    } finally {
      await redis.start();
      await waitFor(async () => e.ctx.redis.status === 'ready', 15_000, 'Redis to be back');
    }
    // By now the stop's own date has passed: sent again, it is still the stop recorded.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, Date.parse(stop.timestamp) - Date.now() + 1500)),
    );
    await waitFor(
      () =>
        c.call('StopTransaction', stop).then(
          () => true,
          () => false,
        ),
      15_000,
      'the stop to be answered',
    );
    await waitForDrained(e.queue);
    const row = await e.ctx.db('ocpp_transactions').where({ id: started.transactionId }).first();
    expect((await history(e, 'CP-AHEAD-C:1')).map((r) => r.kwh)).toEqual([1, 3, 5]);
    expect(row.charger_stopped_at.getTime()).toBeLessThan(Date.parse(stop.timestamp));
    await Promise.all([c.close({ force: true }), d.close({ force: true })]);
  }, 60_000);
});

describe('OCPP while Redis is down', () => {
  let redis: OwnRedis;
  let e: TestEngine;

  beforeAll(async () => {
    redis = await OwnRedis.create();
    e = await startTestEngine({ REDIS_URL: redis.url });
  });
  afterAll(async () => {
    await e.stop();
    await redis.kill();
  });

  /** Starts Redis again and sends `call` until it is answered with a .conf, as a charge point does. */
  async function whenRedisIsBack(call: () => Promise<unknown>, what: string): Promise<void> {
    await redis.start();
    await waitFor(async () => e.ctx.redis.status === 'ready', 15_000, 'Redis to be back');
    await waitFor(
      async () => {
        try {
          await call();
          return true;
        } catch {
          return false;
        }
      },
      15_000,
      `${what} to be answered`,
    );
  }

  test("when a connector's settings are changed meanwhile, then a recorded charge point's are refused (409), an unknown one's refused for now (503), and a plain meter's taken", async () => {
    const cp = await chargePoint(e, 'CP-GUARD');
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    await redis.kill();
    try {
      const put = (meterId: string) =>
        request(e.api.api.app)
          .put(`/v1/meters/${meterId}/settings`)
          .send({ energyReadings: 'interval' });
      expect((await put('CP-GUARD:1').expect(409)).body.error).toBe('ocpp_connector');
      const unknown = await put('SITE-9:12').expect(503);
      expect(unknown.body).toMatchObject({ error: 'redis_unavailable' });
      expect(unknown.body.message).toMatch(/meter SITE-9:12 is an OCPP connector/);
      await put('M-PLAIN').expect(200);
    } finally {
      await redis.start();
      await waitFor(async () => e.ctx.redis.status === 'ready', 15_000, 'Redis to be back');
      await cp.close({ force: true });
    }
  });

  test('when Redis does not answer (a master hung), then a charge point and the list of them are a 503 to retry, not a 500', async () => {
    const cp = await chargePoint(e, 'CP-HUNG');
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    redis.freeze();
    try {
      for (const path of ['/v1/charge-points/CP-HUNG', '/v1/charge-points']) {
        const answer = await request(e.api.api.app).get(path).expect(503);
        expect(answer.body.error).toBe('redis_unavailable');
        expect(answer.headers['retry-after']).toBe('1');
      }
    } finally {
      await redis.kill();
      await redis.start();
      await waitFor(async () => e.ctx.redis.status === 'ready', 15_000, 'Redis to be back');
      await cp.close({ force: true });
    }
  });

  test("when Redis comes back empty, then the connectors of a charge point not connected since are still its own: another source's readings for them are refused (409)", async () => {
    const cp = await chargePoint(e, 'CP-AWAY');
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    await cp.close();
    await waitForDrained(e.queue);
    await e.ctx.redis.flushall(); // a Redis that restarted without its data
    await redis.kill();
    await redis.start();
    await waitFor(async () => e.ctx.redis.status === 'ready', 15_000, 'Redis to be back');
    await waitFor(
      async () =>
        (await e.ctx.redis.exists(
          createRedisKeys(e.ctx.config.redisPrefix).chargePoint('CP-AWAY'),
        )) === 1,
      10_000,
      'the charge point marked again from PostgreSQL',
    );
    const res = await request(e.api.api.app)
      .post('/v1/telemetry/ingest')
      .send({ meterId: 'CP-AWAY:1', kwhConsumedAc: 999, voltage: 230, timestamp: new Date() })
      .expect(409);
    expect(res.body).toMatchObject({ error: 'ocpp_connector' });
    // Marked, not shown: it has no live state until it connects again.
    const shown = await request(e.api.api.app).get('/v1/charge-points/CP-AWAY').expect(200);
    expect(shown.body).toMatchObject({ connected: false, lastSeenAt: null, connectors: [] });
  });

  test("when Redis comes back empty, then a connected charge point reads as connected again at once and is asked for its connectors' statuses, which it sends", async () => {
    const cp = await chargePoint(e, 'CP-EMPTIED');
    await cp.call('BootNotification', { chargePointVendor: 'V', chargePointModel: 'M' });
    const sendStatuses = () =>
      Promise.all(
        ['Charging', 'Available'].map((status, i) =>
          cp.call('StatusNotification', { connectorId: i + 1, errorCode: 'NoError', status }),
        ),
      );
    await sendStatuses();
    const asked: unknown[] = [];
    cp.handle('TriggerMessage', async ({ params }) => {
      asked.push(params);
      // As a charge point does: the statuses follow the answer.
      setImmediate(() => void sendStatuses().catch(() => undefined));
      return { status: 'Accepted' };
    });
    // Another, without OCPP's Remote Trigger (ocpp-rpc answers its CALLERROR NotImplemented).
    const plain = await chargePoint(e, 'CP-EMPTIED-PLAIN');
    await plain.call('StatusNotification', {
      connectorId: 1,
      errorCode: 'NoError',
      status: 'Available',
    });
    const described = async (id = 'CP-EMPTIED') =>
      (await request(e.api.api.app).get(`/v1/charge-points/${id}`).expect(200)).body as {
        connected: boolean;
        connectors: { connectorId: number; status: string | null }[];
      };
    try {
      await waitForDrained(e.queue);
      await e.ctx.redis.flushall(); // a Redis that restarted without its data
      await redis.kill();
      await redis.start();
      await waitFor(async () => e.ctx.redis.status === 'ready', 15_000, 'Redis to be back');
      await waitFor(
        async () => {
          const cpNow = await described();
          return cpNow.connected && cpNow.connectors.filter((c) => c.status !== null).length === 2;
        },
        10_000,
        'the charge point connected with its connectors',
      );
      expect((await described()).connectors).toEqual([
        expect.objectContaining({ connectorId: 1, status: 'Charging' }),
        expect.objectContaining({ connectorId: 2, status: 'Available' }),
      ]);
      expect(asked).toEqual([{ requestedMessage: 'StatusNotification' }]);
      // The other reads as connected, its connectors' statuses unknown until it reports again
      // (its connector may be listed: its register's record, written just after its status was
      // answered, may have reached Redis after the flush).
      const plainNow = await described('CP-EMPTIED-PLAIN');
      expect(plainNow.connected).toBe(true);
      expect(plainNow.connectors.filter((c) => c.status !== null)).toEqual([]);
      await plain.call('StatusNotification', {
        connectorId: 1,
        errorCode: 'NoError',
        status: 'Available',
      });
      expect((await described('CP-EMPTIED-PLAIN')).connectors).toEqual([
        expect.objectContaining({ connectorId: 1, status: 'Available' }),
      ]);
    } finally {
      await Promise.all([cp.close({ force: true }), plain.close({ force: true })]);
    }
  });

  test('when MeterValues cannot be stored, then the charge point gets InternalError, and its retry is stored once', async () => {
    const cp = await chargePoint(e, 'CP-OUT');
    const message = meterValues(1, '2024-04-04T10:00:00Z', wh(42_000));
    await redis.kill();
    expect(await callError(cp.call('MeterValues', message))).toBe('InternalError');
    // Its live state is out of reach: a 503 to retry, not a 500.
    const described = await request(e.api.api.app).get('/v1/charge-points/CP-OUT').expect(503);
    expect(described.body.error).toBe('redis_unavailable');
    expect(described.headers['retry-after']).toBe('1');
    await whenRedisIsBack(() => cp.call('MeterValues', message), 'the retried MeterValues');
    await waitForDrained(e.queue);
    expect(await history(e, 'CP-OUT:1')).toEqual([{ at: '10:00', kwh: 42, voltage: null }]);
    await cp.close({ force: true });
  });

  test('when a StopTransaction dated ahead of the clock cannot be stored, then its retry is the same stop, its register stored at it', async () => {
    const cp = await chargePoint(e, 'CP-AHEAD');
    const transactionId = await startTransaction(cp, {
      connectorId: 1,
      idTag: 'TAG-AHEAD',
      meterStart: 10_000,
      timestamp: new Date(Date.now() - 3600_000).toISOString(),
    });
    const stop = {
      transactionId,
      meterStop: 20_000,
      timestamp: new Date(Date.now() + 3600_000).toISOString(), // taken as of now
    };
    await redis.kill();
    expect(await callError(cp.call('StopTransaction', stop))).toBe('InternalError');
    await whenRedisIsBack(() => cp.call('StopTransaction', stop), 'the retried StopTransaction');
    await waitForDrained(e.queue);
    const stopped = await e.ctx.db('ocpp_transactions').where({ id: transactionId }).first();
    const stored = await e.ctx.db('telemetry_history').where({
      device_type: 'meter',
      device_id: 'CP-AHEAD:1',
      ts: stopped.stopped_at,
    });
    expect(stored.map((r: { kwh_consumed_ac: number }) => r.kwh_consumed_ac)).toEqual([20]);
    await cp.close({ force: true });
  });
});

describe('OCPP while PostgreSQL is down', () => {
  /** An API of its own serving OCPP, its PostgreSQL behind a proxy the test cuts or freezes. */
  async function apiBehindProxy() {
    const ctx = await createTestContext();
    const proxy = await TcpProxy.inFrontOf(ctx.config.databaseUrl);
    const api = await startTestApi(ctx, { databaseUrl: proxy.rewrite(ctx.config.databaseUrl) });
    const served = await serveTestApiWithOcpp(api);
    return {
      ctx,
      proxy,
      api,
      url: served.url,
      async stop() {
        await served.close();
        await api.close();
        await proxy.cut();
        await ctx.cleanup();
      },
    };
  }

  test('when a replica writes a boot it kept through the outage after another wrote a newer one, then the newer stays', async () => {
    const ctx = await createTestContext();
    try {
      const store = new ChargePointStore(ctx.db);
      const bootAt = (vendor: string, at: string) => ({
        id: 'CP-TWICE',
        vendor,
        model: 'M',
        serialNumber: null,
        firmwareVersion: null,
        lastBootAt: new Date(at),
      });
      await store.recordBoot(bootAt('after the update', '2024-06-01T11:00:00Z'));
      await store.recordBoot(bootAt('before the update', '2024-06-01T10:00:00Z'));
      expect(await store.get('CP-TWICE')).toMatchObject({
        vendor: 'after the update',
        lastBootAt: new Date('2024-06-01T11:00:00Z'),
      });
    } finally {
      await ctx.cleanup();
    }
  });

  test("when PostgreSQL stops answering (a partition), then a BootNotification is answered all the same, within the charger's own timeout, and its record is written once PostgreSQL answers", async () => {
    const { ctx, proxy, url, stop } = await apiBehindProxy();
    try {
      // Connected first, so its connection's record is written: the boot's alone meets the freeze.
      const cp = await chargePoint({ url }, 'CP-PARTITION');
      await waitFor(
        async () => (await ctx.db('charge_points').where({ id: 'CP-PARTITION' })).length === 1,
        10_000,
        'the connection recorded',
      );
      proxy.freeze();
      // A charger gives up on a CALL after its own timeout (10 s here; the query deadline is 35 s).
      const boot = await cp.call(
        'BootNotification',
        { chargePointVendor: 'VendorP', chargePointModel: 'ModelQ' },
        { callTimeoutMs: 10_000 },
      );
      expect(boot).toMatchObject({ status: 'Accepted' });
      proxy.thaw();
      await waitFor(
        async () => {
          await cp.call('Heartbeat', {});
          const row = await ctx.db('charge_points').where({ id: 'CP-PARTITION' }).first();
          return row?.vendor === 'VendorP';
        },
        60_000,
        'the boot recorded',
      );
      await cp.close({ force: true });
    } finally {
      proxy.thaw();
      await stop();
    }
  });

  test('when a charge point connects and boots during the outage, then its connectors are guarded at once, and it is listed with its boot once PostgreSQL is back', async () => {
    const { proxy, api, url, stop } = await apiBehindProxy();
    const app = api.api.app;
    try {
      await proxy.cut();
      const cp = await chargePoint({ url }, 'CP-PGDOWN');
      const boot = await cp.call('BootNotification', {
        chargePointVendor: 'VendorX',
        chargePointModel: 'ModelY',
      });
      expect(boot).toMatchObject({ status: 'Accepted' });
      await proxy.restore();
      // Its connector is the charge point's register from its first connection: no setting
      // makes it read as intervals, recorded in PostgreSQL yet or not.
      const put = await request(app)
        .put('/v1/meters/CP-PGDOWN:1/settings')
        .send({ energyReadings: 'interval' })
        .expect(409);
      expect(put.body.error).toBe('ocpp_connector');
      // Its next calls write what PostgreSQL did not take (a charge point does not boot again).
      await waitFor(
        async () => {
          await cp.call('Heartbeat', {});
          const listed = await request(app).get('/v1/charge-points').expect(200);
          return JSON.stringify(listed.body).includes('CP-PGDOWN');
        },
        20_000,
        'the charge point to be listed',
      );
      const described = await request(app).get('/v1/charge-points/CP-PGDOWN').expect(200);
      expect(described.body).toMatchObject({ vendor: 'VendorX', model: 'ModelY' });
      await cp.close({ force: true });
    } finally {
      await stop();
    }
  });
});

describe('OCPP log under a charge point that repeats bad messages', () => {
  /**
   * Runs `check` against an engine whose log lines are kept, with bare WebSockets to its OCPP
   * endpoint sending frames as the probes did: `answer` sends one and waits for the next frame.
   */
  const withLoggedEngine = async (
    check: (engine: {
      logged(msg: string): Record<string, unknown>[];
      /** The API's base URL, for raw upgrades. */
      url: string;
      /** What the API's /metrics says. */
      metrics(): Promise<string>;
      connect(
        id: string,
      ): Promise<{ socket: WebSocket; answer(frame: string): Promise<unknown[]> }>;
    }) => Promise<void>,
  ) => {
    const ctx = await createTestContext();
    const { logger, lines } = capturingLogger();
    const api = await startTestApi({ ...ctx, logger });
    const served = await serveTestApiWithOcpp(api);
    const sockets: WebSocket[] = [];
    const connect = async (id: string) => {
      const socket = new WebSocket(`${served.url.replace('http', 'ws')}/ocpp/${id}`, ['ocpp1.6']);
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.once('open', () => resolve()));
      const answer = (frame: string) =>
        new Promise<unknown[]>((resolve) => {
          socket.once('message', (data: Buffer) =>
            resolve(JSON.parse(data.toString()) as unknown[]),
          );
          socket.send(frame);
        });
      return { socket, answer };
    };
    try {
      await check({
        logged: (msg) => lines.filter((line) => line.msg === msg),
        url: served.url,
        metrics: async () => (await request(api.api.app).get('/metrics')).text,
        connect,
      });
    } finally {
      for (const socket of sockets) socket.terminate();
      await served.close();
      await api.close();
      await ctx.cleanup();
    }
  };

  test('when two charge points share an id and keep replacing each other, or one leaves transactions open, then each is logged once an interval, not once each time', async () => {
    await withLoggedEngine(async ({ logged, connect }) => {
      // Each connection of the id closes the one before, as two chargers sharing it do.
      let last = await connect('CP-SHARED-ID');
      for (let i = 1; i < 10; i++) last = await connect('CP-SHARED-ID');
      // Each start on connector 1 stops the transaction left open there.
      for (let i = 0; i < 5; i++) {
        const start = `{"connectorId":1,"idTag":"TAG-OPEN","meterStart":${1000 * i},"timestamp":"2024-06-01T1${i}:00:00Z"}`;
        expect((await last.answer(`[2,"s${i}","StartTransaction",${start}]`))[0]).toBe(3);
      }
      expect(
        logged(
          'charge point connected again while connected: the older connection is closed (if this repeats, two charge points share this id)',
        ).map((line) => line.chargePointId),
      ).toEqual(['CP-SHARED-ID']);
      expect(
        logged('transaction left open on the connector stopped at the start of the next one').map(
          (line) => line.chargePointId,
        ),
      ).toEqual(['CP-SHARED-ID']);
    });
  });

  test('when a charge point answers calls never made (or answered late), then that is logged once an interval, and the close its eleventh in a row brings is logged too, as is one for a message too large', async () => {
    await withLoggedEngine(async ({ logged, connect }) => {
      const { socket } = await connect('CP-LATE-ANSWERS');
      const closed = new Promise<number>((resolve) => socket.once('close', resolve));
      for (let i = 0; i < 11; i++) socket.send(`[3,"late-${i}",{"status":"Accepted"}]`);
      expect(await closed).toBe(1002);
      const large = await connect('CP-LARGE');
      const largeClosed = new Promise<number>((resolve) => large.socket.once('close', resolve));
      large.socket.send(`[2,"big","DataTransfer",{"vendorId":"${'x'.repeat(5_000_000)}"}]`);
      expect(await largeClosed).toBe(1009);
      const protocolError =
        'OCPP connection closed (1002): frames in a row were no OCPP-J message it could take';
      const tooLarge = 'OCPP connection closed (1009): a message larger than BODY_LIMIT';
      await waitFor(
        async () => logged(protocolError).length > 0 && logged(tooLarge).length > 0,
        5000,
        'the closes to be logged',
      );
      expect(
        logged(
          'OCPP answer to no call of this central system ignored (late, or to a call never made)',
        ),
      ).toEqual([
        expect.objectContaining({
          chargePointId: 'CP-LATE-ANSWERS',
          message: '[3,"late-0",{"status":"Accepted"}]',
        }),
      ]);
      expect(logged(protocolError)).toEqual([
        expect.objectContaining({ chargePointId: 'CP-LATE-ANSWERS' }),
      ]);
      expect(logged(tooLarge)).toEqual([expect.objectContaining({ chargePointId: 'CP-LARGE' })]);
    });
  });

  test('when upgrades to /ocpp are refused again and again (an unknown path, no ocpp1.6, a Host that is none), then each is counted by its error, and logged once an interval for each error, naming the charge point and why', async () => {
    await withLoggedEngine(async ({ logged, url, metrics }) => {
      const upgrade = (path: string, headers: Record<string, string> = {}) =>
        request(url)
          .get(path)
          .set({
            Connection: 'Upgrade',
            Upgrade: 'websocket',
            'Sec-WebSocket-Version': '13',
            'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
            'Sec-WebSocket-Protocol': 'ocpp1.6',
            ...headers,
          });
      for (let i = 0; i < 3; i++) {
        expect((await upgrade('/ocpp/A%20B')).status).toBe(404);
        expect(
          (await upgrade('/ocpp/CP-NO-PROTOCOL', { 'Sec-WebSocket-Protocol': 'ocpp2.0.1' })).status,
        ).toBe(400);
        expect((await upgrade('/ocpp/CP-BAD-HOST', { Host: 'a, b' })).status).toBe(400);
      }
      const lines = logged('charge point connection refused');
      expect(
        lines.map(({ chargePointId, status, error }) => ({ chargePointId, status, error })),
      ).toEqual([
        { chargePointId: undefined, status: 404, error: 'not_found' },
        { chargePointId: 'CP-NO-PROTOCOL', status: 400, error: 'subprotocol_required' },
        { chargePointId: 'CP-BAD-HOST', status: 400, error: 'bad_request' },
      ]);
      expect(lines[2]).toMatchObject({
        remoteAddress: '127.0.0.1',
        reason: 'Host "a, b" is not a host name or address with an optional port',
      });
      const text = await metrics();
      for (const error of ['not_found', 'subprotocol_required', 'bad_request']) {
        expect(text).toContain(
          `energy_ocpp_connections_refused_total{error="${error}",process="api"} 3`,
        );
      }
    });
  });

  test('when a charge point sends many bad messages of a few kinds, then each kind is logged once, with what was wrong, and another charge point is still logged', async () => {
    const badBoot = (messageId: string) =>
      `[2,"${messageId}","BootNotification",{"chargePointVendor":"${'V'.repeat(31)}","chargePointModel":"M"}]`;
    await withLoggedEngine(async ({ logged, connect }) => {
      const { socket, answer } = await connect('CP-FLOOD');
      for (let i = 0; i < 20; i++) {
        expect((await answer(`[2,"f${i}","FooBar${i}",{}]`))[2]).toBe('NotImplemented');
        expect((await answer(badBoot(`b${i}`)))[2]).toBe('PropertyConstraintViolation');
        const status = `{"connectorId":${5000 + i},"errorCode":"NoError","status":"Available"}`;
        expect((await answer(`[2,"s${i}","StatusNotification",${status}]`))[2]).toBe(
          'PropertyConstraintViolation',
        );
        // Ignored, unanswered: the next CALL's answer says it was read.
        socket.send(`[5,"u${i}"]`);
        const sample = `{"timestamp":"2024-06-01T10:00:00Z","sampledValue":[{"value":"abc${i}"}]}`;
        const values = `{"connectorId":1,"meterValue":[${sample}]}`;
        expect((await answer(`[2,"m${i}","MeterValues",${values}]`))[0]).toBe(3);
        // Answered, with what is wrong logged: a clock before 1970, a transaction never started.
        const oldStatus = `{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"1969-01-01T00:00:00Z"}`;
        expect((await answer(`[2,"t${i}","StatusNotification",${oldStatus}]`))[0]).toBe(3);
        const stop = `{"transactionId":${990_000 + i},"meterStop":5,"timestamp":"2024-06-01T10:00:00Z"}`;
        expect((await answer(`[2,"x${i}","StopTransaction",${stop}]`))[0]).toBe(3);
      }
      expect((await (await connect('CP-OTHER')).answer(badBoot('b0')))[2]).toBe(
        'PropertyConstraintViolation',
      );
      const unknownType =
        'OCPP message of an unknown type ignored: OCPP-J 1.6 knows CALL (2), CALLRESULT (3) and CALLERROR (4)';
      const counts = {
        schema: logged('OCPP message failed its schema').length,
        refused: logged('OCPP call refused').length,
        samples: logged('meter value samples rejected').length,
        unknownType: logged(unknownType).length,
        clock: logged('StatusNotification timestamp not usable: status taken as of now').length,
        stop: logged(
          'StopTransaction for a transaction this charge point never started: readings dropped',
        ).length,
      };
      // Two kinds of CP-FLOOD's (any action 1.6 does not know is one), one of CP-OTHER's.
      expect(counts).toEqual({
        schema: 3,
        refused: 1,
        samples: 1,
        unknownType: 1,
        clock: 1,
        stop: 1,
      });
      const schema = logged('OCPP message failed its schema');
      expect(schema.map(({ chargePointId, action }) => [chargePointId, action])).toEqual([
        ['CP-FLOOD', 'FooBar0'],
        ['CP-FLOOD', 'BootNotification'],
        ['CP-OTHER', 'BootNotification'],
      ]);
      // Each line is the first occurrence, with what was wrong.
      expect(schema[1].reason).toContain('chargePointVendor');
      expect(logged('OCPP call refused')[0]).toMatchObject({
        chargePointId: 'CP-FLOOD',
        action: 'StatusNotification',
        reason: expect.stringContaining('got 5000'),
      });
      expect(logged('meter value samples rejected')[0]).toMatchObject({
        meterId: 'CP-FLOOD:1',
        byReason: { 'non-numeric value': 1 },
      });
      expect(logged(unknownType)[0]).toMatchObject({ message: '[5,"u0"]' });
    });
  });
});
