import type { Request } from 'express';
import { badRequest } from '../errors';
import { DEVICE_ID_PATTERN } from '../telemetry/schemas';

const DEVICE_ID = new RegExp(DEVICE_ID_PATTERN);
const RULE = 'must be 1-64 characters from A-Z a-z 0-9 . _ : -';

/** A device id from the path (`:meterId`, `:vehicleId`), or a 400 naming the parameter. */
export function deviceIdParam(req: Request, name: string): string {
  const id = req.params[name];
  if (typeof id !== 'string' || !DEVICE_ID.test(id)) {
    throw badRequest('invalid_device_id', `${name} ${RULE}`, [{ path: `/${name}`, message: RULE }]);
  }
  return id;
}
