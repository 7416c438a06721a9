/**
 * Writing files so that they survive a power cut: write a temporary name, fsync it,
 * rename it into place, fsync the directory (without the last step the rename itself
 * may be lost).
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { copyFile, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * mkdir -p that survives a power cut: every directory it creates is fsynced into its
 * parent (a new directory entry is only durable once its parent directory is).
 */
export async function mkdirDurable(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true }); // the first directory it had to create
  if (first === undefined) return;
  for (let dir = path; ; dir = dirname(dir)) {
    await fsyncDir(dirname(dir));
    if (dir === first || dirname(dir) === dir) return;
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The synchronous form, for code that has no event loop to spare (the simulated camera's flash). */
export function writeFileDurableSync(path: string, data: Buffer | string, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp`);
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDirSync(dirname(path));
}

export async function writeFileDurable(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/**
 * Moves a file so that the move survives a power cut, also across file systems (a spool
 * on its own disk, say): a rename where it can, else a copy under a temporary name,
 * fsynced and renamed into place, and only then the source removed. A crash part-way
 * leaves the source where it was (and perhaps a complete copy too), never neither.
 */
export async function moveDurable(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    const tmp = join(dirname(to), `.${basename(to)}.tmp`);
    await copyFile(from, tmp);
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, to);
    await fsyncDir(dirname(to));
    await unlink(from);
  }
  await fsyncDir(dirname(to));
  await fsyncDir(dirname(from));
}
