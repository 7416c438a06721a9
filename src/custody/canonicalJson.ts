/**
 * Canonical JSON for signed custody records (docs/custody.md): object keys sorted by
 * code point, no white space, integers only (no floats, no exponents), strings
 * printable ASCII only (so there is exactly one escaping). The same value always
 * gives the same bytes, so a signature over them can be checked by anyone who can
 * read the file.
 */
import { DockError } from '../errors.js';

export type CanonicalValue = string | number | boolean | null | CanonicalValue[] | { [key: string]: CanonicalValue };

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

export function canonicalJson(value: unknown, path = '$'): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new DockError('CUSTODY_BAD_MANIFEST', `${path}: canonical JSON allows only safe integers, got ${value}`);
    return String(value);
  }
  if (typeof value === 'string') {
    if (!PRINTABLE_ASCII.test(value)) throw new DockError('CUSTODY_BAD_MANIFEST', `${path}: canonical JSON strings must be printable ASCII`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => canonicalJson(v, `${path}[${i}]`)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${canonicalJson(k, path)}:${canonicalJson(v, `${path}.${k}`)}`).join(',')}}`;
  }
  throw new DockError('CUSTODY_BAD_MANIFEST', `${path}: ${typeof value} cannot be encoded as canonical JSON`);
}
