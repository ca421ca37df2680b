import {
  SimulatedChargePoint,
  meterValue,
  meterValuesReq,
} from '../../../scripts/ocpp-charge-point';
import type { TestEngine } from '../../helpers/engine';

export interface LiveChargePoint {
  chargePoint: SimulatedChargePoint;
  transactionId: number;
  /** The register its last MeterValues reported, kWh. */
  registerKwh: number;
}

/**
 * A real OCPP 1.6J charge point (the simulator's ocpp-rpc client) that stays connected: it boots,
 * charges `vehicleId` on connector 1 (its idTag registered first) and reports connector 2 faulted.
 */
export async function connectLiveChargePoint(
  engine: TestEngine,
  options: { id: string; idTag: string; vehicleId: string; startedAtMs: number },
): Promise<LiveChargePoint> {
  const put = await fetch(`${engine.url}/v1/id-tags/${options.idTag}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ vehicleId: options.vehicleId }),
  });
  if (put.status !== 200 && put.status !== 201)
    throw new Error(`PUT id-tag answered ${put.status}`);
  const chargePoint = new SimulatedChargePoint({
    endpoint: `${engine.url.replace(/^http/, 'ws')}/ocpp`,
    id: options.id,
    retryDelayMs: 200,
  });
  await chargePoint.connect();
  await chargePoint.call('BootNotification', {
    chargePointVendor: 'Acme',
    chargePointModel: 'Wallbox 22',
    firmwareVersion: '1.4.2',
  });
  const status = (connectorId: number, value: string, extra: object = {}) =>
    chargePoint.call('StatusNotification', {
      connectorId,
      errorCode: 'NoError',
      status: value,
      ...extra,
    });
  await status(1, 'Preparing');
  await status(2, 'Faulted', {
    errorCode: 'GroundFailure',
    vendorErrorCode: 'E-RCD-30',
    info: 'RCD tripped',
  });
  const started = new Date(options.startedAtMs).toISOString();
  const { transactionId } = await chargePoint.call<{ transactionId: number }>('StartTransaction', {
    connectorId: 1,
    idTag: options.idTag,
    meterStart: 1_234_000,
    timestamp: started,
  });
  await status(1, 'Charging');
  const registerWh = 1_236_500;
  await chargePoint.call(
    'MeterValues',
    meterValuesReq(
      1,
      [meterValue(new Date(options.startedAtMs + 10 * 60_000).toISOString(), registerWh, 231)],
      transactionId,
    ),
  );
  return { chargePoint, transactionId, registerKwh: registerWh / 1000 };
}
