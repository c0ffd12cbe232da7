import type { ByteSource } from '../bytesource';
import type { FormatName, ModelInfo } from '../model';

/** Opens sibling files (shards, external data, config.json). Paths are absolute. */
export interface FileAccess {
  open(path: string): Promise<ByteSource>;
  exists(path: string): Promise<boolean>;
  /** Lists a directory's entry names (for folders holding an index). */
  list(dir: string): Promise<string[]>;
  isDirectory(path: string): Promise<boolean>;
}

export interface ReadOptions {
  signal?: AbortSignal;
}

/** One module per checkpoint format. */
export interface CheckpointReader {
  format: FormatName;
  /** Display name for candidate lists ("safetensors (sharded index)"). */
  label: string;
  /** Does this path / these first bytes look like ours? Never consumes input. */
  sniff(path: string, head: Uint8Array): boolean;
  read(path: string, files: FileAccess, options?: ReadOptions): Promise<ModelInfo>;
}
