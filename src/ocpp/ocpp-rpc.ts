import Module from 'node:module';

type OcppRpc = typeof import('ocpp-rpc');

/**
 * ocpp-rpc with the schemas of one OCPP version only. Required as it is, it reads the schemas of
 * every version it knows (1.6, 2.0.1 and 2.1: 1.7 MB of JSON, each into an Ajv instance of its
 * own) for its strict mode, although the engine speaks one: 10 MB of the API's RSS (idle 120-121
 * against 130-131 MB, 3 starts each). Its list of validators (`lib/standard-validators.js`, which
 * its client and server read when loaded) is put into Node's module cache first, holding that
 * version's validator alone, so the other schemas are never read. ocpp-rpc is pinned in
 * package.json; test/ocpp-rpc.test.ts checks the layout this relies on, in a process of its own
 * (Jest has a module registry of its own: there ocpp-rpc loads whole).
 */
/* eslint-disable @typescript-eslint/no-require-imports -- the order of loading is the point: the
   cache entry must be there before ocpp-rpc is first required, which an import would hoist */
export function ocppRpcFor(protocol: string): OcppRpc {
  const validatorsFile = require.resolve('ocpp-rpc/lib/standard-validators');
  if (!require.cache[validatorsFile]) {
    const { createValidator } = require('ocpp-rpc/lib/validator') as {
      createValidator: (subprotocol: string, schemas: unknown) => unknown;
    };
    const schemas: unknown = require(`ocpp-rpc/lib/schemas/${protocol.replace('.', '_')}.json`);
    const validators = new Module(validatorsFile, module);
    validators.filename = validatorsFile;
    validators.loaded = true;
    validators.exports = [createValidator(protocol, schemas)];
    require.cache[validatorsFile] = validators;
  }
  return require('ocpp-rpc') as OcppRpc;
}
/* eslint-enable @typescript-eslint/no-require-imports */
