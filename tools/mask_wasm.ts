/**
 * Writes `lib/ws/mask/wasm.ts`: a WebAssembly module, with no dependency,
 * that XORs a region of its own memory with a 4-byte masking key
 * (RFC 6455 §5.3) 16 bytes at a time with SIMD (`v128.load`, `v128.xor`,
 * `v128.store`), then 4 bytes, then 1 byte at a time for the tail.
 *
 * The function is written below once, as a list of WAT instructions; this
 * script prints that list as the WAT listing in the generated file's comment
 * and encodes the very same list to the bytes, so the listing cannot drift
 * from the bytes.
 *
 * ```sh
 * deno run --allow-write tools/mask_wasm.ts          # regenerate
 * deno run --allow-read tools/mask_wasm.ts --check   # fail if the file is stale
 * ```
 *
 * Binary format: https://webassembly.github.io/spec/core/binary/
 *
 * @module
 */

/** The file this script writes. */
const OUT = new URL("../lib/ws/mask/wasm.ts", import.meta.url);

// The function: xor(p, n, k) XORs memory[p..p+n) with the little-endian key
// word k, whose low byte applies to memory[p]. Parameters are locals 0..2.
/** Local names in index order: parameters first, then declared locals. */
const LOCALS = ["$p", "$n", "$k", "$end", "$v"] as const;
type Local = typeof LOCALS[number];

/** One instruction: a mnemonic and its immediates as they read in WAT. */
type Instr =
  | [op: "local.get" | "local.set", local: Local]
  | [op: "i32.const", value: number]
  | [op: "block" | "loop", label: string]
  | [op: "br" | "br_if", label: string]
  | [op: "end"]
  | [
    op: "v128.load" | "v128.store" | "i32.load" | "i32.store" | "i32.load8_u" | "i32.store8",
    offset: number,
  ]
  | [op: "i32.add" | "i32.sub" | "i32.xor" | "i32.lt_u" | "i32.rotr" | "i32x4.splat" | "v128.xor"];

/** `memory[$p + offset] ^= value` for a load/store pair of one width. */
function xorAt(load: Instr[0], store: Instr[0], value: Local, offset: number): Instr[] {
  return [
    ["local.get", "$p"],
    ["local.get", "$p"],
    [load, offset] as Instr,
    ["local.get", value],
    [load === "v128.load" ? "v128.xor" : "i32.xor"],
    [store, offset] as Instr,
  ];
}

/** `while ($end - $p >= step) { body; $p += step }`. */
function stepLoop(label: string, step: number, body: Instr[]): Instr[] {
  return [
    ["block", `$${label}_done`],
    ["loop", `$${label}`],
    ["local.get", "$end"],
    ["local.get", "$p"],
    ["i32.sub"],
    ["i32.const", step],
    ["i32.lt_u"],
    ["br_if", `$${label}_done`],
    ...body,
    ["local.get", "$p"],
    ["i32.const", step],
    ["i32.add"],
    ["local.set", "$p"],
    ["br", `$${label}`],
    ["end"],
    ["end"],
  ];
}

/** The body of xor(p, n, k). */
const BODY: Instr[] = [
  // $end = $p + $n; $v = the key word in all four lanes.
  ["local.get", "$p"],
  ["local.get", "$n"],
  ["i32.add"],
  ["local.set", "$end"],
  ["local.get", "$k"],
  ["i32x4.splat"],
  ["local.set", "$v"],
  // 64 bytes a step, four vectors; then 16; then a word; then bytes, turning
  // the key a byte to the right after each so its low byte is the next one.
  ...stepLoop("x64", 64, [0, 16, 32, 48].flatMap((o) => xorAt("v128.load", "v128.store", "$v", o))),
  ...stepLoop("x16", 16, xorAt("v128.load", "v128.store", "$v", 0)),
  ...stepLoop("x4", 4, xorAt("i32.load", "i32.store", "$k", 0)),
  ...stepLoop("x1", 1, [
    ...xorAt("i32.load8_u", "i32.store8", "$k", 0),
    ["local.get", "$k"],
    ["i32.const", 8],
    ["i32.rotr"],
    ["local.set", "$k"],
  ]),
];

/** Opcodes; SIMD ones follow the 0xfd prefix as an unsigned LEB128. */
const OPCODES: Record<Instr[0], number[]> = {
  "local.get": [0x20],
  "local.set": [0x21],
  "i32.const": [0x41],
  "block": [0x02],
  "loop": [0x03],
  "br": [0x0c],
  "br_if": [0x0d],
  "end": [0x0b],
  "i32.load": [0x28],
  "i32.load8_u": [0x2d],
  "i32.store": [0x36],
  "i32.store8": [0x3a],
  "i32.add": [0x6a],
  "i32.sub": [0x6b],
  "i32.xor": [0x73],
  "i32.lt_u": [0x49],
  "i32.rotr": [0x78],
  "v128.load": [0xfd, 0x00],
  "v128.store": [0xfd, 0x0b],
  "i32x4.splat": [0xfd, 0x11],
  "v128.xor": [0xfd, 0x51],
};

/** log2 of the natural alignment of each memory access, the memarg's hint. */
const ALIGN: Partial<Record<Instr[0], number>> = {
  "v128.load": 4,
  "v128.store": 4,
  "i32.load": 2,
  "i32.store": 2,
  "i32.load8_u": 0,
  "i32.store8": 0,
};

/** Unsigned LEB128. */
function u32(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (for i32.const). */
function s32(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** A UTF-8 name, length first. */
function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...u32(bytes.length), ...bytes];
}

/** A vector: the count, then the items. */
function vec(items: number[][]): number[] {
  return [...u32(items.length), ...items.flat()];
}

/** A section: its id, its size, its contents. */
function section(id: number, contents: number[]): number[] {
  return [id, ...u32(contents.length), ...contents];
}

/** Encodes the instructions, resolving labels to relative depths. */
function encode(body: Instr[]): number[] {
  const out: number[] = [];
  const labels: string[] = [];
  for (const ins of body) {
    const op = ins[0];
    out.push(...OPCODES[op]);
    switch (op) {
      case "local.get":
      case "local.set": {
        const i = LOCALS.indexOf(ins[1] as Local);
        if (i < 0) throw new Error(`no local ${ins[1]}`);
        out.push(...u32(i));
        break;
      }
      case "i32.const":
        out.push(...s32(ins[1] as number));
        break;
      case "block":
      case "loop":
        labels.push(ins[1] as string);
        out.push(0x40); // no result
        break;
      case "br":
      case "br_if": {
        const depth = labels.length - 1 - labels.lastIndexOf(ins[1] as string);
        if (depth >= labels.length) throw new Error(`no label ${ins[1]}`);
        out.push(...u32(depth));
        break;
      }
      case "end":
        labels.pop();
        break;
      default:
        if (op in ALIGN) out.push(...u32(ALIGN[op]!), ...u32(ins[1] as number));
    }
  }
  if (labels.length !== 0) throw new Error(`unclosed ${labels}`);
  return out;
}

/** The instructions as WAT, indented by nesting. */
function listing(body: Instr[]): string[] {
  const lines: string[] = [];
  let depth = 2;
  for (const ins of body) {
    if (ins[0] === "end") depth--;
    const imm = ins.slice(1).map((x) =>
      typeof x === "number" && ins[0] !== "i32.const" ? (x === 0 ? "" : `offset=${x}`) : String(x)
    ).filter((x) => x !== "");
    lines.push("  ".repeat(depth) + [ins[0], ...imm].join(" "));
    if (ins[0] === "block" || ins[0] === "loop") depth++;
  }
  return lines;
}

const I32 = 0x7f;
const V128 = 0x7b;

/** The whole module. */
export function buildModule(): Uint8Array {
  const code = [
    ...vec([[...u32(1), I32], [...u32(1), V128]]), // locals: $end i32, $v v128
    ...encode(BODY),
    0x0b,
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d], // "\0asm"
    ...[0x01, 0x00, 0x00, 0x00], // version 1
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), ...vec([])]])), // type 0: (i32 i32 i32) -> ()
    ...section(3, vec([u32(0)])), // func 0 has type 0
    ...section(5, vec([[0x00, ...u32(1)]])), // memory 0: 1 page (64 KiB), no maximum
    ...section(7, vec([[...name("memory"), 0x02, 0], [...name("xor"), 0x00, 0]])),
    ...section(10, vec([[...u32(code.length), ...code]])),
  ]);
}

/** The generated TypeScript file, `lib/ws/mask/wasm.ts`, for these bytes. */
export function render(bytes: Uint8Array): string {
  const wat = [
    "(module",
    '  (memory (export "memory") 1)',
    '  (func (export "xor") (param $p i32) (param $n i32) (param $k i32)',
    "    (local $end i32) (local $v v128)",
    ...listing(BODY),
    "  )",
    ")",
  ];
  const rows: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    rows.push(
      "  " +
        [...bytes.subarray(i, i + 16)].map((b) => `0x${b.toString(16).padStart(2, "0")},`).join(
          " ",
        ),
    );
  }
  return [
    "// Generated by tools/mask_wasm.ts; do not edit. Regenerate with",
    "// `deno run --allow-write tools/mask_wasm.ts`.",
    "",
    "/**",
    " * A WebAssembly module (SIMD) that XORs `memory[p..p+n)` with the little-endian",
    " * key word `k` (RFC 6455 §5.3), 64 and 16 bytes at a time, then by word and",
    " * by byte. Its WAT:",
    " *",
    " * ```wat",
    ...wat.map((l) => ` * ${l}`.trimEnd()),
    " * ```",
    " *",
    " * @module",
    " */",
    "",
    `/** The module's ${bytes.length} bytes. */`,
    "// deno-fmt-ignore",
    "export const MASK_WASM: Uint8Array<ArrayBuffer> = Uint8Array.of(",
    ...rows,
    ");",
    "",
  ].join("\n");
}

if (import.meta.main) {
  const text = render(buildModule());
  if (Deno.args.includes("--check")) {
    const current = await Deno.readTextFile(OUT).catch(() => "");
    if (current !== text) {
      console.error("lib/ws/mask/wasm.ts is stale: run deno run --allow-write tools/mask_wasm.ts");
      Deno.exit(1);
    }
  } else {
    await Deno.writeTextFile(OUT, text);
  }
}
