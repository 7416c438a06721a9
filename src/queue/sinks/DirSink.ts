/**
 * The local vault (`dir:PATH`, the default sink): PATH/<serial>/<clipId>.<ext> and
 * PATH/<serial>/<clipId>.json beside it.
 *
 *   copy to .<name>.tmp ─► fsync ─► rename ─► fsync dir ─► re-read and hash = receipt
 *
 * An object already in place whose bytes hash right is taken as stored (a crash
 * between the copy and the state commit); one that hashes wrong is replaced, never
 * trusted.
 */
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { copyFile, open, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DockError, toDockError } from '../../errors.js';
import type { HashPool } from '../../verify/HashPool.js';
import { progressCounter, type PutOptions, type Receipt, type Sink, type StoreObject, type Throttle } from './Sink.js';
import { fsyncDir, mkdirDurable, writeFileDurable } from '../../durableFs.js';

const PROBE_BYTES = Buffer.from('dockside health probe\n');

export class DirSink implements Sink {
  readonly name: string;
  readonly root: string;
  readonly #hashes: HashPool;
  readonly #limit: Throttle | undefined;

  constructor(root: string, hashes: HashPool, limit?: Throttle) {
    this.root = root;
    this.name = `dir:${root}`;
    this.#hashes = hashes;
    this.#limit = limit;
  }

  location(serial: string, clipId: string, container: string): string {
    return this.objectPath(serial, clipId, container);
  }

  objectPath(serial: string, clipId: string, container: string): string {
    return join(this.root, serial, `${clipId}.${container}`);
  }

  async put(obj: StoreObject, opts: PutOptions = {}): Promise<Receipt> {
    const dir = join(this.root, obj.serial);
    const target = this.objectPath(obj.serial, obj.clipId, obj.container);
    try {
      await mkdirDurable(dir);
      const existing = await stat(target).catch(() => undefined);
      if (existing) {
        const { sha256, bytes } = await this.#hashes.hash(target);
        if (sha256 === obj.sha256) {
          // Seen after a crash, perhaps only in the page cache: make it durable before it counts.
          const fh = await open(target, 'r');
          try {
            await fh.sync();
          } finally {
            await fh.close();
          }
          await fsyncDir(dir);
          return this.#receipt(target, sha256, bytes, true);
        }
        await rm(target); // not the evidence: replace it from the verified spool copy
      }
      const tmp = join(dir, `.${obj.clipId}.${obj.container}.tmp`);
      await this.#copy(obj.sourcePath, tmp, opts);
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, target);
      await fsyncDir(dir);
    } catch (err) {
      throw this.#classify(err, `cannot store ${obj.serial}/${obj.clipId} in ${this.root}`);
    }
    const { sha256, bytes } = await this.#hashes.hash(target);
    if (sha256 !== obj.sha256 || bytes !== obj.size) {
      await rm(target, { force: true });
      throw new DockError('SINK_MISMATCH', `the vault copy of ${obj.serial}/${obj.clipId} reads back as ${sha256} (${bytes} bytes), not ${obj.sha256} (${obj.size}); it was removed and the clip is kept. Check the vault's disk`, {
        serial: obj.serial,
        clipId: obj.clipId,
      });
    }
    return this.#receipt(target, sha256, bytes, false);
  }

  async putSidecar(serial: string, clipId: string, sidecar: Buffer): Promise<void> {
    const dir = join(this.root, serial);
    await mkdirDurable(dir);
    try {
      await writeFileDurable(join(dir, `${clipId}.json`), sidecar);
    } catch (err) {
      throw this.#classify(err, `cannot write the sidecar of ${serial}/${clipId} in ${this.root}`);
    }
  }

  /**
   * The vault takes a file: a probe file created, written, fsynced and removed in
   * PATH (made first, as put() would). Its name starts with a dot, like our temporary
   * files, so nothing that lists the vault takes it for a camera.
   */
  async probe(signal?: AbortSignal): Promise<void> {
    const probe = join(this.root, `.dockside-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      signal?.throwIfAborted();
      await mkdirDurable(this.root);
      const fh = await open(probe, 'wx', 0o600);
      try {
        await fh.write(PROBE_BYTES);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await unlink(probe);
    } catch (err) {
      await rm(probe, { force: true }).catch(() => undefined);
      throw this.#classify(err, `the vault ${this.root} cannot be written`);
    }
  }

  /** A clone or plain copy when unlimited; a throttled stream while a bandwidth limit is in force. */
  async #copy(from: string, to: string, opts: PutOptions): Promise<void> {
    if (!this.#limit || this.#limit.current().rate === null) {
      await copyFile(from, to, constants.COPYFILE_FICLONE);
      opts.onProgress?.((await stat(to)).size);
      return;
    }
    const count = progressCounter(opts.onProgress);
    await pipeline(createReadStream(from), this.#limit.throttle(opts.signal), count, createWriteStream(to), { signal: opts.signal });
  }

  /** What a file-system error means for the queue: full, refused for good, or worth a retry. */
  #classify(err: unknown, what: string): DockError {
    const code = (err as NodeJS.ErrnoException).code;
    const details = { root: this.root, errno: code };
    if (code === 'ENOSPC' || code === 'EDQUOT') return new DockError('SINK_FULL', `the vault ${this.root} is full; free space or add storage. Nothing is lost: the clip stays spooled and on the camera`, details, { cause: err });
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOTDIR') {
      return new DockError('SINK_REFUSED', `${what}: ${code} (${(err as Error).message}). Fix the vault path or its permissions, then run \`dockside queue retry --all\``, details, { cause: err });
    }
    return toDockError(err, 'SINK_WRITE', what, details);
  }

  async close(): Promise<void> {}

  #receipt(location: string, sha256: string, bytes: number, existed: boolean): Receipt {
    return { location, sha256, bytes, existed, receipt: `dir:sha256:${sha256}` };
  }
}
