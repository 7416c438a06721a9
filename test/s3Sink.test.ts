// The S3 sink against a real S3-compatible server process (s3rver), with the fault
// proxy in front where a test needs a store that corrupts, fills up, refuses or is
// down. What counts as stored is checked by a plain HTTP GET of the object, never by
// the sink's word alone.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isDockError, type ErrorCode } from '../src/errors.js';
import { classifyS3Error, parseS3Spec, S3Sink, wantsPathStyle, type S3SinkOptions } from '../src/queue/sinks/S3Sink.js';
import type { StoreObject } from '../src/queue/sinks/Sink.js';
import { rejection } from './helpers/rejection.js';
import { startFaultProxy, type FaultProxy } from './helpers/s3FaultProxy.js';
import { fetchObject, s3Client, startS3Server, stopAll, type S3Server } from './helpers/s3Server.js';

const BUCKET = 'evidence';
const MiB = 1024 * 1024;
const CREDS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

let server: S3Server;
let proxy: FaultProxy;
const scratch = mkdtempSync(join(tmpdir(), 'dockside-s3sink-'));
const sinks: S3Sink[] = [];
let n = 0;

beforeAll(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
  proxy = await startFaultProxy(server.endpoint);
});
afterEach(async () => {
  proxy.mode = 'pass';
  proxy.resetStats();
  for (const s of sinks.splice(0)) await s.close();
});
afterAll(async () => {
  await proxy?.close();
  await stopAll();
  rmSync(scratch, { recursive: true, force: true });
});

function sink(o: Partial<S3SinkOptions> = {}, via: 'proxy' | 'direct' = 'proxy'): S3Sink {
  const s = new S3Sink({ bucket: BUCKET, prefix: 'dock1', endpoint: via === 'proxy' ? proxy.endpoint : server.endpoint, credentials: CREDS, maxAttempts: 1, multipartAboveBytes: 5 * MiB, partSizeBytes: 5 * MiB, ...o });
  sinks.push(s);
  return s;
}

function clip(size: number, container = 'mp4'): StoreObject & { bytes: Buffer } {
  const bytes = randomBytes(size);
  const clipId = `C${String(++n).padStart(6, '0')}`;
  const sourcePath = join(scratch, `${clipId}.${container}`);
  writeFileSync(sourcePath, bytes);
  return { serial: 'BC4-S3TEST01', clipId, container, sourcePath, sha256: createHash('sha256').update(bytes).digest('hex'), size, bytes };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (isDockError(err)) return err.code;
    throw err;
  }
}

describe('S3 sink: storing', () => {
  it('a small clip goes up in one PutObject with its SHA-256 as checksum and metadata, byte-exact, under <prefix>/<serial>/<clipId>.mp4', async () => {
    const s = sink();
    const c = clip(300_000);
    const progress: number[] = [];
    const r = await s.put(c, { onProgress: (b) => progress.push(b) });
    expect(r).toMatchObject({ location: `s3://${BUCKET}/dock1/${c.serial}/${c.clipId}.mp4`, sha256: c.sha256, bytes: c.size, existed: false });
    expect(r.receipt).toMatch(/^s3:[0-9a-f]{32}:read-back-sha256:[0-9a-f]{64}$/);
    expect(progress.at(-1)).toBe(c.size);
    // a plain GET, not the SDK: the stored object is exactly the clip (no aws-chunked framing)
    expect(sha(await fetchObject(server.endpoint, BUCKET, `dock1/${c.serial}/${c.clipId}.mp4`))).toBe(c.sha256);
    const put = proxy.requests.find((q) => q.method === 'PUT');
    expect(put?.headers['x-amz-checksum-sha256']).toBe(Buffer.from(c.sha256, 'hex').toString('base64'));
    expect(put?.headers['x-amz-meta-sha256']).toBe(c.sha256);
    expect(put?.headers['content-encoding'] ?? '').not.toMatch(/aws-chunked/);
    // the receipt came from reading the object back
    expect(proxy.requests.filter((q) => q.method === 'GET')).toHaveLength(1);
    const head = await s3Client(server.endpoint).send(new HeadObjectCommand({ Bucket: BUCKET, Key: `dock1/${c.serial}/${c.clipId}.mp4` }));
    expect(head.Metadata?.['sha256']).toBe(c.sha256);
    expect(head.ContentType).toBe('video/mp4');
  });

  it('a large clip goes up multipart (lib-storage), each part with its own checksum header, byte-exact', async () => {
    const s = sink();
    const c = clip(12 * MiB + 12_345, 'bin');
    const r = await s.put(c);
    expect(r).toMatchObject({ sha256: c.sha256, bytes: c.size, existed: false });
    const parts = proxy.requests.filter((q) => q.method === 'PUT' && q.path.includes('partNumber='));
    expect(parts).toHaveLength(3);
    for (const p of parts) expect(p.headers['x-amz-checksum-sha256']).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(sha(await fetchObject(server.endpoint, BUCKET, `dock1/${c.serial}/${c.clipId}.bin`))).toBe(c.sha256);
  });

  it('an object already there with the right hash counts as stored without sending it again (a retry after a crash)', async () => {
    const s = sink();
    const c = clip(200_000);
    await s.put(c);
    proxy.resetStats();
    const again = await s.put(c);
    expect(again).toMatchObject({ sha256: c.sha256, existed: true });
    expect(proxy.requests.filter((q) => q.method === 'PUT')).toHaveLength(0);
  });

  it('an object there under our hash but with other bytes is not trusted: it is uploaded again', async () => {
    const s = sink();
    const c = clip(100_000);
    const key = `dock1/${c.serial}/${c.clipId}.mp4`;
    await s3Client(server.endpoint).send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.alloc(c.size, 1), Metadata: { sha256: c.sha256 } }));
    const r = await s.put(c);
    expect(r).toMatchObject({ sha256: c.sha256, existed: false });
    expect(sha(await fetchObject(server.endpoint, BUCKET, key))).toBe(c.sha256);
  });

  it('the sidecar goes beside the clip as <clipId>.json', async () => {
    const s = sink();
    const body = Buffer.from('{"format":"dockside-sidecar-v1"}\n');
    await s.putSidecar('BC4-S3TEST01', 'C999999', body);
    expect(await fetchObject(server.endpoint, BUCKET, 'dock1/BC4-S3TEST01/C999999.json')).toEqual(body);
  });

  it('store-checksum mode on a store that returns no checksum (s3rver) falls back to reading the object back', async () => {
    const s = sink({ verify: 'store-checksum' });
    const c = clip(50_000);
    const r = await s.put(c);
    expect(r.receipt).toContain('read-back-sha256');
    expect(proxy.requests.filter((q) => q.method === 'GET')).toHaveLength(1);
  });

  it('Object Lock retention is requested on the clip and the sidecar when configured', async () => {
    const s = sink({ objectLock: { mode: 'COMPLIANCE', days: 7 } });
    const c = clip(20_000);
    const before = Date.now();
    await s.put(c);
    await s.putSidecar(c.serial, c.clipId, Buffer.from('{}'));
    const puts = proxy.requests.filter((q) => q.method === 'PUT');
    expect(puts).toHaveLength(2);
    for (const p of puts) {
      expect(p.headers['x-amz-object-lock-mode']).toBe('COMPLIANCE');
      const until = Date.parse(String(p.headers['x-amz-object-lock-retain-until-date']));
      expect(until - before).toBeGreaterThan(6.9 * 86_400_000);
      expect(until - before).toBeLessThan(7.1 * 86_400_000);
    }
  });
});

describe('S3 sink: a store that misbehaves', () => {
  it('a store that corrupts the object on the way in: the read-back catches it (SINK_MISMATCH), nothing counts as stored', async () => {
    const s = sink();
    const c = clip(256 * 1024);
    proxy.mode = 'corruptPut';
    expect(await codeOf(s.put(c))).toBe('SINK_MISMATCH');
    const stored = await fetchObject(server.endpoint, BUCKET, `dock1/${c.serial}/${c.clipId}.mp4`);
    expect(stored.length).toBe(c.size);
    expect(sha(stored)).not.toBe(c.sha256); // the store really holds damaged bytes
    // and the next try, with the store healthy again, replaces them
    proxy.mode = 'pass';
    expect((await s.put(c)).existed).toBe(false);
    expect(sha(await fetchObject(server.endpoint, BUCKET, `dock1/${c.serial}/${c.clipId}.mp4`))).toBe(c.sha256);
  });

  it('a corrupted multipart upload is caught the same way', async () => {
    const s = sink();
    const c = clip(11 * MiB, 'bin');
    proxy.mode = 'corruptPut';
    expect(await codeOf(s.put(c))).toBe('SINK_MISMATCH');
  });

  it.each([
    [{ status: 507, code: 'InsufficientStorage' }, 'SINK_FULL'],
    [{ status: 403, code: 'QuotaExceeded' }, 'SINK_FULL'], // Ceph's quota answer is a 403
    [{ status: 403, code: 'AccessDenied' }, 'SINK_REFUSED'],
    [{ status: 400, code: 'InvalidRequest' }, 'SINK_REFUSED'],
    [{ status: 400, code: 'BadDigest' }, 'SINK_MISMATCH'], // the store saw other bytes than our checksum
    [{ status: 503, code: 'SlowDown' }, 'SINK_UNAVAILABLE'],
    [{ status: 500, code: 'InternalError' }, 'SINK_WRITE'],
  ] as const)('the store answers %o: %s', async (mode, code) => {
    proxy.mode = { ...mode };
    expect(await codeOf(sink().put(clip(10_000)))).toBe(code);
  });

  it('a bucket that does not exist is a permanent refusal naming what to do', async () => {
    const s = new S3Sink({ bucket: 'no-such-bucket', prefix: '', endpoint: server.endpoint, credentials: CREDS, maxAttempts: 1 });
    sinks.push(s);
    const thrown = await rejection(s.put(clip(1000)));
    expect(isDockError(thrown, 'SINK_REFUSED')).toBe(true);
    expect((thrown as Error).message).toMatch(/NoSuchBucket.*create the bucket.*queue retry/);
  });

  it('a store that drops connections, and one that is not there, are SINK_UNAVAILABLE', async () => {
    proxy.mode = 'refuse';
    expect(await codeOf(sink().put(clip(1000)))).toBe('SINK_UNAVAILABLE');
    const nobody = new S3Sink({ bucket: BUCKET, prefix: 'x', endpoint: 'http://127.0.0.1:9', credentials: CREDS, maxAttempts: 1 });
    sinks.push(nobody);
    expect(await codeOf(nobody.put(clip(1000)))).toBe('SINK_UNAVAILABLE');
  });

  it('an error message never carries the secret key', async () => {
    proxy.mode = { status: 403, code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match' };
    const s = sink({ credentials: { accessKeyId: 'AKIDPLANTED', secretAccessKey: 'PLANTED-SECRET-DO-NOT-LOG' } });
    const thrown = await rejection(s.put(clip(1000)));
    expect(isDockError(thrown, 'SINK_REFUSED')).toBe(true);
    expect(JSON.stringify(thrown) + String((thrown as Error).message)).not.toContain('PLANTED-SECRET');
  });
});

describe('S3 sink: configuration', () => {
  it('parses s3://bucket/prefix and refuses what S3 would', () => {
    expect(parseS3Spec('s3://evidence/dock1')).toEqual({ bucket: 'evidence', prefix: 'dock1' });
    expect(parseS3Spec('s3://evidence/a/b/')).toEqual({ bucket: 'evidence', prefix: 'a/b' });
    expect(parseS3Spec('s3://evidence')).toEqual({ bucket: 'evidence', prefix: '' });
    for (const bad of ['s3://', 's3://Evidence/x', 's3://ab/x', 's3://evidence/../x', 'dir:/x']) expect(() => parseS3Spec(bad), bad).toThrow(/expected s3:\/\/BUCKET|may not contain/);
  });

  it('path-style addressing is automatic for an IP address or localhost, not for a DNS name', () => {
    expect(wantsPathStyle('http://127.0.0.1:9000')).toBe(true);
    expect(wantsPathStyle('http://localhost:9000')).toBe(true);
    expect(wantsPathStyle('http://[::1]:9000')).toBe(true);
    expect(wantsPathStyle('https://minio.agency.example')).toBe(false);
    expect(wantsPathStyle(undefined)).toBe(false);
    expect(() => wantsPathStyle('not a url')).toThrow(/not a URL/);
  });

  it('classifies network errors by their code, whatever the SDK names them', () => {
    const e = (name: string, code?: string, status?: number): ErrorCode => classifyS3Error(Object.assign(new Error('x'), { name, code, $metadata: { httpStatusCode: status } }), 'w', {}).code;
    expect(e('TimeoutError', 'ECONNRESET')).toBe('SINK_UNAVAILABLE');
    expect(e('Error', 'ECONNREFUSED')).toBe('SINK_UNAVAILABLE');
    expect(e('CredentialsProviderError')).toBe('SINK_REFUSED');
    expect(e('NoSuchBucket', undefined, 404)).toBe('SINK_REFUSED');
    expect(e('XMinioStorageFull', undefined, 507)).toBe('SINK_FULL');
    expect(e('Weird', undefined, 502)).toBe('SINK_WRITE');
  });
});
