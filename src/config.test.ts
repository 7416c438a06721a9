import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_DEFAULTS, configKeys, loadConfig, parseConfig, scanJson, withDefaults } from './config.js';
import { parseMetricsAddress } from './observability/Metrics.js';
import { isDockError } from './errors.js';

const dir = mkdtempSync(join(tmpdir(), 'dockside-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected it to throw');
}

describe('config', () => {
  it('accepts every documented key', () => {
    const c = { dataDir: '/var/lib/dockside', sink: 'dir:/srv/vault', bays: 8, portsDir: '/dev/serial/by-id', usb: true, metrics: '127.0.0.1:9464', dropDir: '/srv/dropbox', spool: { minFreeBytes: 1e9, syncEveryBytes: 4194304 }, session: { timeoutMs: 1000, retries: 6 }, clockSkewMs: 2000, hashThreads: 2 };
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
    expect(() => parseConfig({ usb: 'yes' })).toThrow(/usb: expected true or false, got "yes"/);
    expect(() => parseConfig({ spool: 'big' })).toThrow(/spool: expected a mapping of spool\.\* keys, got "big"/);
    expect(() => parseConfig([1, 2])).toThrow(/\(top level\): expected a mapping of settings/);
    expect(() => parseConfig({ hashThreads: Infinity })).toThrow(/hashThreads: expected a whole number from 0 to 256, got Infinity/);
  });

  it('never shows a secret in an error', () => {
    const e = thrown(() => parseConfig({ s3: { accessKeyId: 'AKID', secretAccessKey: 12345678 } }));
    expect(e.message).toMatch(/s3\.secretAccessKey: expected a non-empty string \(the value is not shown: it is a secret\)/);
    expect(e.message).not.toContain('12345678');
    const j = thrown(() => loadConfig(file('secret-bad.json', '{"s3": {"accessKeyId": "AKID", "secretAccessKey": "wJalrXUtnFEMI"}, "bays": eight}')));
    expect(j.message).toMatch(/line 1, column \d+: not valid JSON/);
    expect(j.message).not.toContain('wJalr');
  });

  it('lists every problem, and the message leads with the first', () => {
    const e = thrown(() => parseConfig({ bays: 'eight', usb: 'yes', upload: { concurrency: 0 } }, 'dock.yaml'));
    expect(e.message).toBe('dock.yaml: bays: expected a whole number from 1 to 64, got "eight" (and 2 more problems: `dockside config check dock.yaml` lists them all)');
    expect(isDockError(e, 'CONFIG_INVALID') && (e.details['issues'] as { key: string }[]).map((i) => i.key)).toEqual(['bays', 'usb', 'upload.concurrency']);
  });

  it('refuses unknown keys rather than ignoring a typo, and suggests the key meant', () => {
    expect(() => parseConfig({ bay: 8 })).toThrow(/bay: unknown key; did you mean "bays"\?/);
    expect(() => parseConfig({ spool: { minFree: 1 } })).toThrow(/spool\.minFree: unknown key \(docs\/operations\.md lists every key\)/);
    expect(() => parseConfig({ upload: { bandwith: 'off' } })).toThrow(/upload\.bandwith: unknown key; did you mean "bandwidth"\?/);
    expect(() => parseConfig({ x: 1 })).toThrow(/^config: x: unknown key \(/);
  });

  it('metrics: HOST:PORT, [IPv6]:PORT or off, port 1 to 65535', () => {
    for (const ok of ['127.0.0.1:9464', '0.0.0.0:1', '[::1]:9464', '[::]:65535', 'localhost:9464', 'off']) expect(parseConfig({ metrics: ok })).toEqual({ metrics: ok });
    expect(() => parseConfig({ metrics: '127.0.0.1:0' })).toThrow(/metrics: the port must be a whole number from 1 to 65535, got "127.0.0.1:0"/);
    expect(() => parseConfig({ metrics: '127.0.0.1:65536' })).toThrow(/metrics: the port must be/);
    expect(() => parseConfig({ metrics: '127.0.0.1:09464' })).toThrow(/metrics: the port must be/);
    expect(() => parseConfig({ metrics: '9464' })).toThrow(/metrics: expected "HOST:PORT" .* or "off", got "9464"/);
    expect(() => parseConfig({ metrics: '::1:9464' })).toThrow(/metrics: expected "HOST:PORT"/);
    expect(() => parseConfig({ metrics: '[::g]:9464' })).toThrow(/"::g" in brackets is not an IPv6 address/);
    expect(() => parseConfig({ metrics: '300.0.0.1:9464' })).toThrow(/"300\.0\.0\.1" is not an IPv4 address or localhost/);
    expect(() => parseConfig({ metrics: 'dock-7.lan:9464' })).toThrow(/"dock-7\.lan" is not an IPv4 address or localhost/);
    expect(() => parseConfig({ metrics: 9464 })).toThrow(/metrics: expected "HOST:PORT" .*, got 9464/);
    // What the config check passes, the daemon's own parser takes.
    for (const ok of ['127.0.0.1:9464', '[::1]:9464', 'localhost:1', 'off', CONFIG_DEFAULTS.metrics]) expect(() => parseMetricsAddress(parseConfig({ metrics: ok }).metrics!)).not.toThrow();
  });

  it('dropDir: a directory path, absent by default', () => {
    expect(parseConfig({ dropDir: '/srv/dockside/drop' })).toEqual({ dropDir: '/srv/dockside/drop' });
    expect(() => parseConfig({ dropDir: '' })).toThrow(/dropDir: expected a directory path, got ""/);
    expect(() => parseConfig({ dropDir: true })).toThrow(/dropDir: expected a directory path, got true/);
    expect(withDefaults({}).dropDir).toBeUndefined();
  });

  it('fills in the defaults, the sink from the data directory', () => {
    const e = withDefaults({ dataDir: '/var/lib/dockside/', upload: { concurrency: 5 } });
    expect(e).toMatchObject({ dataDir: '/var/lib/dockside/', sink: 'dir:/var/lib/dockside/vault', bays: 8, usb: true, metrics: '127.0.0.1:9464', upload: { concurrency: 5, bandwidth: 'off', retryBaseMs: 1000 }, s3: { verify: 'read-back' } });
    expect(withDefaults({}).sink).toBe('dir:./var/vault');
  });
  it('docs/operations.md documents every key, with the default the code has', () => {
    const doc = readFileSync(fileURLToPath(new URL('../docs/operations.md', import.meta.url)), 'utf8');
    const rows = new Map<string, string>();
    for (const m of doc.matchAll(/^\| `([\w.]+)` \| ([^|]*) \|/gm)) rows.set(m[1]!, m[2]!.trim());
    expect(configKeys().filter((k) => !rows.has(k))).toEqual([]);
    const defaults = withDefaults({});
    for (const key of configKeys()) {
      if (key === 'sink') continue; // documented as dir:DATA_DIR/vault
      const v = key.split('.').reduce<unknown>((o, seg) => (o as Record<string, unknown> | undefined)?.[seg], defaults);
      if (v === undefined) expect(rows.get(key), key).toMatch(/^\(|^automatic$|^`AWS_REGION`/);
      else expect(rows.get(key), key).toMatch(new RegExp(`^\`${String(v).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\``));
    }
  });
});

describe('config files', () => {
  it('reads JSON and reports JSON errors with the path, line and column', () => {
    expect(loadConfig(file('good.json', '{"bays": 4}'))).toEqual({ bays: 4 });
    const bad = file('bad.json', '{\n  "bays": 4,\n}\n');
    expect(() => loadConfig(bad)).toThrow(`${bad}: line 3, column 1: not valid JSON: a comma before } (JSON allows no trailing comma)`);
    const eight = file('eight.json', '{\n  "bays": eight\n}\n');
    expect(() => loadConfig(eight)).toThrow(`${eight}: line 2, column 11: not valid JSON: expected a value`);
    expect(() => loadConfig(join(dir, 'missing.json'))).toThrow(/cannot read the config file/);
    expect(() => loadConfig(file('yaml-in.json', 'bays: 4\n'))).toThrow(/yaml-in\.json: line 1, column 1: not valid JSON/);
  });

  it('reads YAML (.yaml, .yml), anchors and aliases included', () => {
    const y = file('dock.yaml', ['# a dock', 'dataDir: /var/lib/dockside', 'bays: 8', 'usb: true', 'metrics: "[::1]:9464"', 'upload:', '  concurrency: &n 2', '  bandwidth: "08:00,2M 18:00,20M 23:00,off"', 'session:', '  retries: *n', ''].join('\n'));
    expect(loadConfig(y)).toEqual({ dataDir: '/var/lib/dockside', bays: 8, usb: true, metrics: '[::1]:9464', upload: { concurrency: 2, bandwidth: '08:00,2M 18:00,20M 23:00,off' }, session: { retries: 2 } });
    expect(loadConfig(file('dock.yml', 'bays: 3\n'))).toEqual({ bays: 3 });
    expect(loadConfig(file('bom.yaml', '\uFEFFbays: 3\n'))).toEqual({ bays: 3 });
    // Only comments: no settings, every default.
    expect(loadConfig(file('comments.yaml', '# nothing set yet\n# bays: 8\n'))).toEqual({});
  });

  it('YAML errors: syntax with the line and column, schema errors with the line of the key', () => {
    const syntax = file('syntax.yaml', 'bays: 4\nspool:\n  minFreeBytes: 1\n minx: [1,\n');
    expect(() => loadConfig(syntax)).toThrow(`${syntax}: line 4, column 1: not valid YAML: All mapping items must start at the same column`);
    const quote = file('quote.yaml', 'bays: 4\nsink: "dir:/srv\n');
    expect(() => loadConfig(quote)).toThrow(/quote\.yaml: line \d+, column \d+: not valid YAML: Missing closing "quote/);
    const eight = file('eight.yaml', 'dataDir: /var/lib/dockside\nbays: eight\n');
    expect(() => loadConfig(eight)).toThrow(`${eight}: line 2: bays: expected a whole number from 1 to 64, got "eight"`);
    const nested = file('nested.yaml', 'upload:\n  bandwidth: off\n  concurrency: 0\n');
    expect(() => loadConfig(nested)).toThrow(`${nested}: line 3: upload.concurrency: expected a whole number from 1 to 64, got 0`);
    const typo = file('typo.yaml', 'bays: 2\nspool:\n  minFree: 1\n');
    expect(() => loadConfig(typo)).toThrow(`${typo}: line 3: spool.minFree: unknown key`);
  });

  it('YAML 1.2: yes/on are strings, not booleans', () => {
    expect(() => loadConfig(file('yes.yaml', 'usb: yes\n'))).toThrow(/line 1: usb: expected true or false, got "yes"/);
    expect(() => loadConfig(file('on.yaml', 'usb: on\n'))).toThrow(/usb: expected true or false, got "on"/);
    expect(() => loadConfig(file('null.yaml', 'portsDir:\n'))).toThrow(/line 1: portsDir: expected a directory path, got null/);
  });

  it('refuses what makes no sense in a config: duplicate keys, tags, merge keys, several documents, an empty file', () => {
    const dup = file('dup.yaml', 'bays: 4\nupload:\n  concurrency: 2\n  concurrency: 3\n');
    expect(() => loadConfig(dup)).toThrow(`${dup}: line 4: upload.concurrency: given twice (first on line 3); a key may appear once`);
    const dupJson = file('dup.json', '{"bays": 4,\n "bays": 5}');
    expect(() => loadConfig(dupJson)).toThrow(`${dupJson}: line 2: bays: given twice (first on line 1)`);
    expect(() => loadConfig(file('tag.yml', 'bays: !!binary aGVsbG8=\n'))).toThrow(/line 1: bays: YAML tags \(!!binary\) have no meaning in a config/);
    expect(() => loadConfig(file('set.yml', 'spool: !!set {a, b}\n'))).toThrow(/spool: YAML tags \(!!set\)/);
    expect(() => loadConfig(file('js.yml', 'bays: !!js/function "x"\n'))).toThrow(/line 1, column \d+: not valid YAML: Unresolved tag/);
    expect(() => loadConfig(file('merge.yaml', 'base: &b {concurrency: 1}\nupload:\n  <<: *b\n'))).toThrow(/(base: unknown key|upload\.<<: merge keys)/);
    expect(() => loadConfig(file('merge2.yaml', 'upload:\n  <<: {concurrency: 1}\n'))).toThrow(/line 2: upload\.<<: merge keys \(<<\) are not supported/);
    expect(() => loadConfig(file('key.yaml', '? [a, b]\n: 1\n'))).toThrow(/a key must be a plain name/);
    expect(() => loadConfig(file('multi.yaml', 'bays: 1\n---\nbays: 2\n'))).toThrow(/line 2, column 1: not valid YAML: a config file holds one YAML document/);
    expect(() => loadConfig(file('empty.yaml', ''))).toThrow(/empty\.yaml: the file is empty; write \{\} to run on the defaults/);
    expect(() => loadConfig(file('blank.json', '  \n'))).toThrow(/the file is empty/);
  });

  it('refuses an alias bomb instead of expanding it', () => {
    const lines = ['a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]'];
    for (const [name, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd']] as const) lines.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    expect(() => loadConfig(file('bomb.yaml', `${lines.join('\n')}\n`))).toThrow(/bomb\.yaml: not a usable YAML document: Excessive alias count/);
  });

  it('another extension: JSON if it parses, else YAML', () => {
    expect(loadConfig(file('dock.conf', '{"bays": 4}'))).toEqual({ bays: 4 });
    expect(loadConfig(file('dock.cfg', 'bays: 5\n'))).toEqual({ bays: 5 });
    expect(loadConfig(file('dockside', 'bays: 6\n'))).toEqual({ bays: 6 });
    expect(() => loadConfig(file('broken.conf', 'bays: [\n'))).toThrow(/broken\.conf: line \d+, column \d+: not valid YAML/);
    // Looks like JSON and is neither: the JSON error is the useful one.
    expect(() => loadConfig(file('broken2.conf', '{"bays": 4 "usb": true}'))).toThrow(/broken2\.conf: line 1, column 12: not valid JSON: expected , or \} after a value, found "\\""/);
  });

  it('scanJson finds where JSON.parse gave up', () => {
    for (const bad of ['', '{', '{"a"}', '{"a":}', '[1,]', '{"a":1,}', '"abc', '"a\nb"', '"\\x"', '01', '{} x', 'tru', '{"a":1 "b":2}', '"\\u12"']) {
      expect(() => JSON.parse(bad)).toThrow();
      const r = scanJson(bad);
      expect(r.problem).not.toBe('JSON.parse refused it');
      expect(r.offset).toBeLessThanOrEqual(bad.length);
    }
    expect(scanJson('{"a": 1,\n  "b": x}')).toEqual({ offset: 16, problem: 'expected a value (a number, "a string", true, false, null, {...} or [...]), found "x"' });
  });
});
