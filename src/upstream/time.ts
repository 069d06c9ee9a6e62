/**
 * Timestamp parsing for hub answers. `Date.parse` is too lenient to trust with an expiry: it
 * accepts 30 February and 24:00, and reads a string without a zone as local time. So the fields
 * are matched and range-checked here, and the zone rule is explicit.
 */

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * Parse an RFC 3339 / ISO-8601 date-time to epoch milliseconds, or null when it is not one.
 * With `requireZone` (S3 expirations, which the hub documents as RFC 3339 UTC) a missing zone is
 * an error; otherwise a zone-less value is read as UTC, never as the machine's local time.
 * Leap seconds (":60") are refused: no hub produces them and Date cannot represent them.
 */
export function parseTimestamp(value: string, requireZone: boolean): number | null {
  const m = TIMESTAMP.exec(value);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  const hasZone = z !== undefined || sign !== undefined;
  if (requireZone && !hasZone) return null;
  let offsetMinutes = 0;
  if (sign !== undefined) {
    const offH = Number(oh);
    const offM = Number(om);
    if (offH > 23 || offM > 59) return null;
    offsetMinutes = (sign === '-' ? -1 : 1) * (offH * 60 + offM);
  }
  const millis = frac === undefined ? 0 : Math.floor(Number(`0.${frac}`) * 1000);
  return Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000;
}

/**
 * Go's time.Time.String() form, which hubs before February 2025 wrote for `expiration` and the
 * public user docs still show: "2025-02-18 16:17:54 +0000 UTC" (optional fraction, numeric
 * offset, zone abbreviation, and the " m=+0.001" monotonic reading Go appends in some builds).
 */
const GO_TIMESTAMP =
  /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) ([+-])(\d{2})(\d{2})(?: [A-Za-z]{1,6})?(?: m=[+-]\d+(?:\.\d+)?)?$/;

/** RFC 3339 (see parseTimestamp) or Go's time format; null when it is neither. */
export function parseHubTime(value: string, requireZone: boolean): number | null {
  const go = GO_TIMESTAMP.exec(value);
  if (go) {
    const [, date, time, sign, oh, om] = go;
    return parseTimestamp(`${date}T${time}${sign}${oh}:${om}`, true);
  }
  return parseTimestamp(value, requireZone);
}
