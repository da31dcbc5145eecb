/**
 * JSON text with 2-space indentation in the style of the shipped configs (deploy/config/): an
 * object or a list of plain values stays on one line when it fits, a list of objects has one
 * object per line, and the top level is always spread out. Or JSON.stringify's fully spread-out
 * form, for files written that way: an edit keeps the file's own style.
 */

export type JsonStyle = 'compact' | 'spread';

/** Line width up to which an object or a list of plain values is kept on one line. */
const WIDTH = 120;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** An object or list may be written on one line: it holds no list of objects. */
function inlinable(v: unknown): boolean {
  if (Array.isArray(v)) return v.every((x) => !isObject(x) && inlinable(x));
  if (isObject(v)) return Object.values(v).every(inlinable);
  return true;
}

function inline(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(inline).join(', ')}]`;
  if (isObject(v)) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    return `{ ${entries.map(([k, x]) => `${JSON.stringify(k)}: ${inline(x)}`).join(', ')} }`;
  }
  return JSON.stringify(v) ?? 'null'; // undefined in a list, as JSON.stringify writes it
}

/** `prefix` is what precedes the value on its line (indent and key), `suffix` a comma or nothing. */
function compact(v: unknown, indent: string, prefix: string, suffix: string, top: boolean): string {
  if (!top && inlinable(v)) {
    const one = inline(v);
    if (prefix.length + one.length + suffix.length <= WIDTH) return `${prefix}${one}${suffix}`;
  }
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return `${prefix}[]${suffix}`;
    const items = v.map((x, i) => compact(x, inner, inner, i < v.length - 1 ? ',' : '', false));
    return `${prefix}[\n${items.join('\n')}\n${indent}]${suffix}`;
  }
  if (isObject(v)) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return `${prefix}{}${suffix}`;
    const lines = entries.map(([k, x], i) =>
      compact(x, inner, `${inner}${JSON.stringify(k)}: `, i < entries.length - 1 ? ',' : '', false),
    );
    return `${prefix}{\n${lines.join('\n')}\n${indent}}${suffix}`;
  }
  return `${prefix}${JSON.stringify(v) ?? 'null'}${suffix}`;
}

export function formatJson(value: unknown, style: JsonStyle = 'compact'): string {
  if (style === 'spread') return `${JSON.stringify(value, null, 2)}\n`;
  return `${compact(value, '', '', '', true)}\n`;
}

/** The style that reproduces `text` (the parse of it is `value`); compact when neither does. */
export function styleOf(text: string, value: unknown): JsonStyle {
  return text.trimEnd() === JSON.stringify(value, null, 2) ? 'spread' : 'compact';
}
