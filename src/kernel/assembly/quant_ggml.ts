// Entry point of the GGUF quantizer kernels: quantizes whole rows, four at a time.
import { quantizeIQ4Rows, quantizeMXFP4Rows, quantizeTQRows } from './quant_codebook';
import { quantizeQ2KRows, quantizeQ3KRows, quantizeQ6KRows, quantizeQxKRows } from './quant_kquants';
import { QUANT_SCRATCH_BYTES } from './quant_layout';
import { quantizeQ8_0Rows, quantizeQx0Rows, quantizeQx1Rows } from './quant_legacy';
import {
  IQ4_NL, IQ4_XS, MXFP4, Q2_K, Q3_K, Q4_0, Q4_1, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0, TQ1_0, TQ2_0,
} from './ggml_types';

/** Bytes of scratch space `quantizeGgmlRows` needs (16-byte aligned). */
export function quantScratchBytes(): i32 {
  return <i32>QUANT_SCRATCH_BYTES;
}

/**
 * Quantizes `rows` rows of `cols` f32 values at `src` (4-byte aligned) into blocks of ggml type
 * `ggmlType` at `dst`, as ggml_quantize_chunk does; `qw` points at `cols` importance weights or
 * is 0 (ignored by the types libggml ignores it for). Returns 0, or −1 for a type without a
 * kernel or `cols` not a multiple of its block size.
 */
export function quantizeGgmlRows(ggmlType: i32, src: usize, dst: usize, rows: i32, cols: i32, qw: usize, scratch: usize): i32 {
  let bytes: i32 = 0;
  let size: i32 = 256;
  switch (ggmlType) {
    case Q4_0: bytes = 18; size = 32; break;
    case Q4_1: bytes = 20; size = 32; break;
    case Q5_0: bytes = 22; size = 32; break;
    case Q5_1: bytes = 24; size = 32; break;
    case Q8_0: bytes = 34; size = 32; break;
    case Q2_K: bytes = 84; break;
    case Q3_K: bytes = 110; break;
    case Q4_K: bytes = 144; break;
    case Q5_K: bytes = 176; break;
    case Q6_K: bytes = 210; break;
    case IQ4_NL: bytes = 18; size = 32; break;
    case IQ4_XS: bytes = 136; break;
    case TQ1_0: bytes = 54; break;
    case TQ2_0: bytes = 66; break;
    case MXFP4: bytes = 17; size = 32; break;
    default: return -1;
  }
  if (cols <= 0 || cols % size != 0) return -1;
  const srcRow: usize = <usize>cols << 2;
  const dstRow: usize = <usize>(cols / size) * bytes;
  for (let r = 0; r < rows; r += 4) {
    const lanes = min(4, rows - r);
    const x = src + <usize>r * srcRow;
    const y = dst + <usize>r * dstRow;
    switch (ggmlType) {
      case Q8_0: quantizeQ8_0Rows(x, srcRow, lanes, cols, y, dstRow, scratch); break;
      case Q4_0: quantizeQx0Rows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, 8); break;
      case Q5_0: quantizeQx0Rows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, 16); break;
      case Q4_1: quantizeQx1Rows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, 15); break;
      case Q5_1: quantizeQx1Rows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, 31); break;
      case Q2_K: quantizeQ2KRows(x, srcRow, lanes, cols, y, dstRow, qw, scratch); break;
      case Q3_K: quantizeQ3KRows(x, srcRow, lanes, cols, y, dstRow, qw, scratch); break;
      case Q4_K: quantizeQxKRows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, 15); break;
      case Q5_K: quantizeQxKRows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, 31); break;
      case Q6_K: quantizeQ6KRows(x, srcRow, lanes, cols, y, dstRow, qw, scratch); break;
      case IQ4_NL: quantizeIQ4Rows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, false); break;
      case IQ4_XS: quantizeIQ4Rows(x, srcRow, lanes, cols, y, dstRow, qw, scratch, true); break;
      case TQ1_0: quantizeTQRows(x, srcRow, lanes, cols, y, dstRow, scratch, true); break;
      case TQ2_0: quantizeTQRows(x, srcRow, lanes, cols, y, dstRow, scratch, false); break;
      default: quantizeMXFP4Rows(x, srcRow, lanes, cols, y, dstRow, scratch); break;
    }
  }
  return 0;
}
