/**
 * Just enough Markdown for the docs test: fenced code blocks with the
 * HTML comment written above each, headings and the anchors GitHub gives
 * them, links, and tables. Text inside code blocks and code spans is never
 * taken for a heading or a link.
 *
 * @module
 */

/** A fenced code block. */
export interface CodeBlock {
  /** The info string's first word (`console`, `sh`, `ts`…), "" when none. */
  lang: string;
  /** The lines between the fences. */
  lines: string[];
  /** The 1-based line number of the opening fence. */
  line: number;
  /** The inside of the HTML comment on the last non-blank line above the fence, or null. */
  marker: string | null;
}

/** A link or image target written in the text. */
export interface Link {
  /** The target as written: `docs/x.md#y`, `#y`, `https://…`. */
  target: string;
  /** The 1-based line number. */
  line: number;
}

/** A heading. */
export interface Heading {
  /** 1 for `#`, 2 for `##`… */
  level: number;
  /** The heading's text as written. */
  text: string;
  /** The 1-based line number. */
  line: number;
}

/** A Markdown file taken apart. */
export interface Doc {
  /** The lines of the file. */
  lines: string[];
  /** Its fenced code blocks, in order. */
  blocks: CodeBlock[];
  /** Its headings, in order. */
  headings: Heading[];
  /** Its links and image targets, in order. */
  links: Link[];
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)/;
const COMMENT = /^\s*<!--\s*([^]*?)\s*-->\s*$/;

/** Takes `text` apart into code blocks, headings and links. */
export function parseMarkdown(text: string): Doc {
  const lines = text.split("\n");
  const doc: Doc = { lines, blocks: [], headings: [], links: [] };
  let open: { fence: string; block: CodeBlock } | null = null;
  let lastText = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (open) {
      if (line.trim().startsWith(open.fence) && line.trim().replace(/[`~]/g, "") === "") {
        doc.blocks.push(open.block);
        open = null;
      } else {
        open.block.lines.push(line);
      }
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const comment = COMMENT.exec(lastText);
      open = {
        fence: fence[2],
        block: { lang: fence[3], lines: [], line: i + 1, marker: comment ? comment[1] : null },
      };
      lastText = "";
      continue;
    }
    if (line.trim() !== "") lastText = line;
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) doc.headings.push({ level: heading[1].length, text: heading[2], line: i + 1 });
    const prose = line.replace(/`[^`]*`/g, "");
    for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      doc.links.push({ target: m[1], line: i + 1 });
    }
    const ref = /^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s+.*)?$/.exec(line);
    if (ref) doc.links.push({ target: ref[1], line: i + 1 });
  }
  if (open) throw new Error(`a code block opened on line ${open.block.line} is never closed`);
  return doc;
}

/**
 * The anchors GitHub gives the headings, in order: the text without its
 * Markdown, lower-cased, every character but letters, digits, spaces, `-`
 * and `_` taken out, spaces made `-`; a repeated anchor gets `-1`, `-2`….
 */
export function anchors(headings: Heading[]): string[] {
  const seen = new Map<string, number>();
  return headings.map(({ text }) => {
    const plain = text
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
      .replace(/`([^`]*)`/g, "$1")
      .replace(/<[^>]+>/g, "")
      .replace(/(\*\*|__|\*)/g, "");
    const base = plain.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}-${n}`;
  });
}

/** The cells of a table row (`| a | b |`), trimmed; null for a line that is not a row. */
export function tableCells(line: string): string[] | null {
  const t = line.trim();
  if (!t.startsWith("|") || !t.endsWith("|")) return null;
  return t.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim());
}

/** The tables of `doc` outside code blocks: each as its header cells and body rows. */
export function tables(doc: Doc): { header: string[]; rows: string[][]; line: number }[] {
  const inBlock = new Set<number>();
  for (const b of doc.blocks) {
    for (let l = b.line; l <= b.line + b.lines.length + 1; l++) inBlock.add(l);
  }
  const out: { header: string[]; rows: string[][]; line: number }[] = [];
  for (let i = 0; i + 1 < doc.lines.length; i++) {
    if (inBlock.has(i + 1)) continue;
    const header = tableCells(doc.lines[i]);
    const rule = tableCells(doc.lines[i + 1]);
    if (!header || !rule || !rule.every((c) => /^:?-+:?$/.test(c))) continue;
    const rows: string[][] = [];
    let j = i + 2;
    for (; j < doc.lines.length; j++) {
      const cells = tableCells(doc.lines[j]);
      if (!cells) break;
      rows.push(cells);
    }
    out.push({ header, rows, line: i + 1 });
    i = j - 1;
  }
  return out;
}
