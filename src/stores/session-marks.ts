import type { Knex } from 'knex';
import type { EnergyReadingsMode } from '../config';
import type { DeviceType } from '../devices/device-kinds';

/** Marks rows into session_dirty: a newer mark keeps the earlier `since` and bumps the version. */
const MARK = (rows: string) => `INSERT INTO session_dirty AS d (vehicle_id, since) ${rows}
  ON CONFLICT (vehicle_id) DO UPDATE SET since = least(d.since, EXCLUDED.since), version = d.version + 1`;

/**
 * Marks a vehicle's charging sessions to be computed again from `since` on (its mapping or a
 * transaction changed): the session builder picks the mark up, and reports compute that stretch
 * live until it has.
 */
export async function markSessionsChanged(db: Knex, vehicleId: string, since: Date): Promise<void> {
  await db.raw(MARK('VALUES (?, ?)'), [vehicleId, since]);
}

/**
 * A vehicle's first reading (SQL; `id` is its id), NULL without any. A vehicle's semantics decide
 * which of its readings charge, so a change of them may start, move or end a session anywhere in
 * its history, also before its first kept session or where none was kept: its sessions are built
 * again from there.
 */
const firstReadingOf = (id: string) =>
  `(SELECT min(h.ts) FROM telemetry_history h WHERE h.device_type = 'vehicle' AND h.device_id = ${id})`;

/**
 * Marks each vehicle with a kept session across `at` to be computed again from `at` on: retention
 * drops what was before it, and such a session (then dropped too) held energy of both sides.
 */
export async function markSessionsAcross(db: Knex, at: Date): Promise<void> {
  await db.raw(
    MARK(
      `SELECT DISTINCT vehicle_id, ?::timestamptz FROM charging_sessions
       WHERE start_ts < ? AND end_ts >= ? ORDER BY vehicle_id`,
    ),
    [at, at, at],
  );
}

/**
 * Marks, for devices whose energy semantics changed, the sessions they are part of: a vehicle's
 * from its first reading (see firstReadingOf); a meter's, which only count its AC, from the
 * earliest kept session of each vehicle mapped to it that overlaps the mapping period, or the
 * session still going on where the vehicle was built (kept as built, it would be continued with
 * the AC of the semantics before). Sessions not built yet are computed with the semantics in force.
 */
export async function markSessionsOfDevices(
  db: Knex,
  type: DeviceType,
  ids: string[],
): Promise<void> {
  if (ids.length === 0) return;
  const touched =
    type === 'vehicle'
      ? `SELECT v.id, ${firstReadingOf('v.id')} FROM unnest(?::text[]) AS v(id)`
      : `SELECT s.vehicle_id, s.start_ts FROM vehicle_meter_map m
         JOIN charging_sessions s ON s.vehicle_id = m.vehicle_id AND s.end_ts >= m.valid_from
          AND (m.valid_to IS NULL OR s.start_ts < m.valid_to)
         WHERE m.meter_id = ANY(?)
         UNION ALL
         SELECT b.vehicle_id, b.open_since FROM vehicle_meter_map m
         JOIN session_built b ON b.vehicle_id = m.vehicle_id AND b.open_since IS NOT NULL
          AND (m.valid_to IS NULL OR b.open_since < m.valid_to)
         WHERE m.meter_id = ANY(?)`;
  await db.raw(
    MARK(
      `SELECT vehicle_id, min(since) FROM (${touched}) AS t(vehicle_id, since)
       WHERE since IS NOT NULL GROUP BY vehicle_id ORDER BY vehicle_id`,
    ),
    type === 'vehicle' ? [ids] : [ids, ids],
  );
}

/** A device of type `type`, id `id` (SQL), has no semantics of its own: it follows the default. */
const followsDefault = (type: DeviceType, id: string) =>
  `NOT EXISTS (SELECT 1 FROM device_settings ds WHERE ds.device_type = '${type}' AND ds.device_id = ${id})`;

/**
 * The version of how an OCPP session is counted (src/sessions/session-sql.ts), raised with each
 * change of it: the date and hour of the change, YYYYMMDDHH (so it only grows; the first,
 * 20261207, was a date alone, and is below every one since): a flusher finding older rules
 * recorded builds the kept OCPP sessions again. Migrations marked them too, but a flusher of the
 * older release still running after them built them again the old way, for good.
 * 2026120719: a transaction without meterStop bills its newest sample (a glitch is not a reset).
 */
export const SESSION_RULES = 2026120719;

/** What the kept sessions are built with, as recorded in `session_defaults`. */
export interface SessionDefaults {
  energyReadings: EnergyReadingsMode;
  /** Null: built by a version that did not record it. */
  sessionGapS: number | null;
  /** Null: built by a version that did not record it (before SESSION_RULES). */
  sessionRules: number | null;
}

/**
 * Marks what was built with another ENERGY_READINGS default, as markSessionsOfDevices does: each
 * built vehicle without semantics of its own from its first reading, the kept sessions with a
 * meter without semantics of its own, and the session still going on where each vehicle was built.
 */
const BUILT_WITH_DEFAULT_MODE = `
  SELECT b.vehicle_id, ${firstReadingOf('b.vehicle_id')} AS since FROM session_built b
  WHERE ${followsDefault('vehicle', 'b.vehicle_id')}
  UNION ALL
  SELECT s.vehicle_id, s.start_ts FROM charging_sessions s
  WHERE EXISTS (SELECT 1 FROM unnest(s.meter_ids) AS m(id) WHERE ${followsDefault('meter', 'm.id')})
  UNION ALL
  SELECT b.vehicle_id, b.open_since FROM session_built b WHERE b.open_since IS NOT NULL`;

/**
 * Marks what was built with another SESSION_GAP_S: every built vehicle from its first reading
 * (which covers the session still going on where it was built). The gap moves where sessions
 * start and end, also before a vehicle's first kept session: a detected run overlapping a
 * transaction is left out whole, and with another gap part of it may be a session of its own.
 */
const BUILT_WITH_GAP = `
  SELECT b.vehicle_id, ${firstReadingOf('b.vehicle_id')} AS since FROM session_built b`;

/** Marks what was counted by older SESSION_RULES: each vehicle's kept OCPP sessions, from its first. */
const BUILT_WITH_OLDER_RULES = `
  SELECT vehicle_id, start_ts FROM charging_sessions WHERE source = 'ocpp'`;

/**
 * Records `now` as the defaults the kept sessions are built with. When others were recorded, first
 * marks what was built with them (BUILT_WITH_DEFAULT_MODE, BUILT_WITH_GAP, BUILT_WITH_OLDER_RULES),
 * each vehicle from the earliest of its marks. A gap not recorded yet (sessions built before it
 * was) is taken to be `now`'s; rules not recorded yet (or no record at all) are older than any,
 * and an older release's rules recorded after a rollback are marked again at the next upgrade. Returns the defaults
 * recorded before (null: none, the first run), those recorded now and how many vehicles were
 * marked.
 */
export async function adoptSessionDefaults(
  db: Knex,
  now: { energyReadings: EnergyReadingsMode; sessionGapS: number; sessionRules: number },
): Promise<{ previous: SessionDefaults | null; now: SessionDefaults; marked: number }> {
  return db.transaction(async (trx) => {
    // Locked: flushers starting together record and mark once.
    await trx.raw('LOCK TABLE session_defaults IN EXCLUSIVE MODE');
    const row = await trx('session_defaults')
      .select('energy_readings', 'session_gap_s', 'session_rules')
      .where({ id: 1 })
      .first();
    const previous: SessionDefaults | null = row
      ? {
          energyReadings: row.energy_readings,
          sessionGapS: row.session_gap_s,
          sessionRules: row.session_rules,
        }
      : null;
    const changed = [
      ...(previous && previous.energyReadings !== now.energyReadings
        ? [BUILT_WITH_DEFAULT_MODE]
        : []),
      ...(previous?.sessionGapS && previous.sessionGapS !== now.sessionGapS
        ? [BUILT_WITH_GAP]
        : []),
      // No record at all: sessions built by a release before records were kept, if any.
      ...((previous?.sessionRules ?? 0) < now.sessionRules ? [BUILT_WITH_OLDER_RULES] : []),
    ];
    let marked = 0;
    if (changed.length > 0) {
      const result = await trx.raw(
        MARK(`SELECT vehicle_id, min(since) FROM (${changed.join(' UNION ALL ')}) t(vehicle_id, since)
          WHERE since IS NOT NULL GROUP BY vehicle_id ORDER BY vehicle_id`),
      );
      marked = result.rowCount ?? 0;
    }
    if (
      previous?.energyReadings !== now.energyReadings ||
      previous.sessionGapS !== now.sessionGapS ||
      previous.sessionRules !== now.sessionRules
    ) {
      await trx.raw(
        `INSERT INTO session_defaults (id, energy_readings, session_gap_s, session_rules)
         VALUES (1, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE
         SET energy_readings = EXCLUDED.energy_readings, session_gap_s = EXCLUDED.session_gap_s,
             session_rules = EXCLUDED.session_rules`,
        [now.energyReadings, now.sessionGapS, now.sessionRules],
      );
    }
    return { previous, now, marked };
  });
}
