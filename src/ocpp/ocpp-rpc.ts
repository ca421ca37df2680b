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
    const schemas = schemasOf(protocol);
    const validators = new Module(validatorsFile, module);
    validators.filename = validatorsFile;
    validators.loaded = true;
    validators.exports = [createValidator(protocol, schemas)];
    require.cache[validatorsFile] = validators;
  }
  return require('ocpp-rpc') as OcppRpc;
}
/* eslint-enable @typescript-eslint/no-require-imports */

/** The official JSON schemas of `protocol`, as ocpp-rpc ships them (one file a version). */
function schemasOf(protocol: string): { $id: string }[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a JSON file of the library
  return require(`ocpp-rpc/lib/schemas/${protocol.replace('.', '_')}.json`) as { $id: string }[];
}

type Validator = ReturnType<OcppRpc['createValidator']>;

/**
 * The strict-mode validator of `protocol` (ocpp-rpc's own, loaded by ocppRpcFor), whose refusals
 * do not echo the message: ocpp-rpc puts the whole message into the CALLERROR's details, so a
 * refused 256 KB message was sent back whole, and one nested a few thousand levels deep (10 KB)
 * could not be turned into JSON at all: the library closed the connection instead of answering.
 * The details keep the schema errors, which name what was wrong.
 */
export function validatorWithoutEcho(protocol: string): Validator {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- ocpp-rpc's own list
  const standard = require('ocpp-rpc/lib/standard-validators') as Validator[];
  const validator = standard.find((v) => v.subprotocol === protocol);
  if (!validator) throw new Error(`ocpp-rpc has no validator for ${protocol}`);
  const { createRPCError } = ocppRpcFor(protocol);
  const schemaIds = new Set(schemasOf(protocol).map(({ $id }) => $id));
  const quiet = Object.create(validator) as Validator;
  quiet.validate = (schemaId: string, params: unknown) => {
    if (!schemaIds.has(schemaId)) {
      // A request of an action the protocol does not know (ocpp-rpc validates it when a handler
      // takes every action): OCPP-J's answer is NotImplemented, not the library's ProtocolError.
      const action = schemaId.replace(/^urn:|\.(req|conf)$/g, '');
      throw createRPCError('NotImplemented', `${action} is not an action of ${protocol}`);
    }
    try {
      return validator.validate(schemaId, params);
    } catch (err) {
      const refusal = err as { message: string; details?: { errors?: SchemaError[] } };
      const errors = refusal.details?.errors;
      if (!errors) throw err;
      const message =
        params === undefined
          ? 'The CALL has no payload: an OCPP-J CALL is [2, messageId, action, payload]'
          : refusal.message;
      throw createRPCError(ocpp16SchemaCode(errors[0] ?? {}), message, { errors });
    }
  };
  return quiet;
}

/** What ocpp-rpc's validator (Ajv) says of a rule broken: which rule, and where. */
interface SchemaError {
  keyword?: string;
  instancePath?: string;
}

/**
 * The OCPP-J 1.6 error code (§4.2.3) of a message its schema refuses, by the first schema rule it
 * breaks: a field's value out of its rule (an enum, a range, a length) is a
 * PropertyConstraintViolation, a field missing an OccurenceConstraintViolation, a value of the
 * wrong type a TypeConstraintViolation, and a field the message may not carry does not fit the
 * PDU: FormationViolation; so does a payload that is no JSON object at all (or none: a CALL of
 * three elements), which has no fields to be of a wrong type. ocpp-rpc answered a field the PDU
 * has not as PropertyConstraintViolation and an enum as FormationViolation (its table is OCPP
 * 2.0's, and has no enum).
 */
export function ocpp16SchemaCode({ keyword, instancePath = '' }: SchemaError): string {
  switch (keyword) {
    case 'required':
    case 'minItems':
    case 'maxItems':
      return 'OccurenceConstraintViolation';
    case 'type':
      return instancePath === '' ? 'FormationViolation' : 'TypeConstraintViolation';
    case 'additionalProperties':
      return 'FormationViolation';
    default:
      return 'PropertyConstraintViolation';
  }
}
