/** GGUF format constants shared by the reader (readers/gguf.ts) and the writer (gguf/write.ts); gguf.h. */
import type { MetadataType } from '../model';

export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_ALIGNMENT_KEY = 'general.alignment';

/** `enum gguf_type`: value type names in id order. */
export const GGUF_VALUE_TYPES = [
  'u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64',
] as const satisfies readonly MetadataType[];

export const GGUF_TYPE_STRING = 8;
export const GGUF_TYPE_ARRAY = 9;

/** Type id of each value type name. */
export const GGUF_TYPE_ID = Object.fromEntries(GGUF_VALUE_TYPES.map((t, i) => [t, i])) as Readonly<Record<MetadataType, number>>;

/** Bytes of a fixed-size value type by id, 0 for string and array. */
export const GGUF_VALUE_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8] as const;
