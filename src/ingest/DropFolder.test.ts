// The drop folder against a real data dir, the real Pipeline (hash workers) and
// chokidar's real watching (no polling), with clips a simulated camera recorded.
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LedgerEntry } from '../custody/Ledger.js';
import { DockError } from '../errors.js';
import { createLogger, silentLogger } from '../log.js';
import { Flash, type NewCameraIdentity, type StoredClip } from '../sim/Flash.js';
import { recordClips } from '../sim/recorder.js';
import { HashPool } from '../verify/HashPool.js';
import { openDataDir, type DataDir } from './dataDir.js';
import { checkDropName, DropFolder, parseSignatureFile, type DropFolderEvents, type DropFolderOptions } from './DropFolder.js';
import { Pipeline } from './Pipeline.js';
import { Spool } from './Spool.js';

const SETTLE_MS = 150;
const ORPHAN_MS = 400;
const CLIP_BYTES = 96 * 1024;

const identity = (serial: string, seed: number): NewCameraIdentity => ({
  serial,
  model: 'Sentinel BC4',
  vendor: 'Sentinel',
  hardware: 'rev C',
  firmware: '4.2.1',
  officerId: 'OFC-1234',
  seed,
  createdMs: Date.UTC(2026, 0, 1),
  clockOffsetMs: 0,
  clockSetAtMs: Date.UTC(2026, 0, 1),
  driftPpm: 0,
  batteryPct: 80,
});

let hashes: HashPool;
let root: string;
let dropDir: string;
let data: DataDir;
let spool: Spool;
let pipeline: Pipeline;
let camera: Flash;
const folders: DropFolder[] = [];
const flashes: Flash[] = [];

beforeAll(() => {
  hashes = new HashPool({ threads: 1 });
});
afterAll(async () => {
  await hashes.close();
});

async function newCamera(serial: string, seed: number, clips: number, dirName = serial): Promise<Flash> {
  const flash = Flash.create(join(root, 'cameras', dirName), identity(serial, seed));
  flashes.push(flash);
  await recordClips(flash, { count: clips, mode: 'synthetic', syntheticBytes: CLIP_BYTES, video: {}, faults: { corrupt: 0, tamper: 0, gap: 0 } });
  return flash;
}

beforeEach(async () => {
  root = realpathSync(mkdtempSync(join(tmpdir(), 'dockside-drop-'))); // the drop folder reports real paths
  dropDir = join(root, 'drop');
  data = openDataDir(join(root, 'data'), 'drop-folder-test');
  spool = new Spool(data.path, { minFreeBytes: 1024 * 1024 });
  pipeline = new Pipeline({ store: data.store, ledger: data.ledger, spool, hashes, log: silentLogger() });
  camera = await newCamera('BC4-DROP0001', 11, 3);
  data.store.enroll(camera.identity.serial, camera.identity.model, camera.publicKeyRaw);
});

afterEach(async () => {
  for (const f of folders.splice(0)) await f.close();
  await pipeline.close();
  await data.close();
  for (const f of flashes.splice(0)) await f.close();
  rmSync(root, { recursive: true, force: true });
});

async function startDrop(over: Partial<DropFolderOptions> = {}): Promise<DropFolder> {
  const drop = new DropFolder({ dir: dropDir, store: data.store, ledger: data.ledger, spool, pipeline, log: process.env['DROP_DEBUG'] ? createLogger({ level: 'debug', destination: 1 }) : silentLogger(), settleMs: SETTLE_MS, orphanMs: ORPHAN_MS, ...over });
  folders.push(drop);
  await drop.start();
  return drop;
}

/** The next `event` whose payload passes `pick`; fails after `ms`. */
function next<E extends keyof DropFolderEvents>(drop: DropFolder, event: E, pick: (...a: DropFolderEvents[E]) => boolean = () => true, ms = 8000): Promise<DropFolderEvents[E]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      drop.off(event, on as never);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const on = (...a: DropFolderEvents[E]): void => {
      if (!pick(...a)) return;
      clearTimeout(timer);
      drop.off(event, on as never);
      resolve(a);
    };
    drop.on(event, on as never);
  });
}

async function until(what: string, ok: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ledger(): LedgerEntry[] {
  return readFileSync(data.ledger.path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LedgerEntry);
}

/** Writes one clip as the flat layout: <id>.bin, <id>.manifest.json, <id>.manifest.sig. */
function dropFlat(c: StoredClip, dir = dropDir, opts: { clip?: Buffer; noManifest?: boolean; base64Sig?: boolean } = {}): string {
  mkdirSync(dir, { recursive: true });
  const id = c.manifest.clipId;
  if (!opts.noManifest) {
    writeFileSync(join(dir, `${id}.manifest.sig`), opts.base64Sig ? `${c.signature.toString('base64')}\n` : c.signature);
    writeFileSync(join(dir, `${id}.manifest.json`), c.manifestBytes);
  }
  const path = join(dir, `${id}.${c.manifest.container}`);
  writeFileSync(path, opts.clip ?? readFileSync(c.path));
  return path;
}

function state(serial: string, clipId: string): string | undefined {
  return data.store.clip(serial, clipId)?.state;
}

/** What the upload queue does once the sink has the clip (the queue is not under test here). */
function markStored(serial: string, clipId: string): void {
  data.store.transition(serial, clipId, 'uploading');
  data.store.transition(serial, clipId, 'stored', { receipt: 'dir:sha256:test' });
}

describe('DropFolder', () => {
  it('imports a flat set dropped while watching: the ledger lines of a pull, source drop-folder; the real pipeline verifies it; stored, it moves to imported/', async () => {
    const drop = await startDrop();
    const c = camera.clips()[0]!;
    const { serial, clipId } = { serial: c.manifest.serial, clipId: c.manifest.clipId };
    const imported = next(drop, 'imported');
    const path = dropFlat(c, dropDir, { base64Sig: true });
    const [e] = await imported;
    expect(e).toEqual({ serial, clipId, path: join(dropDir, `${clipId}.bin`) });
    await until('verified', () => state(serial, clipId) === 'verified');
    const row = data.store.clip(serial, clipId)!;
    expect(row.rxSha256).toBe(c.manifest.sha256);
    expect(row.manifest!.equals(c.manifestBytes)).toBe(true);
    expect(row.signature!.equals(c.signature)).toBe(true); // the base64 text, decoded
    expect(readFileSync(spool.clipPath(serial, clipId, 'bin')).equals(readFileSync(c.path))).toBe(true);
    const lines = ledger().filter((l) => l.clipId === clipId);
    expect(lines.map((l) => l.event)).toEqual(['listed', 'pulled', 'verified']);
    expect(lines[0]!.details).toMatchObject({ seq: 1, size: CLIP_BYTES, source: 'drop-folder', path });
    expect(lines[1]!.details).toMatchObject({ bytes: CLIP_BYTES, receivedSha256: c.manifest.sha256, resumedFrom: 0, source: 'drop-folder', path });
    // Until stored, the dropped files stay where they are.
    expect(existsSync(path)).toBe(true);
    markStored(serial, clipId);
    const archived = next(drop, 'archived');
    drop.onStored(serial, clipId);
    await archived;
    expect(readdirSync(join(dropDir, 'imported', serial)).sort()).toEqual([`${clipId}.bin`, `${clipId}.manifest.json`, `${clipId}.manifest.sig`]);
    expect(readFileSync(join(dropDir, 'imported', serial, `${clipId}.bin`)).equals(readFileSync(c.path))).toBe(true);
    expect(existsSync(path)).toBe(false);
  });

  it('waits while the room in the spool is held by pulls in progress, and imports once it is free (after its retry delay)', async () => {
    const realFree = spool.freeBytes.bind(spool);
    spool.freeBytes = async () => spool.options.minFreeBytes + CLIP_BYTES + 1000; // room for one clip
    const pull = await spool.reserve(CLIP_BYTES); // a camera's pull holds it
    try {
      const drop = await startDrop();
      const c = camera.clips()[0]!;
      dropFlat(c, dropDir);
      await new Promise((r) => setTimeout(r, SETTLE_MS * 4));
      expect(state(c.manifest.serial, c.manifest.clipId)).toBeUndefined(); // nothing recorded yet
      const imported = next(drop, 'imported');
      pull.release();
      await imported;
      expect(state(c.manifest.serial, c.manifest.clipId)).not.toBeUndefined();
      expect(spool.reservedBytes).toBe(0); // the import's own reservation ended with its copy
    } finally {
      pull.release();
      spool.freeBytes = realFree;
    }
  }, 20_000);

  it('imports a camera mounted as mass storage (the Flash layout) as is, in seq order with the chain continuous, and leaves the camera its own files', async () => {
    const mount = join(dropDir, 'BC4-DROP0001');
    cpSync(camera.dir, mount, { recursive: true }); // present before start: the walk at start finds it
    const drop = await startDrop();
    const ids = camera.clips().map((c) => c.manifest.clipId);
    await until('three verified', () => ids.every((id) => state('BC4-DROP0001', id) === 'verified'));
    expect(ledger().filter((l) => l.event === 'chain_gap')).toEqual([]);
    expect(ledger().filter((l) => l.event === 'verified').map((l) => l.details['chainLink'])).toEqual(['continues', 'continues', 'continues']);
    expect(data.store.camera('BC4-DROP0001')!.lastSeq).toBe(3);
    await drop.whenIdle();
    for (const f of ['camera.json', 'device.key.pem', 'device.pub.pem', 'log.jsonl']) expect(existsSync(join(mount, f)), f).toBe(true);
    expect(existsSync(join(dropDir, 'rejected'))).toBe(false);
  });

  it('a tampered clip (same size, one byte changed) is imported and quarantined by the pipeline; its dropped files go to rejected/ with the reason', async () => {
    const drop = await startDrop();
    const c = camera.clips()[1]!;
    const bytes = Buffer.from(readFileSync(c.path));
    bytes[1000] = bytes[1000]! ^ 0xff;
    const rejected = next(drop, 'rejected');
    dropFlat(c, dropDir, { clip: bytes });
    const [e] = await rejected;
    expect(e).toMatchObject({ quarantined: true, code: 'CUSTODY_HASH_MISMATCH' });
    const { serial, clipId } = c.manifest;
    expect(state(serial, clipId)).toBe('quarantined');
    expect(existsSync(spool.quarantinePath(serial, clipId, 'bin'))).toBe(true);
    expect(readFileSync(join(dropDir, 'rejected', `${clipId}.bin`)).equals(bytes)).toBe(true);
    expect(readFileSync(join(dropDir, 'rejected', `${clipId}.bin.reason.txt`), 'utf8')).toContain('quarantined by verification: hash');
    expect(existsSync(join(dropDir, 'rejected', `${clipId}.manifest.json`))).toBe(true);
    expect(readdirSync(dropDir).sort()).toEqual(['rejected']);
  });

  it('a clip with no manifest is moved to rejected/ with a reason after the folder stays quiet, and recorded as drop_rejected', async () => {
    const drop = await startDrop();
    const c = camera.clips()[0]!;
    const t0 = Date.now();
    const rejected = next(drop, 'rejected');
    const path = dropFlat(c, dropDir, { noManifest: true });
    const [e] = await rejected;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(ORPHAN_MS);
    expect(e).toMatchObject({ path, code: 'CUSTODY_BAD_MANIFEST', quarantined: false });
    expect(e.reason).toContain('no manifest');
    const moved = join(dropDir, 'rejected', `${c.manifest.clipId}.bin`);
    expect(readFileSync(moved).equals(readFileSync(c.path))).toBe(true); // moved, not deleted
    expect(readFileSync(`${moved}.reason.txt`, 'utf8')).toContain('no manifest');
    const line = ledger().find((l) => l.event === 'drop_rejected')!;
    expect(line.details).toMatchObject({ path, code: 'CUSTODY_BAD_MANIFEST' });
    expect(data.store.clips()).toEqual([]);
  });

  it('refuses a camera that is not enrolled: nothing of it enters the store', async () => {
    const rogue = await newCamera('BC4-ROGUE001', 99, 1);
    const drop = await startDrop();
    const c = rogue.clips()[0]!;
    const rejected = next(drop, 'rejected');
    dropFlat(c);
    const [e] = await rejected;
    expect(e.code).toBe('INGEST_UNENROLLED');
    expect(e.reason).toContain('BC4-ROGUE001 is not enrolled');
    expect(data.store.clips()).toEqual([]);
    expect(ledger().map((l) => l.event)).toEqual(['drop_rejected']);
    expect(ledger()[0]).toMatchObject({ serial: 'BC4-ROGUE001', clipId: null, details: { clipId: c.manifest.clipId, code: 'INGEST_UNENROLLED' } });
    expect(readdirSync(join(dropDir, 'rejected')).sort()).toEqual([`${c.manifest.clipId}.bin`, `${c.manifest.clipId}.bin.reason.txt`, `${c.manifest.clipId}.manifest.json`, `${c.manifest.clipId}.manifest.sig`]);
  });

  it('refuses a manifest signed by another key than the enrolled one', async () => {
    const impostor = await newCamera('BC4-DROP0001', 12, 1, 'impostor'); // the same serial, another device key
    const drop = await startDrop();
    const rejected = next(drop, 'rejected');
    dropFlat(impostor.clips()[0]!);
    const [e] = await rejected;
    expect(e.code).toBe('CUSTODY_SIGNATURE');
    expect(data.store.clips()).toEqual([]);
  });

  it('importing the same folder twice duplicates nothing: a restart on the same files, then the same files dropped again after they were stored', async () => {
    const clips = camera.clips();
    for (const c of clips) dropFlat(c);
    const first = await startDrop();
    await until('all verified', () => clips.every((c) => state(c.manifest.serial, c.manifest.clipId) === 'verified'));
    await first.whenIdle();
    await first.close();
    const lines = ledger().length;
    const second = await startDrop(); // as after a restart: the files are still there
    await sleep(SETTLE_MS * 3);
    await second.whenIdle();
    expect(ledger().length).toBe(lines);
    expect(data.store.clips()).toHaveLength(3);
    for (const c of clips) markStored(c.manifest.serial, c.manifest.clipId);
    second.onStored('BC4-DROP0001', clips[0]!.manifest.clipId);
    await until('archived', () => existsSync(join(dropDir, 'imported', 'BC4-DROP0001')) && readdirSync(join(dropDir, 'imported', 'BC4-DROP0001')).length === 9);
    for (const c of clips) dropFlat(c); // a technician copies the same card again
    await until('archived again', () => existsSync(join(dropDir, 'imported', 'BC4-DROP0001', `${clips[2]!.manifest.clipId}.manifest.json.1`)));
    await second.whenIdle();
    expect(ledger().length).toBe(lines);
    expect(data.store.clips().map((c) => c.state)).toEqual(['stored', 'stored', 'stored']);
    expect(readdirSync(join(dropDir, 'imported', 'BC4-DROP0001'))).toHaveLength(18); // every copy kept
  });

  it('does not import a half-written clip until it is complete', async () => {
    const drop = await startDrop({ orphanMs: 20_000 });
    const c = camera.clips()[0]!;
    const whole = readFileSync(c.path);
    const path = dropFlat(c, dropDir, { clip: whole.subarray(0, whole.length / 2) });
    await sleep(SETTLE_MS * 5);
    expect(data.store.clips()).toEqual([]);
    expect(drop.busy).toBe(true);
    const imported = next(drop, 'imported');
    appendFileSync(path, whole.subarray(whole.length / 2));
    await imported;
    await until('verified', () => state(c.manifest.serial, c.manifest.clipId) === 'verified');
    expect(readFileSync(spool.clipPath(c.manifest.serial, c.manifest.clipId, 'bin')).equals(whole)).toBe(true);
  });

  it('refuses unsafe names and links without following them', async () => {
    expect(() => checkDropName('../../etc/passwd')).toThrow(DockError);
    expect(() => checkDropName('../x.mp4')).toThrow(expect.objectContaining({ code: 'PROTO_BAD_NAME' }));
    expect(() => checkDropName('a\0b.mp4')).toThrow(expect.objectContaining({ code: 'PROTO_BAD_NAME' }));
    expect(() => checkDropName(`${'x'.repeat(200)}.mp4`)).toThrow(expect.objectContaining({ code: 'PROTO_BAD_NAME' }));
    expect(() => checkDropName('20261130T060940Z-000001.manifest.json')).not.toThrow();
    const outside = join(root, 'outside');
    const c = camera.clips()[0]!;
    dropFlat(c, outside); // a valid set, outside the drop folder
    const drop = await startDrop();
    const evil = '..\\..\\evil.bin'; // backslashes are ordinary characters in a Linux name
    writeFileSync(join(dropDir, evil), 'x');
    symlinkSync(join(outside, `${c.manifest.clipId}.bin`), join(dropDir, `${c.manifest.clipId}.bin`));
    symlinkSync(outside, join(dropDir, 'linked-folder'));
    await until('two rejected', () => ledger().filter((l) => l.event === 'drop_rejected').length === 2);
    await drop.whenIdle();
    const rejected = ledger().filter((l) => l.event === 'drop_rejected');
    expect(rejected.map((l) => l.details['code'])).toEqual(['PROTO_BAD_NAME', 'PROTO_BAD_NAME']);
    expect(rejected.map((l) => String(l.details['reason'])).join('\n')).toMatch(/holds '\.\.'|path separator/);
    expect(rejected.map((l) => String(l.details['reason'])).join('\n')).toContain('symbolic link');
    expect(data.store.clips()).toEqual([]);
    // Moved under a safe name; the link moved as a link; its target and the linked folder untouched.
    const inRejected = readdirSync(join(dropDir, 'rejected'));
    expect(inRejected.some((n) => n.startsWith('unsafe-name-') && !n.endsWith('.reason.txt'))).toBe(true);
    expect(inRejected).toContain(`${c.manifest.clipId}.bin`);
    expect(readdirSync(outside).sort()).toEqual([`${c.manifest.clipId}.bin`, `${c.manifest.clipId}.manifest.json`, `${c.manifest.clipId}.manifest.sig`]);
    expect(existsSync(join(dropDir, 'linked-folder'))).toBe(true); // not ours: neither followed nor moved
    expect(readdirSync(root).sort()).toEqual(['cameras', 'data', 'drop', 'outside']);
  });

  it('resumes an import a kill left half copied, from its durable offset, without a second listed line', async () => {
    const c = camera.clips()[0]!;
    const { serial, clipId } = c.manifest;
    const path = dropFlat(c);
    // What a kill mid-copy leaves: the listed line, the row pulling, half the bytes fsynced and committed.
    const { store, ledger: l } = data;
    l.append('listed', { serial, clipId, details: { seq: 1, size: CLIP_BYTES, source: 'drop-folder', path } });
    store.addListed({ serial, clipId, seq: 1, size: CLIP_BYTES, trigger: 0, startMs: c.manifest.startMs });
    store.setManifest(serial, clipId, c.manifestBytes, c.signature, c.manifest.sha256, 'bin');
    store.transition(serial, clipId, 'pulling', { offset: 0 });
    const part = await spool.openPart(serial, clipId, 0);
    await part.write(0, readFileSync(c.path).subarray(0, CLIP_BYTES / 2));
    store.setOffset(serial, clipId, await part.sync());
    await part.close();
    const drop = await startDrop();
    await next(drop, 'imported');
    await until('verified', () => state(serial, clipId) === 'verified');
    const lines = ledger().filter((x) => x.clipId === clipId);
    expect(lines.map((x) => x.event)).toEqual(['listed', 'pulled', 'verified']);
    expect(lines[1]!.details).toMatchObject({ resumedFrom: CLIP_BYTES / 2, receivedSha256: c.manifest.sha256 });
  });

  it('reads a signature file as 64 raw bytes or as their base64 text, and nothing else', () => {
    const sig = Buffer.alloc(64, 7);
    expect(parseSignatureFile(sig)).toEqual(sig);
    expect(parseSignatureFile(Buffer.from(`${sig.toString('base64')}\n`))).toEqual(sig);
    expect(parseSignatureFile(Buffer.alloc(63))).toBeUndefined();
    expect(parseSignatureFile(Buffer.from(Buffer.alloc(32).toString('base64')))).toBeUndefined();
  });
});
