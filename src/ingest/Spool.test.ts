import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDockError } from '../errors.js';
import { PART_WRITE_BYTES, SPOOL_DEFAULTS, Spool, type PartFile } from './Spool.js';
import { rejection } from '../../test/helpers/rejection.js';

const SERIAL = 'BC4-SPOOL001';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const DATA = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 31 + 7) & 0xff));

let root: string;
let spool: Spool;
const parts: PartFile[] = [];

async function openPart(offset: number, clipId = 'C1'): Promise<PartFile> {
  const p = await spool.openPart(SERIAL, clipId, offset);
  parts.push(p);
  return p;
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'dockside-spool-'));
  spool = new Spool(root, { minFreeBytes: 0 });
});

afterEach(async () => {
  for (const p of parts.splice(0)) await p.close().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

describe('Spool: paths and options', () => {
  it('lays files out as the design says', () => {
    expect(spool.partPath(SERIAL, 'C1')).toBe(join(root, 'spool', SERIAL, 'C1.part'));
    expect(spool.clipPath(SERIAL, 'C1', 'mp4')).toBe(join(root, 'spool', SERIAL, 'C1.mp4'));
    expect(spool.quarantinePath(SERIAL, 'C1', 'bin')).toBe(join(root, 'quarantine', SERIAL, 'C1.bin'));
    expect(new Spool(root).options).toEqual(SPOOL_DEFAULTS);
    expect(new Spool(root, { syncEveryBytes: 5 }).options).toEqual({ ...SPOOL_DEFAULTS, syncEveryBytes: 5 });
  });
});

describe('Spool: pulls', () => {
  it('a new pull starts empty, writes in order, and its hash is of what was written', async () => {
    const p = await openPart(0);
    expect(p.written).toBe(0);
    await p.write(0, DATA.subarray(0, 4000));
    await p.write(4000, DATA.subarray(4000));
    expect(p.written).toBe(DATA.length);
    expect(p.unsynced).toBe(DATA.length);
    expect(await p.sync()).toBe(DATA.length);
    expect(p.unsynced).toBe(0);
    await p.close();
    expect(readFileSync(spool.partPath(SERIAL, 'C1')).equals(DATA)).toBe(true);
    expect(p.hash.digest('hex')).toBe(sha(DATA));
  });

  it('gathers small writes into PART_WRITE_BYTES ones and passes large ones through, in order', async () => {
    const big = randomBytes(3 * PART_WRITE_BYTES + 12345);
    const p = await openPart(0);
    const sizes = [65536, 1, 4000, PART_WRITE_BYTES + 7, 65536, 65536, PART_WRITE_BYTES - 1, 2];
    let at = 0;
    for (let i = 0; at < big.length; i++) {
      const n = Math.min(sizes[i % sizes.length]!, big.length - at);
      await p.write(at, big.subarray(at, at + n));
      at += n;
      if (i === 3) {
        expect(await p.sync()).toBe(at); // a sync in the middle writes what was gathered
        expect(statSync(p.path).size).toBe(at);
      }
    }
    expect(p.unsynced).toBeGreaterThan(0);
    expect(await p.sync()).toBe(big.length);
    await p.close();
    expect(readFileSync(p.path).equals(big)).toBe(true);
    expect(p.hash.digest('hex')).toBe(sha(big));
  });

  it('bytes accepted after the last sync are not durable: close drops the gathered ones', async () => {
    const p = await openPart(0);
    await p.write(0, DATA.subarray(0, 3000));
    await p.sync();
    await p.write(3000, DATA.subarray(3000, 3100));
    expect(p.written).toBe(3100);
    await p.close();
    expect(statSync(p.path).size).toBe(3000);
  });

  it('a write at any offset other than the end throws and writes nothing', async () => {
    const p = await openPart(0);
    await p.write(0, DATA.subarray(0, 10));
    for (const at of [0, 9, 11]) {
      const err = await rejection(p.write(at, DATA.subarray(at, at + 5)));
      expect(isDockError(err, 'INTERNAL')).toBe(true);
    }
    expect(p.written).toBe(10);
    await p.sync();
    expect(statSync(p.path).size).toBe(10);
  });

  it('openPart cuts back to the durable offset, and its hash is of the kept prefix', async () => {
    const first = await openPart(0);
    await first.write(0, DATA.subarray(0, 6000));
    const durable = await first.sync();
    await first.close();
    appendFileSync(first.path, DATA.subarray(6000, 9000)); // reached the disk, never committed
    expect(statSync(spool.partPath(SERIAL, 'C1')).size).toBe(9000);

    const resumed = await openPart(durable);
    expect(resumed.written).toBe(6000);
    expect(resumed.unsynced).toBe(0);
    expect(statSync(resumed.path).size).toBe(6000);
    expect(resumed.hash.copy().digest('hex')).toBe(sha(DATA.subarray(0, 6000)));
    await resumed.write(6000, DATA.subarray(6000));
    await resumed.sync();
    await resumed.close();
    expect(resumed.hash.digest('hex')).toBe(sha(DATA));
    expect(readFileSync(resumed.path).equals(DATA)).toBe(true);
  });

  it('the prefix is read back from disk, not trusted: a changed durable byte changes the hash', async () => {
    const dir = join(root, 'spool', SERIAL);
    mkdirSync(dir, { recursive: true });
    const onDisk = Buffer.from(DATA.subarray(0, 5000));
    onDisk.writeUInt8(onDisk.readUInt8(1234) ^ 0xff, 1234);
    writeFileSync(spool.partPath(SERIAL, 'C1'), onDisk);
    const p = await openPart(5000);
    expect(p.hash.digest('hex')).toBe(sha(onDisk));
  });

  it('openPart at offset 0 empties a part file left by an earlier attempt', async () => {
    mkdirSync(join(root, 'spool', SERIAL), { recursive: true });
    writeFileSync(spool.partPath(SERIAL, 'C1'), DATA);
    const p = await openPart(0);
    expect(statSync(p.path).size).toBe(0);
    expect(p.hash.digest('hex')).toBe(sha(Buffer.alloc(0)));
  });

  it('openPart refuses a file shorter than the durable offset (changed outside dockside)', async () => {
    mkdirSync(join(root, 'spool', SERIAL), { recursive: true });
    writeFileSync(spool.partPath(SERIAL, 'C1'), DATA.subarray(0, 100));
    const err = await rejection(spool.openPart(SERIAL, 'C1', 101));
    expect(isDockError(err, 'INTERNAL')).toBe(true);
    expect((err as Error).message).toMatch(/fewer than the 101/);
    expect(statSync(spool.partPath(SERIAL, 'C1')).size).toBe(100); // left as found
  });

  it('complete renames the part file to the clip name', async () => {
    const p = await openPart(0);
    await p.write(0, DATA);
    await p.sync();
    await p.close();
    const final = await spool.complete(SERIAL, 'C1', 'mp4');
    expect(final).toBe(spool.clipPath(SERIAL, 'C1', 'mp4'));
    expect(existsSync(spool.partPath(SERIAL, 'C1'))).toBe(false);
    expect(readFileSync(final).equals(DATA)).toBe(true);
    expect(readdirSync(join(root, 'spool', SERIAL))).toEqual(['C1.mp4']);
  });

  it('complete without a part file fails', async () => {
    mkdirSync(join(root, 'spool', SERIAL), { recursive: true });
    const err = await rejection(spool.complete(SERIAL, 'NONE', 'bin'));
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('remove deletes a spooled clip and is idempotent', async () => {
    const p = await openPart(0);
    await p.write(0, DATA);
    await p.sync();
    await p.close();
    await spool.complete(SERIAL, 'C1', 'bin');
    await spool.remove(SERIAL, 'C1', 'bin');
    expect(existsSync(spool.clipPath(SERIAL, 'C1', 'bin'))).toBe(false);
    await spool.remove(SERIAL, 'C1', 'bin');
  });
});

describe('Spool: quarantine', () => {
  it('moves the clip to quarantine/ and writes the reason beside it', async () => {
    const p = await openPart(0);
    await p.write(0, DATA);
    await p.sync();
    await p.close();
    await spool.complete(SERIAL, 'C1', 'mp4');
    const reason = { serial: SERIAL, clipId: 'C1', check: 'hash', reason: 'mismatch', diskSha256: sha(DATA) };
    const target = await spool.quarantine(SERIAL, 'C1', 'mp4', reason);
    expect(target).toBe(spool.quarantinePath(SERIAL, 'C1', 'mp4'));
    expect(readFileSync(target).equals(DATA)).toBe(true); // kept, byte for byte
    expect(existsSync(spool.clipPath(SERIAL, 'C1', 'mp4'))).toBe(false);
    expect(JSON.parse(readFileSync(join(root, 'quarantine', SERIAL, 'C1.reason.json'), 'utf8'))).toEqual(reason);
    expect(readdirSync(join(root, 'quarantine', SERIAL)).sort()).toEqual(['C1.mp4', 'C1.reason.json']); // no temporary left
  });

  it('a repeat (the clip already moved) keeps the quarantined file and rewrites the reason', async () => {
    mkdirSync(join(root, 'spool', SERIAL), { recursive: true });
    writeFileSync(spool.clipPath(SERIAL, 'C1', 'bin'), DATA);
    await spool.quarantine(SERIAL, 'C1', 'bin', { n: 1 });
    const target = await spool.quarantine(SERIAL, 'C1', 'bin', { n: 2 });
    expect(readFileSync(target).equals(DATA)).toBe(true);
    expect(JSON.parse(readFileSync(join(root, 'quarantine', SERIAL, 'C1.reason.json'), 'utf8'))).toEqual({ n: 2 });
  });
});

describe('Spool: space', () => {
  it('checkSpace passes with room and throws INGEST_SPOOL_FULL under the reserve', async () => {
    const free = await spool.freeBytes();
    expect(free).toBeGreaterThan(0);
    await spool.checkSpace(0);
    const full = new Spool(root, { minFreeBytes: Number.MAX_SAFE_INTEGER });
    const err = await rejection(full.checkSpace());
    expect(isDockError(err, 'INGEST_SPOOL_FULL')).toBe(true);
    expect((err as Error).message).toMatch(/pulls pause/);
    // what a pull needs counts against the free space too
    const err2 = await rejection(spool.checkSpace(free * 2));
    expect(isDockError(err2, 'INGEST_SPOOL_FULL')).toBe(true);
  });
});

describe('Spool: room for the pulls in progress', () => {
  /** A spool whose free space the test sets (statfs of a shared disk moves under a test). */
  class FixedFreeSpool extends Spool {
    free = 0;
    override async freeBytes(): Promise<number> {
      return this.free;
    }
    override async capacityBytes(): Promise<number> {
      return 10_000;
    }
  }
  let root2: string;
  beforeEach(() => {
    root2 = mkdtempSync(join(tmpdir(), 'dockside-spool-reserve-'));
  });
  afterEach(() => rmSync(root2, { recursive: true, force: true }));

  it('a pull starts only if all of it fits beside what the running pulls still have to write', async () => {
    const s = new FixedFreeSpool(root2, { minFreeBytes: 100 });
    s.free = 1100; // 1000 usable
    const a = await s.reserve(600);
    const refused = await rejection(s.reserve(600));
    expect(isDockError(refused, 'INGEST_SPOOL_FULL')).toBe(true);
    expect((refused as Error).message).toMatch(/1100 bytes free, 600 of them still to be written by the pulls in progress, under the 100 kept in reserve plus the 600 this pull needs/);
    expect(s.reservedBytes).toBe(600);
    const b = await s.reserve(400); // fits exactly
    expect(s.reservedBytes).toBe(1000);
    // A running pull's own writes use its reservation: free falls as much as its remainder, and it goes on.
    a.consumed(500);
    s.free -= 500;
    await a.check();
    await b.check();
    await expect(s.checkSpace(1)).rejects.toMatchObject({ code: 'INGEST_SPOOL_FULL' }); // room for nothing else
    // Something outside dockside takes the space: the pulls stop at their next check.
    s.free -= 50;
    await expect(a.check()).rejects.toMatchObject({ code: 'INGEST_SPOOL_FULL' });
    a.release();
    expect(s.reservedBytes).toBe(400);
    await b.check();
    b.release();
    b.release(); // idempotent
    expect(s.reservedBytes).toBe(0);
    await s.reserve(450);
  });

  it('a clip that could not fit even in an empty spool is refused at once (INGEST_CLIP_TOO_LARGE), not waited for', async () => {
    const s = new FixedFreeSpool(root2, { minFreeBytes: 100 });
    s.free = 10_000;
    (await s.reserve(9_900)).release();
    for (const size of [9_901, Number.MAX_SAFE_INTEGER]) {
      const err = await rejection(s.reserve(size));
      expect(isDockError(err, 'INGEST_CLIP_TOO_LARGE')).toBe(true);
      expect((err as Error).message).toContain(`a clip of ${size} bytes cannot fit in the spool`);
    }
    expect(s.reservedBytes).toBe(0);
  });

  it('two pulls asking at once for the last room: exactly one gets it', async () => {
    const s = new FixedFreeSpool(root2, { minFreeBytes: 0 });
    s.free = 1000;
    const results = await Promise.allSettled([s.reserve(700), s.reserve(700)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(s.reservedBytes).toBe(700);
  });

  it('a part file opened with a reservation counts its writes against it', async () => {
    const s = new Spool(root2, { minFreeBytes: 0 });
    const r = await s.reserve(10_000);
    const p = await s.openPart(SERIAL, 'C9', 0, r);
    await p.write(0, DATA.subarray(0, 4000));
    expect(r.remaining).toBe(6000);
    await p.write(4000, DATA.subarray(4000));
    expect(r.remaining).toBe(0);
    await p.close();
    r.release();
  });
});
