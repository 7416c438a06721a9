/**
 * Fast synthetic clip bytes for large benchmark data: AES-128-CTR keystream from a
 * seed, so any size is deterministic, incompressible and made at GB/s.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

const CHUNK = 1024 * 1024;

/** Writes `size` deterministic bytes to `path` (fsynced); returns their SHA-256 (hex). */
export async function writeSyntheticClip(path: string, size: number, seed: string): Promise<string> {
  const key = createHash('sha256').update(`synthetic\0${seed}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const zeros = Buffer.alloc(CHUNK);
  const hash = createHash('sha256');
  const fh = await open(path, 'w', 0o644);
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done);
      const block = cipher.update(zeros.subarray(0, n));
      hash.update(block);
      await fh.write(block);
      done += n;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
