import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * src/ocpp/ocpp-rpc.ts works in Node's module cache, which Jest replaces with a registry of its
 * own: each case runs in a Node process of its own (TypeScript through tsx) and prints JSON.
 */
function inOwnProcess(script: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
  });
  return JSON.parse(out) as Record<string, unknown>;
}

/** The schema files of ocpp-rpc read so far in that process. */
const SCHEMAS_READ = `Object.keys(require.cache)
  .filter((f) => f.includes('/ocpp-rpc/lib/schemas/'))
  .map((f) => require('node:path').basename(f))`;

describe('ocpp-rpc with the schemas of OCPP 1.6 only', () => {
  test('when ocpp-rpc is required as it is, then it reads the schemas of every version (the control)', () => {
    expect(
      inOwnProcess(`require('ocpp-rpc'); console.log(JSON.stringify({ read: ${SCHEMAS_READ} }))`),
    ).toEqual({
      read: ['ocpp1_6.json', 'ocpp2_0_1.json', 'ocpp2_1.json'],
    });
  });

  test('when loaded through ocppRpcFor, then only the 1.6 schemas are read, and a strict server still validates every call against them', () => {
    const result = inOwnProcess(`
      const { ocppRpcFor } = require('./src/ocpp/ocpp-rpc');
      const { RPCServer, RPCClient } = ocppRpcFor('ocpp1.6');
      (async () => {
        const server = new RPCServer({ protocols: ['ocpp1.6'], strictMode: true });
        server.on('client', (c) => c.handle('Heartbeat', () => ({ currentTime: '2030-01-01T00:00:00Z' })));
        const http = await server.listen(0, '127.0.0.1');
        const client = new RPCClient({
          endpoint: 'ws://127.0.0.1:' + http.address().port,
          identity: 'CP-1',
          protocols: ['ocpp1.6'],
        });
        await client.connect();
        const answered = await client.call('Heartbeat', {});
        let refused = null;
        try {
          await client.call('Heartbeat', { unexpected: 1 });
        } catch (err) {
          refused = err.rpcErrorCode;
        }
        await client.close();
        await server.close();
        const validators = require('ocpp-rpc/lib/standard-validators').map((v) => v.subprotocol);
        console.log(JSON.stringify({ read: ${SCHEMAS_READ}, validators, answered, refused }));
      })();
    `);
    expect(result).toEqual({
      read: ['ocpp1_6.json'],
      validators: ['ocpp1.6'],
      answered: { currentTime: '2030-01-01T00:00:00Z' },
      refused: 'PropertyConstraintViolation',
    });
  });
});
