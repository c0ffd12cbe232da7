import { basename } from 'node:path';
import { metadataRecordToJson } from '../../core/metadata-json';
import { openModel } from '../../core/readers';
import { formatBytes, summarizeModel, tensorRow } from '../../core/summary';
import { QuantLensError } from '../../core/errors';
import { flag, hasFlag, parseArgs, toJson, type CliContext } from '../io';

/** `quantlens inspect <file|folder> [--json] [--full-metadata]`: summary and tensor table. */
export async function inspectCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { booleans: ['json', 'full-metadata'], values: ['limit'] });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'inspect takes one file or folder');
  const limitText = flag(p, 'limit');
  const limit = limitText === undefined ? Infinity : Number(limitText);
  if (limitText !== undefined && !/^\d+$/.test(limitText)) throw new QuantLensError('USAGE', `--limit wants a number of table rows, got ${limitText}`);
  const model = await openModel(p.positional[0], { signal: ctx.signal });
  const totals = summarizeModel(model);
  const rows = model.tensors.map(tensorRow);
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(
      `${toJson({
        format: model.format,
        files: model.files,
        metadata: metadataRecordToJson(model.metadata, hasFlag(p, 'full-metadata')),
        tensors: rows,
        totals,
        diagnostics: model.diagnostics,
      })}\n`,
    );
    return;
  }
  const out: string[] = [];
  out.push(`${basename(p.positional[0])}: ${model.format}, ${model.files.length} file${model.files.length === 1 ? '' : 's'}`);
  out.push(
    `  ${totals.tensors} tensors, ${totals.params.toLocaleString('en-US')} params, ${totals.bytes.toLocaleString('en-US')} bytes (${formatBytes(totals.bytes)}, ${formatBytes(totals.bytes, 'GiB')}), ` +
      `${totals.bitsPerWeight === null ? 'no weights' : `${totals.bitsPerWeight.toFixed(3)} bits per weight`}`,
  );
  for (const [dtype, d] of Object.entries(totals.byDtype)) {
    out.push(`  ${dtype.padEnd(8)} ${String(d.tensors).padStart(7)} tensors ${d.params.toLocaleString('en-US').padStart(16)} params ${d.bytes.toLocaleString('en-US').padStart(16)} bytes`);
  }
  for (const d of model.diagnostics) out.push(`  ${d.severity}[${d.code}]: ${d.message}${d.tensor ? ` (tensor ${d.tensor})` : ''}`);
  const nameWidth = Math.min(60, Math.max(4, ...rows.slice(0, 1000).map((r) => r.name.length)));
  out.push('');
  out.push(`${'name'.padEnd(nameWidth)}  ${'dtype'.padEnd(8)} ${'shape'.padEnd(18)} ${'bytes'.padStart(12)}  layer role`);
  for (const r of rows.slice(0, limit)) {
    out.push(
      `${r.name.padEnd(nameWidth)}  ${r.dtype.padEnd(8)} ${`[${r.shape.join(', ')}]`.padEnd(18)} ${String(r.byteLength).padStart(12)}  ${String(r.layer ?? '-').padStart(5)} ${r.role}`,
    );
  }
  if (rows.length > limit) out.push(`… ${rows.length - limit} more`);
  ctx.stdout.write(`${out.join('\n')}\n`);
}
