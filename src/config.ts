/**
 * The daemon's configuration: one JSON or YAML file, validated with zod when the
 * daemon starts (and by `dockside config check`). Every key is optional; the defaults
 * below are what runs when it is absent. An error names the key, the bad value and
 * what is expected, with the line when the file gives one, e.g.
 *   dock.yaml: line 3: bays: expected a whole number from 1 to 64, got "eight"
 * Command-line flags override the file. docs/operations.md lists every key.
 *
 *   file ─► text ─┬─ .json            JSON.parse (errors located by scanJson)
 *                 ├─ .yaml / .yml     YAML 1.2 (yaml): one document, unique keys, no tags
 *                 └─ anything else    JSON if it parses, else YAML
 *                        ▼
 *               plain value ─► ConfigSchema (zod) ─► Config
 *
 * The YAML document is kept beside the value, so a schema error can point at the
 * line of its key; JSON text is read as YAML too for that, and for duplicate keys
 * (JSON.parse silently keeps the last one).
 */
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { DockError, isDockError } from './errors.js';
import { parseBwTimetable } from './queue/Bandwidth.js';

export const CONFIG_DEFAULTS = {
  dataDir: './var', // state, ledger, spool, quarantine, vault
  // sink: dir:DATA_DIR/vault
  bays: 8, // cameras served at once
  // portsDir: none (serial cameras are looked for in /dev/serial/by-id)
  usb: true, // look for cameras on USB
  metrics: '127.0.0.1:9464', // Prometheus /metrics and /healthz: "HOST:PORT", "[::1]:PORT" or "off"
  // dropDir: none (no drop-folder import)
  spool: {
    minFreeBytes: 1024 ** 3, // pulls pause below this much free space on the spool
    syncEveryBytes: 4 * 1024 * 1024, // fsync and commit a pull's offset at least this often
    keepAfterReleaseMs: 0, // keep a released clip's spool copy this long (0: remove at release)
  },
  upload: {
    concurrency: 3, // uploads at once
    bandwidth: 'off', // rclone --bwlimit syntax: "10M", "08:00,2M 18:00,20M 23:00,off"
    retryBaseMs: 1000, // first backoff of a failed upload (doubles, with jitter)
    retryMaxMs: 300_000, // longest backoff
    fullProbeMs: 60_000, // how often uploads paused by a full store try again
  },
  s3: {
    // endpoint: AWS; region: AWS_REGION, else us-east-1; pathStyle: automatic;
    // accessKeyId, secretAccessKey, sessionToken: the AWS credential chain; objectLock: none
    verify: 'read-back', // or store-checksum (see README, S3)
    multipartAboveBytes: 128 * 1024 * 1024, // one streamed PutObject up to this size
    partSizeBytes: 16 * 1024 * 1024, // multipart part size above it
  },
  session: {
    timeoutMs: 1000, // idle time with requests pending before they are resent
    retries: 6, // resends per request before it fails
  },
  clockSkewMs: 2000, // a camera further off than this gets SET_TIME
  hashThreads: 0, // 0: one per core
} as const;

/** Keys whose values never leave the process: not in logs, not in `config check` output, not in errors. */
export const SECRET_KEYS = ['s3.secretAccessKey', 's3.sessionToken'] as const;

/** A bad value as an error message shows it: JSON, except numbers JSON cannot write (YAML's .inf, .nan). */
function shown(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const int = (min: number, max: number, what: string) => {
  const error = (i: { input: unknown }) => `expected ${what} from ${min} to ${max}, got ${shown(i.input)}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};

const text = (what: string) => {
  const error = (i: { input: unknown }) => `expected ${what}, got ${shown(i.input)}`;
  return z.string({ error }).min(1, { error });
};

/** A secret: a bad one is reported without its value. */
const secret = () => z.string({ error: 'expected a non-empty string (the value is not shown: it is a secret)' }).min(1, { error: 'expected a non-empty string, got an empty one' });

const section = (name: string) => ({ error: (i: { input: unknown }) => `expected a mapping of ${name}.* keys, got ${shown(i.input)}` });

const bool = () => z.boolean({ error: (i) => `expected true or false, got ${shown(i.input)}` });

const METRICS_FORM = 'expected "HOST:PORT" with an IP address or localhost (e.g. "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464") or "off"';

/**
 * What is wrong with a `metrics` address, if anything. The daemon parses it with
 * observability/Metrics.ts parseMetricsAddress; this accepts no more than that does
 * (a port of 0, "any free port", is for tests and stays a flag's business).
 */
function metricsProblem(spec: string): string | undefined {
  if (spec === 'off') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(spec);
  if (!m) return `${METRICS_FORM}, got ${shown(spec)}`;
  const [, v6, host, port] = m;
  if (v6 !== undefined && !isIPv6(v6)) return `${METRICS_FORM}: ${shown(v6)} in brackets is not an IPv6 address`;
  if (host !== undefined && host !== 'localhost' && !isIPv4(host)) return `${METRICS_FORM}: ${shown(host)} is not an IPv4 address or localhost (an IPv6 address goes in brackets)`;
  const n = Number(port);
  if (n < 1 || n > 65535 || String(n) !== port) return `the port must be a whole number from 1 to 65535, got ${shown(spec)}`;
  return undefined;
}

export const ConfigSchema = z
  .object(
    {
      dataDir: text('a directory path').optional(),
      sink: z
        .string({ error: (i) => `expected a sink such as "dir:/var/lib/dockside/vault" or "s3://evidence/dock1", got ${shown(i.input)}` })
        .regex(/^(dir:.+|s3:\/\/[^/]+.*)$/, { error: (i) => `expected a sink such as "dir:/var/lib/dockside/vault" or "s3://evidence/dock1", got ${shown(i.input)}` })
        .optional(),
      bays: int(1, 64, 'a whole number').optional(),
      portsDir: text('a directory path').optional(),
      usb: bool().optional(),
      metrics: z
        .string({ error: (i) => `${METRICS_FORM}, got ${shown(i.input)}` })
        .superRefine((v, ctx) => {
          const problem = metricsProblem(v);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional(),
      dropDir: text('a directory path').optional(),
      spool: z
        .object(
          {
            minFreeBytes: int(0, Number.MAX_SAFE_INTEGER, 'a number of bytes').optional(),
            syncEveryBytes: int(65536, 1024 ** 3, 'a number of bytes').optional(),
            keepAfterReleaseMs: int(0, 365 * 86_400_000, 'milliseconds').optional(),
          },
          section('spool'),
        )
        .strict()
        .optional(),
      upload: z
        .object(
          {
            concurrency: int(1, 64, 'a whole number').optional(),
            bandwidth: z
              .string({ error: (i) => `expected a bandwidth limit such as "10M", "off" or "08:00,2M 18:00,20M 23:00,off", got ${shown(i.input)}` })
              .superRefine((v, ctx) => {
                try {
                  parseBwTimetable(v);
                } catch (err) {
                  ctx.addIssue({ code: 'custom', message: isDockError(err) ? err.message : String(err) });
                }
              })
              .optional(),
            retryBaseMs: int(10, 3_600_000, 'milliseconds').optional(),
            retryMaxMs: int(10, 86_400_000, 'milliseconds').optional(),
            fullProbeMs: int(100, 86_400_000, 'milliseconds').optional(),
          },
          section('upload'),
        )
        .strict()
        .optional(),
      s3: z
        .object(
          {
            endpoint: z.url({ error: (i) => `expected a URL such as "http://127.0.0.1:9000", got ${shown(i.input)}` }).optional(),
            region: text('a region name such as "eu-west-1"').optional(),
            pathStyle: bool().optional(),
            accessKeyId: text('an access key id').optional(),
            secretAccessKey: secret().optional(),
            sessionToken: secret().optional(),
            verify: z.enum(['read-back', 'store-checksum'], { error: (i) => `expected "read-back" or "store-checksum", got ${shown(i.input)}` }).optional(),
            objectLock: z
              .string({ error: (i) => `expected "compliance:DAYS" or "governance:DAYS", got ${shown(i.input)}` })
              .regex(/^(compliance|governance):[1-9]\d{0,4}$/, { error: (i) => `expected "compliance:DAYS" or "governance:DAYS", got ${shown(i.input)}` })
              .optional(),
            multipartAboveBytes: int(5 * 1024 * 1024, 5 * 1024 ** 3, 'a number of bytes').optional(),
            partSizeBytes: int(5 * 1024 * 1024, 5 * 1024 ** 3, 'a number of bytes').optional(),
          },
          section('s3'),
        )
        .strict()
        .refine((s) => (s.accessKeyId === undefined) === (s.secretAccessKey === undefined), { error: 'accessKeyId and secretAccessKey go together: give both or neither' })
        .optional(),
      session: z
        .object(
          {
            timeoutMs: int(10, 600_000, 'milliseconds').optional(),
            retries: int(0, 100, 'a whole number').optional(),
          },
          section('session'),
        )
        .strict()
        .optional(),
      clockSkewMs: int(0, 86_400_000, 'milliseconds').optional(),
      hashThreads: int(0, 256, 'a whole number').optional(),
    },
    { error: (i) => `expected a mapping of settings (key: value, or a JSON object), got ${shown(i.input)}` },
  )
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

/** Every key the file may hold, dotted (`spool.minFreeBytes`), in the schema's order. */
export function configKeys(): string[] {
  const keys: string[] = [];
  for (const [name, field] of Object.entries(ConfigSchema.shape)) {
    const inner: unknown = field.unwrap();
    if (inner instanceof z.ZodObject) for (const sub of Object.keys(inner.shape)) keys.push(`${name}.${sub}`);
    else keys.push(name);
  }
  return keys;
}

/** What the daemon runs with: the file's values over the defaults (keys with no default stay absent). */
export function withDefaults(c: Config) {
  const d = CONFIG_DEFAULTS;
  const dataDir = c.dataDir ?? d.dataDir;
  return {
    dataDir,
    sink: c.sink ?? `dir:${dataDir.replace(/\/+$/, '')}/vault`,
    bays: c.bays ?? d.bays,
    portsDir: c.portsDir,
    usb: c.usb ?? d.usb,
    metrics: c.metrics ?? d.metrics,
    dropDir: c.dropDir,
    spool: { ...d.spool, ...c.spool },
    upload: { ...d.upload, ...c.upload },
    s3: { ...d.s3, ...c.s3 },
    session: { ...d.session, ...c.session },
    clockSkewMs: c.clockSkewMs ?? d.clockSkewMs,
    hashThreads: c.hashThreads ?? d.hashThreads,
  };
}

export type EffectiveConfig = ReturnType<typeof withDefaults>;

/** The line (1-based) of the key at `path` in the file, when known. */
export type Locate = (path: readonly PropertyKey[]) => number | undefined;

/** One problem in a config file: the dotted key, what is wrong, and the line if known. */
export interface ConfigIssue {
  key: string;
  message: string;
  line?: number;
}

function issueText(i: ConfigIssue): string {
  return `${i.line !== undefined ? `line ${i.line}: ` : ''}${i.key}: ${i.message}`;
}

function invalid(source: string, issues: ConfigIssue[], extra: Record<string, unknown> = {}): DockError {
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''}: \`dockside config check ${source === 'config' ? 'FILE' : source}\` lists them all)` : '';
  return new DockError('CONFIG_INVALID', `${source}: ${issueText(first)}${more}`, { source, key: first.key, line: first.line, issues, ...extra });
}

/** The keys the schema knows at `path` (the top level, or a section such as `spool`). */
function knownKeys(path: readonly PropertyKey[]): string[] {
  if (path.length === 0) return Object.keys(ConfigSchema.shape);
  const field = (ConfigSchema.shape as Record<string, { unwrap(): unknown } | undefined>)[String(path[0])];
  const inner = field?.unwrap();
  return path.length === 1 && inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}

/** A known key that an unknown one is probably a typo of: another case, or one edit away (two for longer names). */
function nearestKey(unknown: string, known: string[]): string | undefined {
  const lower = unknown.toLowerCase();
  let best: { key: string; d: number } | undefined;
  for (const key of known) {
    const d = key.toLowerCase() === lower ? 0 : editDistance(lower, key.toLowerCase());
    if (d <= (unknown.length <= 4 ? 1 : 2) && (!best || d < best.d)) best = { key, d };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

/** Checks a parsed value against the schema; throws CONFIG_INVALID listing every problem (the message leads with the first). */
export function parseConfig(value: unknown, source = 'config', locate: Locate = () => undefined): Config {
  const r = ConfigSchema.safeParse(value);
  if (r.success) return r.data;
  const issues: ConfigIssue[] = [];
  const add = (i: ConfigIssue): void => {
    // int() checks a value several ways; one message per key is enough.
    if (!issues.some((o) => o.key === i.key && o.message === i.message)) issues.push(i);
  };
  for (const issue of r.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const near = nearestKey(k, knownKeys(issue.path));
        add({ key: [...issue.path, k].join('.'), message: `unknown key${near ? `; did you mean ${JSON.stringify(near)}?` : ''} (docs/operations.md lists every key)`, line: locate([...issue.path, k]) });
      }
    } else add({ key: issue.path.join('.') || '(top level)', message: issue.message, line: locate(issue.path) });
  }
  throw invalid(source, issues);
}

/** How the text of a config file is read: by its name, or (another name) JSON if it parses, else YAML. */
export type ConfigFormat = 'json' | 'yaml';

function formatOf(path: string): ConfigFormat | undefined {
  if (/\.json$/i.test(path)) return 'json';
  if (/\.ya?ml$/i.test(path)) return 'yaml';
  return undefined;
}

/** Reads, parses and checks a config file. Throws CONFIG_INVALID naming the file, the line and the key. */
export function loadConfig(path: string): Config {
  return loadConfigFile(path).config;
}

/** loadConfig, and how the file was read. */
export function loadConfigFile(path: string): { config: Config; format: ConfigFormat } {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new DockError('CONFIG_INVALID', `cannot read the config file ${path}: ${(err as Error).message}`, { path, source: path });
  }
  const { value, format, locate } = readConfigText(raw, path);
  return { config: parseConfig(value, path, locate), format };
}

/** The plain value in a config file's text, and where its keys are. Exported for the tests. */
export function readConfigText(raw: string, source: string): { value: unknown; format: ConfigFormat; locate: Locate } {
  const text = raw.replace(/^\uFEFF/, '');
  // A file that lost its content (a failed copy) must not pass as "all defaults".
  if (text.trim() === '') throw new DockError('CONFIG_INVALID', `${source}: the file is empty; write {} to run on the defaults`, { path: source, source });
  const named = formatOf(source);
  if (named === 'yaml') return { ...readYaml(text, source), format: 'yaml' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const jsonError = (): DockError => {
      const where = scanJson(text);
      const { line, col } = linePos(text, where.offset);
      return new DockError('CONFIG_INVALID', `${source}: line ${line}, column ${col}: not valid JSON: ${where.problem}`, { path: source, source, line, column: col });
    };
    if (named === 'json') throw jsonError();
    // Neither .json nor .yaml: YAML then; if that fails too, say what the file looks like it meant to be.
    try {
      return { ...readYaml(text, source), format: 'yaml' };
    } catch (err) {
      if (isDockError(err, 'CONFIG_INVALID') && err.details['yaml'] !== undefined && text.trimStart().startsWith('{')) throw jsonError();
      throw err;
    }
  }
  // JSON is YAML: read again for the lines of keys, and for the duplicates JSON.parse lets through.
  const y = yamlDocument(text);
  if (y.doc.errors.length > 0) return { value, format: 'json', locate: () => undefined };
  checkNodes(y, source);
  return { value, format: 'json', locate: y.locate };
}

interface YamlDoc {
  doc: Document.Parsed;
  lines: LineCounter;
  locate: Locate;
}

function yamlDocument(text: string): YamlDoc {
  const lines = new LineCounter();
  // uniqueKeys off: checkNodes reports a duplicate itself, naming the key. YAML 1.2 core
  // schema: `yes`, `on` and `0777` are not booleans or octal, merge keys (<<) are not merges.
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false, version: '1.2', merge: false });
  const locate: Locate = (path) => {
    let node: unknown = doc.contents;
    let line: number | undefined;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return line;
        line = isScalar(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : line;
        node = pair.value;
      } else if (isSeq(node)) {
        node = node.items[Number(seg)];
        const range = (node as { range?: [number, number, number] } | undefined)?.range;
        if (range) line = lines.linePos(range[0]).line;
      } else return line;
    }
    return line;
  };
  return { doc, lines, locate };
}

function readYaml(text: string, source: string): { value: unknown; locate: Locate } {
  const y = yamlDocument(text);
  const problem = y.doc.errors[0] ?? y.doc.warnings[0];
  if (problem) {
    const { line, col } = y.lines.linePos(problem.pos[0]);
    const message = problem.code === 'MULTIPLE_DOCS' ? 'a config file holds one YAML document; this one has another after `---`' : problem.message.split('\n')[0]!;
    throw new DockError('CONFIG_INVALID', `${source}: line ${line}, column ${col}: not valid YAML: ${message}`, { path: source, source, line, column: col, yaml: problem.code });
  }
  checkNodes(y, source);
  let value: unknown;
  try {
    // An empty document (only comments) is no settings: every default.
    value = y.doc.contents === null ? {} : y.doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new DockError('CONFIG_INVALID', `${source}: not a usable YAML document: ${(err as Error).message}`, { path: source, source });
  }
  return { value, locate: y.locate };
}

/**
 * What YAML allows and a config must not have: a key given twice (which one wins is
 * a guess), keys that are not plain scalars, tags (`!!binary`, `!!set`, `!custom`),
 * merge keys. Anchors and aliases are fine: they are only repetition.
 */
function checkNodes(y: YamlDoc, source: string): void {
  const problem = (offset: number | undefined, path: string[], message: string): DockError => {
    const line = offset === undefined ? undefined : y.lines.linePos(offset).line;
    return invalid(source, [{ key: path.join('.') || '(top level)', message, line }]);
  };
  const walk = (node: unknown, path: string[]): void => {
    if (isAlias(node)) return; // its anchor is checked where it is defined
    const tagged = node as { tag?: string; range?: [number, number, number] } | null;
    if (tagged?.tag) throw problem(tagged.range?.[0], path, `YAML tags (${tagged.tag.replace('tag:yaml.org,2002:', '!!')}) have no meaning in a config: write the plain value (quote it for a string)`);
    if (isMap(node)) {
      const seen = new Map<string, number>();
      for (const pair of node.items) {
        const k = pair.key;
        if (!isScalar(k)) throw problem((k as { range?: [number] } | null)?.range?.[0] ?? node.range?.[0], path, 'a key must be a plain name, not a list, a mapping or an alias');
        const name = String(k.value);
        const at = k.range?.[0] ?? 0;
        const keyPath = [...path, name];
        if (k.tag) throw problem(at, keyPath, 'YAML tags have no meaning in a config');
        if (name === '<<') throw problem(at, keyPath, 'merge keys (<<) are not supported: write the keys out');
        const before = seen.get(name);
        if (before !== undefined) throw problem(at, keyPath, `given twice (first on line ${y.lines.linePos(before).line}); a key may appear once`);
        seen.set(name, at);
        walk(pair.value, keyPath);
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => walk(item, [...path, String(i)]));
  };
  walk(y.doc.contents, []);
}

function linePos(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

/**
 * Where JSON text first goes wrong, and how. JSON.parse's own message sometimes
 * gives no position and quotes the text around the error (which may be a secret).
 */
export function scanJson(text: string): { offset: number; problem: string } {
  let i = 0;
  class Stop {
    constructor(
      readonly offset: number,
      readonly problem: string,
    ) {}
  }
  const stop = (problem: string, at = i): never => {
    throw new Stop(at, problem);
  };
  const found = (): string => (i >= text.length ? 'the end of the file' : JSON.stringify(text[i]));
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const string = (): void => {
    const open = i++;
    for (;;) {
      if (i >= text.length) stop('a string is not closed (a " is missing)', open);
      const c = text.charCodeAt(i);
      if (c === 0x22) return void i++;
      if (c < 0x20) stop('a line break or control character inside a string (a closing " may be missing)');
      if (c === 0x5c) {
        i++;
        if (text[i] === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) stop('\\u must be followed by 4 hex digits');
          i += 5;
        } else if (i < text.length && '"\\/bfnrt'.includes(text[i]!)) i++;
        else stop(`unknown escape \\${text[i] ?? ''} in a string`);
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') stop(`expected a key in double quotes, found ${found()}`);
        string();
        ws();
        if (text[i] !== ':') stop(`expected : after the key, found ${found()}`);
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          ws();
          if (text[i] === '}') stop('a comma before } (JSON allows no trailing comma)');
          continue;
        }
        if (text[i] === '}') return void i++;
        stop(`expected , or } after a value, found ${found()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          ws();
          if (text[i] === ']') stop('a comma before ] (JSON allows no trailing comma)');
          continue;
        }
        if (text[i] === ']') return void i++;
        stop(`expected , or ] after a value, found ${found()}`);
      }
    }
    if (c === '"') return string();
    const m = /^(-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (m) return void (i += m[0].length);
    stop(`expected a value (a number, "a string", true, false, null, {...} or [...]), found ${found()}`);
  };
  try {
    value();
    ws();
    if (i < text.length) stop(`unexpected ${found()} after the end of the JSON value`);
  } catch (err) {
    if (err instanceof Stop) return { offset: err.offset, problem: err.problem };
    throw err;
  }
  return { offset: text.length, problem: 'JSON.parse refused it' };
}
