import { Router, type Request } from 'express';
import type { Authorize } from '../auth/authorize';
import { AppError, badRequest, notFound } from '../errors';
import { deviceIdParam } from '../http/device-id-param';
import { bodyFormatOf, parseJson, parseNdjson, readBodyText } from '../http/read-body';
import type { Logger } from '../logger';
import type { MappingPeriod, MappingStore } from '../stores/mapping-store';
import type { StatusStore } from '../stores/status-store';
import type { IngestInput, IngestService } from './ingest-service';
import type { LiveStateStore } from './live-state';
import type { DeviceType } from './readings';
import { createMappingValidator, type ReadingValidator } from './validation';

async function readIngestInput(req: Request, limitBytes: number): Promise<IngestInput> {
  const format = bodyFormatOf(req, ['json', 'ndjson']);
  const text = await readBodyText(req, limitBytes);
  if (format === 'ndjson') return { kind: 'batch', items: parseNdjson(text) };
  const body = parseJson(text);
  if (Array.isArray(body)) {
    if (body.length === 0) throw badRequest('empty_batch', 'The array holds no readings');
    return { kind: 'batch', items: body.map((value: unknown) => ({ value })) };
  }
  return { kind: 'single', value: body };
}

const periodJson = (p: MappingPeriod) => ({
  meterId: p.meterId,
  from: p.from.toISOString(),
  to: p.to ? p.to.toISOString() : null,
});

export function createTelemetryRouter({
  ingestService,
  liveState,
  statusStore,
  mappingStore,
  validator,
  config,
  logger,
  authorize,
}: {
  authorize: Authorize;
  ingestService: IngestService;
  liveState: LiveStateStore;
  statusStore: StatusStore;
  mappingStore: MappingStore;
  validator: ReadingValidator;
  config: { bodyLimitBytes: number };
  logger: Logger;
}): Router {
  const router = Router();
  const validateMapping = createMappingValidator();

  router.post('/v1/telemetry/ingest', authorize('ingest'), async (req, res) => {
    const input = await readIngestInput(req, config.bodyLimitBytes);
    const outcome = await ingestService.ingest(input);
    if (outcome.kind === 'single') {
      const { reading } = outcome;
      res.status(202).json({ accepted: 1, type: reading.type, id: reading.id });
      return;
    }
    const { accepted, errors } = outcome;
    if (accepted === 0) {
      const first = errors[0];
      res.status(400).json({
        error: 'no_valid_readings',
        message: `None of the ${errors.length} readings is valid (first: reading ${first.index}: ${first.message})`,
        details: first.details.map((d) => ({
          path: `/${first.index}${d.path === '/' ? '' : d.path}`,
          message: d.message,
        })),
        accepted: 0,
        rejected: errors.length,
        errors,
      });
      return;
    }
    res.status(errors.length > 0 ? 207 : 202).json({
      accepted,
      rejected: errors.length,
      ...(errors.length > 0 ? { errors } : {}),
    });
  });

  router.post('/v1/telemetry/map', authorize('admin'), async (req, res) => {
    bodyFormatOf(req, ['json']);
    const body = parseJson(await readBodyText(req, 64 * 1024));
    const result = validateMapping(body);
    if (!result.ok)
      throw new AppError(400, result.failure.error, result.failure.message, result.failure.details);
    const { vehicleId, meterId, since } = result.value;
    let sinceMs = Date.now();
    if (since !== undefined) {
      const checked = validator.checkTimestamp(since, '/since');
      if (!checked.ok)
        throw new AppError(
          400,
          'invalid_mapping',
          checked.failure.message,
          checked.failure.details,
        );
      sinceMs = checked.value;
    }
    const { current, previous, changed } = await mappingStore.assign(
      vehicleId,
      meterId,
      new Date(sinceMs),
    );
    logger.info({ vehicleId, meterId, changed }, 'vehicle mapped to meter');
    res.status(200).json({
      vehicleId,
      meterId: current.meterId,
      since: current.from.toISOString(),
      changed,
      previous: previous ? periodJson(previous) : null,
    });
  });

  router.get('/v1/telemetry/map/:vehicleId', authorize('read'), async (req, res) => {
    const vehicleId = deviceIdParam(req, 'vehicleId');
    const periods = await mappingStore.history(vehicleId);
    if (periods.length === 0)
      throw notFound(`Vehicle ${vehicleId} has never been mapped to a meter`);
    const current = periods.find((p) => p.to === null) ?? null;
    res.json({
      vehicleId,
      current: current ? periodJson(current) : null,
      history: periods.map(periodJson),
    });
  });

  async function liveOrStored(type: DeviceType, id: string) {
    try {
      const live = await liveState.get(type, id);
      if (live) return { ts: live.ts, values: live.values, source: 'live' as const };
    } catch (err) {
      logger.warn({ err }, 'live state unavailable: answering from PostgreSQL');
    }
    if (type === 'meter') {
      const row = await statusStore.getMeter(id);
      return row
        ? {
            ts: row.ts.getTime(),
            values: { kwhConsumedAc: row.kwhConsumedAc, voltage: row.voltage },
            source: 'database' as const,
          }
        : null;
    }
    const row = await statusStore.getVehicle(id);
    return row
      ? {
          ts: row.ts.getTime(),
          values: {
            soc: row.soc,
            kwhDeliveredDc: row.kwhDeliveredDc,
            batteryTemp: row.batteryTemp,
          },
          source: 'database' as const,
        }
      : null;
  }

  const statusRoute = (type: DeviceType, param: 'meterId' | 'vehicleId') =>
    router.get(`/v1/${type}s/:${param}/status`, authorize('read'), async (req, res) => {
      const id = deviceIdParam(req, param);
      const state = await liveOrStored(type, id);
      if (!state) throw notFound(`No reading has been received from ${type} ${id}`);
      const values =
        type === 'meter'
          ? { kwhConsumedAc: state.values.kwhConsumedAc, voltage: state.values.voltage }
          : {
              soc: state.values.soc,
              kwhDeliveredDc: state.values.kwhDeliveredDc,
              batteryTemp: state.values.batteryTemp,
            };
      res.json({
        [param]: id,
        timestamp: new Date(state.ts).toISOString(),
        ...values,
        source: state.source,
      });
    });
  statusRoute('meter', 'meterId');
  statusRoute('vehicle', 'vehicleId');

  return router;
}
