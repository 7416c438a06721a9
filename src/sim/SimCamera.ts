/**
 * A simulated body camera: the firmware's behaviour for every protocol message,
 * on top of its flash (Flash.ts) and over any Transport.
 *
 * As zwave-js does for its mock controller: each behaviour is a default handler that
 * a test can replace (`camera.override('READ', ...)`), and `expectDockMessage()`
 * awaits what the dock sent. The link faults (ber, drop, stall, unplug, slow) and
 * the link model (rate, latency) apply per connection; the record-time faults live
 * on flash (recorder.ts).
 */
import { createHash, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { stat } from 'node:fs/promises';
import { Endpoint, NO_ANSWER, RemoteError, type Handler, type Handlers, type ReceivedRequest } from '../protocol/Endpoint.js';
import { CAP, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, TRIGGERS, type ClipEntry, type LogEntry, type RequestName } from '../protocol/messages.js';
import { MIN_MAX_PAYLOAD } from '../protocol/frame.js';
import { authMessage, spkiToRawEd25519 } from '../protocol/auth.js';
import { firmwareSha256, verifyFirmwareSignature } from '../protocol/firmwareImage.js';
import type { Transport } from '../hal/Transport.js';
import { defaultProfile, type CameraProfile } from '../hal/profiles.js';
import { DockError } from '../errors.js';
import { NO_FAULTS, type Faults } from './faults.js';
import { deriveEd25519Key, Flash } from './Flash.js';
import { ModeledLink, type LinkModel, type LinkStats } from './ModeledLink.js';
import { Random } from './Random.js';

export interface SimCameraOptions {
  faults?: Faults;
  linkRateBytesPerS?: number; // default 0 = as fast as the transport goes
  latencyMs?: number; // one way; default 0
  rebootMs?: number; // simulated reboot after a firmware update; default 1000
  chargePctPerMin?: number; // default 10 (a fast charger, so the demo moves)
  profile?: CameraProfile;
}

export interface SimCameraEvents {
  request: [received: ReceivedRequest];
  /** The unplug fault fired: the host should pull the camera out, then dock it again. */
  unplug: [reason: string];
  docked: [];
  undocked: [];
}

interface Connection {
  endpoint: Endpoint;
  link: ModeledLink;
  helloDone: boolean;
  dockedAtMs: number;
  transfers: Set<string>; // clips whose transfer this connection has logged
  firmware: { version: string; size: number; sha256: Buffer; data: Buffer; received: number } | undefined;
}

const SYSTEM_BYTES = 512 * 1024 * 1024; // flash reserved for the firmware and the file system

export class SimCamera extends EventEmitter<SimCameraEvents> {
  readonly flash: Flash;
  readonly profile: CameraProfile;
  readonly faults: Faults;
  readonly #opts: Required<Omit<SimCameraOptions, 'faults' | 'profile'>>;
  readonly #random: Random;
  readonly #overrides: Handlers = {};
  readonly #rogueKey: KeyObject | undefined;
  readonly #bootMs = Date.now();
  #conn: Connection | undefined;
  /** Per clip, once: the absolute offset past which the unplug fault pulls the camera (Infinity: never). */
  readonly #unplugAt = new Map<string, number>();
  #lastLinkStats: LinkStats | undefined;

  constructor(flash: Flash, options: SimCameraOptions = {}) {
    super();
    this.flash = flash;
    this.profile = options.profile ?? defaultProfile();
    this.faults = options.faults ?? { ...NO_FAULTS };
    this.#opts = {
      linkRateBytesPerS: options.linkRateBytesPerS ?? 0,
      latencyMs: options.latencyMs ?? 0,
      rebootMs: options.rebootMs ?? 1000,
      chargePctPerMin: options.chargePctPerMin ?? 10,
    };
    this.#random = new Random(flash.identity.seed, `${flash.identity.serial}/link`);
    if (this.faults.rogue) this.#rogueKey = deriveEd25519Key(`rogue-key\0${flash.identity.seed}\0${flash.identity.serial}`);
  }

  get serial(): string {
    return this.flash.identity.serial;
  }

  /** The key a dock should enroll for this camera (a rogue camera signs with another). */
  get publicKeyRaw(): Buffer {
    return this.flash.publicKeyRaw;
  }

  get docked(): boolean {
    return this.#conn !== undefined;
  }

  get linkStats(): LinkStats | undefined {
    return this.#conn?.link.stats ?? this.#lastLinkStats;
  }

  /** Replaces one default behaviour (undefined restores it), now and for later connections. */
  override<N extends RequestName>(name: N, handler: Handler<N> | undefined): void {
    const overrides = this.#overrides as Record<string, unknown>;
    if (handler) overrides[name] = handler;
    else delete overrides[name];
    const h = { [name]: handler ?? this.#defaults()[name] } as Handlers;
    this.#conn?.endpoint.setHandler(name, this.#withStall(h)[name] as Handler<N>);
  }

  /** The default firmware behaviour for a message, for a test override that wraps it. */
  defaultBehaviour<N extends RequestName>(name: N): Handler<N> {
    return this.#defaults()[name] as Handler<N>;
  }

  /** Resolves with the first request from the dock that matches, or rejects after timeoutMs. */
  expectDockMessage(timeoutMs: number, predicate: (r: ReceivedRequest) => boolean = () => true): Promise<ReceivedRequest> {
    return new Promise((resolve, reject) => {
      const onRequest = (r: ReceivedRequest): void => {
        if (!predicate(r)) return;
        clearTimeout(timer);
        this.off('request', onRequest);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.off('request', onRequest);
        reject(new DockError('PROTO_TIMEOUT', `simulated camera ${this.serial}: the dock sent no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('request', onRequest);
    });
  }

  /** Docks the camera on `transport` (its own end of the link). */
  attach(transport: Transport): void {
    if (this.#conn) this.detach();
    const model: LinkModel = {
      rateBytesPerS: this.#opts.linkRateBytesPerS > 0 ? this.#opts.linkRateBytesPerS / this.faults.slow : 0,
      latencyMs: this.#opts.latencyMs * this.faults.slow,
      ber: this.faults.ber,
      drop: this.faults.drop,
    };
    const link = new ModeledLink(transport, model, this.#random);
    const handlers = { ...this.#defaults(), ...this.#overrides };
    const endpoint = new Endpoint(link, this.#withStall(handlers), { maxPayload: MIN_MAX_PAYLOAD });
    const conn: Connection = { endpoint, link, helloDone: false, dockedAtMs: Date.now(), transfers: new Set(), firmware: undefined };
    endpoint.on('request', (r) => this.emit('request', r));
    link.once('disconnected', () => {
      if (this.#conn === conn) this.detach();
    });
    this.#conn = conn;
    this.flash.appendLog(20, `docked (${transport.kind} ${transport.path})`);
    this.emit('docked');
  }

  /** Undocks: the battery stops charging, the link is dropped. */
  detach(): void {
    const conn = this.#conn;
    if (!conn) return;
    this.#conn = undefined;
    this.#lastLinkStats = { ...conn.link.stats };
    conn.endpoint.close();
    void conn.link.close().catch(() => undefined);
    this.flash.updateIdentity({ batteryPct: this.#battery(conn) });
    this.flash.appendLog(20, 'undocked');
    this.emit('undocked');
  }

  async close(): Promise<void> {
    this.detach();
    await this.flash.close();
  }

  /** The camera's own clock: true time plus its offset plus accumulated drift. */
  clockMs(now = Date.now()): number {
    const id = this.flash.identity;
    return Math.round(now + id.clockOffsetMs + ((now - id.clockSetAtMs) * id.driftPpm) / 1e6);
  }

  #battery(conn: Connection | undefined = this.#conn): number {
    const base = this.flash.identity.batteryPct;
    if (!conn) return base;
    return Math.min(100, Math.round(base + ((Date.now() - conn.dockedAtMs) / 60000) * this.#opts.chargePctPerMin));
  }

  #withStall(handlers: Handlers): Handlers {
    if (this.faults.stall <= 0) return handlers;
    const out: Handlers = {};
    for (const [name, h] of Object.entries(handlers) as [RequestName, Handler<RequestName>][]) {
      (out as Record<string, Handler<RequestName>>)[name] = (req, ctx) => (this.#random.chance(this.faults.stall) ? NO_ANSWER : h(req, ctx));
    }
    return out;
  }

  #ready(): Connection {
    const conn = this.#conn;
    if (!conn?.helloDone) throw new RemoteError('NOT_READY', 'send HELLO first');
    return conn;
  }

  /** The default firmware behaviours, one per message (docs/protocol.md §5). */
  #defaults(): Required<Handlers> {
    const flash = this.flash;
    return {
      HELLO: (req) => {
        const conn = this.#conn!;
        const version = Math.min(req.maxVersion, PROTOCOL_VERSION_MAX);
        if (version < req.minVersion || version < PROTOCOL_VERSION_MIN) {
          throw new RemoteError('UNSUPPORTED_VERSION', `this camera speaks protocol ${PROTOCOL_VERSION_MIN}..${PROTOCOL_VERSION_MAX}; the dock asked for ${req.minVersion}..${req.maxVersion}`);
        }
        const maxPayload = Math.max(MIN_MAX_PAYLOAD, Math.min(req.maxPayload, this.profile.maxPayloadBytes));
        conn.helloDone = true;
        conn.endpoint.maxPayload = maxPayload;
        flash.appendLog(20, `HELLO from dock ${JSON.stringify(req.dockId)}: protocol ${version}, max payload ${maxPayload}`);
        const id = flash.identity;
        return {
          version,
          vendor: id.vendor,
          model: id.model,
          serial: id.serial,
          firmware: id.firmware,
          hardware: id.hardware,
          capabilities: CAP.PIPELINED_READ | CAP.FIRMWARE_UPDATE | CAP.LINK_TEST | CAP.GPS,
          maxPayload,
          window: this.profile.window,
        };
      },
      AUTH: (req) => {
        this.#ready();
        const key = this.#rogueKey ?? flash.privateKey;
        const publicKey = spkiToRawEd25519(createPublicKey(key).export({ type: 'spki', format: 'der' }));
        return { publicKey, signature: sign(null, authMessage(flash.identity.serial, Buffer.from(req.nonce)), key) };
      },
      STATUS: () => {
        this.#ready();
        const clips = flash.clips();
        const held = clips.reduce((n, c) => n + c.manifest.size, 0);
        const battery = this.#battery();
        const charging = battery < 100;
        return {
          batteryPct: battery,
          charging,
          storageTotal: this.profile.storageBytes,
          storageUsed: Math.min(this.profile.storageBytes, SYSTEM_BYTES + held),
          clipCount: clips.length + flash.releaseMarks().length,
          unreleasedCount: clips.length,
          temperatureMilliC: 31_500 + (charging ? 4_000 : 0) + Math.round((this.#random.next() - 0.5) * 600),
          clockMs: this.clockMs(),
          uptimeS: Math.floor((Date.now() - this.#bootMs) / 1000),
        };
      },
      LIST_CLIPS: (req) => {
        const conn = this.#ready();
        // The cursor is a seq: clips freed between pages cannot shift the listing.
        const clips = flash.clips().filter((c) => c.manifest.seq >= req.cursor);
        const limit = Math.max(1, Math.min(req.limit, 256));
        const budget = conn.endpoint.maxPayload - 8; // u16 count + bool + u32 next, with room
        const page: ClipEntry[] = [];
        let bytes = 0;
        for (const c of clips.slice(0, limit)) {
          const size = 2 + c.manifest.clipId.length + 4 + 8 + 8 + 4 + 1 + 1;
          if (bytes + size > budget) break;
          bytes += size;
          page.push({
            id: c.manifest.clipId,
            seq: c.manifest.seq,
            size: c.manifest.size,
            startMs: c.manifest.startMs,
            durationMs: c.manifest.durationMs,
            trigger: TRIGGERS.indexOf(c.manifest.trigger),
            released: false,
          });
        }
        const last = page[page.length - 1];
        return { clips: page, more: page.length < clips.length, next: last ? last.seq + 1 : req.cursor };
      },
      GET_MANIFEST: (req) => {
        this.#ready();
        const c = flash.clip(req.clipId);
        if (!c) throw new RemoteError('NO_SUCH_CLIP', `no clip ${req.clipId}`);
        return { manifest: c.manifestBytes, signature: c.signature };
      },
      READ: async (req) => {
        const conn = this.#ready();
        const c = flash.clip(req.clipId);
        if (!c) throw new RemoteError('NO_SUCH_CLIP', `no clip ${req.clipId}`);
        const maxLen = conn.endpoint.maxPayload - 12;
        if (req.length < 1 || req.length > maxLen || req.offset + req.length > c.manifest.size) {
          throw new RemoteError('BAD_RANGE', `READ ${req.clipId} @${req.offset}+${req.length}: clip has ${c.manifest.size} bytes, max read ${maxLen}`);
        }
        const data = await flash.read(req.clipId, req.offset, req.length);
        this.#trackTransfer(conn, req.clipId, req.offset, data.length, c.manifest.size);
        return { offset: req.offset, data };
      },
      RELEASE: async (req) => {
        this.#ready();
        const sha = Buffer.from(req.sha256).toString('hex');
        const mark = flash.releaseMark(req.clipId);
        if (mark) return { released: true, freedBytes: 0 };
        const c = flash.clip(req.clipId);
        if (!c) throw new RemoteError('NO_SUCH_CLIP', `no clip ${req.clipId}`);
        if (c.manifest.sha256 !== sha) {
          flash.appendLog(30, `RELEASE refused for ${req.clipId}: sha256 ${sha} does not match the manifest`);
          throw new RemoteError('HASH_MISMATCH', `sha256 does not match clip ${req.clipId}'s manifest; the clip is kept`);
        }
        await flash.release(req.clipId, sha, req.receipt, Date.now());
        flash.appendLog(20, `RELEASE ${req.clipId} sha256=${sha} receipt=${JSON.stringify(req.receipt)}`);
        return { released: true, freedBytes: c.manifest.size };
      },
      SET_TIME: (req) => {
        this.#ready();
        const now = Date.now();
        const previousMs = this.clockMs(now);
        flash.updateIdentity({ clockOffsetMs: req.utcMs - now, clockSetAtMs: now });
        flash.appendLog(20, `SET_TIME ${new Date(req.utcMs).toISOString()} (was ${new Date(previousMs).toISOString()})`);
        return { previousMs };
      },
      GET_LOG: async (req) => {
        const conn = this.#ready();
        const limit = Math.max(1, Math.min(req.limit, 256));
        const entries = await flash.readLog(req.cursor, limit + 1);
        const budget = conn.endpoint.maxPayload - 8;
        const page: LogEntry[] = [];
        let bytes = 0;
        for (const e of entries.slice(0, limit)) {
          const message = e.message.slice(0, 500);
          const size = 4 + 8 + 1 + 2 + Buffer.byteLength(message);
          if (bytes + size > budget) break;
          bytes += size;
          page.push({ ...e, message });
        }
        const last = page[page.length - 1];
        return { entries: page, more: page.length < entries.length, next: last ? last.seq + 1 : req.cursor };
      },
      SELFTEST: async () => {
        this.#ready();
        const checks: { name: string; ok: boolean; detail: string }[] = [];
        let bad = 0;
        for (const c of flash.clips()) {
          const st = await stat(c.path).catch(() => undefined);
          if (!st || st.size !== c.manifest.size) bad++;
        }
        checks.push({ name: 'flash', ok: bad === 0, detail: bad === 0 ? `${flash.clips().length} clips readable` : `${bad} clips unreadable or the wrong size` });
        const battery = this.#battery();
        checks.push({ name: 'battery', ok: battery >= 5, detail: `${battery}%` });
        checks.push({ name: 'rtc', ok: Math.abs(flash.identity.driftPpm) < 100, detail: `drift ${flash.identity.driftPpm} ppm` });
        checks.push({ name: 'sensor', ok: true, detail: 'image sensor responds' });
        checks.push({ name: 'microphone', ok: true, detail: 'audio path responds' });
        checks.push({ name: 'gps', ok: true, detail: 'fix available' });
        flash.appendLog(20, `SELFTEST ${checks.every((c) => c.ok) ? 'passed' : 'FAILED'}`);
        return { passed: checks.every((c) => c.ok), checks };
      },
      LINK_TEST: (req) => {
        const conn = this.#ready();
        if (req.data.length + 4 > conn.endpoint.maxPayload) throw new RemoteError('BAD_RANGE', `LINK_TEST of ${req.data.length} bytes cannot be echoed within the negotiated payload`);
        return { data: req.data };
      },
      FIRMWARE_BEGIN: (req) => {
        const conn = this.#ready();
        const sha256 = Buffer.from(req.sha256);
        if (!verifyFirmwareSignature(this.profile.firmwarePublicKey, flash.identity.model, req.version, sha256, Buffer.from(req.signature))) {
          flash.appendLog(30, `firmware ${req.version} refused: signature does not verify`);
          throw new RemoteError('FIRMWARE_REJECTED', `firmware ${req.version}: the signature does not verify against the vendor key`);
        }
        if (req.size < 1 || req.size > 64 * 1024 * 1024) throw new RemoteError('FIRMWARE_REJECTED', `firmware size ${req.size} is outside 1 byte..64 MiB`);
        conn.firmware = { version: req.version, size: req.size, sha256, data: Buffer.alloc(req.size), received: 0 };
        flash.appendLog(20, `firmware ${req.version} transfer begins (${req.size} bytes)`);
        return { maxChunk: conn.endpoint.maxPayload - 64 };
      },
      FIRMWARE_CHUNK: (req) => {
        const fw = this.#ready().firmware;
        if (!fw) throw new RemoteError('NOT_READY', 'send FIRMWARE_BEGIN first');
        const end = req.offset + req.data.length;
        if (end > fw.size) throw new RemoteError('BAD_RANGE', `chunk @${req.offset}+${req.data.length} runs past the image size ${fw.size}`);
        if (req.offset === fw.received) {
          req.data.copy(fw.data, req.offset);
          fw.received = end;
        } else if (end !== fw.received) {
          throw new RemoteError('BAD_RANGE', `chunk @${req.offset} out of order: ${fw.received} bytes received so far`);
        }
        return { received: fw.received };
      },
      FIRMWARE_COMMIT: async () => {
        const conn = this.#ready();
        const fw = conn.firmware;
        if (!fw) throw new RemoteError('NOT_READY', 'send FIRMWARE_BEGIN first');
        conn.firmware = undefined;
        if (fw.received !== fw.size || !firmwareSha256(fw.data).equals(fw.sha256)) {
          flash.appendLog(30, `firmware ${fw.version} refused: image incomplete or hash mismatch`);
          throw new RemoteError('FIRMWARE_REJECTED', `firmware ${fw.version}: received ${fw.received}/${fw.size} bytes or the image hash does not match`);
        }
        const old = flash.identity.firmware;
        flash.appendLog(20, `firmware ${fw.version} verified; rebooting`);
        await new Promise((r) => setTimeout(r, this.#opts.rebootMs * this.faults.slow));
        flash.updateIdentity({ firmware: fw.version });
        flash.appendLog(20, `booted firmware ${fw.version} (was ${old})`);
        conn.helloDone = false; // a rebooted camera expects a new HELLO
        return { version: fw.version };
      },
    };
  }

  /**
   * Logs transfer start and end, and fires the unplug fault part-way through a
   * transfer: decided once per clip (so a resumed transfer can finish), at an absolute
   * offset between 10% and 90% of what was left when the transfer first started.
   */
  #trackTransfer(conn: Connection, clipId: string, offset: number, length: number, size: number): void {
    if (!conn.transfers.has(clipId)) {
      conn.transfers.add(clipId);
      this.flash.appendLog(20, `transfer ${clipId} from offset ${offset} of ${size}`);
    }
    let at = this.#unplugAt.get(clipId);
    if (at === undefined) {
      at = this.#random.chance(this.faults.unplug) ? offset + Math.max(1, Math.floor((size - offset) * (0.1 + 0.8 * this.#random.next()))) : Infinity;
      this.#unplugAt.set(clipId, at);
    }
    if (offset + length === size) this.flash.appendLog(20, `transfer ${clipId} reached the end`);
    if (offset <= at && at < offset + length) {
      this.#unplugAt.set(clipId, Infinity);
      this.flash.appendLog(30, `FAULT unplug during ${clipId} at offset ${at}`);
      // Before this READ's answer is sent (a microtask, not a later turn): a host that pulls
      // the camera out on 'unplug' cuts the transfer here, even when the clip is served
      // from the read-ahead block and every answer is ready at once.
      queueMicrotask(() => this.emit('unplug', `unplug fault during ${clipId}`));
    }
  }
}

/** A deterministic serial number for camera `index` of a fleet made from `seed`. */
export function simSerial(seed: number, index: number): string {
  return `BC4-${createHash('sha256').update(`sim-serial\0${seed}\0${index}`).digest('hex').slice(0, 8).toUpperCase()}`;
}
