// `npm run demo [-- --port N] [-- --dir D]`: builds and packages QuantLens, generates a
// demo model, and serves VS Code (code-server on 127.0.0.1) with the extension installed and the model
// open in the inspector.
// Ctrl-C stops it. The demo folder (default: <tmp>/quantlens-demo) is reused between runs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { codeServerInstalled, createProfile, installExtension, openInBrowserWindow, packageExtension, repoRoot, startCodeServer } from './code-server';

function option(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

async function main(): Promise<void> {
  const root = resolve(option('--dir') ?? join(tmpdir(), 'quantlens-demo'));
  const port = option('--port') ? Number(option('--port')) : undefined;
  const workspace = join(root, 'workspace');
  mkdirSync(workspace, { recursive: true });
  const step = (what: string): void => console.log(`[demo] ${what}`);

  if (!codeServerInstalled()) {
    step('installing code-server (scripts/setup-e2e.sh, once)');
    execFileSync('bash', [join(repoRoot, 'scripts/setup-e2e.sh')], { stdio: 'inherit' });
  }
  step('building and packaging the extension');
  const vsix = await packageExtension(root);

  const modelDir = join(workspace, 'demo-llama');
  if (!existsSync(join(modelDir, 'config.json'))) {
    step(`generating a Llama-shaped demo model in ${modelDir}`);
    execFileSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'scripts/gen.ts'), 'demo', modelDir], { stdio: 'inherit', cwd: repoRoot });
  }
  const gguf = join(workspace, 'demo-llama.gguf');
  if (!existsSync(gguf)) {
    step(`generating the same model as GGUF: ${gguf}`);
    execFileSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'scripts/gen.ts'), 'demo', gguf, '--format', 'gguf'], { stdio: 'inherit', cwd: repoRoot });
  }

  const profile = createProfile(join(root, 'profile'));
  await installExtension(profile, vsix);
  const server = await startCodeServer(profile, workspace, { port });
  const stop = (): void => {
    server.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  server.process.on('exit', (code) => {
    console.error(`[demo] code-server exited (${code}):\n${server.output()}`);
    process.exit(1);
  });
  console.log(`
QuantLens demo: open ${server.url}
demo-llama.gguf opens in the QuantLens inspector as the page loads (demo-llama/ holds the same model as safetensors).
(workspace ${workspace}; Ctrl-C stops code-server)`);
  // the first browser window to connect gets the model opened in the inspector
  while (!(await openInBrowserWindow(profile, gguf))) await new Promise((r) => setTimeout(r, 1000));
  step(`opened ${gguf} in the inspector`);
}

main().catch((err) => {
  console.error(`[demo] ${(err as Error).message}`);
  process.exit(1);
});
