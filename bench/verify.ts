// Target 1, verify: the hash pool's throughput over cached files ÷ OpenSSL's
// SHA-256 on all cores over the same files.
//
// Baseline: one `openssl dgst -sha256` process per core, each over its share of
// the files. That is the same job as the pool's (read cached files, hash them, all
// cores), done by the machine's reference implementation. `openssl speed -multi`
// hashes one buffer in memory with no file reads at all: it is reported in the note
// as the CPU's ceiling, not used as the baseline, because no verifier of files can
// reach it.
//
// Pool and OpenSSL alternate, several rounds, and each side's best round counts:
// on a shared machine noise only ever slows a round down.
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { HashPool } from '../src/verify/HashPool.js';
import { opensslDgst, opensslSpeed } from './openssl.js';
import { row } from './row.js';
import type { Suite } from './types.js';

const MiB = 1024 * 1024;
const GB = 1e9;

function writeFiles(dir: string, count: number, bytes: number): string[] {
  const block = Buffer.allocUnsafe(4 * MiB);
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = join(dir, `clip-${i}.bin`);
    const fd = openSync(path, 'w');
    for (let done = 0; done < bytes; done += block.length) {
      randomFillSync(block, 0, 4096); // enough to make every block differ
      writeSync(fd, block, 0, Math.min(block.length, bytes - done));
    }
    closeSync(fd);
    files.push(path);
  }
  return files;
}

export const suite: Suite = async ({ quick, log }) => {
  const cores = availableParallelism();
  const count = quick ? 4 : 8;
  const each = (quick ? 128 : 512) * MiB;
  const rounds = quick ? 3 : 5;
  const total = count * each;
  const dir = mkdtempSync(join(tmpdir(), 'dockside-bench-verify-'));
  const pool = new HashPool({ threads: cores });
  try {
    log(`writing ${count} files of ${each / MiB} MiB (cached, not synced)`);
    const files = writeFiles(dir, count, each);
    // Warm both sides: files in the page cache, the pool's threads started.
    const reference = await opensslDgst(files, cores);
    await Promise.all(files.map((f) => pool.hash(f)));
    let poolBest = Infinity;
    let sslBest = Infinity;
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      const got = await Promise.all(files.map((f) => pool.hash(f)));
      const poolS = (performance.now() - t0) / 1000;
      for (const [i, h] of got.entries()) {
        if (h.sha256 !== reference.sha256.get(files[i]!)) throw new Error(`the pool's SHA-256 of ${files[i]} differs from OpenSSL's`);
      }
      const sslS = (await opensslDgst(files, cores)).seconds;
      poolBest = Math.min(poolBest, poolS);
      sslBest = Math.min(sslBest, sslS);
      log(`round ${r + 1}: pool ${(total / poolS / GB).toFixed(2)} GB/s, openssl dgst ×${cores} ${(total / sslS / GB).toFixed(2)} GB/s`);
    }
    const ceiling = await opensslSpeed(cores, 1);
    const poolRate = total / poolBest / GB;
    const sslRate = total / sslBest / GB;
    return [
      row({
        name: 'verify.hash-pool',
        value: poolRate,
        unit: 'GB/s',
        baseline: sslRate,
        target: '>= 0.90',
        note: `${count} cached files × ${each / MiB} MiB; pool of ${cores} threads vs ${cores} parallel \`openssl dgst -sha256\` over the same files, best of ${rounds} alternating rounds; ratio = pool/openssl; \`openssl speed -evp sha256 -multi ${cores}\` (memory only, no files) ${(ceiling / GB).toFixed(2)} GB/s = ${(poolRate / (ceiling / GB)).toFixed(2)} of it`,
      }),
    ];
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
};
