/**
 * A simulated camera's flash storage: a directory that holds everything a real
 * camera keeps across power cycles, so that a dock crash, a re-dock or a new
 * simulator process sees exactly the same camera.
 *
 *   camera.json             identity and persistent settings (written atomically)
 *   device.key.pem          Ed25519 device key (PKCS#8), device.pub.pem (SPKI)
 *   clips/<id>.<mp4|bin>    clip bytes
 *   manifests/<id>.json     canonical manifest bytes; manifests/<id>.sig the raw signature
 *   released/<id>.json      release marks: sha256, receipt, time (the clip bytes are freed)
 *   log.jsonl               the camera log, one JSON object a line, fsynced per entry
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { closeSync, existsSync, fdatasync, mkdirSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { fsyncDir, fsyncDirSync, writeFileDurable, writeFileDurableSync } from '../durableFs.js';
import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DockError } from '../errors.js';
import { GENESIS_CHAIN, parseManifest, type Manifest } from '../custody/manifest.js';
import { spkiToRawEd25519 } from '../protocol/auth.js';

export interface CameraIdentity {
  serial: string;
  model: string;
  vendor: string;
  hardware: string;
  firmware: string;
  officerId: string;
  seed: number;
  createdMs: number;
  clockOffsetMs: number; // camera clock minus true UTC when the offset was last set
  clockSetAtMs: number; // true UTC when the offset was set (drift accrues from here)
  driftPpm: number;
  batteryPct: number; // at the last undock
  logSeq: number;
  lastSeq: number; // seq of the last clip recorded
  lastChain: string; // chain value of the last clip recorded (hex)
  lastEndMs: number; // end of the last clip recorded (UTC ms); the next recording starts after it
  planted: { corrupt: string[]; tamper: string[]; gap: string[] }; // clip ids, for tests and humans
}

/** What a new camera is made from; the rest of CameraIdentity starts empty. */
export type NewCameraIdentity = Omit<CameraIdentity, 'logSeq' | 'planted' | 'lastSeq' | 'lastChain' | 'lastEndMs'>;

export interface StoredClip {
  manifest: Manifest;
  manifestBytes: Buffer;
  signature: Buffer;
  path: string;
}

export interface ReleaseMark {
  clipId: string;
  sha256: string;
  receipt: string;
  timeMs: number;
  size: number;
}

export interface LogRecord {
  seq: number;
  timeMs: number;
  level: number; // 10 debug, 20 info, 30 warn, 40 error
  message: string;
}

/** How far ahead the camera reads a clip for a pull (see read()). */
const READ_AHEAD_BYTES = 1024 * 1024;
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** An Ed25519 private key whose 32-byte seed is SHA-256 of `label` (simulator only). */
export function deriveEd25519Key(label: string): KeyObject {
  const seed = createHash('sha256').update(label).digest();
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

export class Flash {
  readonly dir: string;
  #identity: CameraIdentity;
  readonly #key: KeyObject;
  readonly #publicKeyRaw: Buffer;
  #clips = new Map<string, StoredClip>();
  #released = new Map<string, ReleaseMark>();
  readonly #releasing = new Map<string, Promise<ReleaseMark>>();
  #handles = new Map<string, Promise<FileHandle>>();
  readonly #readAhead = new Map<string, { start: number; length: number; bytes: Promise<Buffer> }[]>();
  #logFd: number | undefined;
  #logSync: Promise<void> | undefined;
  #logDirty = false;

  private constructor(dir: string, identity: CameraIdentity, key: KeyObject) {
    this.dir = dir;
    this.#identity = identity;
    this.#key = key;
    this.#publicKeyRaw = spkiToRawEd25519(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  }

  static exists(dir: string): boolean {
    return existsSync(join(dir, 'camera.json'));
  }

  /** Formats a new flash. */
  static create(dir: string, identity: NewCameraIdentity): Flash {
    if (Flash.exists(dir)) throw new DockError('SIM_BAD_STATE', `${dir} already holds a camera; open it instead`, { dir });
    for (const sub of ['', 'clips', 'manifests', 'released']) mkdirSync(join(dir, sub), { recursive: true });
    // The device key follows from the seed and serial, so a fleet is reproducible byte for byte.
    const privateKey = deriveEd25519Key(`device-key\0${identity.seed}\0${identity.serial}`);
    const publicKey = createPublicKey(privateKey);
    writeFileDurableSync(join(dir, 'device.key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    writeFileDurableSync(join(dir, 'device.pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const full: CameraIdentity = { ...identity, logSeq: 0, lastSeq: 0, lastChain: GENESIS_CHAIN, lastEndMs: 0, planted: { corrupt: [], tamper: [], gap: [] } };
    writeFileDurableSync(join(dir, 'camera.json'), JSON.stringify(full, null, 2));
    const flash = new Flash(dir, full, privateKey);
    flash.appendLog(20, `flash formatted: ${identity.model} ${identity.serial} firmware ${identity.firmware}`);
    return flash;
  }

  static open(dir: string): Flash {
    let identity: CameraIdentity;
    try {
      identity = JSON.parse(readFileSync(join(dir, 'camera.json'), 'utf8')) as CameraIdentity;
    } catch (err) {
      throw new DockError('SIM_BAD_STATE', `cannot read simulated camera at ${dir}: ${(err as Error).message}`, { dir }, { cause: err });
    }
    const key = createPrivateKey(readFileSync(join(dir, 'device.key.pem')));
    const flash = new Flash(dir, identity, key);
    flash.#load();
    return flash;
  }

  get identity(): Readonly<CameraIdentity> {
    return this.#identity;
  }

  get privateKey(): KeyObject {
    return this.#key;
  }

  /** Raw 32-byte Ed25519 public key: what a dock enrolls. */
  get publicKeyRaw(): Buffer {
    return this.#publicKeyRaw;
  }

  get publicKeyPem(): string {
    return readFileSync(join(this.dir, 'device.pub.pem'), 'utf8');
  }

  updateIdentity(patch: Partial<CameraIdentity>): void {
    this.#identity = { ...this.#identity, ...patch };
    writeFileDurableSync(join(this.dir, 'camera.json'), JSON.stringify(this.#identity, null, 2));
  }

  /** Clips still held (not released), by seq ascending. */
  clips(): StoredClip[] {
    return [...this.#clips.values()].sort((a, b) => a.manifest.seq - b.manifest.seq);
  }

  clip(id: string): StoredClip | undefined {
    return this.#clips.get(id);
  }

  releaseMark(id: string): ReleaseMark | undefined {
    return this.#released.get(id);
  }

  releaseMarks(): ReleaseMark[] {
    return [...this.#released.values()];
  }

  clipPath(id: string, container: 'mp4' | 'bin'): string {
    return join(this.dir, 'clips', `${id}.${container}`);
  }

  /** Stores a recorded clip's manifest and signature (the clip bytes are already at clipPath). */
  addClip(manifestBytes: Buffer, signature: Buffer): StoredClip {
    const manifest = JSON.parse(manifestBytes.toString('latin1')) as Manifest;
    writeFileDurableSync(join(this.dir, 'manifests', `${manifest.clipId}.sig`), signature);
    writeFileDurableSync(join(this.dir, 'manifests', `${manifest.clipId}.json`), manifestBytes);
    const stored: StoredClip = { manifest, manifestBytes, signature, path: this.clipPath(manifest.clipId, manifest.container) };
    this.#clips.set(manifest.clipId, stored);
    return stored;
  }

  /** Deletes a clip without a release mark (the `gap` fault: a clip vanished from flash). */
  eraseClip(id: string): void {
    const c = this.#clips.get(id);
    if (!c) return;
    this.#clips.delete(id);
    this.#readAhead.delete(id);
    for (const p of [c.path, join(this.dir, 'manifests', `${id}.json`), join(this.dir, 'manifests', `${id}.sig`)]) if (existsSync(p)) unlinkSync(p);
    fsyncDirSync(join(this.dir, 'clips'));
    fsyncDirSync(join(this.dir, 'manifests'));
  }

  /**
   * Reads [offset, offset+length) of a clip (fewer bytes at its end). A pull asks for
   * consecutive 64 KiB ranges, and each file read costs the event loop the simulated
   * cameras share with the dock ~40 us to hand to the thread pool whatever its size,
   * so the camera reads ahead in READ_AHEAD_BYTES blocks and serves READs from the
   * last two blocks (a resent READ of the block before still hits). A READ gets a view
   * of the block, not a copy (the 64 KiB copies were GC pressure): nothing writes to it;
   * the link's bit-flip fault copies before it flips.
   */
  async read(id: string, offset: number, length: number): Promise<Buffer> {
    let h = this.#handles.get(id);
    if (!h) {
      const c = this.#clips.get(id);
      if (!c) throw new DockError('SIM_BAD_STATE', `no clip ${id}`);
      h = open(c.path, 'r');
      this.#handles.set(id, h);
    }
    let blocks = this.#readAhead.get(id);
    if (!blocks) this.#readAhead.set(id, (blocks = []));
    let block = blocks.find((b) => b.start <= offset && offset + length <= b.start + b.length);
    if (!block) {
      const size = Math.max(length, READ_AHEAD_BYTES);
      const fh = h;
      block = {
        start: offset,
        length: size,
        bytes: (async () => {
          const buf = Buffer.allocUnsafe(size);
          const { bytesRead } = await (await fh).read(buf, 0, size, offset);
          return buf.subarray(0, bytesRead);
        })(),
      };
      blocks.unshift(block);
      blocks.length = Math.min(blocks.length, 2);
      const [list, added] = [blocks, block];
      added.bytes.catch(() => {
        const i = list.indexOf(added);
        if (i >= 0) list.splice(i, 1); // a failed read is not kept: the next READ tries again
      });
    }
    const bytes = await block.bytes;
    const from = offset - block.start;
    return bytes.subarray(from, Math.min(from + length, bytes.length));
  }

  /** Writes the durable release mark first, then frees the bytes. */
  async release(id: string, sha256: string, receipt: string, timeMs: number): Promise<ReleaseMark> {
    // A second RELEASE of the same clip while the first is still writing shares its outcome.
    const pending = this.#releasing.get(id);
    if (pending) return pending;
    const p = this.#release(id, sha256, receipt, timeMs).finally(() => this.#releasing.delete(id));
    this.#releasing.set(id, p);
    return p;
  }

  async #release(id: string, sha256: string, receipt: string, timeMs: number): Promise<ReleaseMark> {
    const c = this.#clips.get(id);
    if (!c) throw new DockError('SIM_BAD_STATE', `no clip ${id}`);
    const mark: ReleaseMark = { clipId: id, sha256, receipt, timeMs, size: c.manifest.size };
    // Asynchronous on purpose: the simulated cameras share the dock's event loop, and a
    // synchronous unlink of a large clip plus two fsyncs blocked every bay (7% of the main
    // thread of an 8-camera ingest). The order is the same: mark durable, then free.
    await writeFileDurable(join(this.dir, 'released', `${id}.json`), JSON.stringify(mark));
    this.#released.set(id, mark);
    this.#clips.delete(id);
    const h = this.#handles.get(id);
    this.#handles.delete(id);
    this.#readAhead.delete(id);
    if (h) await (await h).close();
    await unlink(c.path);
    await fsyncDir(join(this.dir, 'clips'));
    return mark;
  }

  appendLog(level: number, message: string, timeMs = Date.now()): LogRecord {
    const seq = this.#identity.logSeq + 1;
    this.#identity.logSeq = seq;
    const rec: LogRecord = { seq, timeMs, level, message };
    if (this.#logFd === undefined) {
      const path = join(this.dir, 'log.jsonl');
      // A power cut can leave a torn last line: end it, so this entry starts a line of its own.
      const torn = existsSync(path) && !readFileSync(path).subarray(-1).equals(Buffer.from('\n')) && statSync(path).size > 0;
      this.#logFd = openSync(path, 'a', 0o644);
      if (torn) writeSync(this.#logFd, '\n');
    }
    writeSync(this.#logFd, `${JSON.stringify(rec)}\n`);
    this.#syncLogSoon(this.#logFd);
    return rec;
  }

  /**
   * The log line is written at once (a killed process keeps it: it is in the page cache)
   * and fdatasynced in the background, coalescing lines that arrive meanwhile. A
   * synchronous fsync per line blocked the event loop the simulated cameras share with
   * the dock (3% of an 8-camera ingest's main thread). close() waits for the last sync.
   */
  #syncLogSoon(fd: number): void {
    this.#logDirty = true;
    if (this.#logSync) return;
    this.#logSync = (async () => {
      while (this.#logDirty) {
        this.#logDirty = false;
        await new Promise<void>((done) => fdatasync(fd, () => done()));
      }
    })().finally(() => {
      this.#logSync = undefined;
    });
  }

  async readLog(fromSeq: number, limit: number): Promise<LogRecord[]> {
    const path = join(this.dir, 'log.jsonl');
    if (!existsSync(path)) return [];
    const lines = (await readFile(path, 'utf8')).split('\n').filter(Boolean);
    const out: LogRecord[] = [];
    for (const line of lines) {
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
      } catch {
        continue; // a torn last line after a power cut
      }
      if (rec.seq >= fromSeq) out.push(rec);
      if (out.length >= limit) break;
    }
    return out;
  }

  async close(): Promise<void> {
    for (const h of this.#handles.values()) await (await h).close().catch(() => undefined);
    this.#handles.clear();
    this.#readAhead.clear();
    await this.#logSync;
    if (this.#logFd !== undefined) closeSync(this.#logFd);
    this.#logFd = undefined;
    // logSeq advances with every entry; persist it once here rather than per entry.
    writeFileDurableSync(join(this.dir, 'camera.json'), JSON.stringify(this.#identity, null, 2));
  }

  #load(): void {
    for (const f of readdirSync(join(this.dir, 'released'))) {
      if (!f.endsWith('.json')) continue;
      const mark = JSON.parse(readFileSync(join(this.dir, 'released', f), 'utf8')) as ReleaseMark;
      this.#released.set(mark.clipId, mark);
    }
    for (const f of readdirSync(join(this.dir, 'manifests'))) {
      if (!f.endsWith('.json')) continue;
      const id = f.slice(0, -5);
      if (this.#released.has(id)) continue;
      const manifestBytes = readFileSync(join(this.dir, 'manifests', f));
      const signature = readFileSync(join(this.dir, 'manifests', `${id}.sig`));
      let manifest: Manifest;
      try {
        manifest = parseManifest(manifestBytes);
      } catch {
        manifest = JSON.parse(manifestBytes.toString('latin1')) as Manifest; // a tampered manifest stays as it is
      }
      const path = this.clipPath(id, manifest.container);
      if (existsSync(path)) this.#clips.set(id, { manifest, manifestBytes, signature, path });
    }
    // A power cut between a release mark and the free leaves the bytes: finish the free.
    for (const mark of this.#released.values()) {
      for (const ext of ['mp4', 'bin'] as const) {
        const p = this.clipPath(mark.clipId, ext);
        if (existsSync(p)) unlinkSync(p);
      }
    }
    // The log's last seq, in case the process died before close() persisted it.
    const logPath = join(this.dir, 'log.jsonl');
    if (existsSync(logPath)) {
      const lines = readFileSync(logPath, 'utf8').split('\n').filter(Boolean);
      for (let i = lines.length - 1; i >= 0; i--) {
        try {
          this.#identity.logSeq = Math.max(this.#identity.logSeq, (JSON.parse(lines[i]!) as LogRecord).seq);
          break;
        } catch {
          continue;
        }
      }
    }
  }
}
