/** Colours for charts and format maps, read from VS Code's theme variables (light, dark, high contrast). */

export function themeColor(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

export function axisColors(): { text: string; grid: string } {
  return {
    text: themeColor('--vscode-charts-foreground', themeColor('--vscode-foreground', 'gray')),
    grid: themeColor('--vscode-charts-lines', 'rgba(128,128,128,0.3)'),
  };
}

/** Chart colour variables from most bits (cool) to fewest (hot). */
const FORMAT_VARS = ['--vscode-charts-purple', '--vscode-charts-blue', '--vscode-charts-green', '--vscode-charts-yellow', '--vscode-charts-orange', '--vscode-charts-red'];

/**
 * The CSS colour of each format, most bits first: formats spread over the palette by rank, so
 * neighbours in precision get neighbouring colours.
 */
export function formatColorVars(formatsMostBitsFirst: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const n = formatsMostBitsFirst.length;
  formatsMostBitsFirst.forEach((f, i) => {
    const at = n <= 1 ? 0 : Math.round((i * (FORMAT_VARS.length - 1)) / (n - 1));
    out.set(f, `var(${FORMAT_VARS[at]})`);
  });
  return out;
}

/** The same colour with an alpha (for overlaid bars): works for #rgb, #rrggbb and rgb() colours. */
export function withAlpha(color: string, alpha: number): string {
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(color.trim());
  if (hex) {
    const h = hex[1].length === 3 ? [...hex[1]].map((c) => c + c).join('') : hex[1];
    const [r, g, b] = [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
    return `rgba(${r}, ${g}, ${b}, ${alpha})`;
  }
  const rgb = /^rgba?\(([^)]+)\)$/.exec(color.trim());
  if (rgb) {
    const [r, g, b] = rgb[1].split(',').map((s) => s.trim());
    return `rgba(${r}, ${g}, ${b}, ${alpha})`;
  }
  return color;
}
