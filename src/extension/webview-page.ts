import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import type { WebviewErrorEvent } from '../shared/protocol';
import { RpcEndpoint, type ProtocolSide } from '../shared/rpc';

/** The QuantLens webviews, each a bundle dist/webview/<name>.js with its stylesheet <name>.css. */
export type WebviewName = 'inspector' | 'plan' | 'compare' | 'activations';

/**
 * The page of a QuantLens webview: its bundle and stylesheet, a strict CSP with a fresh nonce,
 * nothing from a network. The inspector's bundle carries the @vscode-elements components it uses
 * (a fifth of the library, parsed before the first table page); the others load the library's bundle elements.js.
 */
export function webviewPage(webview: vscode.Webview, extensionUri: vscode.Uri, name: WebviewName, title: string, loading = 'Loading…'): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (file: string): string => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', file)).toString();
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  const elementsScript = name === 'inspector' ? '' : `\n<script type="module" nonce="${nonce}" src="${asset('elements.js')}"></script>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" nonce="${nonce}" href="${asset(`${name}.css`)}">${elementsScript}
<script defer nonce="${nonce}" src="${asset(`${name}.js`)}"></script>
<title>${title.replace(/[<>&"]/g, '')}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">${loading}</p></main>
</body>
</html>`;
}

/** Options of every QuantLens webview: scripts on, only the bundles readable, no retained context. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions & vscode.WebviewPanelOptions {
  return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview')] };
}

/** What every webview's side of its protocol can send: errors nobody caught in the page. */
interface ReportsErrors extends ProtocolSide {
  events: { webviewError: WebviewErrorEvent };
}

/**
 * The host's end of a webview's protocol: messages both ways, the page's uncaught errors written to
 * `log` under `name`. `register` ties the connection to its owner's lifetime (its `_register`).
 */
export function connectWebview<Incoming extends ReportsErrors, Outgoing extends ProtocolSide>(
  webview: vscode.Webview,
  name: WebviewName,
  log: vscode.LogOutputChannel,
  register: (disposable: vscode.Disposable) => void,
): RpcEndpoint<Incoming, Outgoing> {
  const rpc = new RpcEndpoint<Incoming, Outgoing>((message) => void webview.postMessage(message));
  register({ dispose: () => rpc.dispose() });
  register(webview.onDidReceiveMessage((message) => rpc.receive(message)));
  const errors: RpcEndpoint<ReportsErrors, Outgoing> = rpc;
  errors.on('webviewError', ({ message }) => log.error(`${name} webview: ${message}`));
  return rpc;
}
