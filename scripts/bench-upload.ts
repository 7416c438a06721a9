/**
 * Upload throughput to a local S3-compatible server (s3rver in its own process),
 * against a baseline in the same run: a plain PutObject loop of the same files, no
 * checks. Reported as MB/s and as the ratio ours / baseline.
 *
 *   npx tsx scripts/bench-upload.ts [--quick] [--clips N] [--mib M]
 *
 * "ours" is S3Sink.put as the upload queue calls it: HEAD, PutObject (or multipart
 * above 16 MiB) with the SHA-256 checksum header, then the read-back GET and hash that
 * make the receipt, plus the sidecar PUT; with the queue's default 3 at once. The
 * baselines: the same PutObjects one after another (the "plain loop"), and 3 at once.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { S3Sink } from '../src/queue/sinks/S3Sink.js';
import { UPLOAD_DEFAULTS } from '../src/queue/UploadQueue.js';
import { s3Client, startS3Server, stopAll } from '../test/helpers/s3Server.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const quick = args.includes('--quick');
const clips = flag('--clips', quick ? 4 : 8);
const mib = flag('--mib', quick ? 8 : 32);
const MiB = 1024 * 1024;

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: n }, async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift()) await fn(t);
  }));
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dockside-bench-upload-'));
  const server = await startS3Server({ buckets: ['bench'] });
  try {
    const files = Array.from({ length: clips }, (_, i) => {
      const bytes = randomBytes(mib * MiB);
      const path = join(dir, `C${i}.bin`);
      writeFileSync(path, bytes);
      return { serial: 'BC4-BENCH001', clipId: `C${i}`, container: 'bin', sourcePath: path, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    });
    const total = clips * mib * MiB;
    const client = s3Client(server.endpoint);
    const plain = async (prefix: string, n: number): Promise<number> => {
      const t0 = performance.now();
      await pool(files, n, (f) => client.send(new PutObjectCommand({ Bucket: 'bench', Key: `${prefix}/${f.clipId}.bin`, Body: createReadStream(f.sourcePath), ContentLength: f.size })));
      return performance.now() - t0;
    };
    await plain('warmup', 1);
    const rounds = quick ? 1 : 3;
    const best = { loop: Infinity, loop3: Infinity, ours: Infinity };
    for (let r = 0; r < rounds; r++) {
      best.loop = Math.min(best.loop, await plain(`loop${r}`, 1));
      best.loop3 = Math.min(best.loop3, await plain(`loop3-${r}`, UPLOAD_DEFAULTS.concurrency));
      // a fresh prefix each round, so every put really uploads (not "already there")
      const s = new S3Sink({ bucket: 'bench', prefix: `ours${r}`, endpoint: server.endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
      const t0 = performance.now();
      await pool(files, UPLOAD_DEFAULTS.concurrency, async (f) => {
        await s.put(f);
        await s.putSidecar(f.serial, f.clipId, Buffer.from('{"format":"dockside-sidecar-v1"}'));
      });
      best.ours = Math.min(best.ours, performance.now() - t0);
      await s.close();
    }
    const mbps = (ms: number): number => total / 1e6 / (ms / 1000);
    const row = (name: string, ms: number): string => `${name.padEnd(44)} ${mbps(ms).toFixed(1).padStart(7)} MB/s   ratio ${(best.loop / ms).toFixed(2)}`;
    process.stdout.write(`upload to s3rver on 127.0.0.1: ${clips} clips x ${mib} MiB, best of ${rounds}\n`);
    process.stdout.write(`${row('baseline: plain PutObject loop (1 at a time)', best.loop)}\n`);
    process.stdout.write(`${row(`plain PutObject, ${UPLOAD_DEFAULTS.concurrency} at once`, best.loop3)}\n`);
    process.stdout.write(`${row(`S3Sink.put + read-back + sidecar, ${UPLOAD_DEFAULTS.concurrency} at once`, best.ours)}\n`);
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
