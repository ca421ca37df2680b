import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { RPCServer, createRPCError } from 'ocpp-rpc';
import type RPCServerClient from 'ocpp-rpc/lib/server-client';
import {
  ConnectionRefused,
  MessageRefused,
  SimulatedChargePoint,
  meterValue,
  meterValuesReq,
} from '../../scripts/ocpp-charge-point';

/**
 * A central system of ocpp-rpc's own on a real socket, answering MeterValues as `answer` says:
 * the simulated charge point is checked against the library it will meet, not a stub.
 */
async function centralSystem(answer: (attempt: number) => 'conf' | string) {
  const rpc = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true });
  let attempts = 0;
  const received: unknown[] = [];
  rpc.auth((accept, reject, handshake) => {
    if (handshake.identity === 'CP-NOKEY') reject(401, 'Unauthorized');
    else accept({}, 'ocpp1.6');
  });
  rpc.on('client', (client: RPCServerClient) => {
    client.handle('MeterValues', async ({ params }) => {
      attempts += 1;
      const outcome = answer(attempts);
      if (outcome !== 'conf') throw createRPCError(outcome, 'not now');
      received.push(params);
      return {};
    });
  });
  const server = http.createServer();
  server.on('upgrade', (req, socket, head) => void rpc.handleUpgrade(req, socket as Socket, head));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ocpp`,
    received,
    attempts: () => attempts,
    async close() {
      await rpc.close({ force: true });
      await new Promise((r) => server.close(r));
    },
  };
}

const message = meterValuesReq(1, [meterValue('2024-04-01T10:00:00Z', 1_002_500, 230.4)], 7);

describe('simulated OCPP charge point', () => {
  test('when the engine answers InternalError, then the message is sent again until its .conf', async () => {
    const cs = await centralSystem((attempt) => (attempt < 3 ? 'InternalError' : 'conf'));
    const cp = new SimulatedChargePoint({ endpoint: cs.endpoint, id: 'CP-1', retryDelayMs: 10 });
    try {
      expect(await cp.call('MeterValues', message)).toEqual({});
      expect(cs.received).toEqual([message]);
      expect(cp.counters).toMatchObject({ answered: 1, resent: 2, refused: 0, connections: 1 });
    } finally {
      await cp.close({ force: true });
      await cs.close();
    }
  });

  test('when the engine refuses the message for good, then it is given up, not resent', async () => {
    const cs = await centralSystem(() => 'PropertyConstraintViolation');
    const cp = new SimulatedChargePoint({ endpoint: cs.endpoint, id: 'CP-2', retryDelayMs: 10 });
    try {
      await expect(cp.call('MeterValues', message)).rejects.toBeInstanceOf(MessageRefused);
      expect(cs.attempts()).toBe(1);
      expect(cp.counters).toMatchObject({ answered: 0, resent: 0, refused: 1 });
    } finally {
      await cp.close({ force: true });
      await cs.close();
    }
  });

  test('when the engine refuses the connection, then connect says with which HTTP status', async () => {
    const cs = await centralSystem(() => 'conf');
    const cp = new SimulatedChargePoint({ endpoint: cs.endpoint, id: 'CP-NOKEY' });
    try {
      const err = await cp.connect().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionRefused);
      expect((err as ConnectionRefused).status).toBe(401);
    } finally {
      await cp.close({ force: true });
      await cs.close();
    }
  });

  test('when a register and voltage are sent, then they are samples in Wh and V the OCPP schema accepts', () => {
    expect(meterValuesReq(1, [meterValue('2024-04-01T10:00:00Z', 1500)])).toEqual({
      connectorId: 1,
      meterValue: [
        {
          timestamp: '2024-04-01T10:00:00Z',
          sampledValue: [
            {
              value: '1500',
              measurand: 'Energy.Active.Import.Register',
              unit: 'Wh',
              context: 'Sample.Periodic',
            },
          ],
        },
      ],
    });
    expect(message.meterValue[0].sampledValue[1]).toEqual({
      value: '230.4',
      measurand: 'Voltage',
      unit: 'V',
    });
    expect(message.transactionId).toBe(7);
  });
});
