import { QuantLensError, exitCodeOf, toQuantLensError } from '../core/errors';
import type { CliCommand } from './io';

const USAGE = `usage: quantlens <command> [options]

commands:
  inspect <file|folder> [--json] [--full-metadata]   model summary and tensor table
  stats <file> [--tensor NAME]... [--bins N] [--json] per-tensor statistics and histograms
  quantize <in> -o <out> --type T [--pure] [--tensor-type REGEX=TYPE]... [--json]
                                                     quantize (GGUF types and llama.cpp presets)
  diff <a> <b> [--json]                              per-tensor error of b against a (any formats)
  sensitivity <file> [--types T,..] [--imatrix F] [--sample|--full] [--json]
                                                     error of every tensor at every candidate format
  plan <file> (--bpw X | --size N[GB|GiB|MB]) [--types T,..] [--imatrix F] [--pin REGEX=TYPE].. [--json]
       [-o plan.json] [--emit llama|compressed-tensors] a format per tensor under a budget
  split <in.gguf> <out> (--split-max-tensors N | --split-max-size N[M|G])
                                                     split a GGUF like llama-gguf-split
  eval <model> --text FILE [--ctx N] [--chunks N] [--base OTHER] [--mode exact|llama.cpp] [--json]
                                                     perplexity (llama-perplexity rules), KL divergence vs --base
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
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 1;
  }
  const load = COMMANDS[name];
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
