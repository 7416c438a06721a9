/**
 * The spool: where clips land on the dock before they are verified and stored.
 *
 *   spool/<serial>/<clipId>.part          a pull in progress; bytes [0, offset) are durable
 *   spool/<serial>/<clipId>.<mp4|bin>     a complete pull (renamed after its last fsync)
 *   quarantine/<serial>/<clipId>.<ext>    a clip that failed a check, with .reason.json
 *
 * Invariant: the state store's `offset` never exceeds what was fsynced; a pull
 * resumes by cutting the .part file back to that offset, so bytes written after the
 * last commit (and perhaps lost by a power cut) are fetched again, never trusted.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DockError } from '../errors.js';
import { fsyncDir, mkdirDurable, moveDurable, writeFileDurable } from '../durableFs.js';

export interface SpoolOptions {
  minFreeBytes: number; // pulls pause below this much free space; default 1 GiB
  syncEveryBytes: number; // fsync and commit the offset at least this often; default 4 MiB
  keepAfterReleaseMs: number; // a released clip's spool copy is kept this long; default 0
}

export const SPOOL_DEFAULTS: SpoolOptions = { minFreeBytes: 1024 ** 3, syncEveryBytes: 4 * 1024 * 1024, keepAfterReleaseMs: 0 };

export class Spool {
  readonly #reservations = new Set<SpaceReservation>();
  readonly dir: string;
  readonly quarantineDir: string;
  readonly options: SpoolOptions;

  constructor(dataDir: string, options: Partial<SpoolOptions> = {}) {
    this.dir = join(dataDir, 'spool');
    this.quarantineDir = join(dataDir, 'quarantine');
    this.options = { ...SPOOL_DEFAULTS, ...options };
  }

  partPath(serial: string, clipId: string): string {
    return join(this.dir, serial, `${clipId}.part`);
  }

  clipPath(serial: string, clipId: string, container: string): string {
    return join(this.dir, serial, `${clipId}.${container}`);
  }

  quarantinePath(serial: string, clipId: string, container: string): string {
    return join(this.quarantineDir, serial, `${clipId}.${container}`);
  }

  /** Free bytes on the spool's file system. */
  async freeBytes(): Promise<number> {
    await mkdir(this.dir, { recursive: true });
    const s = await statfs(this.dir);
    return s.bavail * s.bsize;
  }

  /** Size of the spool's file system, free or not. */
  async capacityBytes(): Promise<number> {
    await mkdir(this.dir, { recursive: true });
    const s = await statfs(this.dir);
    return s.blocks * s.bsize;
  }

  /**
   * Throws INGEST_SPOOL_FULL unless `needBytes` fit in the free space with the reserve
   * kept and the rest of every pull in progress (their reservations) still to come.
   */
  async checkSpace(needBytes = 0): Promise<void> {
    const free = await this.freeBytes();
    this.#fits(free, needBytes, undefined);
  }

  /**
   * Room for the rest of a pull, held until release(): a pull starts only when all of
   * it fits beside what the pulls already running still have to write, so pulls that
   * start together near a full disk cannot all stop half-way, each holding the space
   * the others need (then none would ever finish and free its spool copy). Checked and
   * registered in one step after statfs, so two pulls asking at once cannot both get it.
   */
  async reserve(bytes: number): Promise<SpaceReservation> {
    const capacity = await this.capacityBytes();
    if (bytes > capacity - this.options.minFreeBytes) {
      // Waiting would never end: say so, and let the pull fail (the clip stays on the camera).
      throw new DockError(
        'INGEST_CLIP_TOO_LARGE',
        `a clip of ${bytes} bytes cannot fit in the spool at ${this.dir} even when it is empty (${capacity} bytes, ${this.options.minFreeBytes} kept in reserve); it stays on the camera. Give the spool a bigger disk or lower spool.minFreeBytes, then \`dockside pull\` the camera; a size this large from a camera may also be a fault to report to its vendor`,
        { bytes, capacity, dir: this.dir },
      );
    }
    const free = await this.freeBytes();
    this.#fits(free, bytes, undefined);
    const r = new SpaceReservation(this, bytes);
    this.#reservations.add(r);
    return r;
  }

  /** Bytes still to be written by the pulls in progress. */
  get reservedBytes(): number {
    let n = 0;
    for (const r of this.#reservations) n += r.remaining;
    return n;
  }

  /** @internal SpaceReservation's check and release. */
  async recheck(r: SpaceReservation): Promise<void> {
    const free = await this.freeBytes();
    this.#fits(free, r.remaining, r);
  }

  /** @internal */
  unreserve(r: SpaceReservation): void {
    this.#reservations.delete(r);
  }

  #fits(free: number, needBytes: number, own: SpaceReservation | undefined): void {
    const others = this.reservedBytes - (own && this.#reservations.has(own) ? own.remaining : 0);
    if (free - others - needBytes >= this.options.minFreeBytes) return;
    const reserved = others > 0 ? `, ${others} of them still to be written by the pulls in progress` : '';
    throw new DockError(
      'INGEST_SPOOL_FULL',
      `the spool at ${this.dir} has ${free} bytes free${reserved}, under the ${this.options.minFreeBytes} kept in reserve${needBytes > 0 ? ` plus the ${needBytes} this pull needs` : ''}; pulls pause until space returns (free space, or lower spool.minFreeBytes)`,
      { free, reserved: others, need: needBytes, dir: this.dir },
    );
  }

  /**
   * Opens a pull for writing at the durable `offset`: cuts anything beyond it, and
   * returns a hash already fed with the bytes before it (read back from disk).
   */
  async openPart(serial: string, clipId: string, offset: number, reservation?: SpaceReservation): Promise<PartFile> {
    await mkdirDurable(join(this.dir, serial));
    const path = this.partPath(serial, clipId);
    const created = !(await stat(path).catch(() => undefined));
    await (await open(path, 'a')).close();
    if (created) await fsyncDir(join(this.dir, serial)); // the new .part entry itself
    const fh = await open(path, 'r+');
    const size = (await fh.stat()).size;
    if (size < offset) {
      await fh.close();
      throw new DockError('INTERNAL', `spool file ${path} has ${size} bytes, fewer than the ${offset} recorded as durable; the spool was changed outside dockside`, { path });
    }
    await fh.truncate(offset);
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(4 * 1024 * 1024, offset)); // none for a new pull (8 bays starting took 32 MiB)
    for (let pos = 0; pos < offset; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, offset - pos), pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return new PartFile(fh, path, offset, hash, reservation);
  }

  /** A finished pull: the .part file, fsynced, takes its final name. */
  async complete(serial: string, clipId: string, container: string): Promise<string> {
    const final = this.clipPath(serial, clipId, container);
    await rename(this.partPath(serial, clipId), final);
    await fsyncDir(join(this.dir, serial));
    return final;
  }

  async quarantine(serial: string, clipId: string, container: string, reason: Record<string, unknown>): Promise<string> {
    const dir = join(this.quarantineDir, serial);
    await mkdirDurable(dir);
    await writeFileDurable(join(dir, `${clipId}.reason.json`), `${JSON.stringify(reason, null, 2)}\n`);
    const target = this.quarantinePath(serial, clipId, container);
    const src = this.clipPath(serial, clipId, container);
    if (await stat(src).catch(() => undefined)) await moveDurable(src, target); // quarantine/ may be on another disk than spool/
    return target;
  }

  async remove(serial: string, clipId: string, container: string): Promise<void> {
    await rm(this.clipPath(serial, clipId, container), { force: true });
  }
}

/** Room held in the spool for the rest of one pull (Spool.reserve). */
export class SpaceReservation {
  readonly #spool: Spool;
  #remaining: number;

  constructor(spool: Spool, bytes: number) {
    this.#spool = spool;
    this.#remaining = bytes;
  }

  /** Bytes of the pull still to be written. */
  get remaining(): number {
    return this.#remaining;
  }

  /** The pull wrote `bytes` more: they are on the disk (or about to be), no longer held. */
  consumed(bytes: number): void {
    this.#remaining = Math.max(0, this.#remaining - bytes);
  }

  /** Throws INGEST_SPOOL_FULL when something else took the space (the reserve is gone). */
  async check(): Promise<void> {
    await this.#spool.recheck(this);
  }

  release(): void {
    this.#spool.unreserve(this);
  }
}

/**
 * Writes smaller than this are gathered into one write: a pull arrives in 64 KiB frames,
 * and each file write costs the event loop ~40 us to hand to the thread pool whatever its
 * size (measured on this class of machine), so 64 KiB writes cost a fifth of a core at
 * 300 MB/s; 512 KiB ones an eighth of that. Per bay, one buffer of this size.
 */
export const PART_WRITE_BYTES = 512 * 1024;

export class PartFile {
  readonly path: string;
  readonly hash: Hash;
  #fh: FileHandle;
  #written: number; // bytes accepted (hashed), in the file or in #pending
  #flushed: number; // bytes handed to the file
  #synced: number; // bytes fdatasynced
  #pending: Buffer | undefined;
  #pendingBytes = 0;

  readonly #reservation: SpaceReservation | undefined;

  constructor(fh: FileHandle, path: string, offset: number, hash: Hash, reservation?: SpaceReservation) {
    this.#reservation = reservation;
    this.#fh = fh;
    this.path = path;
    this.#written = offset;
    this.#flushed = offset;
    this.#synced = offset;
    this.hash = hash;
  }

  get written(): number {
    return this.#written;
  }

  get unsynced(): number {
    return this.#written - this.#synced;
  }

  /** Accepts the bytes at `offset` (which must follow the last ones); they are durable after sync(). */
  async write(offset: number, data: Buffer): Promise<void> {
    if (offset !== this.#written) throw new DockError('INTERNAL', `spool write at ${offset}, expected ${this.#written}`, { path: this.path });
    this.hash.update(data);
    this.#written += data.length;
    this.#reservation?.consumed(data.length);
    if (this.#pendingBytes + data.length > PART_WRITE_BYTES) await this.#flush();
    if (data.length >= PART_WRITE_BYTES) {
      await this.#writeAt(data);
      return;
    }
    this.#pending ??= Buffer.allocUnsafe(PART_WRITE_BYTES);
    data.copy(this.#pending, this.#pendingBytes);
    this.#pendingBytes += data.length;
  }

  /** Writes what is gathered, then fdatasync; returns the offset that is now durable. */
  async sync(): Promise<number> {
    await this.#flush();
    await this.#fh.datasync();
    this.#synced = this.#written;
    return this.#synced;
  }

  /** Closes the file; bytes accepted since the last sync() are dropped (they were never durable). */
  async close(): Promise<void> {
    this.#pending = undefined;
    await this.#fh.close();
  }

  async #flush(): Promise<void> {
    if (this.#pendingBytes === 0) return;
    const n = this.#pendingBytes;
    this.#pendingBytes = 0;
    await this.#writeAt(this.#pending!.subarray(0, n));
  }

  async #writeAt(data: Buffer): Promise<void> {
    try {
      // A write on a nearly full disk can be short without an error (the next one gets
      // ENOSPC): go on from where it stopped, never leave a hole that later writes skip.
      for (let done = 0; done < data.length; ) {
        const { bytesWritten } = await this.#fh.write(data, done, data.length - done, this.#flushed + done);
        done += bytesWritten;
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new DockError('INGEST_SPOOL_FULL', `the spool disk filled up while pulling into ${this.path}; the pull pauses at its last durable offset until space returns`, { path: this.path }, { cause: err });
      }
      throw err;
    }
    this.#flushed += data.length;
  }
}
