// The S3 test harness against the real thing: s3rver in a child process, the AWS SDK
// and lib-storage talking HTTP to it, and the fault proxy in between. Every storage
// claim is checked by reading the object back with a plain GET, not by trusting the
// SDK call that wrote it (s3rver's traps: ../shared/stack.md).
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './helpers/s3FaultProxy.js';
import { fetchObject, objectUrl, s3Client, startS3Server, stopAll, type S3Server } from './helpers/s3Server.js';

const BUCKET = 'evidence';
const MiB = 1024 * 1024;

let store: S3Server;
let proxy: FaultProxy;
let direct: S3Client; // straight to s3rver
let startMs = 0;
const scratch = mkdtempSync(join(tmpdir(), 'dockside-s3harness-'));

beforeAll(async () => {
  const t0 = performance.now();
  store = await startS3Server({ buckets: [BUCKET] });
  startMs = performance.now() - t0;
  proxy = await startFaultProxy(store.endpoint);
  direct = s3Client(store.endpoint);
});
afterEach(() => {
  proxy.mode = 'pass';
  proxy.resetStats();
});
afterAll(async () => {
  await proxy?.close();
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
});

const sha256hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The SDK error's shape, as a plain object for one toMatchObject. */
async function failure(p: Promise<unknown>): Promise<{ name: string; status: number | undefined; attempts: number | undefined; code: string | undefined }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { code?: string; $metadata?: { httpStatusCode?: number; attempts?: number } };
    return { name: err.name, status: err.$metadata?.httpStatusCode, attempts: err.$metadata?.attempts, code: err.code };
  }
  throw new Error('expected the call to fail, and it succeeded');
}

function file(name: string, bytes: Buffer): string {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
}

describe('s3Server: s3rver in a child process', () => {
  it('starts and answers HTTP on 127.0.0.1 at the port it reports', async () => {
    expect(store.endpoint).toBe(`http://127.0.0.1:${store.port}`);
    expect(startMs).toBeLessThan(10_000); // about 0.4 s here
    const res = await fetch(`${store.endpoint}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain(`<Name>${BUCKET}</Name>`); // --configure-bucket made it
  });

  it('serves an object put through the SDK to an anonymous plain fetch, byte for byte', async () => {
    const body = randomBytes(300_000);
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'clips/anon get.mp4', Body: body }));
    const res = await fetch(objectUrl(store.endpoint, BUCKET, 'clips/anon get.mp4')); // no Authorization header at all
    expect(res.status).toBe(200);
    expect(sha256hex(Buffer.from(await res.arrayBuffer()))).toBe(sha256hex(body));
    expect(sha256hex(await fetchObject(store.endpoint, BUCKET, 'clips/anon get.mp4'))).toBe(sha256hex(body));
    await expect(fetchObject(store.endpoint, BUCKET, 'clips/missing.mp4')).rejects.toThrow(/HTTP 404/);
  });

  it('returns user metadata (x-amz-meta-sha256) on HeadObject', async () => {
    const body = randomBytes(1000);
    const digest = sha256hex(body);
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'meta.bin', Body: body, Metadata: { sha256: digest } }));
    const head = await direct.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'meta.bin' }));
    expect(head.Metadata).toEqual({ sha256: digest });
    expect(head.ContentLength).toBe(body.length);
    const res = await fetch(objectUrl(store.endpoint, BUCKET, 'meta.bin'), { method: 'HEAD' });
    expect(res.headers.get('x-amz-meta-sha256')).toBe(digest);
  });

  it('stores a lib-storage multipart Upload from a file stream byte-exact (3 parts of at most 5 MiB)', async () => {
    const body = randomBytes(12 * MiB + 123);
    const upload = new Upload({ client: s3Client(proxy.endpoint), params: { Bucket: BUCKET, Key: 'multi.bin', Body: createReadStream(file('multi.bin', body)) }, partSize: 5 * MiB });
    await upload.done();
    expect(sha256hex(await fetchObject(store.endpoint, BUCKET, 'multi.bin'))).toBe(sha256hex(body));
    const parts = proxy.requests.filter((r) => r.method === 'PUT' && r.path.includes('partNumber='));
    expect(parts.map((r) => r.bodyBytes)).toEqual([5 * MiB, 5 * MiB, 2 * MiB + 123]);
    expect(parts.every((r) => r.headers['content-encoding'] === undefined)).toBe(true); // no aws-chunked framing
    // The samples account for every body byte, so a rate over a window is meaningful.
    const sampled = proxy.samples.reduce((n, s) => n + s.bytes, 0);
    expect(sampled).toBe(proxy.bodyBytes());
    expect(proxy.bodyBytes()).toBeGreaterThanOrEqual(body.length); // + the CompleteMultipartUpload XML
    const first = proxy.samples[0]!.tMs;
    const last = proxy.samples.at(-1)!.tMs;
    expect(proxy.rateBytesPerSec(first, last + 1)).toBeCloseTo((sampled * 1000) / (last + 1 - first), 3);
  });

  it('stores a multipart Upload with ChecksumAlgorithm SHA256 byte-exact (checksums go in headers, s3rver ignores them)', async () => {
    const body = randomBytes(6 * MiB + 7);
    const upload = new Upload({ client: s3Client(proxy.endpoint), params: { Bucket: BUCKET, Key: 'multi-sha.bin', Body: createReadStream(file('multi-sha.bin', body)), ChecksumAlgorithm: 'SHA256' }, partSize: 5 * MiB });
    const out = await upload.done();
    expect(out.ChecksumSHA256).toBeUndefined(); // s3rver never returns one
    expect(sha256hex(await fetchObject(store.endpoint, BUCKET, 'multi-sha.bin'))).toBe(sha256hex(body));
    const parts = proxy.requests.filter((r) => r.path.includes('partNumber='));
    expect(parts).toHaveLength(2);
    for (const p of parts) {
      expect(p.headers['x-amz-checksum-sha256']).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      expect(p.headers['content-encoding']).toBeUndefined();
    }
  });

  it('stores a PutObject with a precomputed ChecksumSHA256 on a Buffer byte-exact: stored size is the sent size', async () => {
    const body = randomBytes(200_000);
    const ChecksumSHA256 = createHash('sha256').update(body).digest('base64');
    await s3Client(proxy.endpoint).send(new PutObjectCommand({ Bucket: BUCKET, Key: 'put-sha.bin', Body: body, ChecksumSHA256 }));
    const [put] = proxy.requests;
    expect(put!.headers['x-amz-checksum-sha256']).toBe(ChecksumSHA256);
    expect(put!.headers['content-encoding']).toBeUndefined();
    expect(put!.bodyBytes).toBe(body.length);
    const stored = await fetchObject(store.endpoint, BUCKET, 'put-sha.bin');
    expect(stored.length).toBe(body.length);
    expect(sha256hex(stored)).toBe(sha256hex(body));
  });

  it('regression (the aws-chunked trap): a streamed body under the SDK default WHEN_SUPPORTED is stored with its framing; under WHEN_REQUIRED it is exact', async () => {
    const body = randomBytes(100_000);
    const put = (client: S3Client, Key: string) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: Readable.from([body]), ContentLength: body.length }));
    await put(s3Client(store.endpoint, { requestChecksumCalculation: 'WHEN_SUPPORTED' }), 'stream-default.bin');
    const framed = await fetchObject(store.endpoint, BUCKET, 'stream-default.bin');
    expect(framed.length).toBeGreaterThan(body.length); // chunk headers + CRC32 trailer, stored as data, no error
    expect(framed.toString('latin1')).toContain('x-amz-checksum-crc32:');
    await put(direct, 'stream-required.bin');
    expect(sha256hex(await fetchObject(store.endpoint, BUCKET, 'stream-required.bin'))).toBe(sha256hex(body));
  });

  it('accepts a wrong ChecksumSHA256 and returns no checksum on HeadObject/GetObject with ChecksumMode ENABLED', async () => {
    const body = randomBytes(5000);
    const wrong = createHash('sha256').update('not the body').digest('base64');
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'wrong-sha.bin', Body: body, ChecksumSHA256: wrong }));
    const head = await direct.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'wrong-sha.bin', ChecksumMode: 'ENABLED' }));
    expect([head.ChecksumSHA256, head.ChecksumCRC32, head.ChecksumType]).toEqual([undefined, undefined, undefined]);
    const got = await direct.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'wrong-sha.bin', ChecksumMode: 'ENABLED' }));
    expect(got.ChecksumSHA256).toBeUndefined();
    expect(sha256hex(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha256hex(body));
  });

  it('AWS_CA_BUNDLE (even pointing at a missing file) changes nothing for an http:// endpoint', async () => {
    const saved = process.env['AWS_CA_BUNDLE'];
    process.env['AWS_CA_BUNDLE'] = join(scratch, 'no-such-ca.pem');
    try {
      const client = s3Client(store.endpoint);
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'ca.txt', Body: Buffer.from('ca') }));
      const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'ca.txt' }));
      expect(await got.Body!.transformToString()).toBe('ca');
    } finally {
      if (saved === undefined) delete process.env['AWS_CA_BUNDLE'];
      else process.env['AWS_CA_BUNDLE'] = saved;
    }
  });

  it('keeps objects and its port across stop()/restart() and kill()/restart(); a stopped store refuses connections (ECONNREFUSED)', async () => {
    const own = await startS3Server({ buckets: ['keep'] });
    const body = randomBytes(50_000);
    const client = s3Client(own.endpoint, { maxAttempts: 1 });
    await client.send(new PutObjectCommand({ Bucket: 'keep', Key: 'k.bin', Body: body }));

    await own.stop();
    expect(await failure(client.send(new HeadBucketCommand({ Bucket: 'keep' })))).toMatchObject({ name: 'Error', code: 'ECONNREFUSED', status: undefined });
    await own.restart();
    expect(sha256hex(await fetchObject(own.endpoint, 'keep', 'k.bin'))).toBe(sha256hex(body));
    expect(own.endpoint).toBe(`http://127.0.0.1:${own.port}`);

    await own.kill();
    expect(await failure(client.send(new HeadBucketCommand({ Bucket: 'keep' })))).toMatchObject({ code: 'ECONNREFUSED' });
    await own.restart();
    expect(sha256hex(await fetchObject(own.endpoint, 'keep', 'k.bin'))).toBe(sha256hex(body));
    await own.stop();
  });
});

describe('s3FaultProxy', () => {
  it('pass: forwards requests and responses unchanged and records each request', async () => {
    const body = randomBytes(64 * 1024);
    const client = s3Client(proxy.endpoint);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'pass.bin', Body: body }));
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'pass.bin' }));
    expect(sha256hex(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha256hex(body));
    expect(proxy.requests.map((r) => [r.method, r.path.split('?')[0], r.mode, r.status])).toEqual([
      ['PUT', `/${BUCKET}/pass.bin`, 'pass', 200],
      ['GET', `/${BUCKET}/pass.bin`, 'pass', 200],
    ]);
    expect(proxy.requests[0]!.headers['authorization']).toMatch(/^AWS4-HMAC-SHA256 /);
    expect(proxy.bodyBytes()).toBe(body.length);
    expect(proxy.requests[0]!.endMs).toBeGreaterThanOrEqual(proxy.requests[0]!.startMs);
  });

  it('corruptPut: the stored PutObject differs from the sent body in one bit, same length; GETs pass unchanged', async () => {
    const body = randomBytes(100_000);
    proxy.mode = 'corruptPut';
    const client = s3Client(proxy.endpoint);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'corrupt.bin', Body: body })); // the SDK sees success
    const stored = await fetchObject(store.endpoint, BUCKET, 'corrupt.bin');
    expect(stored.length).toBe(body.length);
    expect(sha256hex(stored)).not.toBe(sha256hex(body));
    const at = proxy.requests[0]!.corruptedAt!;
    const diff = [...stored.keys()].filter((i) => stored[i] !== body[i]);
    expect(diff).toEqual([at]);
    expect(stored[at]! ^ body[at]!).toBe(0x01);
    const viaProxy = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'corrupt.bin' }));
    expect(sha256hex(Buffer.from(await viaProxy.Body!.transformToByteArray()))).toBe(sha256hex(stored));
  });

  it('corruptPut: corrupts every UploadPart of a multipart Upload, and leaves bucket-level PUTs alone', async () => {
    proxy.mode = 'corruptPut';
    const client = s3Client(proxy.endpoint);
    await client.send(new CreateBucketCommand({ Bucket: 'corrupt-made' }));
    expect(proxy.requests[0]).toMatchObject({ method: 'PUT', path: '/corrupt-made/', mode: 'pass', status: 200 });
    await direct.send(new HeadBucketCommand({ Bucket: 'corrupt-made' }));

    const body = randomBytes(6 * MiB);
    await new Upload({ client, params: { Bucket: BUCKET, Key: 'corrupt-multi.bin', Body: body }, partSize: 5 * MiB }).done();
    const parts = proxy.requests.filter((r) => r.path.includes('partNumber='));
    expect(parts.map((r) => r.mode)).toEqual(['corruptPut', 'corruptPut']);
    const stored = await fetchObject(store.endpoint, BUCKET, 'corrupt-multi.bin');
    expect(stored.length).toBe(body.length);
    const partStart = (r: (typeof parts)[number]): number => (Number(new URL(r.path, 'http://x').searchParams.get('partNumber')) - 1) * 5 * MiB;
    const expected = parts.map((r) => partStart(r) + r.corruptedAt!).sort((a, b) => a - b);
    const diff: number[] = [];
    for (let i = 0; i < body.length; i++) if (stored[i] !== body[i]) diff.push(i);
    expect(diff).toEqual(expected);
  });

  // What the SDK reports for each, with retries off; 507 and 404 are not retried anyway.
  it.each([
    { status: 507, code: 'InsufficientStorage' },
    { status: 403, code: 'AccessDenied' },
    { status: 503, code: 'SlowDown' },
    { status: 404, code: 'NoSuchBucket' },
  ])('status $status $code: the SDK error has that name and HTTP status, and nothing is stored', async ({ status, code }) => {
    proxy.mode = { status, code };
    const body = randomBytes(10_000);
    const err = await failure(s3Client(proxy.endpoint, { maxAttempts: 1 }).send(new PutObjectCommand({ Bucket: BUCKET, Key: `status-${status}.bin`, Body: body })));
    expect(err).toEqual({ name: code, status, attempts: 1, code: undefined });
    expect(proxy.requests).toHaveLength(1);
    expect(proxy.requests[0]).toMatchObject({ mode: `status ${status}`, status, bodyBytes: body.length }); // drained first
    expect(await failure(direct.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `status-${status}.bin` })))).toMatchObject({ name: 'NotFound', status: 404 });
  });

  it('status: with default retries the SDK tries a 503 SlowDown 3 times and a 507 once; other methods pass', async () => {
    const client = s3Client(proxy.endpoint);
    proxy.mode = { status: 503, code: 'SlowDown' };
    expect(await failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'slow.bin', Body: Buffer.from('x') })))).toMatchObject({ name: 'SlowDown', status: 503, attempts: 3 });
    expect(proxy.requests).toHaveLength(3);
    proxy.resetStats();
    proxy.mode = { status: 507, code: 'InsufficientStorage' };
    expect(await failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'full.bin', Body: Buffer.from('x') })))).toMatchObject({ name: 'InsufficientStorage', status: 507, attempts: 1 });
    expect(proxy.requests).toHaveLength(1);
    await client.send(new HeadBucketCommand({ Bucket: BUCKET })); // HEAD is not in the default methods
    expect(proxy.requests.at(-1)).toMatchObject({ method: 'HEAD', mode: 'pass', status: 200 });
  });

  it('status on HEAD/GET: HeadObject sees only the status (name NotFound), GetObject the XML code', async () => {
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'there.bin', Body: Buffer.from('there') }));
    proxy.mode = { status: 404, code: 'NoSuchKey', methods: ['HEAD', 'GET'] };
    const client = s3Client(proxy.endpoint, { maxAttempts: 1 });
    expect(await failure(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'there.bin' })))).toMatchObject({ name: 'NotFound', status: 404 });
    expect(await failure(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'there.bin' })))).toMatchObject({ name: 'NoSuchKey', status: 404 });
  });

  it('refuse: connections are destroyed, kept-alive ones included; the SDK sees ECONNRESET (name TimeoutError)', async () => {
    const client = s3Client(proxy.endpoint, { maxAttempts: 1 });
    await client.send(new HeadBucketCommand({ Bucket: BUCKET })); // leaves a kept-alive socket
    proxy.mode = 'refuse';
    expect(await failure(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'refused.bin', Body: Buffer.from('x') })))).toEqual({ name: 'TimeoutError', code: 'ECONNRESET', status: undefined, attempts: 1 });
    const before = proxy.refused;
    await expect(fetch(`${proxy.endpoint}/`)).rejects.toThrow(); // a new connection
    expect(proxy.refused).toBe(before + 1);
    proxy.mode = 'pass';
    await client.send(new HeadBucketCommand({ Bucket: BUCKET })); // the store is back
    expect(await failure(direct.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'refused.bin' })))).toMatchObject({ name: 'NotFound' });
  });
});
