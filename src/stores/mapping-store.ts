import type { Knex } from 'knex';
import { AppError, conflict } from '../errors';
import { takeTurns } from './advisory-lock';
import { markSessionsChanged } from './session-marks';

const TABLE = 'vehicle_meter_map';

/** One period in which a vehicle charged from one meter; `to` null means it still does. */
export interface MappingPeriod {
  vehicleId: string;
  meterId: string;
  from: Date;
  to: Date | null;
}

interface MappingRow {
  vehicle_id: string;
  meter_id: string;
  valid_from: Date;
  valid_to: Date | null;
}

const toPeriod = (row: MappingRow): MappingPeriod => ({
  vehicleId: row.vehicle_id,
  meterId: row.meter_id,
  from: row.valid_from,
  to: row.valid_to,
});

/** How close a period's start is to "now" to count as made in the same moment. */
const SAME_MOMENT_MS = 1000;

/**
 * "Now" for a mapping asked without `since`: just after a period that began in the same moment
 * (concurrent requests, each within a millisecond or so of the one before, the lock taking turns),
 * but a period dated later on purpose stays a conflict.
 */
function nowAfter(current: number, earliestAllowed: Date | null): Date {
  const latest = earliestAllowed?.getTime() ?? -Infinity;
  return new Date(latest >= current && latest - current < SAME_MOMENT_MS ? latest + 1 : current);
}

/** A vehicle's mapping changes take turns: each holds this lock until its transaction ends. */
export const lockVehicle = (trx: Knex.Transaction, vehicleId: string) =>
  takeTurns(trx, `${TABLE}:${vehicleId}`);

export class MappingStore {
  constructor(private readonly db: Knex) {}

  /**
   * From `since` on, the vehicle charges from `meterId`: closes the current period at `since` and
   * opens a new one, in one transaction locked per vehicle. Mapping to the current meter again is
   * a no-op. Returns the current period and the one it closed, if any.
   */
  async assign(
    vehicleId: string,
    meterId: string,
    asked: Date,
    /** Given when the caller asked for "now": read once the vehicle's lock is held. */
    { now }: { now?: () => number } = {},
  ): Promise<{ current: MappingPeriod; previous: MappingPeriod | null; changed: boolean }> {
    return this.db.transaction(async (trx) => {
      await lockVehicle(trx, vehicleId);
      const current = await trx<MappingRow>(TABLE)
        .where({ vehicle_id: vehicleId })
        .whereNull('valid_to')
        .first();
      if (current && current.meter_id === meterId) {
        // Already so since then: the same mapping again. Asked from earlier, it would move the
        // period's start back over time it did not cover: refused, as past periods are.
        if (!now && asked.getTime() < current.valid_from.getTime()) {
          throw conflict(
            'mapping_conflict',
            `vehicle ${vehicleId} is mapped to meter ${meterId} since ${current.valid_from.toISOString()}; a since earlier than that would rewrite the past, which is never done`,
            [{ path: '/since', message: `must not be before ${current.valid_from.toISOString()}` }],
          );
        }
        return { current: toPeriod(current), previous: null, changed: false };
      }
      const latest = await trx<MappingRow>(TABLE)
        .where({ vehicle_id: vehicleId })
        .orderBy('valid_from', 'desc')
        .first();
      // A new period starts after the open one's start, or at or after the closed one's end.
      const earliestAllowed = latest ? (latest.valid_to ?? latest.valid_from) : null;
      const since = now ? nowAfter(now(), earliestAllowed) : asked;
      const tooEarly = latest?.valid_to
        ? since.getTime() < latest.valid_to.getTime()
        : earliestAllowed !== null && since.getTime() <= earliestAllowed.getTime();
      if (earliestAllowed && tooEarly) {
        const start = earliestAllowed.toISOString();
        // Without a since (now), the vehicle's latest period is dated ahead of the clock. The
        // instant is named as taken (to the millisecond, as every instant): digits beyond are cut.
        throw conflict(
          'mapping_conflict',
          `${now ? 'now' : 'since'} (${since.toISOString()}) must be later than ${start}, where the vehicle's latest mapping period starts or ends; past periods are never rewritten`,
          now ? [] : [{ path: '/since', message: `must be after ${start}` }],
        );
      }
      let previous: MappingPeriod | null = null;
      if (current) {
        const [closed] = await trx<MappingRow>(TABLE)
          .where({ vehicle_id: vehicleId })
          .whereNull('valid_to')
          .update({ valid_to: since })
          .returning(['vehicle_id', 'meter_id', 'valid_from', 'valid_to']);
        previous = toPeriod(closed as MappingRow);
      }
      const [opened] = await trx<MappingRow>(TABLE)
        .insert({ vehicle_id: vehicleId, meter_id: meterId, valid_from: since })
        .returning(['vehicle_id', 'meter_id', 'valid_from', 'valid_to']);
      await markSessionsChanged(trx, vehicleId, since);
      return { current: toPeriod(opened as MappingRow), previous, changed: true };
    });
  }

  /**
   * The vehicle charges from no meter from `asked` on (unplugged for good, decommissioned): its
   * open period ends there, in one transaction locked per vehicle. Ended already: the same end
   * again is a no-op (a retried request), another one would rewrite the past and is refused.
   * Returns the period ended, or null when the vehicle was never mapped.
   */
  async end(
    vehicleId: string,
    asked: Date,
    /** Given when the caller asked for "now": read once the vehicle's lock is held. */
    { now }: { now?: () => number } = {},
  ): Promise<{ ended: MappingPeriod; changed: boolean } | null> {
    return this.db.transaction(async (trx) => {
      await lockVehicle(trx, vehicleId);
      const latest = await trx<MappingRow>(TABLE)
        .where({ vehicle_id: vehicleId })
        .orderBy('valid_from', 'desc')
        .first();
      if (!latest) return null;
      if (latest.valid_to) {
        if (now || asked.getTime() === latest.valid_to.getTime()) {
          return { ended: toPeriod(latest), changed: false };
        }
        throw conflict(
          'mapping_conflict',
          `vehicle ${vehicleId}'s latest mapping period (meter ${latest.meter_id}) ended at ${latest.valid_to.toISOString()}; past periods are never rewritten`,
          [{ path: '/until', message: `the period ended at ${latest.valid_to.toISOString()}` }],
        );
      }
      const until = now ? nowAfter(now(), latest.valid_from) : asked;
      if (until.getTime() <= latest.valid_from.getTime()) {
        const start = latest.valid_from.toISOString();
        throw conflict(
          'mapping_conflict',
          `${now ? 'now' : 'until'} (${until.toISOString()}) must be later than ${start}, where the vehicle's period on meter ${latest.meter_id} starts`,
          now ? [] : [{ path: '/until', message: `must be after ${start}` }],
        );
      }
      const [closed] = await trx<MappingRow>(TABLE)
        .where({ vehicle_id: vehicleId })
        .whereNull('valid_to')
        .update({ valid_to: until })
        .returning(['vehicle_id', 'meter_id', 'valid_from', 'valid_to']);
      await markSessionsChanged(trx, vehicleId, until);
      return { ended: toPeriod(closed as MappingRow), changed: true };
    });
  }

  /**
   * `assign`, but a mapping of the vehicle made later than `since` (by hand, or by a later
   * charging transaction) is kept: false then.
   */
  async assignUnlessLater(vehicleId: string, meterId: string, since: Date): Promise<boolean> {
    try {
      await this.assign(vehicleId, meterId, since);
      return true;
    } catch (err) {
      if (err instanceof AppError && err.statusCode === 409) return false;
      throw err;
    }
  }

  /**
   * Ends the period in which the vehicle charges from `meterId` since `from`, at `to` (a charging
   * transaction that stopped); a period ending where it starts covered nothing and is removed.
   * A period already ended later is ended at `to` too: the vehicle's start elsewhere closed it
   * there, before the charge point's own, earlier stop arrived. Returns false when there is no
   * such period (it ended no later than `to`, or is gone).
   */
  async endPeriod(vehicleId: string, meterId: string, from: Date, to: Date): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      await lockVehicle(trx, vehicleId);
      const open = trx(TABLE)
        .where({ vehicle_id: vehicleId, meter_id: meterId, valid_from: from })
        .where((q) => q.whereNull('valid_to').orWhere('valid_to', '>', to));
      const ended = to > from ? await open.update({ valid_to: to }) : await open.delete();
      if (ended > 0) await markSessionsChanged(trx, vehicleId, to);
      return ended > 0;
    });
  }

  /** Every period of the vehicle, oldest first. */
  async history(vehicleId: string): Promise<MappingPeriod[]> {
    const rows = await this.db<MappingRow>(TABLE)
      .where({ vehicle_id: vehicleId })
      .orderBy('valid_from', 'asc');
    return rows.map(toPeriod);
  }
}
