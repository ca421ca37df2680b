import { MAX_KWH } from '../devices/device-kinds';
import { instantMs } from '../schema/primitives';
import { withTimeout } from '../with-timeout';
import { OpenTransactionStarts, type TransactionStart } from './open-transaction-starts';
import { AppError } from '../errors';
import type { Logger } from '../logger';
import { RepeatedErrorLog } from '../repeated-errors';
import type { OcppMetrics } from '../metrics';
import type { MappingStore } from '../stores/mapping-store';
import type { IngestService } from '../telemetry/ingest-service';
import type { ReadingValidator } from '../telemetry/validation';
import type { ChargePointRecorder } from './charge-point-recorder';
import { connectorMeterId, type ChargePointState } from './charge-point-state';
import type { ConnectorRegisters } from './connector-registers';
import type { GivenTransaction, IdTagRegistrations } from './id-tag-registrations';
import { isBlankIdTag, normalizeIdTag, type IdTag, type IdTagStore } from './id-tag-store';
import {
  countBy,
  LISTED_REJECTS,
  readMeterValues,
  summariseRejects,
  type MeterValue,
} from './meter-values';
import { holdToTransactionRegister, type KnownRegister } from './transaction-register';
import {
  justAfter,
  SUPERSEDED_BY_NEW,
  SUPERSEDED_ELSEWHERE,
  recordedChargerStop,
  stoppedByEngine,
  type Transaction,
  type TransactionStore,
} from './transaction-store';

/** The heartbeat interval (s) a booted charge point is told to keep. */
export const HEARTBEAT_INTERVAL_S = 60;

/**
 * A StartTransaction dated more than this before its charge point first connected is from a clock
 * lost at a reboot (see startInstant), when the charge point has later transactions.
 */
export const LOST_CLOCK_BEFORE_MS = 30 * 24 * 3600_000;

/** The OCPP 1.6 payloads handled here, as the library has validated them against the schemas. */
export interface BootNotificationReq {
  chargePointVendor: string;
  chargePointModel: string;
  chargePointSerialNumber?: string;
  chargeBoxSerialNumber?: string;
  firmwareVersion?: string;
}
export interface StatusNotificationReq {
  connectorId: number;
  errorCode: string;
  status: string;
  info?: string;
  vendorErrorCode?: string;
  timestamp?: string;
}
export interface StartTransactionReq {
  connectorId: number;
  idTag: string;
  meterStart: number;
  timestamp: string;
}
export interface StopTransactionReq {
  transactionId: number;
  meterStop: number;
  timestamp: string;
  idTag?: string;
  reason?: string;
  transactionData?: MeterValue[];
}
export interface SecurityEventNotificationReq {
  type: string;
  timestamp: string;
  techInfo?: string;
}

export interface MeterValuesReq {
  connectorId: number;
  meterValue: MeterValue[];
  transactionId?: number;
}

type IdTagStatus = 'Accepted' | 'Invalid';

/** Readings a charge point sent could not be stored: it must keep them and send them again. */
export class NotStoredError extends Error {
  constructor(cause: unknown) {
    super('The readings could not be stored; retry later');
    this.name = 'NotStoredError';
    this.cause = cause;
  }
}

/**
 * A message the engine refuses for good, answered with this CALLERROR: resending it unchanged
 * would be refused again (OCPP 1.6 has the charge point give up on it after its retries).
 */
export class RefusedCallError extends Error {
  constructor(
    readonly code: 'PropertyConstraintViolation' | 'NotSupported' | 'FormationViolation',
    message: string,
  ) {
    super(message);
    this.name = 'RefusedCallError';
  }
}

/** A UTF-16 surrogate without its pair: JSON's `\ud800` escape, which is no character. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Refuses a message holding text no column can store as sent: the character U+0000 (NUL), which
 * PostgreSQL's text cannot hold (the message would fail every time it was resent), or a lone
 * surrogate, which it would store as U+FFFD (two cards' different idTags read as one).
 */
export function refuseUnstorableText(value: unknown, path = ''): void {
  if (typeof value === 'string') {
    const where = path || 'the message';
    if (value.includes('\u0000')) {
      throw new RefusedCallError(
        'PropertyConstraintViolation',
        `${where} holds the character U+0000 (NUL), which no text may hold`,
      );
    }
    if (LONE_SURROGATE.test(value)) {
      throw new RefusedCallError(
        'PropertyConstraintViolation',
        `${where} holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape without its pair), which is no character`,
      );
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) refuseUnstorableText(item, `${path}/${key}`);
  }
}

/** Which of two transactions started first: by start, then by id (the order they were recorded). */
const startsBefore = (a: Transaction, b: Transaction) =>
  a.startedAt.getTime() < b.startedAt.getTime() ||
  (a.startedAt.getTime() === b.startedAt.getTime() && a.id < b.id);

/**
 * Whether a later start of its vehicle elsewhere still moves a transaction's stop: it is open, or
 * was stopped by such a start, its register unknown (TransactionStore.stop takes the earlier).
 */
const stopMayMove = (t: Transaction) =>
  t.stoppedAt === null || (t.stopReason === SUPERSEDED_ELSEWHERE && t.meterStopWh === null);

/** No charge point has more connectors; a larger id is a fault, not a connector. */
export const MAX_CONNECTOR_ID = 1000;

/** A register in Wh as large as a reading may hold (MAX_KWH). */
const MAX_REGISTER_WH = MAX_KWH * 1000;

function checkConnectorId(connectorId: number, lowest: 0 | 1): void {
  if (connectorId < lowest || connectorId > MAX_CONNECTOR_ID) {
    throw new RefusedCallError(
      'PropertyConstraintViolation',
      `connectorId must be from ${lowest} to ${MAX_CONNECTOR_ID}, got ${connectorId}`,
    );
  }
}

function checkRegisterWh(name: 'meterStart' | 'meterStop', wh: number): void {
  if (wh < 0 || wh > MAX_REGISTER_WH) {
    throw new RefusedCallError(
      'PropertyConstraintViolation',
      `${name} must be a register from 0 to ${MAX_REGISTER_WH} Wh, got ${wh}`,
    );
  }
}

/**
 * OCPP 1.6 allows timestamps without a zone (UTC by the standard) or with an hour-only offset
 * (`+01`, as ISO 8601 and the schema's date-time check do), and some chargers send a space for the
 * `T`: turn them into the RFC 3339 instants the engine stores.
 */
export function utcTimestamp(timestamp: string): string {
  const text = timestamp.trim().replace(' ', 'T').toUpperCase();
  if (/(Z|[+-]\d\d:?\d\d)$/.test(text)) return text;
  return /T[\d:.]+[+-]\d\d$/.test(text) ? `${text}:00` : `${text}Z`;
}

const whToKwh = (wh: number) => Math.round(wh) / 1000;

/**
 * A message waits this long at most for what holds its samples to their transaction (its start,
 * the connector's stored register); without it, they are held to what is known.
 */
const CHECK_WAIT_MS = 500;

/** A BootNotification waits this long at most for its record in PostgreSQL (see bootNotification). */
const BOOT_RECORD_WAIT_MS = 2000;

const startOf = (t: Transaction): TransactionStart => ({
  wh: t.meterStartWh,
  atMs: t.startedAt.getTime(),
});

/**
 * What the engine does with each OCPP message of a charge point. Connector n of charge point CP
 * is the meter `CP:n`; its readings take the same path as HTTP readings (validation, group commit,
 * live state, history), and a `.conf` is returned only once they are stored.
 */
export class ChargePointService {
  private readonly openStarts: OpenTransactionStarts;
  /**
   * A check skipped for the same reason is logged once an interval: while PostgreSQL is slow every
   * message of every charge point skips one (a charger sending its queue without waiting for
   * answers wrote 1,500 lines a second).
   */
  private readonly checksSkipped: RepeatedErrorLog;
  /** Chargers naming transactions not their own: once an interval, whichever charger. */
  private readonly foreignTransactions: RepeatedErrorLog;
  /**
   * What a charger does wrong message after message (unusable samples, a clock ahead, a stop of a
   * transaction it never started), once an interval for each charge point or connector and kind:
   * a charger sending the same bad value in every message wrote a line each.
   */
  private readonly faults: RepeatedErrorLog;

  constructor(
    private readonly deps: {
      ingestService: IngestService;
      state: ChargePointState;
      /** What a charge point says of itself, to PostgreSQL (retried until it is taken). */
      recorder: ChargePointRecorder;
      transactions: TransactionStore;
      idTags: IdTagStore;
      registrations: IdTagRegistrations;
      mapping: MappingStore;
      /** Records each connector meter's register semantics, once. */
      registers: ConnectorRegisters;
      /** A connector meter's newest stored register (its live state), or null. */
      storedRegister: (meterId: string) => Promise<KnownRegister | null>;
      /** What samples delivered late are held to, from history (TransactionStore.registersAround). */
      registersAround: (
        meterId: string,
        span: { afterMs: number; fromMs: number; toMs: number },
      ) => Promise<KnownRegister[]>;
      config: {
        ocppUnknownIdTags: 'accept' | 'reject';
        /** Ingest's limit per call: a message holding more is stored in several. */
        maxBatchReadings: number;
      };
      /** Ingest's own check of a reading's timestamp (a real instant, not ahead of the clock). */
      checkTimestamp: ReadingValidator['checkTimestamp'];
      metrics: OcppMetrics;
      logger: Logger;
      now?: () => number;
    },
  ) {
    this.openStarts = new OpenTransactionStarts((ids) => deps.transactions.openOnAny(ids));
    this.checksSkipped = new RepeatedErrorLog({ logger: deps.logger, level: 'warn' });
    this.foreignTransactions = new RepeatedErrorLog({ logger: deps.logger, level: 'warn' });
    this.faults = new RepeatedErrorLog({ logger: deps.logger, level: 'warn' });
  }

  private now(): Date {
    return new Date((this.deps.now ?? Date.now)());
  }

  /** A charge point's timestamp held to the rules of a reading's (a real instant, not ahead). */
  private checkInstant(timestamp: string) {
    return this.deps.checkTimestamp(utcTimestamp(timestamp), '/timestamp');
  }

  /**
   * A transaction's instant: refused if it is not one a reading could have, but taken as of now
   * if it is ahead of the clock. A refused StartTransaction is retried a few times and dropped by
   * the charge point, and the charge under way is lost; a clock running fast is common (the
   * BootNotification and Heartbeat answers give it the time to set). `reported` is the instant
   * the charge point said.
   */
  private transactionInstant(
    chargePointId: string,
    timestamp: string,
  ): { at: Date; asOfNow: boolean; reported: Date } {
    const checked = this.checkInstant(timestamp);
    if (checked.ok) {
      const at = new Date(checked.value);
      return { at, asOfNow: false, reported: at };
    }
    if (checked.failure.error === 'timestamp_in_future') {
      this.faults.logFor(
        chargePointId,
        '',
        { chargePointId, timestamp, reason: checked.failure.message },
        'transaction timestamp ahead of the clock: taken as of now',
      );
      const reported = new Date(instantMs(utcTimestamp(timestamp)));
      return { at: this.now(), asOfNow: true, reported };
    }
    throw new RefusedCallError('PropertyConstraintViolation', checked.failure.message);
  }

  /**
   * When a StartTransaction starts: its own instant, or another when that is ahead of the clock
   * (as of now) or from a clock lost at a reboot (reset to 2000-01-01, say). Dated so, a start
   * would be stopped at once by the charge point's later transactions, its charge billed to
   * nobody. A clock is taken for lost when the start is dated more than LOST_CLOCK_BEFORE_MS
   * before the charge point first connected, while a later transaction exists: no charge point
   * queues a transaction that long before it ever connects. Such a start began before the boot
   * whose answer set the clock again: it starts at that boot if the boot came after every
   * transaction of the charge point (transactions dated by the clock set then come after it),
   * else as of now. A start is known again by the instant it reported (TransactionStore.start),
   * so a resend is the same transaction whenever it comes; one ahead of the clock also finds the
   * open one started as of now before that was so.
   */
  private async startInstant(
    chargePointId: string,
    req: StartTransactionReq,
  ): Promise<{ startedAt: Date; reportedStartedAt: Date | null }> {
    const { at, asOfNow, reported } = this.transactionInstant(chargePointId, req.timestamp);
    if (asOfNow) {
      // One started as of now before reported instants were kept: known by its start.
      const same = (await this.deps.transactions.openOn(chargePointId)).find(
        (t) =>
          t.reportedStartedAt === null &&
          t.connectorId === req.connectorId &&
          t.idTag === normalizeIdTag(req.idTag) &&
          t.meterStartWh === req.meterStart,
      );
      if (same) return { startedAt: same.startedAt, reportedStartedAt: null };
      return { startedAt: at, reportedStartedAt: reported };
    }
    if (at.getTime() >= this.now().getTime() - LOST_CLOCK_BEFORE_MS) {
      return { startedAt: at, reportedStartedAt: null };
    }
    const { lost, bootedAfter } = await this.deps.transactions.lostClockEvidence({
      chargePointId,
      at,
      horizonMs: LOST_CLOCK_BEFORE_MS,
    });
    if (!lost) return { startedAt: at, reportedStartedAt: null };
    const startedAt = bootedAfter ?? this.now();
    this.deps.logger.warn(
      { chargePointId, connectorId: req.connectorId, timestamp: req.timestamp, startedAt },
      'StartTransaction dated long before the charge point first connected, with later transactions: a clock lost at a reboot, started at that boot (or now)',
    );
    return { startedAt, reportedStartedAt: reported };
  }

  /**
   * A charge point connected: listed from now on, booted or not (see ChargePointRecorder). What
   * this process knew of its open transactions is read again: while connected to another replica
   * it may have started or stopped one.
   */
  connected(chargePointId: string): void {
    this.deps.recorder.connected(chargePointId);
    this.openStarts.forget(chargePointId);
  }

  /** Any call of a charge point: what was not recorded of it is tried again (ChargePointRecorder). */
  heardFrom(chargePointId: string): void {
    this.deps.recorder.heardFrom(chargePointId);
  }

  async bootNotification(chargePointId: string, req: BootNotificationReq) {
    const at = this.now();
    const recorded = this.deps.recorder.booted({
      id: chargePointId,
      vendor: req.chargePointVendor,
      model: req.chargePointModel,
      serialNumber: req.chargePointSerialNumber ?? req.chargeBoxSerialNumber ?? null,
      firmwareVersion: req.firmwareVersion ?? null,
      lastBootAt: at,
    });
    // The record is informative: a boot is accepted even while PostgreSQL or Redis is away. It is
    // waited for (a start dated by a lost clock is dated by it) but not past BOOT_RECORD_WAIT_MS:
    // a PostgreSQL that does not answer held each boot to the query deadline (35 s), past the
    // charger's own timeout. The record goes on (or is kept) meanwhile.
    await Promise.all([
      withTimeout(recorded, BOOT_RECORD_WAIT_MS, 'boot record').catch(() => undefined),
      this.deps.state
        .booted(chargePointId, at)
        .catch((err: unknown) =>
          this.deps.logger.warn({ err, chargePointId }, 'boot not recorded in Redis'),
        ),
    ]);
    // The time of the answer, which the charger sets its clock to: not of the boot's arrival.
    return {
      status: 'Accepted',
      interval: HEARTBEAT_INTERVAL_S,
      currentTime: this.now().toISOString(),
    };
  }

  heartbeat() {
    return { currentTime: this.now().toISOString() };
  }

  async statusNotification(chargePointId: string, req: StatusNotificationReq) {
    checkConnectorId(req.connectorId, 0);
    this.recordRegisterSoon(chargePointId, req.connectorId);
    await this.deps.state.connectorStatus(chargePointId, req.connectorId, {
      status: req.status,
      errorCode: req.errorCode,
      info: req.info ?? null,
      vendorErrorCode: req.vendorErrorCode ?? null,
      at: this.statusInstant(chargePointId, req.timestamp).toISOString(),
    });
    return {};
  }

  /**
   * When a status was reported: its timestamp, or now without one. A status newer than the one
   * kept replaces it, so a timestamp ahead of the clock (by any amount: a later status without
   * one is stamped now) would keep later statuses out: the status (still worth showing: a
   * connector Faulted) is taken as of now.
   */
  private statusInstant(chargePointId: string, timestamp: string | undefined): Date {
    const now = this.now();
    if (!timestamp) return now;
    const checked = this.checkInstant(timestamp);
    if (checked.ok) return new Date(Math.min(checked.value, now.getTime()));
    this.faults.logFor(
      chargePointId,
      checked.failure.error,
      { chargePointId, timestamp, reason: checked.failure.message },
      'StatusNotification timestamp not usable: status taken as of now',
    );
    return now;
  }

  async authorize(_chargePointId: string, req: { idTag: string }) {
    return { idTagInfo: { status: await this.idTagStatus(req.idTag) } };
  }

  /** No vendor-specific data is understood: the answer OCPP 1.6 gives for an unknown vendor. */
  dataTransfer() {
    return { status: 'UnknownVendorId' };
  }

  /**
   * A security event (OCPP 1.6's security extension: a tamper alarm, a failed firmware check, a
   * reboot) is not stored but logged, for the operator; the charge point keeps it until answered.
   */
  securityEvent(chargePointId: string, req: SecurityEventNotificationReq) {
    this.deps.logger.info(
      { chargePointId, type: req.type, at: req.timestamp, techInfo: req.techInfo },
      'OCPP security event',
    );
    return {};
  }

  async startTransaction(chargePointId: string, req: StartTransactionReq) {
    checkConnectorId(req.connectorId, 1);
    checkRegisterWh('meterStart', req.meterStart);
    const { startedAt: at, reportedStartedAt } = await this.startInstant(chargePointId, req);
    const meterId = connectorMeterId(chargePointId, req.connectorId);
    const tag = await this.registeredTag(req.idTag);
    const status: IdTagStatus = tag ? 'Accepted' : this.unknownIdTagStatus(req.idTag);
    const { transaction, created } = await this.deps.transactions.start({
      chargePointId,
      connectorId: req.connectorId,
      idTag: req.idTag,
      idTagStatus: status,
      vehicleId: tag?.vehicleId ?? null,
      meterStartWh: req.meterStart,
      startedAt: at,
      reportedStartedAt,
    });
    // A resend: as first started, wherever this one would have been put.
    const { startedAt } = transaction;
    this.openStarts.forget(chargePointId);
    await this.recordRegister(chargePointId, req.connectorId);
    // On a resend too: a first delivery that failed after its row was recorded (a deadlock, a
    // failover) did not finish these, and each finds nothing left to do once they are done.
    const later = await this.stopOlderOnConnector(transaction, meterId);
    await this.stopVehicleElsewhere(transaction);
    // A resend of one already stopped: its vehicle's period ended with it, and stays so.
    if (transaction.vehicleId && transaction.stoppedAt === null) {
      await this.mapVehicle(transaction.vehicleId, meterId, justAfter(startedAt));
    }
    if (later) await this.supersede(transaction, later, meterId);
    if (!transaction.vehicleId && transaction.idTagStatus === 'Accepted') {
      // A registration of the tag made while this start was on its way did not see it.
      await this.settleGiven(await this.deps.registrations.giveIfRegistered(req.idTag));
    }
    await this.store(meterId, [
      { timestamp: startedAt.toISOString(), kwh: whToKwh(req.meterStart) },
    ]);
    this.deps.logger.info(
      { chargePointId, connectorId: req.connectorId, transactionId: transaction.id, created },
      created ? 'transaction started' : 'StartTransaction repeated: same transaction',
    );
    return { transactionId: transaction.id, idTagInfo: { status } };
  }

  /**
   * `PUT /v1/id-tags/{idTag}`: the open transactions started with the tag while it was unknown
   * are its vehicle's from their start (see IdTagRegistrations).
   */
  async registerIdTag(idTag: string, vehicleId: string): Promise<IdTag> {
    const { tag, given } = await this.deps.registrations.register(idTag, vehicleId);
    await this.settleGiven(given);
    return tag;
  }

  /** Transactions given to a vehicle after their start: its others stopped, as at a start. */
  private async settleGiven(given: GivenTransaction[]): Promise<void> {
    for (const { transaction, newlyGiven, mapped } of given) {
      await this.stopVehicleElsewhere(transaction);
      if (!newlyGiven) continue; // given before (a registration tried again, or repeated)
      this.deps.logger.info(
        {
          chargePointId: transaction.chargePointId,
          transactionId: transaction.id,
          vehicleId: transaction.vehicleId,
          mapped,
        },
        mapped
          ? "idTag registered: its open transaction is the vehicle's from its start"
          : "idTag registered: its open transaction is the vehicle's, whose mapping made later is kept",
      );
    }
  }

  /**
   * A connector carries one transaction at a time. One still open on it that started before
   * `started` missed its StopTransaction: it is stopped where `started` starts (before `started`
   * maps its vehicle, which may be the same). Returns the connector's next transaction after
   * `started`, if any (a charge point's queue delivered out of order): then `started` is the one
   * that missed its stop, and is stopped there once mapped. So no vehicle is billed another's energy.
   */
  private async stopOlderOnConnector(
    started: Transaction,
    meterId: string,
  ): Promise<Transaction | undefined> {
    const others = (await this.deps.transactions.openOn(started.chargePointId)).filter(
      (t) => t.id !== started.id && t.connectorId === started.connectorId,
    );
    for (const older of others.filter((t) => startsBefore(t, started))) {
      await this.supersede(older, started, meterId);
    }
    // Those the engine stopped at a later start that `started` (delivered late) falls inside:
    // they end where `started` starts, or both would count the energy from there.
    for (const across of await this.deps.transactions.stoppedAcross(started)) {
      await this.supersede(across, started, meterId);
    }
    // The connector's next start, open or stopped: `started` ends there.
    return (await this.deps.transactions.nextOnConnector(started)) ?? undefined;
  }

  /**
   * A vehicle charges at one connector at a time. A transaction of its elsewhere (another
   * connector or charge point) that started before `started` and still runs past its start (open,
   * or stopped only by a later start of the vehicle) missed its StopTransaction: it is stopped
   * where `started` starts, its register there unknown, so it is not billed the energy of the new
   * connector, to which the vehicle's mapping now moves. One elsewhere that started after
   * `started` (a charge point's queue delivered late) means `started` missed its stop: it is
   * stopped where the earliest of them starts, so the vehicle is not left open at two connectors.
   */
  private async stopVehicleElsewhere(started: Transaction): Promise<void> {
    if (!started.vehicleId) return;
    const elsewhere = (
      await this.deps.transactions.ofVehicleAfter(started.vehicleId, started.startedAt)
    ).filter(
      (t) => t.chargePointId !== started.chargePointId || t.connectorId !== started.connectorId,
    );
    for (const ended of elsewhere.filter((t) => startsBefore(t, started) && stopMayMove(t))) {
      await this.stopSupersededElsewhere(ended, started);
    }
    const next = elsewhere
      .filter((t) => startsBefore(started, t))
      .sort((a, b) => (startsBefore(a, b) ? -1 : 1))[0];
    if (next) await this.stopSupersededElsewhere(started, next);
  }

  private async stopSupersededElsewhere(ended: Transaction, by: Transaction): Promise<void> {
    const stopped = await this.deps.transactions.stop(ended.id, {
      meterStopWh: null,
      stoppedAt: by.startedAt,
      reason: SUPERSEDED_ELSEWHERE,
    });
    // Its vehicle's period on that connector ends there too, as at a stop. The vehicle's next
    // period (`by`'s) starts just after; one started at the same instant covered nothing and goes
    // (left open, it kept `by`'s from being made: the vehicle stayed on the stopped connector).
    if (stopped?.vehicleId && stopped.stoppedAt?.getTime() === by.startedAt.getTime()) {
      await this.deps.mapping.endPeriod(
        stopped.vehicleId,
        connectorMeterId(ended.chargePointId, ended.connectorId),
        justAfter(ended.startedAt),
        justAfter(by.startedAt),
      );
    }
    this.faults.logFor(
      ended.chargePointId,
      '',
      {
        chargePointId: ended.chargePointId,
        transactionId: ended.id,
        vehicleId: ended.vehicleId,
        by: by.id,
      },
      "transaction left open elsewhere stopped at the start of the vehicle's next one",
    );
  }

  /**
   * Stops `ended` where `by` starts (its register there) and ends its vehicle's period there; one
   * the engine stopped at a later start has that stop moved back to `by`.
   */
  private async supersede(ended: Transaction, by: Transaction, meterId: string): Promise<void> {
    const stop = { meterStopWh: by.meterStartWh, stoppedAt: by.startedAt };
    const moved =
      ended.stoppedAt === null
        ? await this.deps.transactions.stop(ended.id, { ...stop, reason: SUPERSEDED_BY_NEW })
        : await this.deps.transactions.moveStopBack(ended.id, stop);
    // Its stop as it was (its own, one made elsewhere, or at `by` already, as on a resend): its
    // vehicle's period ends where that stop is, and is left so.
    if (moved?.stopReason !== SUPERSEDED_BY_NEW || moved.stoppedAt?.getTime() !== +by.startedAt) {
      return;
    }
    // The vehicle as stopped: a registration of its idTag may have given it one since it was read.
    if (moved.vehicleId) {
      await this.deps.mapping.endPeriod(
        moved.vehicleId,
        meterId,
        justAfter(ended.startedAt),
        justAfter(by.startedAt),
      );
    }
    this.faults.logFor(
      ended.chargePointId,
      '',
      { chargePointId: ended.chargePointId, transactionId: ended.id, by: by.id },
      'transaction left open on the connector stopped at the start of the next one',
    );
  }

  async stopTransaction(chargePointId: string, req: StopTransactionReq) {
    checkRegisterWh('meterStop', req.meterStop);
    const reported = this.transactionInstant(chargePointId, req.timestamp);
    const known = await this.deps.transactions.get(req.transactionId);
    if (!known || known.chargePointId !== chargePointId) {
      // Nothing to attach its readings to: answer, so the charge point does not resend for ever.
      this.faults.logFor(
        chargePointId,
        '',
        { chargePointId, transactionId: req.transactionId },
        'StopTransaction for a transaction this charge point never started: readings dropped',
      );
      return {};
    }
    const meterId = connectorMeterId(chargePointId, known.connectorId);
    const ownStop = { meterStopWh: req.meterStop, reportedAt: reported.reported };
    const { stoppedAt, clockLost } = this.stopInstant(known, req, reported, ownStop);
    let transaction = await this.deps.transactions.stop(req.transactionId, {
      meterStopWh: req.meterStop,
      stoppedAt,
      // OCPP 1.6 StopTransaction.req: the reason may be left out only when it is Local.
      reason: req.reason ?? 'Local',
    });
    if (transaction && stoppedByEngine(transaction)) {
      // The engine's stop stands: this one is recorded, if it is the first, to tell a second apart.
      transaction = await this.deps.transactions.recordChargerStop(req.transactionId, {
        ...ownStop,
        stoppedAt,
      });
    }
    this.openStarts.forget(chargePointId);
    await this.recordRegister(chargePointId, known.connectorId);
    await this.storeStopReadings({
      known,
      transaction,
      req,
      meterId,
      stoppedAt,
      clockLost,
      ownStop,
    });
    if (transaction?.vehicleId) {
      // At the stop kept: a resent or conflicting stop does not move the period's end.
      await this.deps.mapping.endPeriod(
        transaction.vehicleId,
        meterId,
        justAfter(known.startedAt),
        justAfter(transaction.stoppedAt ?? stoppedAt),
      );
    }
    return req.idTag ? { idTagInfo: { status: await this.idTagStatus(req.idTag) } } : {};
  }

  /** When a stop took place, from its reported instant (see transactionInstant). */
  private stopInstant(
    known: Transaction,
    req: StopTransactionReq,
    reported: { at: Date; asOfNow: boolean },
    ownStop: { meterStopWh: number; reportedAt: Date },
  ): { stoppedAt: Date; clockLost: boolean } {
    // The charge point's own stop recorded beside the engine's, sent again: at the instant taken
    // then, also when its timestamp, ahead of the clock then, no longer is.
    const recorded = recordedChargerStop(known, ownStop);
    if (recorded) {
      return { stoppedAt: recorded.stoppedAt, clockLost: ownStop.reportedAt < known.startedAt };
    }
    // The stop already recorded with the same register is this one sent again (after a failed
    // store): taken as of now, it keeps that stop's instant, as a StartTransaction does.
    const resent = known.stoppedAt && known.meterStopWh === req.meterStop ? known.stoppedAt : null;
    const reportedStop = reported.asOfNow && resent ? resent : reported.at;
    // A stop dated before its start: the charger's clock was lost (a reboot) or set back. The
    // charge went on until some time before now: taken as of now too.
    const clockLost = reportedStop < known.startedAt;
    const stoppedAt = clockLost ? (resent ?? this.now()) : reportedStop;
    if (clockLost) {
      this.deps.logger.warn(
        {
          chargePointId: known.chargePointId,
          transactionId: known.id,
          timestamp: req.timestamp,
          stoppedAt,
        },
        'StopTransaction dated before its start: taken as of now',
      );
    }
    return { stoppedAt, clockLost };
  }

  /** Stores a stop's readings (transactionData, meterStop) where they are its connector's. */
  private async storeStopReadings({
    known,
    transaction,
    req,
    meterId,
    stoppedAt,
    clockLost,
    ownStop,
  }: {
    known: Transaction;
    /** The transaction as stored after this stop (null: gone). */
    transaction: Transaction | null;
    req: StopTransactionReq;
    meterId: string;
    stoppedAt: Date;
    clockLost: boolean;
    /** This stop, as a charge point's own stop is recorded (recordChargerStop). */
    ownStop: { meterStopWh: number; reportedAt: Date };
  }): Promise<void> {
    // Its readings are the transaction's only if this stop is the one kept (or it again, resent
    // after a failed store): another stop's register would land in whatever transaction the
    // connector carries now, and count there.
    const kept =
      transaction?.meterStopWh === req.meterStop &&
      transaction.stoppedAt?.getTime() === stoppedAt.getTime();
    if (kept) {
      // A stop kept after the connector's next transaction started (it replaced the stop made
      // there, or is that stop sent again): its samples only up to that start. One still open
      // before this stop has none (that start would have stopped it): no query for it.
      const [next, stored] = await Promise.all([
        known.stoppedAt === null ? null : this.deps.transactions.nextOnConnector(known),
        this.storedRegister(meterId),
      ]);
      // With its clock lost, samples of its transactionData dated before the start carry that
      // clock too: only those from the start on are read (taken before the reboot).
      const within = {
        ...(clockLost ? { after: known.startedAt.getTime() - 1 } : {}),
        before: next?.startedAt.getTime() ?? Infinity,
      };
      await this.store(
        meterId,
        await this.stopReadings(meterId, req, stoppedAt, startOf(known), stored, within),
      );
    } else if (
      transaction &&
      stoppedByEngine(transaction) &&
      !clockLost &&
      recordedChargerStop(transaction, ownStop)
    ) {
      // The charge point's own stop of a transaction a start stopped before it came (the first
      // received, or it sent again): its readings are its connector's register all the same, up
      // to that connector's next transaction (in which they would count).
      const [next, stored] = await Promise.all([
        this.deps.transactions.nextOnConnector(known),
        this.storedRegister(meterId),
      ]);
      await this.store(
        meterId,
        await this.stopReadings(meterId, req, stoppedAt, startOf(known), stored, {
          after: known.startedAt.getTime(),
          before: next?.startedAt.getTime() ?? Infinity,
        }),
      );
    } else {
      this.deps.logger.warn(
        { chargePointId: known.chargePointId, transactionId: known.id },
        'StopTransaction not kept (the transaction was stopped before): its readings are not stored',
      );
    }
  }

  /**
   * A stop's readings dated within (after, before): its transactionData, then meterStop, the
   * register at the stop, each held to the transaction's register (transaction-register.ts): a
   * meterStop below meterStart is left out and counted as a sample would be (stored, it read as
   * a drop of the register). A sample of transactionData at the stop's instant (often the same
   * register rounded to kWh) is left out, as history keeps one reading per instant. A reading
   * whose instant is unreadable is kept, for ingest to refuse it by name.
   */
  private async stopReadings(
    meterId: string,
    req: StopTransactionReq,
    stoppedAt: Date,
    start: TransactionStart,
    stored: KnownRegister | null,
    { after = -Infinity, before = Infinity } = {},
  ) {
    const stopMs = stoppedAt.getTime();
    const within = (ms: number) => ms > after && ms < before;
    const samples = this.timed(this.read(meterId, req.transactionData ?? [])).filter(
      ({ atMs }) => atMs === null || (atMs !== stopMs && within(atMs)),
    );
    const stop = {
      reading: { timestamp: stoppedAt.toISOString(), kwh: whToKwh(req.meterStop), phased: false },
      atMs: stopMs,
    };
    return this.heldToRegister(
      meterId,
      within(stopMs) ? [...samples, stop] : samples,
      start,
      stored,
    );
  }

  async meterValues(chargePointId: string, req: MeterValuesReq) {
    checkConnectorId(req.connectorId, 0);
    const meterId = connectorMeterId(chargePointId, req.connectorId);
    this.recordRegisterSoon(chargePointId, req.connectorId);
    const readings = this.read(meterId, req.meterValue, { ignoreTransactionEnd: true });
    if (readings.length === 0) return {};
    const open = await this.readForCheck(
      this.openStarts.startOf(chargePointId, req.connectorId),
      'open transaction',
      { chargePointId },
    );
    const start = await this.transactionOfSamples(chargePointId, req, readings, open);
    // Only inside a transaction: most MeterValues of an idle connector need no more.
    const held = start
      ? await this.heldToRegister(
          meterId,
          this.timed(readings),
          start,
          await this.storedRegister(meterId),
        )
      : readings;
    await this.store(meterId, held);
    return {};
  }

  /**
   * The start of the transaction a MeterValues' samples are held to: the connector's open one,
   * or, for samples dated before it or with none open (a charger's queue delivered after its
   * StopTransaction), the stopped transaction of this connector they belong to: the one the
   * message names, else the one that was running at the earliest sample, if it is dated before
   * the connector's newest register (late). Looked up only then: a message inside the open
   * transaction costs no query, one of an idle connector a read of its live register.
   */
  private async transactionOfSamples(
    chargePointId: string,
    req: MeterValuesReq,
    readings: { timestamp: string }[],
    open: TransactionStart | null,
  ): Promise<TransactionStart | null> {
    // A loop, not Math.min(...): a message may hold more samples than a call takes arguments.
    let earliestMs = Infinity;
    for (const { atMs } of this.timed(readings)) {
      if (atMs !== null && atMs < earliestMs) earliestMs = atMs;
    }
    if (earliestMs === Infinity || (open && earliestMs >= open.atMs)) return open;
    const found =
      req.transactionId !== undefined
        ? await this.namedTransaction(chargePointId, req.transactionId)
        : await this.transactionAtLateSample(chargePointId, req.connectorId, earliestMs);
    const here = found?.chargePointId === chargePointId && found.connectorId === req.connectorId;
    if (found && !here) {
      // Nothing is billed wrongly (the samples stay this connector's), but a charger configured
      // with another's id, or numbering transactions itself, should not go unnoticed.
      this.foreignTransactions.log(
        undefined,
        {
          chargePointId,
          connectorId: req.connectorId,
          transactionId: req.transactionId,
          transactionOf: { chargePointId: found.chargePointId, connectorId: found.connectorId },
        },
        "MeterValues names a transaction of another connector or charge point: its samples are held to the connector's own transaction, if any",
      );
    }
    // Open, though this process took the connector for idle (it started on another replica while
    // the charge point was connected here too, or while PostgreSQL was away): held to it as well.
    if (here && !open && found.stoppedAt === null) return startOf(found);
    const stoppedHere = here && found.stoppedAt !== null && earliestMs <= found.stoppedAt.getTime();
    return stoppedHere ? startOf(found) : open;
  }

  private namedTransaction(chargePointId: string, transactionId: number) {
    const read = this.deps.transactions.get(transactionId);
    return this.readForCheck(read, 'named transaction', { chargePointId });
  }

  /** The connector's transaction running at `atMs`, when a sample then is late; else null. */
  private async transactionAtLateSample(chargePointId: string, connectorId: number, atMs: number) {
    const newest = await this.storedRegister(connectorMeterId(chargePointId, connectorId));
    if (!newest || atMs >= newest.atMs) return null;
    return this.readForCheck(
      this.deps.transactions.onConnectorAt(chargePointId, connectorId, new Date(atMs)),
      'transaction of a late sample',
      { chargePointId },
    );
  }

  /**
   * What a check needs, read within CHECK_WAIT_MS; null when it cannot be (PostgreSQL or Redis
   * away): a message is not failed for a check.
   */
  private async readForCheck<T>(
    read: Promise<T | null>,
    what: string,
    context: Record<string, unknown>,
  ): Promise<T | null> {
    try {
      return await withTimeout(read, CHECK_WAIT_MS, what);
    } catch (err) {
      this.checksSkipped.log(err, context, `${what} unknown: samples checked without it`);
      return null;
    }
  }

  /** The connector's newest stored register, or null. */
  private storedRegister(meterId: string): Promise<KnownRegister | null> {
    return this.readForCheck(this.deps.storedRegister(meterId), 'stored register', { meterId });
  }

  /**
   * For the samples dated inside the transaction before `newest` (delivered late), the registers
   * history holds among them and the one before the earliest; none when no sample is (the usual
   * message costs no query).
   */
  private async registersBeforeLate(
    meterId: string,
    samples: { atMs: number | null }[],
    start: TransactionStart,
    newest: KnownRegister | null,
  ): Promise<KnownRegister[]> {
    if (!newest) return [];
    let fromMs = Infinity;
    let toMs = -Infinity;
    for (const { atMs } of samples) {
      if (atMs === null || atMs <= start.atMs || atMs >= newest.atMs) continue;
      fromMs = Math.min(fromMs, atMs);
      toMs = Math.max(toMs, atMs);
    }
    if (fromMs === Infinity) return [];
    const read = this.deps.registersAround(meterId, { afterMs: start.atMs, fromMs, toMs });
    return (await this.readForCheck(read, 'stored registers', { meterId })) ?? [];
  }

  /** Readings with their instants (null: unreadable, for ingest to refuse by name). */
  private timed<R extends { timestamp: string }>(readings: R[]) {
    return readings.map((reading) => {
      const at = this.checkInstant(reading.timestamp);
      return { reading, atMs: at.ok ? at.value : null };
    });
  }

  /**
   * Register samples inside the transaction that began at `start`, held to its register: the
   * connector's `newest` stored register and, for samples dated before it (a charger's queue
   * delivered late), those history holds before them.
   */
  private async heldToRegister<R extends { kwh: number; phased: boolean }>(
    meterId: string,
    samples: { reading: R; atMs: number | null }[],
    start: TransactionStart,
    newest: KnownRegister | null,
  ): Promise<R[]> {
    const stored = await this.registersBeforeLate(meterId, samples, start, newest);
    if (newest) stored.push(newest);
    const { kept, leftOut } = holdToTransactionRegister(
      samples,
      { kwh: whToKwh(start.wh), atMs: start.atMs },
      stored,
    );
    const dropped = countBy(leftOut);
    for (const [reason, count] of dropped) this.deps.metrics.onSampleRejected(reason, count);
    if (leftOut.length > 0) {
      this.faults.logFor(
        meterId,
        [...dropped.keys()].sort().join(', '),
        {
          meterId,
          dropped: leftOut.length,
          byReason: Object.fromEntries(dropped),
          meterStartWh: start.wh,
          newest,
          stored: stored.length,
        },
        "register samples below their transaction's register left out",
      );
    }
    return kept;
  }

  /**
   * The register readings of a connector meter's meterValue list; samples it cannot use are
   * counted, and the rejected ones logged in one line.
   */
  private read(
    meterId: string,
    meterValue: MeterValue[],
    options?: { ignoreTransactionEnd: boolean },
  ) {
    const result = readMeterValues(meterValue, options);
    for (const [measurand, count] of Object.entries(result.ignored))
      this.deps.metrics.onSampleIgnored(measurand, count);
    if (result.rejects.length > 0) {
      const summary = summariseRejects(result.rejects);
      for (const [reason, count] of Object.entries(summary.byReason))
        this.deps.metrics.onSampleRejected(reason, count);
      const reasons = Object.keys(summary.byReason).sort().join(', ');
      this.faults.logFor(meterId, reasons, { meterId, ...summary }, 'meter value samples rejected');
    }
    return result.readings;
  }

  /** Stores register readings of a connector meter through ingest; resolves once they are queued. */
  private async store(
    meterId: string,
    readings: { timestamp: string; kwh: number; voltage?: number }[],
  ): Promise<void> {
    const items = readings.map((r) => ({
      value: {
        meterId,
        kwhConsumedAc: r.kwh,
        ...(r.voltage === undefined ? {} : { voltage: r.voltage }),
        timestamp: utcTimestamp(r.timestamp),
      },
    }));
    // A charge point cannot split a message (a StopTransaction's transactionData may hold a
    // day of samples): it is stored in parts, each answered before the next; a part that fails
    // fails the message, whose resend stores the parts before it once more (as the same rows).
    const { maxBatchReadings } = this.deps.config;
    for (let start = 0; start < items.length; start += maxBatchReadings) {
      await this.storeItems(meterId, items.slice(start, start + maxBatchReadings));
    }
  }

  private async storeItems(meterId: string, items: { value: Record<string, unknown> }[]) {
    let outcome;
    try {
      outcome = await this.deps.ingestService.ingest(
        { kind: 'batch', items },
        { asChargePoint: true },
      );
    } catch (err) {
      if (!(err instanceof AppError) || err.statusCode === 503) throw new NotStoredError(err);
      // Refused for good (a 4xx): resending would not help.
      this.faults.logFor(meterId, err.code, { meterId, err }, 'OCPP readings refused');
      return;
    }
    if (outcome.kind === 'batch' && outcome.errors.length > 0) {
      // Invalid readings are not stored, and resending them would not help: log how many, and
      // the first few (a message of many thousands made a line of megabytes).
      this.faults.logFor(
        meterId,
        'some',
        {
          meterId,
          refused: outcome.errors.length,
          errors: outcome.errors.slice(0, LISTED_REJECTS),
        },
        'OCPP readings refused',
      );
    }
  }

  /** OCPP connectors are registers: their meters say so, whatever ENERGY_READINGS says. */
  private recordRegister(chargePointId: string, connectorId: number): Promise<void> {
    return this.deps.registers.record(chargePointId, connectorId);
  }

  /**
   * The same, off the message's path (meter values and statuses do not wait for PostgreSQL): a
   * failure is retried with the connector's next message.
   */
  private recordRegisterSoon(chargePointId: string, connectorId: number): void {
    this.recordRegister(chargePointId, connectorId).catch((err: unknown) =>
      this.deps.logger.debug(
        { err, chargePointId, connectorId },
        'register semantics not recorded yet',
      ),
    );
  }

  /** From the transaction's start, the vehicle charges from the connector's meter. */
  private async mapVehicle(vehicleId: string, meterId: string, since: Date): Promise<void> {
    if (!(await this.deps.mapping.assignUnlessLater(vehicleId, meterId, since))) {
      this.deps.logger.info({ vehicleId, meterId, since }, 'vehicle mapping made later kept');
    }
  }

  private async idTagStatus(idTag: string): Promise<IdTagStatus> {
    return (await this.registeredTag(idTag)) ? 'Accepted' : this.unknownIdTagStatus(idTag);
  }

  /** The idTag's registration; none for a blank one (registered before blank ones were refused). */
  private registeredTag(idTag: string) {
    return isBlankIdTag(idTag) ? Promise.resolve(null) : this.deps.idTags.get(idTag);
  }

  private unknownIdTagStatus(idTag: string): IdTagStatus {
    // A blank token identifies no one, whatever OCPP_UNKNOWN_ID_TAGS says of unknown ones.
    if (isBlankIdTag(idTag)) return 'Invalid';
    return this.deps.config.ocppUnknownIdTags === 'accept' ? 'Accepted' : 'Invalid';
  }
}
