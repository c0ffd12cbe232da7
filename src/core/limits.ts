/**
 * Every limit QuantLens applies to an untrusted file, with the attack it blocks.
 * A file that exceeds one is refused with a LIMIT_EXCEEDED (or more specific) QuantLensError.
 */

/** safetensors header JSON size cap, as the Rust crate's MAX_HEADER_SIZE (CWE-770: a 2^64 length allocating). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;
/** Tensor rank cap for every format (CWE-400: shape arrays used to drive nested loops). */
export const MAX_TENSOR_DIMS = 8;
/** GGUF rank, as ggml's GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;
/** GGUF string length cap, as @huggingface/gguf's MAX_STRING_LENGTH (CWE-770). */
export const GGUF_MAX_STRING_BYTES = 1 << 26;
/** GGUF array length cap (CWE-770: an array count that would allocate gigabytes of JS objects). */
export const GGUF_MAX_ARRAY_LENGTH = 1 << 26;
/** GGUF nested array depth, as @huggingface/gguf's MAX_ARRAY_RECURSION_DEPTH (CWE-674). */
export const GGUF_MAX_ARRAY_DEPTH = 8;
/** GGUF tensor and key/value counts (CWE-770). */
export const GGUF_MAX_TENSORS = 1 << 24;
export const GGUF_MAX_KV = 1 << 20;
/** Largest GGUF alignment accepted (CWE-400: padding arithmetic on absurd alignments). */
export const GGUF_MAX_ALIGNMENT = 1 << 16;
/** Number of shards in a sharded checkpoint (CWE-400: an index naming millions of files). */
export const MAX_SHARDS = 10_000;
/** Total tensors in any model (CWE-770). */
export const MAX_TENSORS = 1 << 24;
/** A JSON side file (index.json, config.json) cap (CWE-770). */
export const MAX_JSON_SIDE_FILE_BYTES = 64 << 20;
/** Protobuf nesting depth for ONNX (CWE-674: deeply nested submessages/subgraphs). */
export const PROTOBUF_MAX_DEPTH = 64;
/** ONNX subgraph nesting (If/Loop in If/Loop ...) (CWE-674). */
export const ONNX_MAX_GRAPH_DEPTH = 16;
/** Pickle stream size read into memory (CWE-770). */
export const PICKLE_MAX_BYTES = 256 << 20;
/** Pickle memo entries and stack depth (CWE-770/CWE-674). */
export const PICKLE_MAX_MEMO = 1 << 22;
export const PICKLE_MAX_STACK = 1 << 20;
/** Zip central directory entries (CWE-400: zip bombs of entries). */
export const ZIP_MAX_ENTRIES = 1 << 20;
/** Zip central directory size read into memory (CWE-770: a directory size field claiming gigabytes). */
export const ZIP_MAX_CENTRAL_DIRECTORY_BYTES = 256 << 20;
/** Zip entry name length (CWE-770). */
export const ZIP_MAX_NAME_BYTES = 4096;
/** Nesting of pickle containers walked when naming tensors (CWE-674: a list nested a million deep). */
export const PICKLE_MAX_DEPTH = 1000;
/** Pickle string/bytes length (CWE-770: a BINUNICODE8 length of 2^63). */
export const PICKLE_MAX_STRING_BYTES = 64 << 20;
/** Pickle integer (LONG1/LONG4/LONG) size (CWE-400: a 2^31-byte integer converted digit by digit). */
export const PICKLE_MAX_LONG_BYTES = 256;
/** Pickle opcodes executed (CWE-400: a stream looping on DUP/POP to burn CPU). */
export const PICKLE_MAX_OPS = 1 << 26;
/** Storages in one legacy pickle, each read from the file's tail (CWE-770). */
export const PYTORCH_MAX_STORAGES = 1 << 20;
/** Bytes one strided PyTorch view may expand to when gathered (CWE-770: stride-0 views of a huge shape over a tiny storage). */
export const PYTORCH_MAX_GATHER_BYTES = 2 ** 31 - 1;
/** Largest file read through VS Code's workspace.fs (no ranged read there) for non-file: URIs. */
export const WORKSPACE_FS_MAX_BYTES = 256 << 20;
/** Shard files opened at once while reading a sharded checkpoint (EMFILE: an index naming thousands of shards). */
export const SHARD_OPEN_CONCURRENCY = 16;
/** ONNX string fields (names, doc_string, attribute `s`) decoded into JS strings (CWE-770). */
export const ONNX_MAX_STRING_BYTES = 16 << 20;
/** ONNX graph objects decoded (nodes, attributes, tensors, value infos, strings in all graphs) (CWE-770: millions of tiny nodes). */
export const ONNX_MAX_GRAPH_ITEMS = 1 << 22;
/** Largest attribute list (floats/ints/strings) decoded into JS values; larger ones stay byte ranges of the file (CWE-770). */
export const ONNX_MAX_DECODED_LIST_BYTES = 1 << 20;
/** Distinct external data files one ONNX model may name (CWE-400: a model naming millions of files to open). */
export const ONNX_MAX_EXTERNAL_FILES = 10_000;
/** Histogram bins a caller may ask for (CWE-770: a bin count that would allocate gigabytes of counters). */
export const MAX_HISTOGRAM_BINS = 1 << 16;
/** Entries of a legacy imatrix .dat file (CWE-770: an entry count of 2^31 driving the read loop). */
export const IMATRIX_MAX_ENTRIES = 1 << 20;
/** Tensor or dataset name length in an imatrix .dat file (CWE-770). */
export const IMATRIX_MAX_NAME_BYTES = 1 << 16;
/** A bitsandbytes quant state (a small JSON stored as a uint8 tensor) read at open time (CWE-770). */
export const MAX_QUANT_STATE_BYTES = 1 << 16;
/** Pieces in a tokenizer vocabulary (CWE-770: a tokenizer.model or GGUF array claiming billions of pieces). */
export const TOKENIZER_MAX_PIECES = 1 << 21;
/** One vocabulary piece's UTF-8 length (CWE-770). */
export const TOKENIZER_MAX_PIECE_BYTES = 1 << 16;
/** A tokenizer.model or config.json read whole into memory (CWE-770). */
export const TOKENIZER_MODEL_MAX_BYTES = 64 << 20;
/** Text read for evaluation or calibration (CWE-770: a multi-gigabyte "text" file read into memory). */
export const EVAL_TEXT_MAX_BYTES = 256 << 20;
/** Model dimensions a forward pass accepts from config.json / GGUF keys (CWE-770: a hidden size of 2^40 sizing buffers). */
export const MODEL_MAX_DIMENSION = 1 << 20;
/** Elements of one ONNX calibration input (CWE-770: a .npy header or a --dim flag asking for 2^40 floats). */
export const MAX_ONNX_FEED_ELEMENTS = 1 << 28;
/** Calibration samples one run accepts (CWE-400: a folder of millions of images read into memory). */
export const MAX_CALIBRATION_SAMPLES = 100_000;
/** Pixels of one decoded calibration image (CWE-770: a PNG header claiming 100000 × 100000). */
export const MAX_IMAGE_PIXELS = 1 << 26;
/** Bytes of one calibration file read whole (.npy, .npz entry, image, .wav) (CWE-770). */
export const MAX_CALIBRATION_FILE_BYTES = 1 << 30;
