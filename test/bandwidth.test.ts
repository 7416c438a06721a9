// The upload bandwidth limit, measured where it matters: bytes arriving at a real S3
// server (through the recording proxy) over a 10 s window, with three uploads sharing
// one limit. A correctness test with generous bounds (within 10%), not a benchmark.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BandwidthLimiter, parseBwTimetable } from '../src/queue/Bandwidth.js';
import { S3Sink } from '../src/queue/sinks/S3Sink.js';
import { startFaultProxy, type FaultProxy } from './helpers/s3FaultProxy.js';
import { startS3Server, stopAll } from './helpers/s3Server.js';

const MiB = 1024 * 1024;
let proxy: FaultProxy;
const scratch = mkdtempSync(join(tmpdir(), 'dockside-bw-'));

beforeAll(async () => {
  const server = await startS3Server({ buckets: ['evidence'] });
  proxy = await startFaultProxy(server.endpoint);
});
afterAll(async () => {
  await proxy?.close();
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
});

it('three concurrent uploads under "1M" send 1 MiB/s between them, within 10% over a 10 s window', async () => {
  const limiter = new BandwidthLimiter(parseBwTimetable('1M'));
  const sink = new S3Sink({ bucket: 'evidence', prefix: 'bw', endpoint: proxy.endpoint, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, limit: limiter, maxAttempts: 1 });
  const clips = [0, 1, 2].map((i) => {
    const bytes = randomBytes(4 * MiB);
    const sourcePath = join(scratch, `c${i}.bin`);
    writeFileSync(sourcePath, bytes);
    return { serial: 'BC4-BW000001', clipId: `C${i}`, container: 'bin', sourcePath, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  });
  const receipts = await Promise.all(clips.map((c) => sink.put(c)));
  await sink.close();
  limiter.close();
  expect(receipts.map((r) => r.sha256)).toEqual(clips.map((c) => c.sha256));
  const first = proxy.samples[0]!.tMs;
  // the window starts after the first second (past the initial burst) and is 10 s long
  const rate = proxy.rateBytesPerSec(first + 1000, first + 11_000);
  console.info(`bandwidth limit 1M: ${(rate / MiB).toFixed(3)} MiB/s arrived at the store over the 10 s window`);
  expect(rate / MiB).toBeGreaterThan(0.9);
  expect(rate / MiB).toBeLessThan(1.1);
  expect(proxy.requests.filter((q) => q.method === 'PUT')).toHaveLength(3);
}, 60_000);
