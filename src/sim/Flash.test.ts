import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GENESIS_CHAIN } from '../custody/manifest.js';
import { DockError } from '../errors.js';
import { Flash, type NewCameraIdentity } from './Flash.js';
import { recordClips } from './recorder.js';

const IDENTITY: NewCameraIdentity = {
  serial: 'BC4-FLASH001',
  model: 'Sentinel BC4',
  vendor: 'Sentinel',
  hardware: 'rev C',
  firmware: '4.2.1',
  officerId: 'OFC-1234',
  seed: 3,
  createdMs: Date.UTC(2026, 0, 1),
  clockOffsetMs: -5000,
  clockSetAtMs: Date.UTC(2026, 0, 1),
  driftPpm: 12,
  batteryPct: 40,
};

const NO_RECORD_FAULTS = { corrupt: 0, tamper: 0, gap: 0 };

let root: string;
let dir: string;
const opened: Flash[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-flash-'));
  dir = join(root, 'camera');
});

afterEach(async () => {
  for (const f of opened.splice(0)) await f.close().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

function track(f: Flash): Flash {
  opened.push(f);
  return f;
}

async function flashWithClips(count: number): Promise<Flash> {
  const flash = track(Flash.create(dir, IDENTITY));
  await recordClips(flash, { count, mode: 'synthetic', syntheticBytes: 4096, video: {}, faults: NO_RECORD_FAULTS });
  return flash;
}

/** Closes `flash` (as a power-off would leave it) and opens the same directory again. */
async function reopen(flash: Flash): Promise<Flash> {
  await flash.close();
  return track(Flash.open(flash.dir));
}

describe('Flash', () => {
  it('formats a new flash with the identity, a fresh chain and a log entry', async () => {
    const flash = track(Flash.create(dir, IDENTITY));
    expect(flash.identity).toMatchObject({ ...IDENTITY, lastSeq: 0, lastChain: GENESIS_CHAIN, planted: { corrupt: [], tamper: [], gap: [] } });
    expect(flash.publicKeyRaw).toHaveLength(32);
    expect(flash.clips()).toEqual([]);
    const log = await flash.readLog(0, 10);
    expect(log).toHaveLength(1);
    expect(log[0]!.message).toContain('flash formatted');
  });

  it('refuses to format over an existing camera, and to open a directory that holds none', () => {
    track(Flash.create(dir, IDENTITY));
    expect(() => Flash.create(dir, IDENTITY)).toThrow(expect.objectContaining({ code: 'SIM_BAD_STATE' }));
    expect(() => Flash.open(join(root, 'nothing-here'))).toThrow(DockError);
    expect(() => Flash.open(join(root, 'nothing-here'))).toThrow(expect.objectContaining({ code: 'SIM_BAD_STATE' }));
  });

  it('reopens with the same identity, key, clips and release marks', async () => {
    const flash = await flashWithClips(3);
    const first = flash.clips()[0]!;
    await flash.release(first.manifest.clipId, first.manifest.sha256, 'vault:1', 1_700_000_000_000);
    flash.appendLog(20, 'before power off');
    const before = {
      identity: structuredClone(flash.identity),
      publicKeyRaw: Buffer.from(flash.publicKeyRaw),
      privateKey: flash.privateKey.export({ type: 'pkcs8', format: 'der' }),
      publicKeyPem: flash.publicKeyPem,
      clips: flash.clips(),
      marks: flash.releaseMarks(),
      log: await flash.readLog(0, 100),
    };
    const again = await reopen(flash);
    expect(again.identity).toEqual(before.identity);
    expect(again.publicKeyRaw.equals(before.publicKeyRaw)).toBe(true);
    expect(again.privateKey.export({ type: 'pkcs8', format: 'der' }).equals(before.privateKey)).toBe(true);
    expect(again.publicKeyPem).toBe(before.publicKeyPem);
    expect(again.clips()).toEqual(before.clips);
    expect(again.clips()).toHaveLength(2);
    expect(again.releaseMarks()).toEqual(before.marks);
    expect(await again.readLog(0, 100)).toEqual(before.log);
    // The log goes on from where it was.
    expect(again.appendLog(20, 'after power on').seq).toBe(before.identity.logSeq + 1);
  });

  it('recovers the log sequence when the process died before close() persisted it', async () => {
    const flash = track(Flash.create(dir, IDENTITY));
    for (let i = 0; i < 5; i++) flash.appendLog(20, `entry ${i}`);
    const lastSeq = flash.identity.logSeq;
    // No close(): camera.json still holds the logSeq of format time.
    const again = track(Flash.open(dir));
    expect(again.identity.logSeq).toBe(lastSeq);
    expect(again.appendLog(20, 'next').seq).toBe(lastSeq + 1);
  });

  it('reads a clip by range, short at the end', async () => {
    const flash = await flashWithClips(1);
    const c = flash.clips()[0]!;
    const whole = readFileSync(c.path);
    expect((await flash.read(c.manifest.clipId, 100, 200)).equals(whole.subarray(100, 300))).toBe(true);
    expect((await flash.read(c.manifest.clipId, whole.length - 10, 100)).equals(whole.subarray(whole.length - 10))).toBe(true);
    await expect(flash.read('no-such-clip', 0, 1)).rejects.toMatchObject({ code: 'SIM_BAD_STATE' });
  });

  it('release writes the durable mark before it frees the bytes', async () => {
    const flash = await flashWithClips(2);
    const c = flash.clips()[0]!;
    const id = c.manifest.clipId;
    // Make the free fail (a directory cannot be unlinked): whatever was done before it is on disk.
    unlinkSync(c.path);
    mkdirSync(c.path);
    await expect(flash.release(id, c.manifest.sha256, 'vault:r', 42)).rejects.toThrow();
    const markPath = join(dir, 'released', `${id}.json`);
    expect(existsSync(markPath)).toBe(true);
    expect(JSON.parse(readFileSync(markPath, 'utf8'))).toEqual({ clipId: id, sha256: c.manifest.sha256, receipt: 'vault:r', timeMs: 42, size: c.manifest.size });
    rmdirSync(c.path);
  });

  it('a released clip is gone from the listing, its bytes freed, and stays released after reopen', async () => {
    const flash = await flashWithClips(2);
    const c = flash.clips()[0]!;
    const id = c.manifest.clipId;
    const mark = await flash.release(id, c.manifest.sha256, 'vault:abc', 1234);
    expect(mark).toEqual({ clipId: id, sha256: c.manifest.sha256, receipt: 'vault:abc', timeMs: 1234, size: c.manifest.size });
    expect(existsSync(c.path)).toBe(false);
    expect(flash.clip(id)).toBeUndefined();
    expect(flash.releaseMark(id)).toEqual(mark);
    const again = await reopen(flash);
    expect(again.clip(id)).toBeUndefined();
    expect(again.clips().map((x) => x.manifest.clipId)).not.toContain(id);
    expect(again.releaseMark(id)).toEqual(mark);
  });

  it('finishes a release on reopen when a power cut left the bytes after the mark', async () => {
    const flash = await flashWithClips(2);
    const c = flash.clips()[0]!;
    const id = c.manifest.clipId;
    const bytes = readFileSync(c.path);
    await flash.release(id, c.manifest.sha256, 'vault:abc', 1234);
    await flash.close();
    writeFileSync(c.path, bytes); // the mark is durable but the unlink never happened
    const again = track(Flash.open(dir));
    expect(existsSync(c.path)).toBe(false);
    expect(again.clip(id)).toBeUndefined();
    expect(again.clips()).toHaveLength(1);
    expect(again.releaseMark(id)?.sha256).toBe(c.manifest.sha256);
  });

  it('eraseClip removes the clip bytes, manifest and signature, without a release mark', async () => {
    const flash = await flashWithClips(3);
    const c = flash.clips()[1]!;
    const id = c.manifest.clipId;
    flash.eraseClip(id);
    for (const p of [c.path, join(dir, 'manifests', `${id}.json`), join(dir, 'manifests', `${id}.sig`)]) expect(existsSync(p)).toBe(false);
    expect(flash.clip(id)).toBeUndefined();
    expect(flash.releaseMark(id)).toBeUndefined();
    const again = await reopen(flash);
    expect(again.clips().map((x) => x.manifest.seq)).toEqual([1, 3]);
    expect(again.releaseMarks()).toEqual([]);
  });

  it('reads the log past a torn last line', async () => {
    const flash = track(Flash.create(dir, IDENTITY));
    flash.appendLog(20, 'one');
    flash.appendLog(30, 'two');
    await flash.close();
    appendFileSync(join(dir, 'log.jsonl'), '{"seq":4,"timeMs":17'); // power cut mid-entry
    const again = track(Flash.open(dir));
    const log = await again.readLog(0, 100);
    expect(log.map((e) => e.message)).toEqual([expect.stringContaining('flash formatted'), 'one', 'two']);
    expect(again.identity.logSeq).toBe(3);
    expect((await again.readLog(2, 1)).map((e) => e.message)).toEqual(['one']);
  });

  // Regression: appendLog writes straight after the torn fragment, so the first entry
  // after a power cut joins the torn line and is unreadable.
  it('keeps the first log entry written after a torn last line', async () => {
    const flash = track(Flash.create(dir, IDENTITY));
    flash.appendLog(20, 'one');
    await flash.close();
    appendFileSync(join(dir, 'log.jsonl'), '{"seq":3,"timeMs":17');
    const again = track(Flash.open(dir));
    again.appendLog(20, 'after the power cut');
    again.appendLog(20, 'and then');
    expect((await again.readLog(0, 100)).map((e) => e.message)).toEqual([expect.stringContaining('flash formatted'), 'one', 'after the power cut', 'and then']);
  });
});
