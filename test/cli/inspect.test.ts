import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspectCommand } from '../../src/cli/commands/inspect';
import { safetensorsBytes } from '../fixtures/safetensors-builder';

async function inspect(args: string[]): Promise<string> {
  let out = '';
  const stdout = { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream;
  await inspectCommand({ args, stdout, stderr: stdout, signal: new AbortController().signal });
  return out;
}

test('inspect --limit N shows the first N table rows; a limit that is not a row count is a USAGE error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-cli-inspect-'));
  try {
    const file = join(dir, 'm.safetensors');
    writeFileSync(file, safetensorsBytes(['a', 'b', 'c'].map((name) => ({ name: `${name}.weight`, dtype: 'F32', shape: [2, 2] }))));
    const out = await inspect([file, '--limit', '2']);
    assert.match(out, /a\.weight/);
    assert.match(out, /b\.weight/);
    assert.doesNotMatch(out, /c\.weight/);
    assert.match(out, /… 1 more/);
    for (const bad of ['abc', '-1', '1.5', '']) {
      await assert.rejects(inspect([file, '--limit', bad]), (e: { code?: string }) => e.code === 'USAGE', `--limit ${bad}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a value option followed by another option is a USAGE error, not that option taken as its value', async () => {
  const { parseArgs } = await import('../../src/cli/io');
  const spec = { values: ['tensor', 'bins'], booleans: ['json'] };
  assert.throws(() => parseArgs(['m.gguf', '--tensor', '--json'], spec), (e: { code?: string; message: string }) => e.code === 'USAGE' && /--tensor needs a value/.test(e.message));
  assert.throws(() => parseArgs(['m.gguf', '--tensor', '--bins=4'], spec), (e: { code?: string }) => e.code === 'USAGE');
  assert.deepEqual(parseArgs(['m.gguf', '--tensor=--json', '--bins', '-1'], spec).flags, new Map([['tensor', ['--json']], ['bins', ['-1']]]));
});
