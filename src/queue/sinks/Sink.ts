import { Transform } from 'node:stream';

/**
 * An evidence store. put() returns only once the store holds the object and its
 * SHA-256 was confirmed by reading it back (or by a checksum the store computed);
 * a clip counts as stored on that receipt alone.
 */
export interface StoreObject {
  serial: string;
  clipId: string;
  container: string; // file extension: mp4 or bin
  sourcePath: string; // the verified spool file
  sha256: string; // the camera's signed hash; the stored object must hash to it
  size: number;
}

export interface Receipt {
  location: string; // where the object is, as the store names it
  sha256: string; // as re-read from the store
  bytes: number;
  receipt: string; // short text the camera keeps in its log (RELEASE)
  existed: boolean; // the object was already there with the right hash (a retry after a crash)
}

/** The shared upload bandwidth limit (BandwidthLimiter), as a sink uses it. */
export interface Throttle {
  throttle(signal?: AbortSignal): Transform;
  current(): { rate: number | null };
}

export interface PutOptions {
  signal?: AbortSignal; // the daemon is stopping: give up (the clip stays uploading, redone at start)
  onProgress?: (bytes: number) => void; // bytes of the object sent so far
}

/**
 * A sink's errors say what the queue should do (src/errors.ts): SINK_WRITE (a passing
 * failure: retry), SINK_UNAVAILABLE (the store is down: hold), SINK_FULL (pause),
 * SINK_REFUSED (for good: fail the clip), SINK_MISMATCH (wrong bytes stored).
 */
export interface Sink {
  readonly name: string; // e.g. dir:/var/lib/dockside/vault, s3://evidence/dock1
  put(obj: StoreObject, opts?: PutOptions): Promise<Receipt>;
  /** Where put() stores that clip (the receipt's location). */
  location(serial: string, clipId: string, container: string): string;
  /** Writes (or replaces) the sidecar beside the object. */
  putSidecar(serial: string, clipId: string, sidecar: Buffer): Promise<void>;
  /**
   * For /healthz: resolves when the store answers now (and takes a write, where one
   * leaves nothing behind: a local vault, not a locked bucket); throws the DockError
   * put() would (SINK_UNAVAILABLE, SINK_REFUSED, SINK_FULL...). Quick; `signal` ends it
   * (the health check timed out).
   */
  probe?(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** A pass-through stream that reports the bytes through it so far (PutOptions.onProgress). */
export function progressCounter(onProgress: PutOptions['onProgress']): Transform {
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent += chunk.length;
      onProgress?.(sent);
      cb(null, chunk);
    },
  });
}
