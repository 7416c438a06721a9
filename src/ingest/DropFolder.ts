/**
 * Drop-folder import: clips a technician copies into a folder, or a camera that
 * mounts as mass storage, enter custody by the same path as a pulled clip.
 *
 * Layout (under `dir`; a folder one level down is looked at too, deeper ones are not):
 *
 *   flat         <clipId>.<mp4|bin>         the clip bytes
 *                <clipId>.manifest.json     the manifest, byte for byte as the camera signed it
 *                <clipId>.manifest.sig      the signature: 64 raw bytes, or their base64 text
 *   camera       <camera>/clips/<clipId>.<mp4|bin>     a camera's flash as src/sim/Flash.ts
 *                <camera>/manifests/<clipId>.json      lays it out: a folder holding manifests/
 *                <camera>/manifests/<clipId>.sig       is a camera; its other files are left alone
 *   rejected/    what was refused, at the same relative path, with <file>.reason.txt
 *   imported/<serial>/   what is stored, in the flat names (never deleted here: retention removes it)
 *
 * Ignored: rejected/ and imported/, names starting with one '.', ending in .part, ~,
 * .crdownload or .tmp, and deeper folders. Nothing dropped is ever deleted: it is
 * imported (and moved to imported/ once stored) or moved to rejected/.
 *
 *   watch event / rescan ─► walk ─► sets of (clip, manifest, signature) ─► stable for settleMs?
 *     ─► manifest parses, camera enrolled, signature good with its enrolled key, size as signed?
 *          no ─► rejected/ + reason + ledger drop_rejected
 *     ─► ledger listed ─► row pulling (manifest saved) ─► copy into spool .part (fsync, offset)
 *     ─► rename ─► ledger pulled ─► spooled ─► pipeline.kick ─► verified | quarantined ─► queue
 *     ─► stored (onStored) ─► files to imported/<serial>/
 *
 * The signature is checked here, before anything is recorded, because the signed
 * manifest is all the authentication a dropped file has (a docked camera proves its
 * key with AUTH first): a forged manifest must not create a clip row, or it would
 * block the genuine clip of that id. The pipeline then checks everything again.
 *
 * Completeness: a set waits until every file's size and mtime have held for
 * settleMs and the clip has the signed size. A set still missing a file, or a clip
 * shorter than signed, is rejected only after its folder has seen no write for
 * orphanMs (a long copy writes clips/ before manifests/). chokidar only wakes the
 * walk: our own stability check is per set and against the signed size, which
 * awaitWriteFinish (per file, size only) cannot give; ignoreInitial, because the
 * walk at start is the same code path as every other; no polling by default
 * (usePolling for network shares, which send no events). A file system mounted
 * over a watched folder sends no events either: rescanMs finds it, or call rescan().
 *
 * Crash safety: the store is the truth. Each step writes its ledger line and then
 * commits, as a pull does; the dropped files stay in place until the clip is
 * stored, so a restart finds the set again and resumes its row (listed/pulling, ours
 * by its `listed` line's source) from the durable offset. A clip the store already
 * has with the same manifest is never imported twice.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { constants, createReadStream, type Stats } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, readlink, realpath, rename, stat, symlink, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Ledger } from '../custody/Ledger.js';
import { parseManifest, verifyManifestSignature, type Manifest } from '../custody/manifest.js';
import { fsyncDir, mkdirDurable, writeFileDurable } from '../durableFs.js';
import { DockError, toDockError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { TRIGGERS } from '../protocol/messages.js';
import type { ClipRow, Store } from '../queue/Store.js';
import type { Pipeline } from './Pipeline.js';
import type { PartFile, Spool } from './Spool.js';

export interface DropFolderOptions {
  dir: string; // the watched folder; created if missing
  store: Store;
  ledger: Ledger;
  spool: Spool;
  pipeline: Pipeline;
  log: Logger;
  quarantineDir?: string; // where rejected drops are moved; default <dir>/rejected
  settleMs?: number; // every file of a set unchanged (size, mtime) this long before it is read; default 2000
  orphanMs?: number; // an incomplete set is rejected after its folder saw no write this long; default 120000
  rescanMs?: number; // full walk as a fallback for missed events (mounts, overflow); 0: none; default 60000
  usePolling?: boolean; // chokidar polling, for network file systems; default false
  /** A docked camera's clips are pulled by its bay: the drop folder leaves that serial's drops until it undocks. */
  docked?: (serial: string) => boolean;
}

export const DROP_DEFAULTS = { settleMs: 2000, orphanMs: 120_000, rescanMs: 60_000, usePolling: false } as const;

export interface DropFolderEvents {
  imported: [e: { serial: string; clipId: string; path: string }];
  rejected: [e: { path: string; reason: string; code: ErrorCode; quarantined: boolean }];
  archived: [e: { serial: string; clipId: string; path: string }];
  idle: [];
}

export const DROP_SOURCE = 'drop-folder';
const MAX_NAME = 128; // characters; a clip id is at most 64, plus ".manifest.json"
const MAX_MANIFEST_BYTES = 64 * 1024;
const MAX_SIGNATURE_BYTES = 1024;
const COPY_CHUNK = 1024 * 1024;
const RETRY_MS = 5000; // a set whose import failed for a passing reason (spool full, I/O) is tried again after this
const MAX_ROOT_DEPTH = 1; // dir itself and the folders directly in it
const IGNORED = /^\.(?!\.)|\.part$|~$|\.crdownload$|\.tmp$/; // a name starting '..' is not hidden: it is refused by checkDropName
const ROLE_LIKE = /\.(mp4|bin|json|sig)$/;

/**
 * Throws PROTO_BAD_NAME for a name that must never be used as a path: a parent
 * reference, a separator, a control character (NUL above all), or absurd length.
 * The same code as an unsafe clip id a camera sends over the wire.
 */
export function checkDropName(name: string): void {
  const problem =
    name.length === 0 ? 'is empty'
    : name.length > MAX_NAME || Buffer.byteLength(name) > 255 ? `is ${name.length} characters long (at most ${MAX_NAME})`
    : [...name].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f) ? 'holds a control character'
    : /[/\\]/.test(name) ? 'holds a path separator'
    : name.includes('..') ? "holds '..'"
    : undefined;
  if (problem) throw new DockError('PROTO_BAD_NAME', `dropped file name ${JSON.stringify(name.slice(0, 80))} ${problem}; it is not followed or imported. Rename it to <clipId>.<mp4|bin> and drop it again`, { name: name.slice(0, 200) });
}

/** A name safe to create under rejected/ for one that failed checkDropName. */
function safeName(name: string): string {
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 12);
  return `unsafe-name-${digest}-${name.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 60)}`;
}

type Role = 'clip' | 'manifest' | 'signature';
type Container = 'mp4' | 'bin';

function flatRole(name: string): { role: Role; id: string; ext?: Container } | undefined {
  let m = /^(.+)\.manifest\.json$/.exec(name);
  if (m) return { role: 'manifest', id: m[1]! };
  m = /^(.+)\.manifest\.sig$/.exec(name);
  if (m) return { role: 'signature', id: m[1]! };
  m = /^(.+)\.(mp4|bin)$/.exec(name);
  if (m) return { role: 'clip', id: m[1]!, ext: m[2] as Container };
  return undefined;
}

function cameraRole(sub: 'clips' | 'manifests', name: string): { role: Role; id: string; ext?: Container } | undefined {
  if (sub === 'clips') {
    const m = /^(.+)\.(mp4|bin)$/.exec(name);
    return m ? { role: 'clip', id: m[1]!, ext: m[2] as Container } : undefined;
  }
  const m = /^(.+)\.(json|sig)$/.exec(name);
  return m ? { role: m[2] === 'json' ? 'manifest' : 'signature', id: m[1]! } : undefined;
}

/** The files of one clip as dropped. Invariant: every path is inside the drop folder and was a regular file when walked. */
interface DropSet {
  key: string;
  layout: 'flat' | 'camera';
  root: string; // the folder whose writes keep an incomplete set waiting: the flat folder, or the camera folder
  id: string; // the clip id the file names give
  clip?: string;
  ext?: Container;
  extraClips: string[]; // <id>.mp4 and <id>.bin both: refused, never guessed
  manifest?: string;
  signature?: string;
}

/** Something in the folder that is refused by its name or type alone. */
interface Stray {
  path: string;
  error: DockError;
}

type Decision =
  | { kind: 'wait'; dueMs: number }
  | { kind: 'leave' }
  | { kind: 'reject'; error: DockError; serial?: string; clipId?: string }
  | { kind: 'archive'; serial: string; clipId: string }
  | { kind: 'quarantined'; row: ClipRow }
  | { kind: 'import'; m: Manifest; bytes: Buffer; signature: Buffer; row: ClipRow | undefined };

function members(s: DropSet): string[] {
  // Manifest last: it names the set, so a move cut short leaves it, and the rest is found again.
  return [s.clip, ...s.extraClips, s.signature, s.manifest].filter((p): p is string => p !== undefined);
}

/** Reads a small file without following a symlink; undefined when it is larger than `max`. */
async function readSmall(path: string, max: number): Promise<Buffer | undefined> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const { size } = await fh.stat();
    if (size > max) return undefined;
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** 64 raw bytes, or base64 text of 64 bytes (with or without a trailing newline). */
export function parseSignatureFile(buf: Buffer): Buffer | undefined {
  if (buf.length === 64) return buf;
  const text = buf.toString('latin1').trim();
  if (!/^[A-Za-z0-9+/]{86}==$/.test(text)) return undefined;
  const sig = Buffer.from(text, 'base64');
  return sig.length === 64 ? sig : undefined;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: COPY_CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function exists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined;
}

/** `path`, or `path.1`, `path.2`, ... whichever is free: a move never replaces a file. */
async function freeName(path: string): Promise<string> {
  if (!(await exists(path))) return path;
  for (let n = 1; ; n++) if (!(await exists(`${path}.${n}`))) return `${path}.${n}`;
}

class Closed extends Error {}
/** A dropped file was replaced after it was looked at: it is looked at again, not moved. */
class Changed extends Error {}

function statSig(st: Stats): string {
  return `${st.size}:${st.mtimeMs}:${st.ino}`;
}

function duration(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

export class DropFolder extends EventEmitter<DropFolderEvents> {
  readonly dir: string;
  readonly rejectedDir: string;
  readonly importedDir: string;
  readonly #d: DropFolderOptions;
  readonly #log: Logger;
  readonly #settleMs: number;
  readonly #orphanMs: number;
  readonly #rescanMs: number;
  #root = ''; // dir with symlinks resolved, set by start()
  #watcher: FSWatcher | undefined;
  #rescanTimer: NodeJS.Timeout | undefined;
  #wakeTimer: NodeJS.Timeout | undefined;
  #wakeAt = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #scanNo = 0;
  /** Last (size, mtime, inode) seen of each file, and since when: the stability check. */
  readonly #seen = new Map<string, { sig: string; sinceMs: number; scan: number }>();
  /** Last write event under each folder (add, change, addDir): keeps incomplete sets there waiting. */
  readonly #activity = new Map<string, number>();
  /** Sets and strays that will be acted on once due: while any is, the folder is busy. */
  readonly #pending = new Map<string, number>();
  /** Moves that failed (a read-only mount): not retried, nor recorded again, until the files change. */
  readonly #unmovable = new Set<string>();
  readonly #importing = new Set<string>();
  readonly #idleWaiters: (() => void)[] = [];
  readonly #onQuarantined = (): void => this.rescan();

  constructor(options: DropFolderOptions) {
    super();
    for (const k of ['settleMs', 'orphanMs', 'rescanMs'] as const) {
      const v = options[k];
      if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw new DockError('CONFIG_INVALID', `drop folder ${k} must be a number of ms >= 0, got ${String(v)}`, { option: k });
    }
    if (!options.dir) throw new DockError('CONFIG_INVALID', 'drop folder dir is required', { option: 'dir' });
    this.#d = options;
    this.#log = options.log;
    this.dir = resolve(options.dir);
    this.rejectedDir = resolve(options.quarantineDir ?? join(this.dir, 'rejected'));
    this.importedDir = join(this.dir, 'imported');
    this.#settleMs = options.settleMs ?? DROP_DEFAULTS.settleMs;
    this.#orphanMs = options.orphanMs ?? DROP_DEFAULTS.orphanMs;
    this.#rescanMs = options.rescanMs ?? DROP_DEFAULTS.rescanMs;
  }

  /** Watches the folder and walks it once (what is already there is imported like anything new); see whenIdle(). */
  async start(): Promise<void> {
    if (this.#watcher || this.#closed) return;
    await mkdir(this.dir, { recursive: true });
    this.#root = await realpath(this.dir);
    const debounceMs = Math.min(250, this.#settleMs);
    const watcher = watch(this.#root, {
      ignoreInitial: true,
      followSymlinks: false,
      depth: MAX_ROOT_DEPTH + 1, // <camera>/manifests/<file>
      usePolling: this.#d.usePolling ?? DROP_DEFAULTS.usePolling,
      awaitWriteFinish: false,
      ignored: (p: string) => this.#ignoredPath(p),
    });
    this.#watcher = watcher;
    watcher.on('all', (event, path) => {
      if (event === 'add' || event === 'change' || event === 'addDir') this.#noteWrite(path);
      this.#wake(debounceMs);
    });
    watcher.on('error', (err) => {
      this.#log.warn({ dir: this.dir, err: err instanceof Error ? err.message : String(err) }, 'drop folder watcher error; walking the folder again');
      this.#wake(debounceMs);
    });
    await new Promise<void>((r) => watcher.once('ready', () => r()));
    this.#d.pipeline.on('quarantined', this.#onQuarantined);
    if (this.#rescanMs > 0) {
      this.#rescanTimer = setInterval(() => this.#runScan(), this.#rescanMs);
      this.#rescanTimer.unref();
    }
    this.#log.info({ dir: this.dir, settleMs: this.#settleMs, orphanMs: this.#orphanMs }, 'watching the drop folder');
    this.#runScan();
    await this.#running;
  }

  /** Call on the upload queue's 'stored': moves that clip's dropped files to imported/<serial>/. */
  onStored(_serial: string, _clipId: string): void {
    this.rescan();
  }

  /** Walks the folder now (a mount that sent no event, a technician's request). */
  rescan(): void {
    this.#wake(0);
  }

  /** The drop folder is copying this clip into the spool now: a bay must not pull it at the same time. */
  importing(serial: string, clipId: string): boolean {
    return this.#importing.has(`${serial}/${clipId}`);
  }

  /** A walk is due or running, or some dropped files wait to settle, to be completed, or for spool space. */
  get busy(): boolean {
    return this.#running !== undefined || this.#wakeTimer !== undefined || this.#pending.size > 0;
  }

  /** Resolves when nothing in the folder waits for the drop folder (imports done, rejects moved). */
  whenIdle(): Promise<void> {
    if (!this.busy || this.#closed) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** Stops watching; an import in progress stops at its last durable offset and resumes at the next start. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#rescanTimer);
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#d.pipeline.off('quarantined', this.#onQuarantined);
    await this.#watcher?.close();
    await this.#running;
    this.#pending.clear();
    for (const r of this.#idleWaiters.splice(0)) r();
  }

  // ── scheduling ──────────────────────────────────────────────────────────────

  #ignoredPath(p: string): boolean {
    if (p === this.#root) return false;
    if (IGNORED.test(basename(p))) return true;
    for (const own of [this.rejectedDir, this.importedDir, join(this.#root, 'rejected'), join(this.#root, 'imported')]) if (p === own || p.startsWith(own + sep)) return true;
    return false;
  }

  #noteWrite(path: string): void {
    const now = Date.now();
    for (let d = dirname(path); d.startsWith(this.#root); d = dirname(d)) {
      this.#activity.set(d, now);
      if (d === this.#root) break;
    }
  }

  /** A walk in `delayMs`, unless one is due sooner. */
  #wake(delayMs: number): void {
    if (this.#closed) return;
    const at = Date.now() + delayMs;
    if (this.#wakeTimer && this.#wakeAt <= at) return;
    clearTimeout(this.#wakeTimer);
    this.#wakeAt = at;
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = undefined;
      this.#runScan();
    }, delayMs);
  }

  #runScan(): void {
    if (this.#closed || !this.#root) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#scan();
      } while (this.#again && !this.#closed);
    })()
      .catch((err: unknown) => {
        this.#log.error({ dir: this.dir, err: (err as Error).message }, 'drop folder walk failed; trying again');
        this.#wake(RETRY_MS);
      })
      .finally(() => {
        this.#running = undefined;
        if (!this.busy) {
          for (const r of this.#idleWaiters.splice(0)) r();
          this.emit('idle');
        }
      });
  }

  // ── one walk ────────────────────────────────────────────────────────────────

  async #scan(): Promise<void> {
    const scan = ++this.#scanNo;
    const { sets, strays } = await this.#walk();
    const now = Date.now();
    this.#pending.clear();
    const imports: { set: DropSet; d: Extract<Decision, { kind: 'import' }> }[] = [];
    for (const s of strays) {
      if (this.#closed) return;
      const st = await lstat(s.path).catch(() => undefined);
      if (!st) continue;
      const since = this.#observe(s.path, st, now, scan);
      if (now - since < this.#settleMs) this.#pending.set(s.path, since + this.#settleMs);
      else {
        try {
          await this.#reject([s.path], s.error, {});
        } catch (err) {
          this.#log.error({ path: s.path, err: (err as Error).message, retryInMs: RETRY_MS }, 'could not record a rejected drop; tried again');
          this.#pending.set(s.path, Date.now() + RETRY_MS);
        }
      }
    }
    for (const set of sets) {
      if (this.#closed) return;
      try {
        const d = await this.#evaluate(set, now, scan);
        if (d.kind === 'wait') this.#pending.set(set.key, d.dueMs);
        else if (d.kind === 'reject') await this.#reject(members(set), d.error, { serial: d.serial, clipId: d.clipId });
        else if (d.kind === 'archive') await this.#archive(set, d.serial, d.clipId);
        else if (d.kind === 'quarantined') await this.#returnQuarantined(set, d.row);
        else if (d.kind === 'import') imports.push({ set, d });
      } catch (err) {
        this.#retryLater(set, err);
      }
    }
    // In seq order per camera, so the pipeline finds each clip's predecessor already in hand.
    imports.sort((a, b) => (a.d.m.serial < b.d.m.serial ? -1 : a.d.m.serial > b.d.m.serial ? 1 : a.d.m.seq - b.d.m.seq));
    for (const { set, d } of imports) {
      if (this.#closed) return;
      try {
        await this.#import(set, d.m, d.bytes, d.signature, d.row);
      } catch (err) {
        if (err instanceof Closed) return;
        this.#retryLater(set, err);
      }
    }
    for (const [path, o] of this.#seen) if (o.scan !== scan) this.#seen.delete(path);
    for (const [folder, ms] of this.#activity) if (now - ms > this.#orphanMs) this.#activity.delete(folder);
    const next = Math.min(...this.#pending.values());
    if (Number.isFinite(next)) this.#wake(Math.max(0, next - Date.now()));
  }

  #retryLater(set: DropSet, err: unknown): void {
    const e = toDockError(err, 'INTERNAL', `drop import of ${set.clip ?? set.manifest ?? set.id} failed`);
    const level = e.code === 'INGEST_SPOOL_FULL' ? 'warn' : 'error';
    this.#log[level]({ path: set.clip ?? set.manifest, code: e.code, err: e.message, retryInMs: RETRY_MS }, 'drop import paused; the files stay and are tried again');
    this.#pending.set(set.key, Date.now() + RETRY_MS);
  }

  #observe(path: string, st: Stats, now: number, scan: number): number {
    const sig = statSig(st);
    const o = this.#seen.get(path);
    if (o && o.sig === sig) {
      o.scan = scan;
      return o.sinceMs;
    }
    this.#seen.set(path, { sig, sinceMs: now, scan });
    return now;
  }

  async #walk(): Promise<{ sets: DropSet[]; strays: Stray[] }> {
    const sets = new Map<string, DropSet>();
    const strays: Stray[] = [];
    const add = (layout: DropSet['layout'], root: string, r: { role: Role; id: string; ext?: Container }, path: string): void => {
      const key = `${layout}\0${root}\0${r.id}`;
      let s = sets.get(key);
      if (!s) sets.set(key, (s = { key, layout, root, id: r.id, extraClips: [] }));
      if (r.role === 'clip') {
        if (s.clip) s.extraClips.push(path);
        else [s.clip, s.ext] = [path, r.ext];
      } else s[r.role] = path;
    };
    /** Refused by name or type alone: a stray. Undefined: go on with the entry. */
    const refuse = (path: string, name: string, what: 'link' | 'other' | undefined): DockError | undefined => {
      try {
        checkDropName(name);
      } catch (err) {
        return err as DockError;
      }
      if (what === 'link') return new DockError('PROTO_BAD_NAME', `${path} is a symbolic link; links are never followed (they could lead out of the drop folder). Drop the file itself`, { path });
      if (what === 'other') return new DockError('PROTO_BAD_NAME', `${path} is not a regular file; only clip, manifest and signature files are imported`, { path });
      return undefined;
    };
    const visit = async (folder: string, depth: number): Promise<void> => {
      const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
      if (entries.some((e) => e.name === 'manifests' && e.isDirectory())) {
        for (const sub of ['clips', 'manifests'] as const) {
          for (const e of await readdir(join(folder, sub), { withFileTypes: true }).catch(() => [])) {
            if (IGNORED.test(e.name)) continue;
            const path = join(folder, sub, e.name);
            const r = cameraRole(sub, e.name);
            if (!r) continue;
            const bad = refuse(path, e.name, e.isSymbolicLink() ? 'link' : e.isFile() ? undefined : 'other');
            if (bad) strays.push({ path, error: bad });
            else add('camera', folder, r, path);
          }
        }
        return; // a camera's own files (camera.json, keys, log, released/) are not ours to touch
      }
      for (const e of entries) {
        const path = join(folder, e.name);
        if (IGNORED.test(e.name) || this.#ignoredPath(path)) continue;
        const r = flatRole(e.name);
        const considered = e.isDirectory() || ROLE_LIKE.test(e.name);
        if (!considered) continue; // notes, thumbnails...: not ours, left alone
        const bad = refuse(path, e.name, e.isSymbolicLink() ? 'link' : e.isFile() || e.isDirectory() ? undefined : 'other');
        if (bad) strays.push({ path, error: bad });
        else if (e.isDirectory()) {
          if (depth < MAX_ROOT_DEPTH) await visit(path, depth + 1);
        } else if (r && e.isFile()) add('flat', folder, r, path);
      }
    };
    await visit(this.#root, 0);
    return { sets: [...sets.values()], strays };
  }

  // ── what to do with one set ────────────────────────────────────────────────

  async #evaluate(set: DropSet, now: number, scan: number): Promise<Decision> {
    let lastChange = 0;
    const sizes = new Map<string, number>();
    for (const f of members(set)) {
      const st = await lstat(f).catch(() => undefined);
      if (!st?.isFile()) return { kind: 'wait', dueMs: now + this.#settleMs }; // gone or replaced since the walk
      lastChange = Math.max(lastChange, this.#observe(f, st, now, scan));
      sizes.set(f, st.size);
    }
    if (now - lastChange < this.#settleMs) return { kind: 'wait', dueMs: lastChange + this.#settleMs };
    const orphanDue = Math.max(lastChange, this.#activity.get(set.root) ?? 0) + this.#orphanMs;
    const late = (error: DockError, who: { serial?: string; clipId?: string } = {}): Decision => (now < orphanDue ? { kind: 'wait', dueMs: orphanDue } : { kind: 'reject', error, ...who });
    const names = set.layout === 'flat' ? { manifest: `${set.id}.manifest.json`, signature: `${set.id}.manifest.sig` } : { manifest: `manifests/${set.id}.json`, signature: `manifests/${set.id}.sig` };
    if (set.extraClips.length > 0) return { kind: 'reject', error: new DockError('INGEST_DUPLICATE', `two clip files for clip id ${set.id} (.mp4 and .bin); refusing to guess which one the manifest signs`, { clipId: set.id }) };
    if (!set.manifest) {
      return late(new DockError('CUSTODY_BAD_MANIFEST', `no manifest: ${names.manifest} did not arrive within ${duration(this.#orphanMs)} of the last write in ${set.root}. A clip is imported only with the manifest and signature its camera made`, { clipId: set.id }));
    }
    const bytes = await readSmall(set.manifest, MAX_MANIFEST_BYTES);
    if (!bytes) return { kind: 'reject', error: new DockError('CUSTODY_BAD_MANIFEST', `${set.manifest} is larger than ${MAX_MANIFEST_BYTES} bytes: not a manifest`) };
    let m: Manifest;
    try {
      m = parseManifest(bytes);
    } catch (err) {
      const e = toDockError(err, 'CUSTODY_BAD_MANIFEST', 'manifest unreadable');
      return { kind: 'reject', error: new DockError(e.code, `${set.manifest}: ${e.message}`, { ...e.details, path: set.manifest }) };
    }
    const who = { serial: m.serial, clipId: m.clipId };
    if (m.clipId !== set.id) return { kind: 'reject', ...who, error: new DockError('CUSTODY_BAD_MANIFEST', `the file names say clip ${set.id}, its manifest says ${m.clipId}: files of different clips were put together`, who) };
    const row = this.#d.store.clip(m.serial, m.clipId);
    if (row && (row.seq !== m.seq || row.size !== m.size || (row.manifest && !row.manifest.equals(bytes)))) {
      return { kind: 'reject', ...who, error: new DockError('INGEST_DUPLICATE', `clip ${m.serial}/${m.clipId} is already recorded as seq ${row.seq}, ${row.size} bytes${row.manifest ? ' with another manifest' : ''}; this one says seq ${m.seq}, ${m.size} bytes. Clip id reused: not imported`, who) };
    }
    if (row) {
      if (row.state === 'stored' || row.state === 'released') return set.clip || set.layout === 'flat' ? { kind: 'archive', ...who } : { kind: 'leave' };
      if (row.state === 'quarantined') return set.clip || set.layout === 'flat' ? { kind: 'quarantined', row } : { kind: 'leave' };
      if (row.state !== 'listed' && row.state !== 'pulling') return { kind: 'leave' }; // in custody: waits to be stored
      if (!this.#ours(row)) return { kind: 'leave' }; // the camera's bay listed it: it is pulled from the camera
    }
    if (!set.clip) {
      if (set.layout === 'camera') return { kind: 'leave' }; // a camera keeps the manifests of clips it released
      return late(new DockError('CUSTODY_BAD_MANIFEST', `clip file missing: ${set.id}.${m.container} did not arrive within ${duration(this.#orphanMs)} of the last write in ${set.root}`, who), who);
    }
    if (set.ext !== m.container) return { kind: 'reject', ...who, error: new DockError('CUSTODY_BAD_MANIFEST', `the clip file is .${set.ext ?? '?'}, its manifest says ${m.container}`, who) };
    if (!set.signature) return late(new DockError('CUSTODY_SIGNATURE', `signature file missing: ${names.signature} did not arrive within ${duration(this.#orphanMs)} of the last write in ${set.root}`, who), who);
    const sigFile = await readSmall(set.signature, MAX_SIGNATURE_BYTES);
    const signature = sigFile && parseSignatureFile(sigFile);
    if (!signature) return { kind: 'reject', ...who, error: new DockError('CUSTODY_SIGNATURE', `${set.signature} is neither 64 raw bytes nor the base64 of 64 bytes: not an Ed25519 signature`, who) };
    const camera = this.#d.store.camera(m.serial);
    if (!camera || camera.revoked) {
      return { kind: 'reject', ...who, error: new DockError('INGEST_UNENROLLED', `camera ${m.serial} is ${camera ? 'revoked' : 'not enrolled'}; nothing of it is imported. Enroll it with \`dockside enroll ${m.serial}\` if it belongs to this agency, then move these files back into the drop folder`, who) };
    }
    if (!verifyManifestSignature(bytes, signature, camera.publicKey)) {
      return { kind: 'reject', ...who, error: new DockError('CUSTODY_SIGNATURE', `the signature of ${m.serial}/${m.clipId} does not verify over its manifest with the enrolled key of ${m.serial}: not what that camera signed`, who) };
    }
    const size = sizes.get(set.clip) ?? 0;
    if (size < m.size) return late(new DockError('CUSTODY_HASH_MISMATCH', `the clip file holds ${size} of the ${m.size} bytes its manifest signs, and nothing was written to ${set.root} for ${duration(this.#orphanMs)}: an incomplete copy`, who), who);
    if (size > m.size) return { kind: 'reject', ...who, error: new DockError('CUSTODY_HASH_MISMATCH', `the clip file holds ${size} bytes, its manifest signs ${m.size}: not the clip the camera signed (a wrong or damaged copy)`, who) };
    if (this.#d.docked?.(m.serial)) return { kind: 'leave' }; // its bay offloads it; the files are archived once stored
    return { kind: 'import', m, bytes, signature, row };
  }

  /** A row this drop folder created: its `listed` line says so (the store indexes each clip's lines). */
  #ours(row: ClipRow): boolean {
    return this.#d.store.events(row.serial, row.clipId).some((line) => {
      const e = JSON.parse(line) as { event: string; details: Record<string, unknown> };
      return e.event === 'listed' && e.details['source'] === DROP_SOURCE;
    });
  }

  // ── import: the same ledger lines and transitions as a pull (Bay.#pull) ─────

  async #import(set: DropSet, m: Manifest, bytes: Buffer, signature: Buffer, known: ClipRow | undefined): Promise<void> {
    const { store, ledger, spool } = this.#d;
    const { serial, clipId } = m;
    const path = set.clip!;
    const source = { source: DROP_SOURCE, path };
    const key = `${serial}/${clipId}`;
    this.#importing.add(key);
    try {
      let row = known;
      if (!row) {
        await spool.checkSpace(m.size);
        // The event first: a crash between the two repeats it, and never loses it.
        ledger.append('listed', { serial, clipId, details: { seq: m.seq, size: m.size, ...source } });
        store.atomically(() => {
          store.addListed({ serial, clipId, seq: m.seq, size: m.size, trigger: TRIGGERS.indexOf(m.trigger), startMs: m.startMs });
          store.setManifest(serial, clipId, bytes, signature, m.sha256, m.container);
          store.transition(serial, clipId, 'pulling', { offset: 0 });
        });
      } else if (row.state === 'listed') {
        store.atomically(() => {
          store.setManifest(serial, clipId, bytes, signature, m.sha256, m.container);
          store.transition(serial, clipId, 'pulling', { offset: 0 });
        });
      }
      row = store.clip(serial, clipId)!;
      const final = spool.clipPath(serial, clipId, row.container);
      let rxSha256: string;
      if (row.offset === row.size && (await exists(final))) {
        // A crash between the rename and the commit: the copy is complete on disk.
        await fsyncDir(dirname(final));
        rxSha256 = await sha256File(final);
      } else {
        rxSha256 = await this.#copy(path, row);
        await spool.complete(serial, clipId, row.container);
      }
      ledger.append('pulled', { serial, clipId, details: { bytes: row.size, receivedSha256: rxSha256, resumedFrom: row.offset, ...source } });
      store.transition(serial, clipId, 'spooled', { rxSha256 });
      this.#d.pipeline.kick(serial);
      this.#log.info({ serial, clipId, path, resumedFrom: row.offset || undefined }, 'dropped clip imported into the spool');
      this.emit('imported', { serial, clipId, path });
    } finally {
      this.#importing.delete(key);
    }
  }

  /** Copies the dropped clip into its spool .part from the row's durable offset; returns the hash of every byte. */
  async #copy(path: string, row: ClipRow): Promise<string> {
    const { store, spool } = this.#d;
    const { serial, clipId } = row;
    // Room for the rest of the copy beside the pulls in progress (Spool.reserve), as a pull holds.
    const reservation = await spool.reserve(row.size - row.offset);
    let src: FileHandle | undefined;
    let part: PartFile | undefined;
    try {
      src = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      part = await spool.openPart(serial, clipId, row.offset, reservation);
      const before = await src.stat();
      if (before.size !== row.size) throw new DockError('INTERNAL', `${path} changed size while it was being imported (${before.size}, signed ${row.size})`, { path });
      const every = spool.options.syncEveryBytes;
      const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(1, row.size)));
      for (let pos = row.offset; pos < row.size; ) {
        if (this.#closed) {
          store.setOffset(serial, clipId, await part.sync());
          throw new Closed();
        }
        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, row.size - pos), pos);
        if (bytesRead === 0) throw new DockError('INTERNAL', `${path} ended at ${pos} bytes while being imported; ${row.size} are signed`, { path });
        await part.write(pos, buf.subarray(0, bytesRead));
        pos += bytesRead;
        if (part.unsynced >= every) {
          await reservation.check();
          store.setOffset(serial, clipId, await part.sync());
        }
      }
      store.setOffset(serial, clipId, await part.sync());
      const after = await src.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
        // Written to while we copied: start again from the top when it has settled.
        store.setOffset(serial, clipId, 0);
        throw new DockError('INTERNAL', `${path} was written to while being imported; it is copied again once it settles`, { path });
      }
      return part.hash.digest('hex');
    } finally {
      reservation.release();
      await part?.close();
      await src?.close();
    }
  }

  // ── moving dropped files: never deleted, never overwritten ─────────────────

  /** Where a dropped file goes under rejected/: the same path relative to the drop folder, made safe. */
  #rejectTarget(path: string): string {
    const rel = relative(this.#root, path);
    const parts = rel.startsWith('..') ? [basename(path)] : rel.split(sep);
    return join(
      this.rejectedDir,
      ...parts.map((p) => {
        try {
          checkDropName(p);
          return p;
        } catch {
          return safeName(p);
        }
      }),
    );
  }

  #memo(files: string[]): string {
    return files.map((f) => `${f}\0${this.#seen.get(f)?.sig ?? ''}`).join('\0');
  }

  /** Every file is still the one that was looked at (else: looked at again, nothing recorded). */
  async #unchanged(files: string[]): Promise<boolean> {
    for (const f of files) {
      const st = await lstat(f).catch(() => undefined);
      if (!st || statSig(st) !== this.#seen.get(f)?.sig) {
        this.#changed(new Changed(`${f} changed since it was looked at`));
        return false;
      }
    }
    return true;
  }

  async #reject(files: string[], error: DockError, who: { serial?: string; clipId?: string }): Promise<void> {
    const memo = this.#memo(files);
    if (this.#unmovable.has(memo) || !(await this.#unchanged(files))) return;
    const primary = files[0]!;
    const reason = error.message;
    this.#d.ledger.append('drop_rejected', { serial: who.serial, details: { ...(who.clipId ? { clipId: who.clipId } : {}), path: primary, files, code: error.code, reason } });
    this.#log.warn({ path: primary, serial: who.serial, clipId: who.clipId, code: error.code, reason }, 'dropped files rejected: moved to rejected/ with the reason');
    await this.#moveToRejected(files, memo, `${reason}\n\ncode: ${error.code}\n`);
    this.emit('rejected', { path: primary, reason, code: error.code, quarantined: false });
  }

  /** Imported, then quarantined by the pipeline: its ledger line is written; the dropped files go to rejected/ with the reason. */
  async #returnQuarantined(set: DropSet, row: ClipRow): Promise<void> {
    const files = members(set);
    const memo = this.#memo(files);
    if (this.#unmovable.has(memo) || !(await this.#unchanged(files))) return;
    const reason = `imported, then quarantined by verification: ${row.reason ?? 'no reason recorded'}. The dock keeps its copy in ${this.#d.spool.quarantinePath(row.serial, row.clipId, row.container)} and never releases it; the ledger has the quarantined line`;
    const check = (row.reason ?? '').split(':')[0];
    const code: ErrorCode = check === 'hash' ? 'CUSTODY_HASH_MISMATCH' : check === 'signature' ? 'CUSTODY_SIGNATURE' : 'CUSTODY_BAD_MANIFEST';
    this.#log.warn({ path: files[0], serial: row.serial, clipId: row.clipId, reason: row.reason }, 'dropped clip was quarantined: its files moved to rejected/');
    await this.#moveToRejected(files, memo, `${reason}\n\ncode: ${code}\nserial: ${row.serial}\nclip: ${row.clipId}\n`);
    this.emit('rejected', { path: files[0]!, reason, code, quarantined: true });
  }

  async #moveToRejected(files: string[], memo: string, text: string): Promise<void> {
    try {
      let reasonPath = `${this.#rejectTarget(files[0]!)}.reason.txt`;
      if (Buffer.byteLength(basename(reasonPath)) > 255) reasonPath = join(dirname(reasonPath), `${createHash('sha256').update(basename(reasonPath)).digest('hex').slice(0, 16)}.reason.txt`);
      await mkdirDurable(dirname(reasonPath));
      const list = files.map((f) => `  ${relative(this.#root, f)}`).join('\n');
      await writeFileDurable(reasonPath, `dockside did not import these files (${new Date().toISOString()}):\n${list}\n\n${text}`);
      for (const f of files) await this.#move(f, this.#rejectTarget(f));
    } catch (err) {
      if (err instanceof Changed) return this.#changed(err);
      this.#unmovable.add(memo);
      this.#log.error({ files, err: (err as Error).message }, 'could not move rejected files (a read-only mount?); they stay where they are and are not looked at again until they change');
    }
  }

  async #archive(set: DropSet, serial: string, clipId: string): Promise<void> {
    const memo = this.#memo(members(set));
    if (this.#unmovable.has(memo) || !(await this.#unchanged(members(set)))) return;
    const dir = join(this.importedDir, serial);
    const moves: [string | undefined, string][] = [
      [set.clip, `${clipId}.${set.ext ?? 'bin'}`],
      [set.signature, `${clipId}.manifest.sig`],
      [set.manifest, `${clipId}.manifest.json`],
    ];
    try {
      let moved: string | undefined;
      for (const [from, name] of moves) {
        if (!from) continue;
        const to = await this.#move(from, join(dir, name));
        moved ??= to;
      }
      this.#log.info({ serial, clipId, dir }, 'stored: dropped files moved to imported/');
      if (moved) this.emit('archived', { serial, clipId, path: moved });
    } catch (err) {
      if (err instanceof Changed) return this.#changed(err);
      this.#unmovable.add(memo);
      this.#log.error({ serial, clipId, err: (err as Error).message }, 'could not move stored clip files to imported/ (a read-only mount?); they stay where they are');
    }
  }

  #changed(err: Changed): void {
    this.#log.info({ err: err.message }, 'a dropped file changed while it was being moved; looking at it again');
    this.#again = true;
  }

  /**
   * Moves a file (or a refused link or folder) to `dest`, or beside it under a free
   * name; durable. Returns where it went. Only the file that was looked at: one put
   * in its place since (the same name dropped again) stays, for the next walk.
   */
  async #move(src: string, dest: string): Promise<string> {
    const st = await lstat(src);
    if (statSig(st) !== this.#seen.get(src)?.sig) throw new Changed(`${src} is not the file that was looked at`);
    await mkdirDurable(dirname(dest));
    const target = await freeName(dest);
    try {
      await rename(src, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await this.#copyAcross(src, target);
      await unlink(src); // only after the copy is durable
    }
    await fsyncDir(dirname(target));
    await fsyncDir(dirname(src));
    return target;
  }

  /** Another file system (a camera mount): copy, fsync, rename into place. Links are copied as links, never followed. */
  async #copyAcross(src: string, target: string): Promise<void> {
    const st = await lstat(src);
    const tmp = join(dirname(target), `.${basename(target)}.tmp`);
    if (st.isSymbolicLink()) {
      await symlink(await readlink(src), tmp);
    } else if (st.isFile()) {
      await copyFile(src, tmp, constants.COPYFILE_EXCL);
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      if ((await stat(tmp)).size !== st.size) throw new DockError('INTERNAL', `copy of ${src} to ${tmp} is short`, { src });
    } else {
      throw new DockError('INTERNAL', `${src} is on another file system and not a file; it stays where it is`, { src });
    }
    await rename(tmp, target);
  }
}
