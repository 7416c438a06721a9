/**
 * The usb backend against libusb itself, with fake devices from umockdev: each test
 * runs fixtures/usb/umockdevProbe.ts in a child `umockdev-run`, whose preload library
 * gives libusb (and the libudev it enumerates with) a sandboxed /sys, /dev and uevent
 * socket built from fixtures/usb/*.umockdev. What is real here: the `usb` package's
 * native addon, libusb's Linux backend and libudev, enumeration from sysfs, the
 * descriptors, port numbers, hotplug through a udev monitor, and (with a usbmon
 * capture that umockdev replays) every bulk URB of a protocol session.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, afterAll } from 'vitest';
import { encodeFrame, FLAG_RESPONSE } from '../src/protocol/frame.js';
import { encodeStruct } from '../src/protocol/codec.js';
import { CAP, MESSAGES, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN } from '../src/protocol/messages.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURES = join(ROOT, 'fixtures', 'usb');
const HUB = join(FIXTURES, 'dock-hub.umockdev'); // PCI xHCI, root hub usb1, a 4-port hub at 1-1
const CAMERA = join(FIXTURES, 'sentinel-bc4.umockdev'); // 1209:d0c4 at 1-1.3, bus 1 address 5
const UNPROFILED = join(FIXTURES, 'unprofiled-camera.umockdev'); // 1209:d0c5 at 1-1.2: same layout, no profile
const CAMERA_SYSFS = '/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.3';
const CHILD_TIMEOUT_MS = 20_000;

const work = mkdtempSync(join(tmpdir(), 'dockside-usb-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Line = Record<string, unknown>;

interface Probe {
  lines: Line[];
  /** Resolves with the exit code once the child has exited. */
  exited: Promise<number | null>;
  /** Resolves with the first line (now or later) that satisfies `match`. */
  next(match: (l: Line) => boolean): Promise<Line>;
  end(): void;
}

/** umockdev-run --device … -- node --import tsx fixtures/usb/umockdevProbe.ts ARGS */
function probe(devices: string[], args: string[], extra: string[] = []): Probe {
  const umockdevArgs = [...devices.flatMap((d) => ['--device', d]), ...extra];
  const child = spawn('umockdev-run', [...umockdevArgs, '--', process.execPath, '--import', 'tsx', join(FIXTURES, 'umockdevProbe.ts'), ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group, so a stuck run is ended with the node inside it
  });
  const lines: Line[] = [];
  const waiters: { match: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  createInterface({ input: child.stdout }).on('line', (text) => {
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      line = { raw: text };
    }
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }, CHILD_TIMEOUT_MS);
  const exited = new Promise<number | null>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) process.stderr.write(`umockdev probe ${args.join(' ')} exited ${String(code)}:\n${stderr}\n${JSON.stringify(lines)}\n`);
      for (const w of waiters.splice(0)) w.resolve({ event: 'exited-before-match', code, stderr });
      resolve(code);
    });
  });
  return {
    lines,
    exited,
    next: (match) => {
      const seen = lines.find(match);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ match, resolve }));
    },
    end: () => child.stdin.end(),
  };
}

describe('umockdev: libusb enumerates the fake dock', () => {
  it('lists the camera with its ids, socket path and descriptors, and UsbDiscovery attaches it as sentinel-bc4', async () => {
    const p = probe([HUB, CAMERA, UNPROFILED], ['list']);
    expect(await p.exited).toBe(0);
    const devices = p.lines[0]!['devices'] as { path: string; vendorId: number; productId: number; interfaces: { number: number; interfaceClass: number }[] }[];
    const camera = devices.find((d) => d.path === 'usb:1-1.3');
    expect(camera).toMatchObject({ vendorId: 0x1209, productId: 0xd0c4 });
    // The config descriptor as libusb parsed it: DFU interface 0, vendor interface 1 (ff/44/01).
    expect(camera!.interfaces).toEqual([
      { number: 0, interfaceClass: 0xfe, interfaceSubclass: 0x01, interfaceProtocol: 0x01 },
      { number: 1, interfaceClass: 0xff, interfaceSubclass: 0x44, interfaceProtocol: 0x01 },
    ]);
    expect(devices.map((d) => d.path).sort()).toEqual(['usb:1-1', 'usb:1-1.2', 'usb:1-1.3', 'usb:1@1']);
    // Exactly one candidate: the unprofiled 1209:d0c5 next to it is listed but not taken.
    const events = p.lines.filter((l) => 'event' in l);
    expect(events).toEqual([
      { event: 'attach', path: 'usb:1-1.3', profileId: 'sentinel-bc4', vendorId: 0x1209, productId: 0xd0c4, deviceAddress: 5 },
      // The child got here and then exited by itself: close() released the hotplug hold on the event loop.
      { event: 'closed' },
    ]);
  });

  it('ignores a device whose VID/PID matches no profile, though libusb sees it', async () => {
    const p = probe([HUB, UNPROFILED], ['list']);
    expect(await p.exited).toBe(0);
    const devices = p.lines[0]!['devices'] as { path: string; vendorId: number; productId: number }[];
    expect(devices.find((d) => d.path === 'usb:1-1.2')).toMatchObject({ vendorId: 0x1209, productId: 0xd0c5 });
    expect(p.lines.filter((l) => 'event' in l)).toEqual([{ event: 'closed' }]);
  });
});

/** The libudev monitor message that udevd would send (what umockdev's own uevent sender writes). */
function uevent(action: 'add' | 'remove', seqnum: number): Buffer {
  const props = Buffer.from(
    [`ACTION=${action}`, `DEVPATH=${CAMERA_SYSFS.slice('/sys'.length)}`, 'SUBSYSTEM=usb', `SEQNUM=${seqnum}`, 'DEVNAME=/dev/bus/usb/001/005', 'DEVTYPE=usb_device'].map((p) => `${p}\0`).join(''),
  );
  const header = Buffer.alloc(40);
  header.write('libudev\0', 0, 'latin1');
  header.writeUInt32BE(0xfeedcafe, 8); // UDEV_MONITOR_MAGIC, network order
  header.writeUInt32LE(40, 12); // header size
  header.writeUInt32LE(40, 16); // properties offset
  header.writeUInt32LE(props.length, 20);
  header.writeUInt32BE(murmurHash2('usb'), 24); // subsystem hash, for the monitor's filter
  header.writeUInt32BE(murmurHash2('usb_device'), 28); // devtype hash
  return Buffer.concat([header, props]);
}

/** MurmurHash2 (seed = length), as libudev hashes subsystem and devtype names. */
function murmurHash2(s: string): number {
  const data = Buffer.from(s);
  const m = 0x5bd1e995;
  let h = data.length >>> 0;
  let i = 0;
  for (; data.length - i >= 4; i += 4) {
    let k = data.readUInt32LE(i);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = data.length - i;
  if (rest >= 3) h ^= data[i + 2]! << 16;
  if (rest >= 2) h ^= data[i + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ data[i]!, m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h >>> 0;
}

/**
 * Delivers a uevent to every udev monitor in the testbed. umockdev-run cannot send
 * uevents itself; its preload turns each netlink monitor socket into a Unix datagram
 * socket $UMOCKDEV_DIR/eventN, and socat (installed by .ci/run for the serial tests)
 * sends the datagram, which Node's own sockets cannot.
 */
function sendUevent(umockdevDir: string, message: Buffer): number {
  const sockets = readdirSync(umockdevDir).filter((f) => /^event\d+$/.test(f));
  for (const s of sockets) {
    const r = spawnSync('socat', ['-u', 'STDIN', `UNIX-SENDTO:${join(umockdevDir, s)}`], { input: message });
    if (r.status !== 0) throw new Error(`socat could not send the uevent to ${s}: ${String(r.stderr)}`);
  }
  return sockets.length;
}

describe('umockdev: hotplug through the udev monitor', () => {
  it('a remove uevent detaches the camera and an add uevent attaches it again, with rescans off', async () => {
    const p = probe([HUB, CAMERA], ['watch']);
    const ready = await p.next((l) => l['event'] === 'ready');
    expect(p.lines[0]).toMatchObject({ event: 'attach', path: 'usb:1-1.3', profileId: 'sentinel-bc4' }); // from the first listing
    const dir = ready['umockdevDir'] as string;
    expect(sendUevent(dir, uevent('remove', 1))).toBeGreaterThan(0);
    expect(await p.next((l) => l['event'] === 'detach' || l['event'] === 'exited-before-match')).toMatchObject({ event: 'detach', path: 'usb:1-1.3', profileId: 'sentinel-bc4', deviceAddress: 5 });
    sendUevent(dir, uevent('add', 2));
    await p.next((l) => (l['event'] === 'attach' && p.lines.indexOf(l) > 1) || l['event'] === 'exited-before-match');
    p.end();
    expect(await p.exited).toBe(0);
    expect(p.lines.map((l) => [l['event'], l['path']])).toEqual([
      ['attach', 'usb:1-1.3'],
      ['ready', undefined],
      ['detach', 'usb:1-1.3'],
      ['attach', 'usb:1-1.3'],
      ['closed', undefined],
    ]);
  });
});

describe('umockdev: an open UsbTransport when the camera is unplugged', () => {
  it('fires disconnected once with HAL_DISCONNECTED on the remove uevent, and closes cleanly after', async () => {
    // No URB ever completes: an empty capture just lets the queued reads sit in umockdev.
    const pcap = join(work, 'idle.pcap');
    writeFileSync(pcap, new UsbmonCapture(1, 5).toPcap());
    const p = probe([HUB, CAMERA], ['unplug'], ['--pcap', `${CAMERA_SYSFS}=${pcap}`]);
    const open = await p.next((l) => l['event'] === 'open' || l['event'] === 'exited-before-match');
    expect(open).toMatchObject({ event: 'open', path: 'usb:1-1.3' });
    sendUevent(open['umockdevDir'] as string, uevent('remove', 1));
    expect(await p.exited).toBe(0);
    const gone = p.lines.filter((l) => l['event'] === 'disconnected');
    expect(gone).toHaveLength(1);
    expect(gone[0]).toMatchObject({ code: 'HAL_DISCONNECTED' });
    expect(gone[0]!['message']).toMatch(/usb device at usb:1-1\.3 went away: the camera was unplugged\. Re-dock the camera/);
    expect(p.lines.at(-1)).toEqual({ event: 'closed', isOpen: false });
  });
});

/**
 * A usbmon capture (pcap, link type DLT_USB_LINUX_MMAPPED) of bulk URBs, for
 * `umockdev-run --pcap SYSFS=FILE`. umockdev replays it in order: an 'S' record is
 * matched to a URB the program has submitted (type, endpoint, length and, for OUT,
 * every byte), a 'C' record completes that URB (with the bytes, for IN).
 */
class UsbmonCapture {
  readonly #records: Buffer[] = [];
  #nextId = 1n;
  #usec = 0;
  constructor(
    readonly bus: number,
    readonly device: number,
  ) {}

  submit(endpoint: number, length: number, data?: Buffer): bigint {
    const id = this.#nextId++;
    this.#record('S', id, endpoint, length, data ?? Buffer.alloc(0), -115); // -EINPROGRESS
    return id;
  }

  complete(id: bigint, endpoint: number, length: number, data?: Buffer): void {
    this.#record('C', id, endpoint, length, data ?? Buffer.alloc(0), 0);
  }

  toPcap(): Buffer {
    const global = Buffer.alloc(24);
    global.writeUInt32LE(0xa1b2c3d4, 0);
    global.writeUInt16LE(2, 4);
    global.writeUInt16LE(4, 6);
    global.writeUInt32LE(4 * 1024 * 1024, 16); // snaplen
    global.writeUInt32LE(220, 20); // DLT_USB_LINUX_MMAPPED
    return Buffer.concat([global, ...this.#records]);
  }

  #record(event: 'S' | 'C', id: bigint, endpoint: number, urbLength: number, data: Buffer, status: number): void {
    this.#usec += 50;
    const usb = Buffer.alloc(64); // struct usbmon_packet (the mmapped, 64-byte variant)
    usb.writeBigUInt64LE(id, 0);
    usb[8] = event.charCodeAt(0);
    usb[9] = 3; // bulk
    usb[10] = endpoint;
    usb[11] = this.device;
    usb.writeUInt16LE(this.bus, 12);
    usb[14] = 0x2d; // '-': no setup packet
    usb[15] = data.length > 0 ? 0 : 0x3c; // usbmon: 0 when data follows, else a reason ('<': none captured)
    usb.writeBigInt64LE(BigInt(Math.floor(this.#usec / 1e6)), 16);
    usb.writeInt32LE(this.#usec % 1e6, 24);
    usb.writeInt32LE(status, 28);
    usb.writeUInt32LE(urbLength, 32);
    usb.writeUInt32LE(data.length, 36);
    const pkt = Buffer.alloc(16);
    pkt.writeUInt32LE(Math.floor(this.#usec / 1e6), 0);
    pkt.writeUInt32LE(this.#usec % 1e6, 4);
    pkt.writeUInt32LE(64 + data.length, 8);
    pkt.writeUInt32LE(64 + data.length, 12);
    this.#records.push(pkt, usb, data);
  }
}

/**
 * Writes the capture of a camera that answers HELLO and echoes LINK_TEST, URB by URB,
 * the way a Linux host would see it with UsbTransport's defaults: `reads` IN reads of
 * `readBytes` kept queued and each re-queued as it completes; one OUT URB per write,
 * plus a zero-length one when the write fills its last packet.
 */
class ScriptedCamera {
  readonly #queued: bigint[] = [];
  zeroLengthWrites = 0;
  constructor(
    readonly capture: UsbmonCapture,
    readonly opts: { inEp: number; outEp: number; maxPacket: number; readBytes: number; reads: number },
  ) {
    for (let i = 0; i < opts.reads; i++) this.#queued.push(capture.submit(opts.inEp, opts.readBytes));
  }

  hostWrites(frame: Buffer): void {
    const { outEp, maxPacket } = this.opts;
    this.capture.complete(this.capture.submit(outEp, frame.length, frame), outEp, frame.length);
    if (frame.length % maxPacket === 0) {
      this.capture.complete(this.capture.submit(outEp, 0), outEp, 0);
      this.zeroLengthWrites++;
    }
  }

  cameraWrites(frame: Buffer): void {
    const { readBytes } = this.opts;
    // A read completes when full or at a short packet; the firmware ends a write that
    // fills its last packet with a ZLP, which completes an empty read if the last one was full.
    for (let off = 0; off < frame.length; off += readBytes) this.#completeRead(frame.subarray(off, off + readBytes));
    if (frame.length % readBytes === 0) this.#completeRead(Buffer.alloc(0));
  }

  #completeRead(data: Buffer): void {
    const id = this.#queued.shift()!;
    this.capture.complete(id, this.opts.inEp, data.length, data);
    this.#queued.push(this.capture.submit(this.opts.inEp, this.opts.readBytes));
  }
}

describe('umockdev: a protocol session over real libusb bulk transfers (usbmon replay)', () => {
  it('opens and claims the vendor interface, completes HELLO, echoes LINK_TESTs byte for byte, and closes', async () => {
    const session = { dockId: 'umockdev', maxPayload: 65536, window: 1, timeoutMs: 60_000, retries: 0 };
    const reads = 4;
    const camera = new ScriptedCamera(new UsbmonCapture(1, 5), { inEp: 0x81, outEp: 0x01, maxPacket: 512, readBytes: 16384, reads });
    const request = (seq: number, name: 'HELLO' | 'LINK_TEST', payload: Buffer): Buffer => encodeFrame({ type: MESSAGES[name].type, flags: 0, seq, payload });
    const answer = (seq: number, name: 'HELLO' | 'LINK_TEST', payload: Buffer): Buffer => encodeFrame({ type: MESSAGES[name].type, flags: FLAG_RESPONSE, seq, payload });

    camera.hostWrites(request(1, 'HELLO', encodeStruct(MESSAGES.HELLO.req, { minVersion: PROTOCOL_VERSION_MIN, maxVersion: PROTOCOL_VERSION_MAX, dockId: session.dockId, maxPayload: session.maxPayload, window: session.window })));
    camera.cameraWrites(
      answer(
        1,
        'HELLO',
        encodeStruct(MESSAGES.HELLO.res, {
          version: 1,
          vendor: 'Dockside Simulated Devices',
          model: 'Sentinel BC4',
          serial: 'BC4-UMOCKDEV-1',
          firmware: '1.0.0',
          hardware: 'rev-a',
          capabilities: CAP.LINK_TEST,
          maxPayload: 65536,
          window: 1,
        }),
      ),
    );

    // Sizes chosen to hit the edges: a small frame; one whose frame fills its last
    // 512-byte packet exactly (so UsbTransport must send a ZLP); answers that span
    // several 16 KiB reads; full 64 KiB payloads.
    const data = randomBytes(300 * 1024);
    const linkTest = (offset: number, n: number): Buffer => encodeStruct(MESSAGES.LINK_TEST.req, { data: data.subarray(offset, offset + n) });
    let zlpSize = 0;
    for (let n = 600; n < 2000 && zlpSize === 0; n++) if (request(3, 'LINK_TEST', linkTest(100, n)).length % 512 === 0) zlpSize = n;
    expect(zlpSize).toBeGreaterThan(0);
    const sizes = [100, zlpSize, 40_000, 65_532, 65_532, 65_532];
    let offset = 0;
    sizes.forEach((n, i) => {
      const payload = linkTest(offset, n);
      camera.hostWrites(request(i + 2, 'LINK_TEST', payload));
      camera.cameraWrites(answer(i + 2, 'LINK_TEST', payload)); // the echo: same payload
      offset += n;
    });
    expect(camera.zeroLengthWrites).toBeGreaterThan(0);

    const pcap = join(work, 'session.pcap');
    writeFileSync(pcap, camera.capture.toPcap());
    writeFileSync(join(work, 'data.bin'), data);
    writeFileSync(join(work, 'plan.json'), JSON.stringify({ session, pollTransfers: reads, dataFile: join(work, 'data.bin'), sizes }));

    const p = probe([HUB, CAMERA], ['session', join(work, 'plan.json')], ['--pcap', `${CAMERA_SYSFS}=${pcap}`]);
    expect(await p.exited).toBe(0);
    expect(p.lines[0]).toEqual({ event: 'hello', path: 'usb:1-1.3', serial: 'BC4-UMOCKDEV-1', model: 'Sentinel BC4' });
    offset = 0;
    const expected = sizes.map((n) => {
      const sha256 = createHash('sha256').update(data.subarray(offset, offset + n)).digest('hex');
      offset += n;
      return { event: 'echo', bytes: n, sha256 };
    });
    expect(p.lines.slice(1, -1)).toEqual(expected);
    // Closing cancelled the queued reads (umockdev answers each DISCARDURB), released the
    // interface and closed the device; the child then exited by itself.
    expect(p.lines.at(-1)).toEqual({ event: 'closed', retries: 0, discarded: 0 });
  });
});
