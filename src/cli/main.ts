import { QuantLensError, exitCodeOf, toQuantLensError } from '../core/errors';
import type { CliCommand } from './io';

const USAGE = `usage: quantlens <command> [options]

commands:
  inspect <file|folder> [--json] [--full-metadata] [--limit N]
                                                     model summary and tensor table (first N rows)
  stats <file> [--tensor NAME]... [--bins N] [--json] per-tensor statistics and histograms
  quantize <in> [-o <out>] (--type T | --plan plan.json) [--json]
        GGUF: T = a GGUF type or llama.cpp preset [--pure] [--allow-requantize] [--imatrix F] [--tensor-type REGEX=TYPE]...
              [--output-tensor-type T] [--token-embedding-type T] [--split-max-tensors N | --split-max-size N[M|G]]
        safetensors: T = int<b>-t|ch|g<N>-sym|asym, nf4-g<N>[-dq], fp8-e4m3-t|ch (compressed-tensors,
              bitsandbytes layouts) [--fake-quant] [--shard-size 5GB]
  diff <a> <b> [--json]                              per-tensor error of b against a (any formats)
  sensitivity <file> [--types T,..] [--imatrix F] [--sample|--full] [--json]
                                                     error of every tensor at every candidate format
  sensitivity <model> --mode kld --text FILE [--ctx N] [--chunks N] [--by tensor|layer|role] [--types T,..]
       [--numeric exact|llama.cpp] [--compare-modes] [--json]   measured KL divergence, one unit quantized at a time
  plan <file> (--bpw X | --size N[GB|GiB|MB]) [--types T,..] [--imatrix F] [--pin REGEX=TYPE].. [--json]
       [-o plan.json] [--emit llama|compressed-tensors] a format per tensor under a budget
  split <in.gguf> <out> (--split-max-tensors N | --split-max-size N[M|G])
                                                     split a GGUF like llama-gguf-split
  eval <model> --text FILE [--ctx N] [--chunks N] [--base OTHER] [--mode exact|llama.cpp] [--json]
                                                     perplexity (llama-perplexity rules), KL divergence vs --base
  calibrate <model> --text FILE [--ctx N] [--chunks N] [-o imatrix.gguf] [--mode exact|llama.cpp] [--json]
                                                     importance matrix (llama-imatrix) and activation statistics
ONNX models (.onnx; ONNX Runtime in the workers; inputs: --inputs PATH (.npy/.npz/images/.wav, files or folders) or --synthetic N):
  calibrate model.onnx --inputs PATH… [--dim NAME=N] [--json]     activation statistics, histograms, outlier channels
  sensitivity model.onnx --inputs PATH… --mode outputs [--types T,..] [--activations] [--json]
                                                     output SQNR / top-1 agreement with one layer quantized at a time
  quantize model.onnx -o out.onnx --type int8-qdq|int4-matmulnbits [--activations] [--range minmax|percentile|mse]
           [--plan plan.json] [--inputs PATH…] [--json]   QDQ or MatMulNBits model for ONNX Runtime
  eval out.onnx --base model.onnx --inputs PATH… [--json]   output SQNR, relative MSE, top-1 agreement
`;

/** Commands are loaded on use, so `inspect` never pays for the kernel. */
const COMMANDS: Record<string, () => Promise<CliCommand>> = {
  inspect: async () => (await import('./commands/inspect')).inspectCommand,
  stats: async () => (await import('./commands/stats')).statsCommand,
  quantize: async () => (await import('./commands/quantize')).quantizeCommand,
  diff: async () => (await import('./commands/diff')).diffCommand,
  sensitivity: async () => (await import('./commands/sensitivity')).sensitivityCommand,
  plan: async () => (await import('./commands/plan')).planCommand,
  split: async () => (await import('./commands/split')).splitCommand,
  eval: async () => (await import('./commands/eval')).evalCommand,
  calibrate: async () => (await import('./commands/calibrate')).calibrateCommand,
};

/** Commands with an ONNX form (ONNX Runtime in the workers), taken when an argument is a .onnx file. */
const ONNX_FORMS: ReadonlySet<string> = new Set(['calibrate', 'sensitivity', 'quantize', 'eval']);

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 1;
  }
  const onnx = ONNX_FORMS.has(name) && args.some((a) => /\.onnx$/i.test(a));
  const load = onnx ? async () => (await import('./commands/onnx')).onnxCommand(name) : COMMANDS[name];
  if (!load) {
    process.stderr.write(`error[USAGE]: unknown command ${name}\n${USAGE}`);
    return 1;
  }
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.on('SIGINT', onSigint);
  try {
    const command = await load();
    await command({ args, stdout: process.stdout, stderr: process.stderr, signal: abort.signal });
    return 0;
  } catch (err) {
    const e = abort.signal.aborted ? new QuantLensError('CANCELLED', 'cancelled') : toQuantLensError(err);
    process.stderr.write(`${e.describe()}\n`);
    if (e.code === 'USAGE') process.stderr.write(USAGE);
    return exitCodeOf(e);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`error[INTERNAL]: ${String(err)}\n`);
    process.exitCode = 4;
  },
);
