/** Drops keys whose value is undefined, so `{ ...DEFAULTS, ...stripUndefined(opts) }` keeps a default for every option not given. */
export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
