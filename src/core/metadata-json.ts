import type { MetadataValue } from './model';

/** Arrays longer than this are folded to `{ type, length, head }` unless the caller asks for all. */
export const FOLD_ARRAY_ABOVE = 64;
export const FOLDED_HEAD = 16;

export type MetadataJson = number | string | boolean | null | MetadataJson[] | { type: string; length: number; head: MetadataJson[] };

/** Plain JSON for one typed metadata value: 64-bit integers beyond 2^53 become strings. */
export function metadataToJson(v: MetadataValue, full = false): MetadataJson {
  if (v.type !== 'array') return scalarJson(v.value);
  const items = v.value as Array<number | bigint | boolean | string | MetadataValue>;
  const convert = (x: number | bigint | boolean | string | MetadataValue): MetadataJson =>
    typeof x === 'object' ? metadataToJson(x, full) : scalarJson(x);
  if (!full && items.length > FOLD_ARRAY_ABOVE) {
    return { type: `array<${v.itemType}>`, length: items.length, head: items.slice(0, FOLDED_HEAD).map(convert) };
  }
  return items.map(convert);
}

function scalarJson(x: number | bigint | boolean | string): MetadataJson {
  if (typeof x === 'bigint') return x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString();
  if (typeof x === 'number') return Number.isFinite(x) ? x : null;
  return x;
}

export function metadataRecordToJson(meta: Record<string, MetadataValue>, full = false): Record<string, MetadataJson> {
  const out: Record<string, MetadataJson> = {};
  for (const [k, v] of Object.entries(meta)) out[k] = metadataToJson(v, full);
  return out;
}
