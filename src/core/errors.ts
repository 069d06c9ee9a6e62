/**
 * The one table of errors the daemon reports. Each has a stable code (sent to clients and shown
 * by `status`), an HTTP status for the endpoint, and a message that never carries a secret.
 */
export const errorTable = {
  unauthorized: { status: 401, message: 'A valid client token is required in the Authorization header.' },
  forbidden: { status: 403, message: 'This client token is not allowed to read this workspace.' },
  forbidden_host: { status: 403, message: 'Requests must be addressed to the loopback address this daemon serves.' },
  forbidden_browser: { status: 403, message: 'Requests from web browsers are refused.' },
  not_found: { status: 404, message: 'No such route or workspace.' },
  method_not_allowed: { status: 405, message: 'Only GET and HEAD are accepted here.' },
  bad_request: { status: 400, message: 'The request is malformed.' },
  too_many_requests: { status: 429, message: 'Too many failed attempts; retry later.' },
  no_credentials: { status: 503, message: 'No valid credential can be obtained right now; the daemon keeps trying.' },
  internal: { status: 500, message: 'Internal error.' },
} as const;

export type ErrorCode = keyof typeof errorTable;

/** The body every error response carries: both spellings, since Go SDKs read code/message and JS v3 reads Code/Message. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  Code: ErrorCode;
  Message: string;
}

export function errorBody(code: ErrorCode, message: string = errorTable[code].message): ErrorBody {
  return { code, message, Code: code, Message: message };
}

/** An error thrown for the user to read: one sentence, plus a process exit code (sysexits.h). */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.USAGE,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

/** sysexits.h codes, so scripts and systemd can tell failures apart. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  NEEDS_ATTENTION: 2,
  /** `status`: the daemon is not running (like systemctl's and LSB's "program is not running"). */
  NOT_RUNNING: 3,
  USAGE: 64,
  DATAERR: 65,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  CANTCREAT: 73,
  IOERR: 74,
  TEMPFAIL: 75,
  NOPERM: 77,
  CONFIG: 78,
} as const;
