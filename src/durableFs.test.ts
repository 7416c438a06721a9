import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { moveDurable } from './durableFs.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function scratch(under = tmpdir()): string {
  const d = mkdtempSync(join(under, 'dockside-move-'));
  dirs.push(d);
  return d;
}

// /dev/shm is a tmpfs on Linux; the temp dir usually is not. Where both are one file
// system, the rename path is what runs, and the case says so in its name.
const shm = existsSync('/dev/shm') ? '/dev/shm' : undefined;
const crossDevice = shm !== undefined && statSync(shm).dev !== statSync(tmpdir()).dev;

describe('moveDurable', () => {
  it('moves within a file system by rename', async () => {
    const d = scratch();
    writeFileSync(join(d, 'a'), 'evidence');
    await moveDurable(join(d, 'a'), join(d, 'b'));
    expect(existsSync(join(d, 'a'))).toBe(false);
    expect(readFileSync(join(d, 'b'), 'utf8')).toBe('evidence');
  });

  it(`moves across file systems (EXDEV) by copy, fsync, rename, then removing the source${crossDevice ? '' : ' (NOT cross-device here: /dev/shm and the temp dir are one file system)'}`, async () => {
    const from = scratch();
    const to = scratch(crossDevice ? shm : tmpdir());
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff));
    writeFileSync(join(from, 'clip.bin'), bytes);
    await moveDurable(join(from, 'clip.bin'), join(to, 'clip.bin'));
    expect(existsSync(join(from, 'clip.bin'))).toBe(false);
    expect(readFileSync(join(to, 'clip.bin')).equals(bytes)).toBe(true);
    expect(readdirSync(to)).toEqual(['clip.bin']); // no temporary copy left behind
  });

  it('a missing source is an error, and nothing appears at the target', async () => {
    const d = scratch();
    await expect(moveDurable(join(d, 'gone'), join(d, 'b'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(existsSync(join(d, 'b'))).toBe(false);
  });
});
