import type { WebviewErrorEvent } from '../src/shared/protocol';
import { RpcEndpoint, type ProtocolSide } from '../src/shared/rpc';

interface VsCodeApi {
  postMessage(message: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

/** What every webview's side of its protocol can send: errors nobody caught in the page. */
interface ReportsErrors extends ProtocolSide {
  events: { webviewError: WebviewErrorEvent };
}

/**
 * The webview's end of its protocol with the extension host. Errors nobody caught in the page
 * (thrown or rejected) go to the host as `webviewError`, which writes them to its log.
 */
export function connectToHost<Host extends ProtocolSide, Webview extends ReportsErrors>(): RpcEndpoint<Host, Webview> {
  const vscodeApi = acquireVsCodeApi();
  const rpc = new RpcEndpoint<Host, Webview>((message) => vscodeApi.postMessage(message));
  window.addEventListener('message', (event: MessageEvent) => rpc.receive(event.data));
  const errors: RpcEndpoint<Host, ReportsErrors> = rpc;
  window.addEventListener('error', (e) => errors.notify('webviewError', { message: String(e.message) }));
  window.addEventListener('unhandledrejection', (e) => errors.notify('webviewError', { message: String((e.reason as Error)?.message ?? e.reason) }));
  return rpc;
}
