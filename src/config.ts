/**
 * The daemon's configuration: one JSON file, validated with zod when the daemon
 * starts. Every key is optional; the defaults below are what runs when it is absent.
 * An error names the key, the bad value and what is expected, e.g.
 *   bays: expected a whole number from 1 to 64, got "eight"
 * Command-line flags override the file.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DockError, isDockError } from './errors.js';
import { parseBwTimetable } from './queue/Bandwidth.js';

export const CONFIG_DEFAULTS = {
  dataDir: './var', // state, ledger, spool, quarantine, vault
  bays: 8, // cameras served at once
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

const int = (min: number, max: number, what: string) =>
  z.number({ error: (i) => `expected ${what} from ${min} to ${max}, got ${JSON.stringify(i.input)}` }).int({ error: (i) => `expected ${what} from ${min} to ${max}, got ${JSON.stringify(i.input)}` }).min(min, { error: (i) => `expected ${what} from ${min} to ${max}, got ${JSON.stringify(i.input)}` }).max(max, { error: (i) => `expected ${what} from ${min} to ${max}, got ${JSON.stringify(i.input)}` });

export const ConfigSchema = z
  .object({
    dataDir: z.string({ error: (i) => `expected a directory path, got ${JSON.stringify(i.input)}` }).min(1).optional(),
    sink: z
      .string({ error: (i) => `expected a sink such as "dir:/var/lib/dockside/vault" or "s3://evidence/dock1", got ${JSON.stringify(i.input)}` })
      .regex(/^(dir:.+|s3:\/\/[^/]+.*)$/, { error: (i) => `expected a sink such as "dir:/var/lib/dockside/vault" or "s3://evidence/dock1", got ${JSON.stringify(i.input)}` })
      .optional(),
    bays: int(1, 64, 'a whole number').optional(),
    portsDir: z.string().min(1).optional(),
    usb: z.boolean({ error: (i) => `expected true or false, got ${JSON.stringify(i.input)}` }).optional(),
    spool: z
      .object({
        minFreeBytes: int(0, Number.MAX_SAFE_INTEGER, 'a number of bytes').optional(),
        syncEveryBytes: int(65536, 1024 ** 3, 'a number of bytes').optional(),
        keepAfterReleaseMs: int(0, 365 * 86_400_000, 'milliseconds').optional(),
      })
      .strict()
      .optional(),
    upload: z
      .object({
        concurrency: int(1, 64, 'a whole number').optional(),
        bandwidth: z
          .string({ error: (i) => `expected a bandwidth limit such as "10M", "off" or "08:00,2M 18:00,20M 23:00,off", got ${JSON.stringify(i.input)}` })
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
      })
      .strict()
      .optional(),
    s3: z
      .object({
        endpoint: z.url({ error: (i) => `expected a URL such as "http://127.0.0.1:9000", got ${JSON.stringify(i.input)}` }).optional(),
        region: z.string().min(1).optional(),
        pathStyle: z.boolean({ error: (i) => `expected true or false, got ${JSON.stringify(i.input)}` }).optional(),
        accessKeyId: z.string().min(1).optional(),
        secretAccessKey: z.string().min(1).optional(),
        sessionToken: z.string().min(1).optional(),
        verify: z.enum(['read-back', 'store-checksum'], { error: (i) => `expected "read-back" or "store-checksum", got ${JSON.stringify(i.input)}` }).optional(),
        objectLock: z
          .string()
          .regex(/^(compliance|governance):[1-9]\d{0,4}$/, { error: (i) => `expected "compliance:DAYS" or "governance:DAYS", got ${JSON.stringify(i.input)}` })
          .optional(),
        multipartAboveBytes: int(5 * 1024 * 1024, 5 * 1024 ** 3, 'a number of bytes').optional(),
        partSizeBytes: int(5 * 1024 * 1024, 5 * 1024 ** 3, 'a number of bytes').optional(),
      })
      .strict()
      .refine((s) => (s.accessKeyId === undefined) === (s.secretAccessKey === undefined), { error: 'accessKeyId and secretAccessKey go together: give both or neither' })
      .optional(),
    session: z
      .object({
        timeoutMs: int(10, 600_000, 'milliseconds').optional(),
        retries: int(0, 100, 'a whole number').optional(),
      })
      .strict()
      .optional(),
    clockSkewMs: int(0, 86_400_000, 'milliseconds').optional(),
    hashThreads: int(0, 256, 'a whole number').optional(),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

export function parseConfig(value: unknown, source = 'config'): Config {
  const r = ConfigSchema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = issue.path.join('.') || '(top level)';
  const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (the keys are listed in README.md, Configuration)` : issue.message;
  throw new DockError('CONFIG_INVALID', `${source}: ${key}: ${message}`, { key, source });
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new DockError('CONFIG_INVALID', `cannot read the config file ${path}: ${(err as Error).message}`, { path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new DockError('CONFIG_INVALID', `${path} is not valid JSON: ${(err as Error).message}`, { path });
  }
  return parseConfig(json, path);
}
