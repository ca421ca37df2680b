import request from 'supertest';
import { Redis } from 'ioredis';
import { OwnRedis } from './helpers/own-redis';
import { TcpProxy } from './helpers/tcp-proxy';
import { startTestEngine, waitFor, type TestEngine } from './helpers/engine';
import { isRedisUnavailable, isReplicaRefusal } from '../src/redis';

const LOCALHOST = '127.0.0.1';

/** A client of one of the test's own servers, for its administration. */
const adminOf = (server: OwnRedis) => new Redis(server.url, { maxRetriesPerRequest: 1 });

const reading = (minute: number) => ({
  meterId: 'M-failover',
  kwhConsumedAc: 1,
  voltage: 230,
  timestamp: new Date(Date.UTC(2024, 4, 1, 0, minute)).toISOString(),
});

/**
 * A failover as Sentinel or a managed service makes it: a replica is promoted, the old master is
 * demoted to its replica and keeps its connections, and the address the engine knows (a DNS name,
 * a virtual IP; a proxy here) names the new master for new connections.
 */
describe('a Redis failover behind the address the engine knows', () => {
  let master: OwnRedis;
  let replica: OwnRedis;
  let address: TcpProxy;
  let e: TestEngine;

  beforeAll(async () => {
    master = await OwnRedis.create();
    replica = await OwnRedis.create();
    const admin = adminOf(replica);
    await admin.replicaof(LOCALHOST, master.port);
    await waitFor(
      async () => /master_link_status:up/.test(await admin.info('replication')),
      10_000,
      'the replica in sync',
    );
    admin.disconnect();
    address = await TcpProxy.start({ host: LOCALHOST, port: master.port });
    e = await startTestEngine({ REDIS_URL: address.rewrite(master.url) });
  });

  afterAll(async () => {
    await e.stop();
    await address.cut();
    await master.kill();
    await replica.kill();
  });

  test('when the master is demoted and the address names the new one, then readiness says so, and ingest and the flusher carry on with the new master: every reading acknowledged is stored', async () => {
    const app = () => request(e.api.api.app);
    await app().post('/v1/telemetry/ingest').send(reading(0)).expect(202);
    const [oldMaster, newMaster] = [adminOf(master), adminOf(replica)];
    try {
      // Nothing lost in the failover itself: the replica has every write first.
      expect(await oldMaster.wait(1, 5000)).toBe(1);
      await newMaster.replicaof('NO', 'ONE');
      await oldMaster.replicaof(LOCALHOST, replica.port);
      address.retarget({ host: LOCALHOST, port: replica.port });
    } finally {
      oldMaster.disconnect();
      newMaster.disconnect();
    }

    // The connection still on the old master: not ready, said plainly, and replaced.
    const stale = await app().get('/health/ready').expect(503);
    expect(stale.body.checks.redis).toMatch(/answers as a replica, which refuses every write/);
    await waitFor(async () => (await app().get('/health/ready')).status === 200, 10_000, 'ready');

    // A client sending again what was refused (503), as it is told to, is acknowledged.
    for (let minute = 1; minute <= 5; minute++) {
      await waitFor(
        async () => (await app().post('/v1/telemetry/ingest').send(reading(minute))).status === 202,
        10_000,
        `reading ${minute} acknowledged`,
      );
    }
    await waitFor(
      async () =>
        Number(
          (
            await e.ctx.db('telemetry_history').where({ device_id: 'M-failover' }).count({ n: '*' })
          )[0].n,
        ) === 6,
      20_000,
      'every acknowledged reading in PostgreSQL',
    );
  });
});

describe('a write refused by a replica', () => {
  const replyError = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

  test('when Redis 7 or an earlier one says so, of a command or of a write inside a script, then it is taken for one (its connection is replaced) and for Redis unavailable (503)', () => {
    const refusals = [
      "READONLY You can't write against a read only replica.",
      "READONLY You can't write against a read only replica. script: 9cafb5464f1264634c440ee2e365936bafa909b6, on @user_script:123.",
      // Before Redis 7, a script's error came wrapped, and said "slave" until 5.
      "ERR Error running script (call to f_9cafb5464f12): @user_script:123: @user_script: 123: -READONLY You can't write against a read only replica.",
      "ERR Error running script (call to f_9cafb5464f12): @user_script:1: @user_script: 1: -READONLY You can't write against a read only slave.",
    ];
    for (const message of refusals) {
      expect(isReplicaRefusal(replyError(message))).toBe(true);
      expect(isRedisUnavailable(replyError(message))).toBe(true);
    }
    // A key or a value that happens to hold the word is not a refusal.
    expect(isReplicaRefusal(replyError('ERR unknown command READONLY-ISH'))).toBe(false);
    expect(
      isReplicaRefusal(
        replyError('WRONGTYPE Operation against a key holding the wrong kind of value'),
      ),
    ).toBe(false);
  });
});
