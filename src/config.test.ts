import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'dockside-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('config', () => {
  it('accepts every documented key', () => {
    const c = { dataDir: '/var/lib/dockside', sink: 'dir:/srv/vault', bays: 8, portsDir: '/dev/serial/by-id', usb: true, spool: { minFreeBytes: 1e9, syncEveryBytes: 4194304 }, session: { timeoutMs: 1000, retries: 6 }, clockSkewMs: 2000, hashThreads: 2 };
    expect(parseConfig(c)).toEqual(c);
    expect(parseConfig({})).toEqual({});
  });

  it('names the key, the bad value and what is expected', () => {
    expect(() => parseConfig({ bays: 'eight' }, 'dock.json')).toThrow('dock.json: bays: expected a whole number from 1 to 64, got "eight"');
    expect(() => parseConfig({ bays: 65 })).toThrow('bays: expected a whole number from 1 to 64, got 65');
    expect(() => parseConfig({ spool: { minFreeBytes: -1 } })).toThrow(/spool\.minFreeBytes: expected a number of bytes/);
    expect(() => parseConfig({ sink: 'ftp://bucket' })).toThrow(/sink: expected a sink such as "dir:.*or "s3:/);
    expect(() => parseConfig({ upload: { bandwidth: '25:00,1M' } })).toThrow(/upload\.bandwidth: bandwidth timetable entry "25:00,1M": time must be HH:MM/);
    expect(() => parseConfig({ upload: { concurrency: 0 } })).toThrow(/upload\.concurrency: expected a whole number from 1 to 64/);
    expect(() => parseConfig({ s3: { verify: 'trust-me' } })).toThrow(/s3\.verify: expected "read-back" or "store-checksum", got "trust-me"/);
    expect(() => parseConfig({ s3: { objectLock: 'forever' } })).toThrow(/s3\.objectLock: expected "compliance:DAYS"/);
    expect(() => parseConfig({ s3: { accessKeyId: 'AKID' } })).toThrow(/s3: accessKeyId and secretAccessKey go together/);
    expect(parseConfig({ sink: 's3://evidence/dock1', s3: { endpoint: 'http://127.0.0.1:9000', verify: 'store-checksum' }, upload: { bandwidth: '08:00,2M 18:00,20M 23:00,off' } })).toMatchObject({ sink: 's3://evidence/dock1' });
    expect(() => parseConfig({ session: { timeoutMs: 1.5 } })).toThrow(/session\.timeoutMs: expected milliseconds/);
    expect(() => parseConfig({ usb: 'yes' })).toThrow(/usb: expected true or false/);
  });

  it('refuses unknown keys rather than ignoring a typo', () => {
    expect(() => parseConfig({ bay: 8 })).toThrow(/unknown key "bay"/);
    expect(() => parseConfig({ spool: { minFree: 1 } })).toThrow(/spool: unknown key "minFree"/);
  });

  it('reads a file and reports JSON errors with the path', () => {
    const good = join(dir, 'good.json');
    writeFileSync(good, '{"bays": 4}');
    expect(loadConfig(good)).toEqual({ bays: 4 });
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"bays": 4,}');
    expect(() => loadConfig(bad)).toThrow(new RegExp(`${bad} is not valid JSON`));
    expect(() => loadConfig(join(dir, 'missing.json'))).toThrow(/cannot read the config file/);
  });
});
