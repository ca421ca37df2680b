/**
 * A charge point id: a meter id is `{chargePointId}:{connectorId}`, so no `:` (the split stays
 * unambiguous), not dots alone (no URL path segment), and at most 48 characters (OCPP's identity
 * limit; the meter id stays within 64). A charge point's key is named after it.
 */
export const CHARGE_POINT_ID_PATTERN = '^(?!\\.+$)[A-Za-z0-9._-]{1,48}$';
export const CHARGE_POINT_ID_RULE = '1-48 characters from A-Z a-z 0-9 . _ -, not dots alone';
export const CHARGE_POINT_ID = new RegExp(CHARGE_POINT_ID_PATTERN);
