// Text cleanup that runs before CLIP's BPE, in the two flavours ComfyUI can end up with.
//
// ComfyUI calls transformers' slow `CLIPTokenizer`, which cleans text with ftfy when the ftfy package
// happens to be installed and otherwise falls back to BERT's `BasicTokenizer`. The two give different
// ids for HTML entities, curly quotes, fullwidth forms, CJK and control characters, so the choice is
// exposed instead of picking one silently.

import { CP1252_HIGH, unescapeHtml } from './html-entities.js';

/** `ftfy`: ComfyUI with ftfy installed (CLIP's own training-time cleanup); `basic`: plain ComfyUI. */
export type TextCleanup = 'ftfy' | 'basic';

// Python's `str.isspace()` set: what `str.strip()`, `str.split()` and `float()` treat as blanks.
export const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP_RE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
const PY_SPLIT_RE = new RegExp(`[${PY_SPACE}]+`);
// The `regex` module's `\s` (used by CLIP's whitespace_clean and split pattern) is White_Space,
// which differs from both JavaScript's `\s` (it includes U+FEFF) and `isspace()` (U+1C-U+1F).
const WHITESPACE_RUN_RE = /\p{White_Space}+/gu;

export function pyStrip(s: string): string {
  return s.replace(PY_STRIP_RE, '');
}

/** Python's argument-less `str.split()`. */
export function pySplit(s: string): string[] {
  const t = pyStrip(s);
  return t === '' ? [] : t.split(PY_SPLIT_RE);
}

/** CLIP's `whitespace_clean`: fold whitespace runs to one space, then strip. */
export function whitespaceClean(s: string): string {
  return pyStrip(s.replace(WHITESPACE_RUN_RE, ' '));
}

// ---------------------------------------------------------------------------------------------
// ftfy subset. Same step order and fixed-point loop as ftfy 6 `fix_and_explain`; mojibake repair is
// a narrower heuristic than ftfy's `badness` scorer (see fixUtf8Mojibake).

const LIGATURES: Record<string, string> = {
  'Ĳ': 'IJ', 'ĳ': 'ij', 'ŉ': 'ʼn', 'Ǳ': 'DZ', 'ǲ': 'Dz', 'ǳ': 'dz', 'Ǆ': 'DŽ', 'ǅ': 'Dž', 'ǆ': 'dž',
  'Ǉ': 'LJ', 'ǈ': 'Lj', 'ǉ': 'lj', 'Ǌ': 'NJ', 'ǋ': 'Nj', 'ǌ': 'nj',
  'ﬀ': 'ff', 'ﬁ': 'fi', 'ﬂ': 'fl', 'ﬃ': 'ffi', 'ﬄ': 'ffl', 'ﬅ': 'ſt', 'ﬆ': 'st',
};
const LIGATURE_RE = new RegExp(`[${Object.keys(LIGATURES).join('')}]`, 'g');
const WIDTH_RE = /[\u3000\uff01-\uffef]/g;
const SINGLE_QUOTE_RE = /[\u02bc\u2018-\u201b]/g;
const DOUBLE_QUOTE_RE = /[\u201c-\u201f]/g;
const LINE_BREAK_RE = /\r\n|[\r\u2028\u2029\x85]/g;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// Python's `\d` in a str pattern is any decimal digit, not just ASCII.
const TERMINAL_ESCAPE_RE = /\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu;
const CONTROL_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
const C1_RE = /[\x80-\x9f]/g;

/** The byte a character stands for in Latin-1 / sloppy Windows-1252, or -1. */
function legacyByte(ch: string): number {
  const cp = ch.charCodeAt(0);
  if (cp <= 0xff) return cp;
  const i = CP1252_HIGH.indexOf(ch);
  return i >= 0 ? 0x80 + i : -1;
}

// Two-byte UTF-8 lead bytes we accept as mojibake: Latin-1 supplement and Latin Extended-A (C2-C5),
// Greek (CE-CF), Cyrillic (D0-D1), Hebrew and Arabic (D7-D9). Other leads such as `ß` (DF) are
// common in real text right before a curly quote and would decode into unlikely scripts.
const TWO_BYTE_LEADS = new Set([0xc2, 0xc3, 0xc4, 0xc5, 0xce, 0xcf, 0xd0, 0xd1, 0xd7, 0xd8, 0xd9]);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Repairs UTF-8 text that was decoded as Latin-1/Windows-1252 (`cafÃ©` -> `café`), one sequence at a
 * time so that correct text around it is untouched. A sequence is rewritten only when its bytes form
 * valid UTF-8 with a plausible lead byte, which keeps ordinary accented text (`naïve`) as it is.
 */
function fixUtf8Mojibake(text: string): string {
  const chars = Array.from(text);
  let out = '';
  let changed = false;
  for (let i = 0; i < chars.length; i++) {
    const lead = legacyByte(chars[i]);
    const need = lead >= 0xc2 && lead <= 0xdf ? (TWO_BYTE_LEADS.has(lead) ? 1 : 0)
      : lead >= 0xe0 && lead <= 0xef ? 2
        : lead === 0xf0 ? 3 : 0;
    if (need > 0 && i + need < chars.length) {
      const bytes = [lead];
      for (let k = 1; k <= need; k++) {
        const b = legacyByte(chars[i + k]);
        if (b < 0x80 || b > 0xbf) break;
        bytes.push(b);
      }
      if (bytes.length === need + 1) {
        try {
          out += strictUtf8.decode(Uint8Array.from(bytes));
          i += need;
          changed = true;
          continue;
        } catch {
          // not UTF-8 after all (overlong or surrogate): keep the characters
        }
      }
    }
    out += chars[i];
  }
  return changed ? out : text;
}

function fixSegment(segment: string, unescape: boolean): string {
  let text = segment;
  for (;;) {
    const before = text;
    if (unescape) text = unescapeHtml(text);
    if (/[^\x00-\x7f]/.test(text)) text = fixUtf8Mojibake(text);
    text = text.replace(C1_RE, (c) => CP1252_HIGH[c.charCodeAt(0) - 0x80]);
    text = text.replace(LIGATURE_RE, (c) => LIGATURES[c]);
    text = text.replace(WIDTH_RE, (c) => (c === '\u3000' ? ' ' : c.normalize('NFKC')));
    text = text.replace(DOUBLE_QUOTE_RE, '"').replace(SINGLE_QUOTE_RE, "'");
    text = text.replace(LINE_BREAK_RE, '\n');
    text = text.replace(LONE_SURROGATE_RE, '\ufffd');
    text = text.replace(TERMINAL_ESCAPE_RE, '');
    text = text.replace(CONTROL_RE, '');
    text = text.normalize('NFC');
    if (text === before) return text;
  }
}

/**
 * ftfy `fix_text` with default settings, approximately. Works line by line like ftfy; HTML entities
 * are not decoded on a line containing a literal `<` or on any line after it, because such text is
 * probably real HTML whose entities are intentional.
 */
export function ftfyFixText(text: string): string {
  let out = '';
  let unescape = true;
  for (let pos = 0; pos < text.length;) {
    let end = text.indexOf('\n', pos) + 1;
    if (end === 0) end = text.length;
    const segment = text.slice(pos, end);
    if (unescape && segment.includes('<')) unescape = false;
    out += fixSegment(segment, unescape);
    pos = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// BasicTokenizer(strip_accents=False, do_split_on_punc=False): what CLIPTokenizer uses without ftfy.

const DROPPED_RE = /[\0\ufffd]|(?![\t\n\r])\p{C}/gu;
const SPACE_LIKE_RE = /[\t\n\r]|\p{Zs}/gu;
const CJK_RE = /[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\u{20000}-\u{2a6df}\u{2a700}-\u{2b73f}\u{2b740}-\u{2b81f}\u{2b820}-\u{2ceaf}\u{2f800}-\u{2fa1f}]/gu;

export function basicClean(text: string): string {
  const cleaned = text.replace(DROPPED_RE, '').replace(SPACE_LIKE_RE, ' ');
  const spaced = cleaned.replace(CJK_RE, (c) => ` ${c} `).normalize('NFC');
  return pySplit(spaced).map((word) => word.toLowerCase()).join(' ');
}

/** The text CLIP's split regex sees, for one piece of a prompt between literal special tokens. */
export function cleanText(text: string, mode: TextCleanup): string {
  return mode === 'ftfy' ? whitespaceClean(ftfyFixText(text)).toLowerCase() : basicClean(text);
}
