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

export interface Sink {
  readonly name: string; // e.g. dir:/var/lib/dockside/vault
  put(obj: StoreObject): Promise<Receipt>;
  /** Where put() stores that clip (the receipt's location). */
  location(serial: string, clipId: string, container: string): string;
  /** Writes (or replaces) the sidecar beside the object. */
  putSidecar(serial: string, clipId: string, sidecar: Buffer): Promise<void>;
  close(): Promise<void>;
}
