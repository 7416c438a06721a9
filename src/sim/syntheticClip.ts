/**
 * Fast synthetic clip bytes for large benchmark data: a xoshiro128** stream seeded
 * from SHA-256 of the seed, so any size is deterministic, incompressible and made at
 * about 1 GB/s.
 *
 * The stream is generated into one block that is reused for the whole clip. An
 * AES-CTR keystream (what this was) costs two fresh 1 MiB buffers per MiB from
 * `cipher.update`, and with eight cameras recording at once V8 let 60-80 MB of them
 * wait for a GC: the recording, not the ingest, set the daemon's memory high-water mark
 * (bench/memory.ts).
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

const CHUNK = 1024 * 1024;

/** Fills `words` with the next xoshiro128** outputs; `s` is the generator's state, advanced in place. */
function fill(words: Uint32Array, s: Uint32Array): void {
  let [a, b, c, d] = [s[0]!, s[1]!, s[2]!, s[3]!];
  for (let i = 0; i < words.length; i++) {
    const x = Math.imul(b, 5);
    words[i] = Math.imul((x << 7) | (x >>> 25), 9);
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
  }
  s.set([a, b, c, d]);
}

/** Writes `size` deterministic bytes to `path` (fsynced); returns their SHA-256 (hex). */
export async function writeSyntheticClip(path: string, size: number, seed: string): Promise<string> {
  const key = createHash('sha256').update(`synthetic\0${seed}`).digest();
  const state = Uint32Array.of(key.readUInt32LE(0), key.readUInt32LE(4), key.readUInt32LE(8), key.readUInt32LE(12));
  if (state.every((w) => w === 0)) state[0] = 1; // the one state xoshiro cannot leave
  const block = Buffer.allocUnsafe(CHUNK);
  const words = new Uint32Array(block.buffer, block.byteOffset, CHUNK / 4);
  const hash = createHash('sha256');
  const fh = await open(path, 'w', 0o644);
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(CHUNK, size - done);
      fill(words, state); // words in the host's byte order: little-endian on every dock
      hash.update(block.subarray(0, n));
      await fh.write(block, 0, n);
      done += n;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
