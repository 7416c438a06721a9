import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isDockError } from '../../errors.js';
import { HashPool } from '../../verify/HashPool.js';
import { DirSink } from './DirSink.js';
import type { StoreObject } from './Sink.js';
import { rejection } from '../../../test/helpers/rejection.js';

const SERIAL = 'BC4-SINK0001';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const CLIP = Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 13 + 5) & 0xff));

let pool: HashPool;
let root: string;
let vault: string;
let source: string;
let sink: DirSink;

function obj(over: Partial<StoreObject> = {}): StoreObject {
  return { serial: SERIAL, clipId: 'C1', container: 'mp4', sourcePath: source, sha256: sha(CLIP), size: CLIP.length, ...over };
}

beforeAll(() => {
  pool = new HashPool({ threads: 2 });
});

afterAll(async () => {
  await pool.close();
});

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-dirsink-'));
  vault = join(root, 'vault');
  source = join(root, 'spooled.mp4');
  writeFileSync(source, CLIP);
  sink = new DirSink(vault, pool);
});

afterEach(() => {
  chmodSync(root, 0o755);
  rmSync(root, { recursive: true, force: true });
});

describe('DirSink.put', () => {
  it('stores a byte-identical file; the receipt carries the re-read sha256', async () => {
    const r = await sink.put(obj());
    const target = join(vault, SERIAL, 'C1.mp4');
    expect(r).toEqual({ location: target, sha256: sha(CLIP), bytes: CLIP.length, existed: false, receipt: `dir:sha256:${sha(CLIP)}` });
    expect(sink.location(SERIAL, 'C1', 'mp4')).toBe(target);
    expect(sink.name).toBe(`dir:${vault}`);
    expect(readFileSync(target).equals(CLIP)).toBe(true);
    expect(readdirSync(join(vault, SERIAL))).toEqual(['C1.mp4']); // no temporary left
    expect(readFileSync(source).equals(CLIP)).toBe(true); // the spool copy is untouched
  });

  it('a second put of the same object reports existed=true and leaves it as it is', async () => {
    const first = await sink.put(obj());
    const second = await sink.put(obj());
    expect(second).toEqual({ ...first, existed: true });
    // even with the spool copy gone: the vault copy is what counts
    rmSync(source);
    expect((await sink.put(obj())).existed).toBe(true);
  });

  it('an existing wrong object at the target is replaced from the source', async () => {
    mkdirSync(join(vault, SERIAL), { recursive: true });
    const target = join(vault, SERIAL, 'C1.mp4');
    const wrong = Buffer.from(CLIP);
    wrong.writeUInt8(wrong.readUInt8(100) ^ 1, 100);
    writeFileSync(target, wrong);
    const r = await sink.put(obj());
    expect(r.existed).toBe(false);
    expect(r.sha256).toBe(sha(CLIP));
    expect(readFileSync(target).equals(CLIP)).toBe(true);
    // a truncated object (a crash mid-copy outside the temporary-name protocol) is replaced too
    writeFileSync(target, CLIP.subarray(0, 10));
    expect((await sink.put(obj())).existed).toBe(false);
    expect(readFileSync(target).equals(CLIP)).toBe(true);
  });

  it('a stale temporary from an interrupted copy does not get in the way', async () => {
    mkdirSync(join(vault, SERIAL), { recursive: true });
    writeFileSync(join(vault, SERIAL, '.C1.mp4.tmp'), 'half a copy');
    await sink.put(obj());
    expect(readdirSync(join(vault, SERIAL))).toEqual(['C1.mp4']);
    expect(readFileSync(join(vault, SERIAL, 'C1.mp4')).equals(CLIP)).toBe(true);
  });

  it('a source that does not hash to the expected sha256 gives SINK_MISMATCH and leaves no object', async () => {
    const rotted = Buffer.from(CLIP);
    rotted.writeUInt8(rotted.readUInt8(4242) ^ 0x80, 4242);
    writeFileSync(source, rotted);
    const err = await rejection(sink.put(obj()));
    expect(isDockError(err, 'SINK_MISMATCH')).toBe(true);
    expect(existsSync(join(vault, SERIAL, 'C1.mp4'))).toBe(false);
    expect(readdirSync(join(vault, SERIAL))).toEqual([]);
  });

  it('a source of the right hash but another declared size is SINK_MISMATCH', async () => {
    const err = await rejection(sink.put(obj({ size: CLIP.length + 1 })));
    expect(isDockError(err, 'SINK_MISMATCH')).toBe(true);
    expect(readdirSync(join(vault, SERIAL))).toEqual([]);
  });

  it('a missing source is SINK_WRITE', async () => {
    const err = await rejection(sink.put(obj({ sourcePath: join(root, 'gone.mp4') })));
    expect(isDockError(err, 'SINK_WRITE')).toBe(true);
    expect(existsSync(join(vault, SERIAL, 'C1.mp4'))).toBe(false);
  });

  it('an unwritable vault is SINK_WRITE', async () => {
    if (process.getuid?.() === 0) {
      // root ignores directory permissions: a file where the serial directory should be fails as well
      mkdirSync(vault, { recursive: true });
      writeFileSync(join(vault, SERIAL), 'not a directory');
    } else {
      mkdirSync(vault, { recursive: true });
      chmodSync(vault, 0o500);
    }
    const err = await rejection(sink.put(obj()));
    chmodSync(vault, 0o755);
    expect(isDockError(err, 'SINK_WRITE')).toBe(true);
  });

  it('objects of different clips, containers and cameras do not collide', async () => {
    await sink.put(obj());
    const other = Buffer.from('another clip');
    const otherPath = join(root, 'other.bin');
    writeFileSync(otherPath, other);
    await sink.put(obj({ clipId: 'C1', container: 'bin', sourcePath: otherPath, sha256: sha(other), size: other.length }));
    await sink.put(obj({ serial: 'BC4-SINK0002', sourcePath: otherPath, sha256: sha(other), size: other.length }));
    expect(readFileSync(join(vault, SERIAL, 'C1.mp4')).equals(CLIP)).toBe(true);
    expect(readFileSync(join(vault, SERIAL, 'C1.bin')).equals(other)).toBe(true);
    expect(readFileSync(join(vault, 'BC4-SINK0002', 'C1.mp4')).equals(other)).toBe(true);
  });
});

describe('DirSink.putSidecar', () => {
  it('writes the sidecar beside the object atomically, replaces it, and leaves no .tmp', async () => {
    await sink.put(obj());
    await sink.putSidecar(SERIAL, 'C1', Buffer.from('{"v":1}\n'));
    const path = join(vault, SERIAL, 'C1.json');
    expect(readFileSync(path, 'utf8')).toBe('{"v":1}\n');
    await sink.putSidecar(SERIAL, 'C1', Buffer.from('{"v":2}\n'));
    expect(readFileSync(path, 'utf8')).toBe('{"v":2}\n');
    expect(readdirSync(join(vault, SERIAL)).sort()).toEqual(['C1.json', 'C1.mp4']);
  });

  it('creates the camera directory if needed', async () => {
    await sink.putSidecar('BC4-SINK0003', 'C9', Buffer.from('{}'));
    expect(readdirSync(join(vault, 'BC4-SINK0003'))).toEqual(['C9.json']);
  });

  it('a failing write is SINK_WRITE', async () => {
    mkdirSync(join(vault, SERIAL, 'C1.json'), { recursive: true }); // a directory where the file goes
    const err = await rejection(sink.putSidecar(SERIAL, 'C1', Buffer.from('{}')));
    expect(isDockError(err, 'SINK_WRITE')).toBe(true);
  });
});

describe('HashPool', () => {
  it('hashes a file off the main thread and counts the bytes', async () => {
    const before = pool.bytesHashed;
    expect(await pool.hash(source)).toEqual({ sha256: sha(CLIP), bytes: CLIP.length });
    const empty = join(root, 'empty');
    writeFileSync(empty, '');
    expect(await pool.hash(empty)).toEqual({ sha256: sha(Buffer.alloc(0)), bytes: 0 });
    expect(pool.bytesHashed - before).toBe(CLIP.length);
  });

  it('a file larger than one read block hashes right', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 12_345);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    const p = join(root, 'big');
    writeFileSync(p, big);
    expect(await pool.hash(p)).toEqual({ sha256: sha(big), bytes: big.length });
  });

  it('a missing file is a DockError', async () => {
    const err = await rejection(pool.hash(join(root, 'missing')));
    expect(isDockError(err, 'INTERNAL')).toBe(true);
    expect((err as Error).message).toMatch(/could not hash/);
  });

  it('refuses a thread count that is not a positive integer', () => {
    for (const threads of [0, -1, 1.5]) expect(() => new HashPool({ threads })).toThrow(/positive integer/);
  });
});
