import type { Knex } from 'knex';
import { markSessionsChanged } from '../stores/session-marks';
import { normalizeIdTag } from './id-tag-store';

/** The reason of a transaction stopped because its vehicle started one on another connector. */
export const SUPERSEDED_ELSEWHERE = 'SupersededElsewhere';

/** The reason of a transaction stopped because its connector's next transaction started. */
export const SUPERSEDED_BY_NEW = 'SupersededByNewTransaction';

/** Whether a stop's reason is the engine's (a start superseded it), not its charge point's. */
const isEngineReason = (reason: string | null) =>
  reason === SUPERSEDED_ELSEWHERE || reason === SUPERSEDED_BY_NEW;

/** Whether the engine stopped the transaction (a start superseded it), not its charge point. */
export const stoppedByEngine = (t: Transaction) => isEngineReason(t.stopReason);

/** The largest transaction id (a PostgreSQL `integer` serial). */
export const MAX_TRANSACTION_ID = 2_147_483_647;

/**
 * A transaction's mapping period is (start, stop]: the register reading at the start is the
 * baseline, and the one at the stop holds the session's last energy. Periods are half-open
 * [from, to) at millisecond precision, so both bounds move one millisecond on.
 */
export const justAfter = (at: Date) => new Date(at.getTime() + 1);

/** A charging transaction as a charge point reported it (register values in Wh). */
export interface Transaction {
  id: number;
  chargePointId: string;
  connectorId: number;
  idTag: string;
  idTagStatus: string;
  vehicleId: string | null;
  meterStartWh: number;
  startedAt: Date;
  /** The timestamp the charge point reported, where it is not startedAt (taken as of now). */
  reportedStartedAt: Date | null;
  meterStopWh: number | null;
  stoppedAt: Date | null;
  stopReason: string | null;
  /**
   * The charge point's own stop, first received, of a transaction the engine stopped, where it
   * did not replace the engine's stop (recordChargerStop).
   */
  chargerStop: ChargerStop | null;
}

/** A charge point's own stop: its meterStop, the instant it reported and the instant taken. */
export interface ChargerStop {
  meterStopWh: number;
  reportedAt: Date;
  stoppedAt: Date;
}

/** The charge point's stop recorded on `t` (recordChargerStop), if `stop` is that one sent again. */
export const recordedChargerStop = (
  t: Transaction,
  stop: { meterStopWh: number; reportedAt: Date },
): ChargerStop | null =>
  t.chargerStop?.meterStopWh === stop.meterStopWh &&
  t.chargerStop.reportedAt.getTime() === stop.reportedAt.getTime()
    ? t.chargerStop
    : null;

interface TransactionRow {
  id: number;
  charge_point_id: string;
  connector_id: number;
  id_tag: string;
  id_tag_status: string;
  vehicle_id: string | null;
  meter_start_wh: number;
  started_at: Date;
  reported_started_at: Date | null;
  meter_stop_wh: number | null;
  stopped_at: Date | null;
  stop_reason: string | null;
  charger_stop_wh: number | null;
  charger_stop_reported_at: Date | null;
  charger_stopped_at: Date | null;
}

const toTransaction = (r: TransactionRow): Transaction => ({
  id: r.id,
  chargePointId: r.charge_point_id,
  connectorId: r.connector_id,
  idTag: r.id_tag,
  idTagStatus: r.id_tag_status,
  vehicleId: r.vehicle_id,
  meterStartWh: Number(r.meter_start_wh),
  startedAt: r.started_at,
  reportedStartedAt: r.reported_started_at,
  meterStopWh: r.meter_stop_wh === null ? null : Number(r.meter_stop_wh),
  stoppedAt: r.stopped_at,
  stopReason: r.stop_reason,
  chargerStop:
    r.charger_stop_wh === null ||
    r.charger_stop_reported_at === null ||
    r.charger_stopped_at === null
      ? null
      : {
          meterStopWh: Number(r.charger_stop_wh),
          reportedAt: r.charger_stop_reported_at,
          stoppedAt: r.charger_stopped_at,
        },
});

const TABLE = 'ocpp_transactions';

/** SQL: whether a stop at the instant bound here is the one kept (the stored one, if any, later). */
const TAKES_STOP = 'stopped_at IS NULL OR ?::timestamptz <= stopped_at';

/** OCPP transactions in PostgreSQL; their ids are the table's identity, unique across replicas. */
export class TransactionStore {
  constructor(private readonly db: Knex) {}

  /**
   * Records a StartTransaction, or finds the one already recorded with the same charge point,
   * connector, idTag, reported timestamp and meterStart (a retransmission): the same transaction
   * id, and the instant it was started at then (a start taken as of now is not moved by a resend).
   */
  async start(t: {
    chargePointId: string;
    connectorId: number;
    idTag: string;
    idTagStatus: string;
    vehicleId: string | null;
    meterStartWh: number;
    startedAt: Date;
    /** The timestamp the charge point reported, where it is not startedAt (taken as of now). */
    reportedStartedAt: Date | null;
  }): Promise<{ transaction: Transaction; created: boolean }> {
    const result = await this.db.raw(
      `INSERT INTO ${TABLE} (charge_point_id, connector_id, id_tag, id_tag_status, vehicle_id, meter_start_wh, started_at, reported_started_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (charge_point_id, connector_id, id_tag, (coalesce(reported_started_at, started_at)), meter_start_wh)
         DO UPDATE SET id_tag_status = ${TABLE}.id_tag_status
       RETURNING *, (xmax = 0) AS created`,
      [
        t.chargePointId,
        t.connectorId,
        normalizeIdTag(t.idTag),
        t.idTagStatus,
        t.vehicleId,
        t.meterStartWh,
        t.startedAt,
        t.reportedStartedAt,
      ],
    );
    const row = result.rows[0] as TransactionRow & { created: boolean };
    // A transaction naming a vehicle is that vehicle's charging session.
    if (row.vehicle_id) await markSessionsChanged(this.db, row.vehicle_id, row.started_at);
    return { transaction: toTransaction(row), created: row.created };
  }

  /**
   * Records a StopTransaction. The first stop stays: a retransmission, or a second stop with other
   * values, leaves it as it is (the vehicle's mapping period ended at that first stop), as the
   * first of two readings with one timestamp stays; but the charge point's own stop replaces one
   * the engine made at a later start (below). The transaction as stored; null if unknown.
   */
  async stop(
    id: number,
    stop: { meterStopWh: number | null; stoppedAt: Date; reason: string | null },
  ): Promise<Transaction | null> {
    const [row] = await this.db<TransactionRow>(TABLE)
      .where({ id })
      .where((open) => {
        open.whereNull('stopped_at').orWhere((elsewhere) =>
          // Stopped when its vehicle started elsewhere, its register unknown: the charge point's
          // own stop, arriving later (queued while offline), replaces it, no later than it; not
          // once one of its own was recorded (recordChargerStop): a second one replaces nothing.
          elsewhere
            .where({ stop_reason: SUPERSEDED_ELSEWHERE })
            .whereNull('meter_stop_wh')
            .whereNull('charger_stop_wh'),
        );
        // Stopped where its connector's next transaction started: the charge point's own stop,
        // arriving later, replaces it if it is before that next transaction (and any other on
        // the connector since), dated and registered no later: no energy of another is billed.
        const ownStopWh = isEngineReason(stop.reason) ? null : stop.meterStopWh;
        if (ownStopWh !== null) {
          open.orWhere((next) =>
            next
              .where({ stop_reason: SUPERSEDED_BY_NEW })
              .whereNull('charger_stop_wh')
              .where('stopped_at', '>=', stop.stoppedAt)
              .where('meter_stop_wh', '>=', ownStopWh)
              .whereRaw(
                `NOT EXISTS (SELECT 1 FROM ${TABLE} n
                  WHERE n.charge_point_id = ${TABLE}.charge_point_id
                    AND n.connector_id = ${TABLE}.connector_id
                    AND n.started_at > ${TABLE}.started_at AND n.started_at < ?)`,
                [stop.stoppedAt],
              ),
          );
        }
      })
      .update({
        // A stop dated after the one made elsewhere leaves that one whole: its register is the
        // register at its own instant, not at the stop kept.
        meter_stop_wh: this.db.raw(
          `CASE WHEN ${TAKES_STOP} THEN ?::bigint ELSE meter_stop_wh END`,
          [stop.stoppedAt, stop.meterStopWh],
        ),
        stop_reason: this.db.raw(`CASE WHEN ${TAKES_STOP} THEN ?::text ELSE stop_reason END`, [
          stop.stoppedAt,
          stop.reason,
        ]),
        stopped_at: this.db.raw('least(stopped_at, ?::timestamptz)', [stop.stoppedAt]),
      })
      .returning('*');
    const stopped = row as TransactionRow | undefined;
    if (!stopped) return this.get(id);
    if (stopped.vehicle_id) {
      await markSessionsChanged(this.db, stopped.vehicle_id, stopped.started_at);
    }
    return toTransaction(stopped);
  }

  /**
   * Records a charge point's own stop of a transaction the engine stopped, where it did not
   * replace the engine's (see `stop`): the first one received stays. Returns the transaction as
   * stored (null: gone), or as it was when the engine did not stop it.
   */
  async recordChargerStop(id: number, stop: ChargerStop): Promise<Transaction | null> {
    const [row] = await this.db<TransactionRow>(TABLE)
      .where({ id })
      .whereIn('stop_reason', [SUPERSEDED_ELSEWHERE, SUPERSEDED_BY_NEW])
      .whereNull('charger_stop_wh')
      .update({
        charger_stop_wh: stop.meterStopWh,
        charger_stop_reported_at: stop.reportedAt,
        charger_stopped_at: stop.stoppedAt,
      })
      .returning('*');
    return row ? toTransaction(row as TransactionRow) : this.get(id);
  }

  /**
   * What a connector meter's samples delivered late, dated from `fromMs` to `toMs`, are held to
   * (transaction-register.ts): the registers history holds from `fromMs` to before `toMs`, and the
   * newest before `fromMs` if it is after `afterMs` (the transaction's start). Readings still
   * queued are not there yet.
   */
  async registersAround(
    meterId: string,
    { afterMs, fromMs, toMs }: { afterMs: number; fromMs: number; toMs: number },
  ): Promise<{ kwh: number; atMs: number }[]> {
    const result = await this.db.raw(
      `SELECT kwh_consumed_ac AS kwh, ts FROM history_before('meter', ?, ?) WHERE ts > ?
       UNION ALL
       SELECT kwh_consumed_ac, ts FROM telemetry_history
       WHERE device_type = 'meter' AND device_id = ? AND ts >= ? AND ts < ?`,
      [meterId, new Date(fromMs), new Date(afterMs), meterId, new Date(fromMs), new Date(toMs)],
    );
    return (result.rows as { kwh: number | null; ts: Date }[]).flatMap((r) =>
      r.kwh === null ? [] : [{ kwh: r.kwh, atMs: r.ts.getTime() }],
    );
  }

  /**
   * The connector's transactions the engine stopped at a later start that `started` falls inside:
   * they started before `started` (a start delivered late) and were stopped after it.
   */
  async stoppedAcross(started: Transaction): Promise<Transaction[]> {
    const rows = await this.db<TransactionRow>(TABLE)
      .where({
        charge_point_id: started.chargePointId,
        connector_id: started.connectorId,
        stop_reason: SUPERSEDED_BY_NEW,
      })
      // Before `started` in the connector's order, as nextOnConnector reads it after.
      .whereRaw('(started_at, id) < (?::timestamptz, ?::integer)', [started.startedAt, started.id])
      .where('stopped_at', '>', started.startedAt)
      .orderBy([{ column: 'started_at' }, { column: 'id' }]);
    return rows.map(toTransaction);
  }

  /**
   * Moves a stop the engine made at a later start back to an earlier one's instant and register
   * (see stoppedAcross). The transaction as stored; null if it was not such a stop.
   */
  async moveStopBack(
    id: number,
    stop: { meterStopWh: number; stoppedAt: Date },
  ): Promise<Transaction | null> {
    const [row] = await this.db<TransactionRow>(TABLE)
      .where({ id, stop_reason: SUPERSEDED_BY_NEW })
      .where('stopped_at', '>', stop.stoppedAt)
      .update({ meter_stop_wh: stop.meterStopWh, stopped_at: stop.stoppedAt })
      .returning('*');
    const moved = row as TransactionRow | undefined;
    if (!moved) return null;
    if (moved.vehicle_id) await markSessionsChanged(this.db, moved.vehicle_id, moved.started_at);
    return toTransaction(moved);
  }

  async get(id: number): Promise<Transaction | null> {
    // Ids are PostgreSQL integers: a charge point's id outside them was never one of ours.
    if (!Number.isInteger(id) || id < 1 || id > MAX_TRANSACTION_ID) return null;
    const row = await this.db<TransactionRow>(TABLE).where({ id }).first();
    return row ? toTransaction(row) : null;
  }

  /**
   * The open transactions started with `idTag` and accepted, without a vehicle (the tag unknown
   * then) or `vehicleId`'s already (a registration tried again), in start order, locked: those
   * without become the vehicle's, their sessions marked. Run in a transaction.
   */
  async giveOpenToVehicle(
    idTag: string,
    vehicleId: string,
  ): Promise<{ transaction: Transaction; newlyGiven: boolean }[]> {
    const rows: TransactionRow[] = await this.db<TransactionRow>(TABLE)
      .where({ id_tag: normalizeIdTag(idTag), id_tag_status: 'Accepted' })
      .whereNull('stopped_at')
      .where((mine) => mine.whereNull('vehicle_id').orWhere('vehicle_id', vehicleId))
      .orderBy([{ column: 'started_at' }, { column: 'id' }])
      .forUpdate();
    const newly = rows.filter((r) => r.vehicle_id === null); // in start order: [0] is the earliest
    if (newly.length > 0) {
      await this.db(TABLE)
        .whereIn(
          'id',
          newly.map((r) => r.id),
        )
        .update({ vehicle_id: vehicleId });
      await markSessionsChanged(this.db, vehicleId, newly[0].started_at);
    }
    return rows.map((row) => ({
      transaction: toTransaction({ ...row, vehicle_id: vehicleId }),
      newlyGiven: row.vehicle_id === null,
    }));
  }

  /** A vehicle's transactions, on any charge point, still open or stopped after `instant`. */
  async ofVehicleAfter(vehicleId: string, instant: Date): Promise<Transaction[]> {
    const rows = await this.db<TransactionRow>(TABLE)
      .where({ vehicle_id: vehicleId })
      .where((after) => after.whereNull('stopped_at').orWhere('stopped_at', '>', instant));
    return rows.map(toTransaction);
  }

  /**
   * Whether a start dated `at` is from a clock lost at a reboot (see the service's startInstant):
   * dated more than `horizonMs` before the charge point first connected (now, if that is not
   * recorded yet), while the charge point has a transaction started after it. `bootedAfter`: the
   * charge point's last boot, if it came after every transaction it started.
   */
  async lostClockEvidence(t: {
    chargePointId: string;
    at: Date;
    horizonMs: number;
  }): Promise<{ lost: boolean; bootedAfter: Date | null }> {
    const result = await this.db.raw(
      `SELECT coalesce(?::timestamptz < coalesce(cp.created_at, now()) - ?::bigint * interval '1 millisecond'
                       AND latest.started_at > ?::timestamptz, false) AS lost,
              CASE WHEN cp.last_boot_at > latest.started_at THEN cp.last_boot_at END AS booted_after
       FROM (SELECT max(started_at) AS started_at FROM ${TABLE} WHERE charge_point_id = ?) latest
       LEFT JOIN charge_points cp ON cp.id = ?`,
      [t.at, t.horizonMs, t.at, t.chargePointId, t.chargePointId],
    );
    const row = result.rows[0] as { lost: boolean; booted_after: Date | null };
    return { lost: row.lost, bootedAfter: row.booted_after };
  }

  /** The connector's transaction that started last at or before `at`, if any. */
  async onConnectorAt(
    chargePointId: string,
    connectorId: number,
    at: Date,
  ): Promise<Transaction | null> {
    const row = await this.db<TransactionRow>(TABLE)
      .where({ charge_point_id: chargePointId, connector_id: connectorId })
      .where('started_at', '<=', at)
      .orderBy([
        { column: 'started_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .first();
    return row ? toTransaction(row) : null;
  }

  /** The transaction its connector started next after `t`, if any. */
  async nextOnConnector(t: Transaction): Promise<Transaction | null> {
    const row = await this.db<TransactionRow>(TABLE)
      .where({ charge_point_id: t.chargePointId, connector_id: t.connectorId })
      // A row comparison, so that the connector's index is read from `t` on, not from its first.
      .whereRaw('(started_at, id) > (?::timestamptz, ?::integer)', [t.startedAt, t.id])
      .orderBy([{ column: 'started_at' }, { column: 'id' }])
      .first();
    return row ? toTransaction(row) : null;
  }

  /** The open transactions of these charge points. */
  async openOnAny(chargePointIds: string[]): Promise<Transaction[]> {
    const rows = await this.db<TransactionRow>(TABLE)
      .whereIn('charge_point_id', chargePointIds)
      .whereNull('stopped_at');
    return rows.map(toTransaction);
  }

  /** Transactions still open on a charge point, newest first. */
  async openOn(chargePointId: string): Promise<Transaction[]> {
    const rows = await this.db<TransactionRow>(TABLE)
      .where({ charge_point_id: chargePointId })
      .whereNull('stopped_at')
      .orderBy('started_at', 'desc');
    return rows.map(toTransaction);
  }
}
