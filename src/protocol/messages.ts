/**
 * Every message of protocol version 1 (docs/protocol.md §5). A request and its
 * response share the type number; a response has FLAG_RESPONSE set. Any request may
 * be answered with ERROR instead.
 */
import { bool, bytes, fixed, i32, list, str, u16, u32, u64, u8, type StructValue } from './codec.js';
import { PROTOCOL_MAX_PAYLOAD } from './frame.js';
import { DockError } from '../errors.js';

export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION_MAX = 1;

export const MAX_CLIP_ID = 64;
export const MAX_MANIFEST_BYTES = 16 * 1024;
export const LIST_PAGE_MAX = 256;

/** Capability bits a camera advertises in HELLO. */
export const CAP = {
  PIPELINED_READ: 1 << 0,
  FIRMWARE_UPDATE: 1 << 1,
  LINK_TEST: 1 << 2,
  GPS: 1 << 3,
} as const;

/** Trigger that started a recording (manifest and LIST_CLIPS). */
export const TRIGGERS = ['button', 'holster', 'priority'] as const;
export type Trigger = (typeof TRIGGERS)[number];

const clipEntry = { id: str(MAX_CLIP_ID), seq: u32, size: u64, startMs: u64, durationMs: u32, trigger: u8, released: bool } as const;
const logEntry = { seq: u32, timeMs: u64, level: u8, message: str(512) } as const;
const check = { name: str(32), ok: bool, detail: str(256) } as const;
const empty = {} as const;

export const MESSAGES = {
  HELLO: {
    type: 0x01,
    req: { minVersion: u8, maxVersion: u8, dockId: str(64), maxPayload: u32, window: u16 },
    res: { version: u8, vendor: str(64), model: str(64), serial: str(32), firmware: str(32), hardware: str(32), capabilities: u32, maxPayload: u32, window: u16 },
  },
  AUTH: { type: 0x02, req: { nonce: fixed(32) }, res: { publicKey: fixed(32), signature: fixed(64) } },
  STATUS: {
    type: 0x03,
    req: empty,
    res: {
      batteryPct: u8,
      charging: bool,
      storageTotal: u64,
      storageUsed: u64,
      clipCount: u32,
      unreleasedCount: u32,
      temperatureMilliC: i32,
      clockMs: u64,
      uptimeS: u32,
    },
  },
  LIST_CLIPS: { type: 0x04, req: { cursor: u32, limit: u16 }, res: { clips: list(clipEntry, LIST_PAGE_MAX), more: bool, next: u32 } },
  GET_MANIFEST: { type: 0x05, req: { clipId: str(MAX_CLIP_ID) }, res: { manifest: bytes(MAX_MANIFEST_BYTES), signature: fixed(64) } },
  READ: { type: 0x06, req: { clipId: str(MAX_CLIP_ID), offset: u64, length: u32 }, res: { offset: u64, data: bytes(PROTOCOL_MAX_PAYLOAD) } },
  RELEASE: { type: 0x07, req: { clipId: str(MAX_CLIP_ID), sha256: fixed(32), receipt: str(512) }, res: { released: bool, freedBytes: u64 } },
  SET_TIME: { type: 0x08, req: { utcMs: u64 }, res: { previousMs: u64 } },
  GET_LOG: { type: 0x09, req: { cursor: u32, limit: u16 }, res: { entries: list(logEntry, LIST_PAGE_MAX), more: bool, next: u32 } },
  SELFTEST: { type: 0x0a, req: empty, res: { passed: bool, checks: list(check, 32) } },
  LINK_TEST: { type: 0x0b, req: { data: bytes(PROTOCOL_MAX_PAYLOAD) }, res: { data: bytes(PROTOCOL_MAX_PAYLOAD) } },
  FIRMWARE_BEGIN: { type: 0x0c, req: { version: str(32), size: u32, sha256: fixed(32), signature: fixed(64) }, res: { maxChunk: u32 } },
  FIRMWARE_CHUNK: { type: 0x0d, req: { offset: u32, data: bytes(PROTOCOL_MAX_PAYLOAD) }, res: { received: u32 } },
  FIRMWARE_COMMIT: { type: 0x0e, req: empty, res: { version: str(32) } },
  ERROR: { type: 0x7f, req: empty, res: { code: u16, message: str(512) } },
} as const;

export type MessageName = keyof typeof MESSAGES;
export type RequestName = Exclude<MessageName, 'ERROR'>;
export type Request<N extends MessageName> = StructValue<(typeof MESSAGES)[N]['req']>;
export type Response<N extends MessageName> = StructValue<(typeof MESSAGES)[N]['res']>;
export type ClipEntry = Response<'LIST_CLIPS'>['clips'][number];
export type LogEntry = Response<'GET_LOG'>['entries'][number];

const BY_TYPE = new Map<number, MessageName>(Object.entries(MESSAGES).map(([name, m]) => [m.type, name as MessageName]));

export function messageName(type: number): MessageName | undefined {
  return BY_TYPE.get(type);
}

/** Error codes carried in an ERROR payload (docs/protocol.md §6). */
export const REMOTE_ERRORS = {
  UNKNOWN_TYPE: 1,
  UNSUPPORTED_VERSION: 2,
  BAD_PAYLOAD: 3,
  NOT_READY: 4,
  NO_SUCH_CLIP: 5,
  BAD_RANGE: 6,
  HASH_MISMATCH: 7,
  BUSY: 8,
  FIRMWARE_REJECTED: 9,
  STORAGE: 10,
  INTERNAL: 255,
} as const;
export type RemoteErrorName = keyof typeof REMOTE_ERRORS;

export function remoteErrorName(code: number): RemoteErrorName | 'UNKNOWN' {
  for (const [name, c] of Object.entries(REMOTE_ERRORS)) if (c === code) return name as RemoteErrorName;
  return 'UNKNOWN';
}

/** Safe in a file name on every filesystem the dock may write to: no dots, slashes or NULs. */
const CLIP_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const SERIAL = /^[A-Z0-9][A-Z0-9-]{2,31}$/;

/** A device's clip id becomes a file name on the dock: refuse anything but [A-Za-z0-9_-]. */
export function assertClipId(id: string): string {
  if (!CLIP_ID.test(id)) {
    throw new DockError('PROTO_BAD_NAME', `camera sent an unsafe clip id ${JSON.stringify(id.slice(0, 80))}: ids must match ${CLIP_ID.source}; the clip is left on the camera`, {
      clipId: id.slice(0, 80),
    });
  }
  return id;
}

export function assertSerial(serial: string): string {
  if (!SERIAL.test(serial)) {
    throw new DockError('PROTO_BAD_NAME', `camera sent an unusable serial number ${JSON.stringify(serial.slice(0, 80))}: serials must match ${SERIAL.source}`, {
      serial: serial.slice(0, 80),
    });
  }
  return serial;
}

export function isSafeClipId(id: string): boolean {
  return CLIP_ID.test(id);
}
