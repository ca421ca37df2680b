import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Type } from '@sinclair/typebox';
import type { RequestHandler } from 'express';
import type { Knex } from 'knex';
import { releaseName } from './code-fingerprint';
import type { Reading } from './devices/device-kinds';
import type { QueueStats } from './queue/queue-stats';
import { defineRoute, reply, type AnyRoute } from './http/route-contract';

/** What ingest reports (HTTP and every other intake). */
export interface IngestMetrics {
  onAccepted(readings: Reading[]): void;
  onRejected(reason: string, count: number): void;
  onBatchStored(readings: number, jobs: number): void;
  onUnavailable(cause: string): void;
}

export const noIngestMetrics: IngestMetrics = {
  onAccepted: () => undefined,
  onRejected: () => undefined,
  onBatchStored: () => undefined,
  onUnavailable: () => undefined,
};

/** What the flusher reports per job. */
export interface FlushMetrics {
  onFlushed(
    result: { written: number; duplicates: number; deadLettered: number; expired: number },
    durationMs: number,
    acceptedAt: number,
  ): void;
  onRetry(err: unknown): void;
}

/** A report cache's lookups, by report (`performance`, `fleet`, `sessions`). */
export type CacheLookups = (report: string) => (result: 'hit' | 'miss' | 'error') => void;

export interface AnalyticsMetrics {
  cacheLookups: CacheLookups;
  /** A report computed from PostgreSQL, with its efficiency alert. */
  onReport(alert: boolean | null): void;
}

/** What the MQTT intake reports (src/mqtt/). `topicKind` is `readings`, a device type or `unknown`. */
export interface MqttMetrics {
  onMessage(topicKind: string): void;
  onReadings(topicKind: string, count: number): void;
  /** A message acknowledged with 0x99 (payload format invalid). */
  onRejected(reason: string): void;
  /** A PUBACK sent, `seconds` after the message arrived. */
  onAcked(result: 'stored' | 'rejected', seconds: number): void;
  /** A PUBACK not sent because its connection closed first (the broker redelivers the message). */
  onAckDropped(): void;
  /** A store that could not be done yet (503 cause) and will be retried. */
  onStoreRetry(cause: string): void;
  onConnection(connected: boolean): void;
  /** The broker's count of messages it dropped since it started (any client's; see broker-drops.ts). */
  onBrokerDropped(total: number): void;
}

/**
 * Every metric the engine exports, on an injected registry (prom-client's global one leaks between
 * tests and processes). Base units, `_total` counters, and low-cardinality labels only: never a
 * device id or a raw path.
 */
export function createRegistry(process: 'api' | 'flusher' | 'mqtt'): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ process });
  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges `_total`, which Prometheus reserves for counters
  // (`promtool check metrics` flags them); nodejs_active_handles and nodejs_active_resources carry the same counts.
  // Which release the process runs: two answer side by side during a rolling upgrade.
  new Gauge({
    name: 'energy_build_info',
    help: 'The release this process runs: its version and code fingerprint (always 1)',
    labelNames: ['release'],
    registers: [registry],
  }).set({ release: releaseName() }, 1);
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ]) {
    registry.removeSingleMetric(name);
  }
  return registry;
}

/** PostgreSQL pool usage, read when Prometheus scrapes. */
export function registerPoolMetrics(registry: Registry, db: Knex): void {
  const pool = () =>
    (db.client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } })
      .pool;
  new Gauge({
    name: 'energy_db_pool_connections',
    help: 'PostgreSQL pool connections by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const p = pool();
      this.set({ state: 'in_use' }, p?.numUsed() ?? 0);
      this.set({ state: 'idle' }, p?.numFree() ?? 0);
      this.set({ state: 'waiting' }, p?.numPendingAcquires() ?? 0);
    },
  });
}

/** Queue backlog, read from Redis when Prometheus scrapes (both processes export it). */
export function registerQueueMetrics(
  registry: Registry,
  read: () => Promise<QueueStats>,
  { maxBacklogReadings }: { maxBacklogReadings: number },
): void {
  // The limit beside the backlog, so an alert compares the two whatever the setting, from either
  // process (a flusher's alone still pages).
  new Gauge({
    name: 'energy_ingest_backlog_limit_readings',
    help: 'MAX_BACKLOG_READINGS: the backlog at which ingest answers 503',
    registers: [registry],
  }).set(maxBacklogReadings);
  let latest: Promise<Awaited<ReturnType<typeof read>> | null> | null = null;
  // One Redis read per scrape, shared by the gauges below.
  const sample = () =>
    (latest ??= read()
      .catch(() => null)
      .finally(() => setImmediate(() => (latest = null))));
  new Gauge({
    name: 'energy_queue_jobs',
    help: 'Ingest queue jobs by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const s = await sample();
      for (const [state, count] of Object.entries(s?.jobs ?? {})) this.set({ state }, count);
    },
  });
  // Without it a Redis outage would look like a backlog frozen in time: flush lag could not page.
  new Gauge({
    name: 'energy_queue_stats_readable',
    help: '1 when the queue figures were read from Redis at this scrape; 0 when they could not be (the energy_queue_* gauges then hold their last values)',
    registers: [registry],
    async collect() {
      this.set((await sample()) ? 1 : 0);
    },
  });
  /** A gauge of one figure of the shared sample; left as it was when the read failed. */
  const sampled = (name: string, help: string, figure: (s: QueueStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const s = await sample();
        if (s) this.set(figure(s));
      },
    });
  sampled(
    'energy_queue_intake_entries',
    'Small stores of readings in the intake, not yet moved into jobs by a flusher',
    (s) => s.intakeEntries,
  );
  sampled(
    'energy_queue_readings_waiting',
    'Readings accepted and not yet committed to PostgreSQL',
    (s) => s.readingsWaiting,
  );
  sampled(
    'energy_oldest_unflushed_reading_age_seconds',
    'Age of the oldest accepted reading not yet in PostgreSQL (0 when none waits)',
    (s) => s.oldestUnflushedAgeS ?? 0,
  );
}

export function createHttpMetrics(registry: Registry): RequestHandler {
  const duration = new Histogram({
    name: 'energy_http_request_duration_seconds',
    help: 'HTTP request duration by route template, method and status',
    labelNames: ['route', 'method', 'status_code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return (req, res, next) => {
    const end = duration.startTimer();
    res.once('finish', () => {
      // The route template (e.g. /v1/vehicles/:vehicleId/status), never the raw path.
      const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      end({ route, method: req.method, status_code: String(res.statusCode) });
    });
    next();
  };
}

export function createIngestMetrics(registry: Registry): IngestMetrics {
  const accepted = new Counter({
    name: 'energy_ingest_readings_accepted_total',
    help: 'Readings accepted (stored in the queue), by device type',
    labelNames: ['type'],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'energy_ingest_readings_rejected_total',
    help: 'Readings rejected as invalid, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: 'energy_ingest_group_commit_readings',
    help: 'Readings stored per group commit (one Redis round trip)',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
    registers: [registry],
  });
  const unavailable = new Counter({
    name: 'energy_ingest_unavailable_total',
    help: 'Ingest requests answered 503, by cause',
    labelNames: ['cause'],
    registers: [registry],
  });
  return {
    onAccepted(readings) {
      let meters = 0;
      for (const r of readings) if (r.type === 'meter') meters += 1;
      if (meters > 0) accepted.inc({ type: 'meter' }, meters);
      if (readings.length > meters) accepted.inc({ type: 'vehicle' }, readings.length - meters);
    },
    onRejected: (reason, count) => rejected.inc({ reason }, count),
    onBatchStored: (readings) => batchSize.observe(readings),
    onUnavailable: (cause) => unavailable.inc({ cause }),
  };
}

export function createFlushMetrics(registry: Registry): FlushMetrics {
  const written = new Counter({
    name: 'energy_flush_readings_written_total',
    help: 'Readings committed to PostgreSQL history',
    registers: [registry],
  });
  const duplicates = new Counter({
    name: 'energy_flush_duplicates_ignored_total',
    help: 'Readings already in history (retries, resent readings)',
    registers: [registry],
  });
  const deadLettered = new Counter({
    name: 'energy_flush_dead_lettered_total',
    help: 'Readings PostgreSQL refused for good, moved to the dead-letter list',
    registers: [registry],
  });
  const expired = new Counter({
    name: 'energy_flush_expired_total',
    help: 'Readings left out of history because RETENTION_DAYS no longer keeps them when flushed (re-driven dead letters, failed jobs, a queue older than the cutoff)',
    registers: [registry],
  });
  const retries = new Counter({
    name: 'energy_flush_transaction_retries_total',
    help: 'Flush transactions that failed and will be retried',
    registers: [registry],
  });
  const batchDuration = new Histogram({
    name: 'energy_flush_batch_duration_seconds',
    help: 'Time to write one job (batch) to PostgreSQL',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const lag = new Histogram({
    name: 'energy_ingest_to_durable_seconds',
    help: 'Time from acceptance by the API to commit in PostgreSQL',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  return {
    onFlushed(result, durationMs, acceptedAt) {
      written.inc(result.written);
      duplicates.inc(result.duplicates);
      deadLettered.inc(result.deadLettered);
      expired.inc(result.expired);
      batchDuration.observe(durationMs / 1000);
      lag.observe(Math.max(0, Date.now() - acceptedAt) / 1000);
    },
    onRetry: () => retries.inc(),
  };
}

/** A flusher found Redis had lost a queue shard's data (workers/queue-loss-watch.ts). */
export function createQueueLossMetrics(registry: Registry): (readingsWaiting: number) => void {
  const losses = new Counter({
    name: 'energy_queue_data_lost_total',
    help: 'Times a flusher found Redis had gone back in time on an ingest queue shard (restarted without appendonly or from an older snapshot, flushed): acknowledged readings lost',
    registers: [registry],
  });
  const readings = new Counter({
    name: 'energy_queue_readings_lost_total',
    help: "Readings waiting at the flusher's look before it found Redis gone back in time: about as many acknowledged readings lost (not exactly: some may have been flushed before the loss, and readings accepted after that look are lost too); every flusher counts the same loss",
    registers: [registry],
  });
  return (waiting) => {
    losses.inc();
    readings.inc(waiting);
  };
}

/** 1 while the flusher is paused because PostgreSQL cannot be reached. */
export function createDatabaseOutageGauge(registry: Registry): (down: boolean) => void {
  const gauge = new Gauge({
    name: 'energy_flusher_paused_database_unavailable',
    help: '1 while the flusher is paused because PostgreSQL cannot be reached (readings wait in the queue)',
    registers: [registry],
  });
  gauge.set(0);
  return (down) => gauge.set(down ? 1 : 0);
}

export function createAnalyticsMetrics(registry: Registry): AnalyticsMetrics {
  const cache = new Counter({
    name: 'energy_analytics_cache_total',
    help: 'Report cache lookups by report (performance, fleet, sessions) and result (hit, miss, error)',
    labelNames: ['report', 'result'],
    registers: [registry],
  });
  const reports = new Counter({
    name: 'energy_analytics_reports_total',
    help: 'Performance reports computed from PostgreSQL, by efficiency alert (true, false, unknown)',
    labelNames: ['alert'],
    registers: [registry],
  });
  return {
    cacheLookups: (report) => (result) => cache.inc({ report, result }),
    onReport: (alert) => reports.inc({ alert: alert === null ? 'unknown' : String(alert) }),
  };
}

export function createMqttMetrics(
  registry: Registry,
  { unacked }: { unacked: () => number },
): MqttMetrics {
  const messages = new Counter({
    name: 'energy_mqtt_messages_received_total',
    help: 'MQTT messages received (redeliveries included), by topic kind (readings, meter, vehicle, unknown)',
    labelNames: ['topic_kind'],
    registers: [registry],
  });
  const readings = new Counter({
    name: 'energy_mqtt_readings_received_total',
    help: 'Readings in decoded MQTT messages, valid or not, by topic kind',
    labelNames: ['topic_kind'],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'energy_mqtt_messages_rejected_total',
    help: 'MQTT messages acknowledged with 0x99 (payload format invalid) and listed in the rejects list, by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const ackDuration = new Histogram({
    name: 'energy_mqtt_ack_duration_seconds',
    help: 'Time from receiving an MQTT message to sending its PUBACK, by result (stored, rejected)',
    labelNames: ['result'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30, 60],
    registers: [registry],
  });
  const dropped = new Counter({
    name: 'energy_mqtt_acks_dropped_total',
    help: 'PUBACKs not sent because the connection closed first (the broker redelivers those messages)',
    registers: [registry],
  });
  const retries = new Counter({
    name: 'energy_mqtt_store_retries_total',
    help: 'MQTT stores that could not be done yet and are retried (message held unacknowledged), by cause',
    labelNames: ['cause'],
    registers: [registry],
  });
  const connected = new Gauge({
    name: 'energy_mqtt_connected',
    help: '1 while the MQTT intake takes messages: connected to the broker and subscribed at QoS 1',
    registers: [registry],
  });
  connected.set(0);
  const brokerDropped = new Gauge({
    name: 'energy_mqtt_broker_dropped_messages',
    help: "Messages the MQTT broker dropped since it started (any client's: a queue or in-flight limit), as its $SYS count says; 0 until it tells, and on a broker that does not",
    registers: [registry],
  });
  new Gauge({
    name: 'energy_mqtt_messages_unacknowledged',
    help: 'MQTT messages received and not yet acknowledged (being stored or waiting to be)',
    registers: [registry],
    collect() {
      this.set(unacked());
    },
  });
  return {
    onMessage: (topicKind) => messages.inc({ topic_kind: topicKind }),
    onReadings: (topicKind, count) => readings.inc({ topic_kind: topicKind }, count),
    onRejected: (reason) => rejected.inc({ reason }),
    onAcked: (result, seconds) => ackDuration.observe({ result }, seconds),
    onAckDropped: () => dropped.inc(),
    onStoreRetry: (cause) => retries.inc({ cause }),
    onBrokerDropped: (total) => brokerDropped.set(total),
    onConnection: (up) => connected.set(up ? 1 : 0),
  };
}

/** `GET /metrics` in Prometheus text format. */
export function metricsRoute(registry: Registry): AnyRoute {
  return defineRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    summary: 'Prometheus metrics',
    ignoresQuery: true,
    responses: {
      200: {
        description: 'text exposition format',
        schema: Type.String(),
        contentType: 'text/plain',
      },
    },
    handler: async () =>
      reply(200, await registry.metrics(), { 'Content-Type': registry.contentType }),
  });
}

/** What the OCPP endpoint reports. Actions outside OCPP 1.6 count as `other` (bounded labels). */
export interface OcppMetrics {
  onConnections(count: number): void;
  /** A connection closed because its charge point id connected again. */
  onReplaced(): void;
  onResponse(
    action: string,
    outcome: 'ok' | 'callerror',
    errorCode: string | null,
    ms: number,
  ): void;
  /**
   * A frame that is no readable CALL (action `unreadable`): answered with a CALLERROR of
   * `errorCode`, or, null, a message of a type OCPP-J does not know: ignored.
   */
  onUnreadable(errorCode: string | null): void;
  onSampleIgnored(measurand: string, count: number): void;
  onSampleRejected(reason: string, count: number): void;
  /** A WebSocket upgrade to /ocpp refused, by the refusal's error code. */
  onUpgradeRefused(error: string): void;
}

/**
 * Label values from a charge point are bounded in length: OCPP's codes and measurands are
 * enumerations, with a context or phase added (`Energy.Active.Import.Register (Transaction.End)`).
 */
const ocppLabel = (value: string) => value.slice(0, 64);

export function createOcppMetrics(registry: Registry, actions: readonly string[]): OcppMetrics {
  const connected = new Gauge({
    name: 'energy_ocpp_connected_charge_points',
    help: 'OCPP charge points connected to this process',
    registers: [registry],
  });
  connected.set(0);
  const replaced = new Counter({
    name: 'energy_ocpp_connections_replaced_total',
    help: 'Connections closed because their charge point id connected again (a steady rate: two charge points share one id)',
    registers: [registry],
  });
  const messages = new Counter({
    name: 'energy_ocpp_messages_total',
    help: 'OCPP CALLs from charge points, by action and outcome (ok: a .conf; callerror; ignored: a message of an unknown type)',
    labelNames: ['action', 'outcome'],
    registers: [registry],
  });
  const callErrors = new Counter({
    name: 'energy_ocpp_callerrors_total',
    help: 'CALLERRORs answered to charge points, by error code',
    labelNames: ['code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'energy_ocpp_call_duration_seconds',
    help: 'From a CALL received to its answer sent (a .conf waits for its readings to be stored)',
    labelNames: ['action'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const ignored = new Counter({
    name: 'energy_ocpp_samples_ignored_total',
    help: 'Meter value samples of measurands the engine does not read, by measurand',
    labelNames: ['measurand'],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'energy_ocpp_samples_rejected_total',
    help: 'Meter value samples refused (unknown unit, non-numeric, negative...), by reason',
    labelNames: ['reason'],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'energy_ocpp_connections_refused_total',
    help: 'WebSocket upgrades to /ocpp refused (a charge point that cannot connect), by error code',
    labelNames: ['error'],
    registers: [registry],
  });
  const known = new Set(actions);
  const label = (action: string) => (known.has(action) ? action : 'other');
  return {
    onConnections: (count) => connected.set(count),
    onReplaced: () => replaced.inc(),
    onResponse(action, outcome, errorCode, ms) {
      messages.inc({ action: label(action), outcome });
      if (errorCode) callErrors.inc({ code: ocppLabel(errorCode) });
      duration.observe({ action: label(action) }, ms / 1000);
    },
    onUnreadable(errorCode) {
      messages.inc({ action: 'unreadable', outcome: errorCode === null ? 'ignored' : 'callerror' });
      if (errorCode !== null) callErrors.inc({ code: ocppLabel(errorCode) });
    },
    onSampleIgnored: (measurand, count) => ignored.inc({ measurand: ocppLabel(measurand) }, count),
    onSampleRejected: (reason, count) => rejected.inc({ reason }, count),
    onUpgradeRefused: (error) => refused.inc({ error }),
  };
}
