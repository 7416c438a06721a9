/**
 * Camera model profiles from hardware/models/*.json: how to recognise a model on USB
 * and serial, and how to talk to it. Validated with zod when loaded, so a bad
 * profile is a CONFIG_INVALID naming the file and key, not a crash at dock time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DockError } from '../errors.js';

/** hardware/ at the top of the checkout (the same relative path from src/ and dist/). */
export const HARDWARE_DIR = fileURLToPath(new URL('../../hardware/', import.meta.url));

const u8 = z.number().int().min(0).max(255);
const u16 = z.number().int().min(0).max(0xffff);

export const CameraProfileSchema = z.object({
  id: z.string().regex(/^[a-z0-9-]+$/),
  vendor: z.string().min(1),
  model: z.string().min(1),
  simulated: z.boolean().default(false),
  usb: z.object({
    vendorId: u16,
    productId: u16,
    manufacturer: z.string().optional(),
    product: z.string().optional(),
    interface: z.object({ number: u8, class: u8, subclass: u8, protocol: u8 }),
    endpoints: z.object({ in: u8.refine((n) => (n & 0x80) !== 0, 'an IN endpoint address has bit 7 set'), out: u8.refine((n) => (n & 0x80) === 0, 'an OUT endpoint address has bit 7 clear') }),
    maxPacketBytes: z.number().int().positive(),
    transferTimeoutMs: z.number().int().positive(),
  }),
  serial: z.object({
    baudRate: z.number().int().positive(),
    dataBits: z.union([z.literal(7), z.literal(8)]),
    parity: z.enum(['none', 'even', 'odd']),
    stopBits: z.union([z.literal(1), z.literal(2)]),
    byIdPattern: z.string().min(1),
  }),
  storageBytes: z.number().int().positive(),
  maxPayloadBytes: z.number().int().min(4096).max(1024 * 1024),
  window: z.number().int().min(1).max(256),
  firmwarePublicKey: z.string().min(1), // base64 DER SPKI, Ed25519
});

export type CameraProfile = z.infer<typeof CameraProfileSchema>;

export function loadProfiles(dir = join(HARDWARE_DIR, 'models')): CameraProfile[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  return files.map((f) => {
    const path = join(dir, f);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new DockError('CONFIG_INVALID', `camera profile ${path} is not valid JSON: ${(err as Error).message}`, { path });
    }
    const parsed = CameraProfileSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new DockError('CONFIG_INVALID', `camera profile ${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`, { path, key: issue.path.join('.') });
    }
    return parsed.data;
  });
}

export function defaultProfile(): CameraProfile {
  const p = loadProfiles().find((x) => x.id === 'sentinel-bc4');
  if (!p) throw new DockError('CONFIG_INVALID', `hardware/models/sentinel-bc4.json is missing from ${HARDWARE_DIR}`);
  return p;
}
