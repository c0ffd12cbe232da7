/** A one-line progress bar on stderr when it is a terminal; silent otherwise. */
export class TerminalProgress {
  private last = 0;
  constructor(private readonly stream: NodeJS.WritableStream & { isTTY?: boolean }) {}

  update(fraction: number, label: string): void {
    if (!this.stream.isTTY) return;
    const now = Date.now();
    if (now - this.last < 100 && fraction < 1) return;
    this.last = now;
    const width = 30;
    const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
    this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${label.slice(0, 60).padEnd(60)}`);
  }

  done(): void {
    if (this.stream.isTTY) this.stream.write('\r\x1b[K');
  }
}
