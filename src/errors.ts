/**
 * One error class for everything a user or an operator can see. `code` is stable
 * (tests, alerts and scripts match on it); `message` says what happened and what to do.
 * Codes are grouped by subsystem prefix: FRAME_ (wire framing), PROTO_ (messages and
 * session), HAL_ (transports and discovery), SIM_ (the simulated camera), CUSTODY_,
 * INGEST_, SINK_ (evidence stores), FIRMWARE_ and CAMERA_ (technician
 * operations), CONFIG_, CLI_, and INTERNAL for our own bugs.
 */
export const ERROR_CODES = [
  // framing
  'FRAME_CRC',
  'FRAME_TRUNCATED',
  'FRAME_OVERSIZED',
  'FRAME_BAD_COBS',
  'FRAME_BAD_LENGTH',
  // messages and session
  'PROTO_BAD_PAYLOAD',
  'PROTO_UNKNOWN_TYPE',
  'PROTO_UNEXPECTED',
  'PROTO_TIMEOUT',
  'PROTO_REMOTE',
  'PROTO_VERSION',
  'PROTO_BAD_NAME',
  'PROTO_CLOSED',
  'PROTO_AUTH',
  // hardware abstraction
  'HAL_OPEN',
  'HAL_DISCONNECTED',
  'HAL_WRITE',
  'HAL_NOT_FOUND',
  'HAL_AMBIGUOUS',
  'HAL_UNSUPPORTED',
  // simulator
  'SIM_BAD_FAULTS',
  'SIM_BAD_STATE',
  'SIM_FFMPEG',
  'SIM_PTY',
  // custody
  'CUSTODY_BAD_MANIFEST',
  'CUSTODY_SIGNATURE',
  'CUSTODY_HASH_MISMATCH',
  'CUSTODY_CHAIN_GAP',
  'CUSTODY_LEDGER',
  'CUSTODY_UNREADABLE', // a clip, sidecar or bundle file given to a custody tool cannot be read
  'CUSTODY_NOT_FOUND', // no such clip in the ledger or the vault
  // ingest
  'INGEST_UNENROLLED',
  'INGEST_SPOOL_FULL',
  'INGEST_CLIP_TOO_LARGE', // a clip bigger than the whole spool disk (or a camera lying about a size): it can never be pulled here
  'INGEST_DUPLICATE',
  'INGEST_SPOOL_LOST', // a verified clip's spool copy is gone or unreadable: it cannot be uploaded
  // sinks (evidence stores)
  'SINK_WRITE', // a failure that may pass (a 5xx, a reset): retried with backoff
  'SINK_UNAVAILABLE', // the store cannot be reached at all (refused, timed out, DNS): the queue holds
  'SINK_FULL', // the store is out of space or quota: the queue pauses, alerts, probes and resumes
  'SINK_REFUSED', // the store refuses this for good (403, 400, no such bucket): the clip is failed, kept
  'SINK_MISMATCH', // the store's copy does not hash to the manifest: never counted as stored
  // technician operations on a docked camera
  'FIRMWARE_INVALID', // a firmware package that is unsigned, wrongly signed, damaged or for another model: nothing sent
  'FIRMWARE_FAILED', // the camera refused or did not finish an update: it keeps its running firmware
  'CAMERA_BUSY', // the camera is being offloaded (or updated): the operation waits for it to finish
  // configuration and command line
  'CONFIG_INVALID',
  'CLI_USAGE',
  // a bug in dockside itself
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class DockError extends Error {
  override readonly name = 'DockError';
  readonly code: ErrorCode;
  /** Machine-readable context (never secrets): serial, path, seq, offsets... */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isDockError(err: unknown, code?: ErrorCode): err is DockError {
  return err instanceof DockError && (code === undefined || err.code === code);
}

/** Wraps anything thrown into a DockError so callers deal with one type. */
export function toDockError(err: unknown, code: ErrorCode, message: string, details: Record<string, unknown> = {}): DockError {
  if (err instanceof DockError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new DockError(code, `${message}: ${reason}`, details, { cause: err });
}
