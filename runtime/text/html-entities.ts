// HTML character references, resolved the way ftfy's `unescape_html` resolves them (the CLIP
// tokenizer runs ftfy before BPE, so `&amp;` in a prompt must become `&`).
//
// ftfy accepts every HTML5 name that ends in `;`. We carry the HTML 4 set (plus `&apos;` and HTML5's
// all-caps aliases of those names), which is what prompts copied from web pages actually contain,
// instead of the 2,000-entry HTML5 table.
// Code points follow the HTML5 table (e.g. `&lang;` is U+27E8 there, not HTML 4's U+2329).
// A `*` marks lowercase names that ftfy also accepts in all caps (`&EACUTE;` -> `É`), i.e. those
// whose uppercase spelling is not an HTML5 name or a prefix-matched legacy name of its own.

const TABLE =
  'QUOT:22 AMP:26 LT:3c GT:3e COPY:a9 REG:ae TRADE:2122 ' +
  'quot:22 amp:26 apos*:27 lt:3c gt:3e nbsp*:a0 iexcl*:a1 cent*:a2 pound*:a3 curren*:a4 yen*:a5 ' +
  'brvbar*:a6 sect*:a7 uml*:a8 copy:a9 ordf*:aa laquo*:ab not*:ac shy*:ad reg:ae macr*:af deg*:b0 ' +
  'plusmn*:b1 sup2*:b2 sup3*:b3 acute*:b4 micro*:b5 para*:b6 middot*:b7 cedil*:b8 sup1*:b9 ordm*:ba ' +
  'raquo*:bb frac14*:bc frac12*:bd frac34*:be iquest*:bf Agrave:c0 Aacute:c1 Acirc:c2 Atilde:c3 ' +
  'Auml:c4 Aring:c5 AElig:c6 Ccedil:c7 Egrave:c8 Eacute:c9 Ecirc:ca Euml:cb Igrave:cc Iacute:cd ' +
  'Icirc:ce Iuml:cf ETH:d0 Ntilde:d1 Ograve:d2 Oacute:d3 Ocirc:d4 Otilde:d5 Ouml:d6 times*:d7 ' +
  'Oslash:d8 Ugrave:d9 Uacute:da Ucirc:db Uuml:dc Yacute:dd THORN:de szlig*:df agrave*:e0 ' +
  'aacute*:e1 acirc*:e2 atilde*:e3 auml*:e4 aring*:e5 aelig*:e6 ccedil*:e7 egrave*:e8 eacute*:e9 ' +
  'ecirc*:ea euml*:eb igrave*:ec iacute*:ed icirc*:ee iuml*:ef eth:f0 ntilde*:f1 ograve*:f2 ' +
  'oacute*:f3 ocirc*:f4 otilde*:f5 ouml*:f6 divide*:f7 oslash*:f8 ugrave*:f9 uacute*:fa ucirc*:fb ' +
  'uuml*:fc yacute*:fd thorn:fe yuml*:ff OElig:152 oelig*:153 Scaron:160 scaron*:161 Yuml:178 ' +
  'fnof*:192 circ*:2c6 tilde*:2dc Alpha:391 Beta:392 Gamma:393 Delta:394 Epsilon:395 Zeta:396 ' +
  'Eta:397 Theta:398 Iota:399 Kappa:39a Lambda:39b Mu:39c Nu:39d Xi:39e Omicron:39f Pi:3a0 Rho:3a1 ' +
  'Sigma:3a3 Tau:3a4 Upsilon:3a5 Phi:3a6 Chi:3a7 Psi:3a8 Omega:3a9 alpha*:3b1 beta*:3b2 gamma*:3b3 ' +
  'delta*:3b4 epsilon*:3b5 zeta*:3b6 eta*:3b7 theta*:3b8 iota*:3b9 kappa*:3ba lambda*:3bb mu*:3bc ' +
  'nu*:3bd xi*:3be omicron*:3bf pi*:3c0 rho*:3c1 sigmaf*:3c2 sigma*:3c3 tau*:3c4 upsilon*:3c5 ' +
  'phi*:3c6 chi*:3c7 psi*:3c8 omega*:3c9 thetasym*:3d1 upsih*:3d2 piv*:3d6 ensp*:2002 emsp*:2003 ' +
  'thinsp*:2009 zwnj*:200c zwj*:200d lrm*:200e rlm*:200f ndash*:2013 mdash*:2014 lsquo*:2018 ' +
  'rsquo*:2019 sbquo*:201a ldquo*:201c rdquo*:201d bdquo*:201e dagger*:2020 Dagger:2021 bull*:2022 ' +
  'hellip*:2026 permil*:2030 prime*:2032 Prime:2033 lsaquo*:2039 rsaquo*:203a oline*:203e ' +
  'frasl*:2044 euro*:20ac image*:2111 weierp*:2118 real*:211c trade:2122 alefsym*:2135 larr*:2190 ' +
  'uarr*:2191 rarr*:2192 darr*:2193 harr*:2194 crarr*:21b5 lArr:21d0 uArr:21d1 rArr:21d2 dArr:21d3 ' +
  'hArr:21d4 forall*:2200 part*:2202 exist*:2203 empty*:2205 nabla*:2207 isin*:2208 notin*:2209 ' +
  'ni*:220b prod*:220f sum*:2211 minus*:2212 lowast*:2217 radic*:221a prop*:221d infin*:221e ' +
  'ang*:2220 and*:2227 or*:2228 cap*:2229 cup*:222a int*:222b there4*:2234 sim*:223c cong*:2245 ' +
  'asymp*:2248 ne*:2260 equiv*:2261 le*:2264 ge*:2265 sub*:2282 sup*:2283 nsub*:2284 sube*:2286 ' +
  'supe*:2287 oplus*:2295 otimes*:2297 perp*:22a5 sdot*:22c5 lceil*:2308 rceil*:2309 lfloor*:230a ' +
  'rfloor*:230b loz*:25ca spades*:2660 clubs*:2663 hearts*:2665 diams*:2666 lang*:27e8 rang*:27e9';

const NAMED = new Map<string, string>();
for (const entry of TABLE.split(' ')) {
  const colon = entry.indexOf(':');
  let name = entry.slice(0, colon);
  const ch = String.fromCodePoint(parseInt(entry.slice(colon + 1), 16));
  const upper = name.endsWith('*');
  if (upper) name = name.slice(0, -1);
  NAMED.set(name, ch);
  if (upper) NAMED.set(name.toUpperCase(), ch.toUpperCase());
}

/** Windows-1252 characters for bytes 0x80-0x9F; undefined bytes keep their C1 code point. */
export const CP1252_HIGH =
  '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f' +
  '\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';

// Code points that Python's html.unescape turns into nothing (controls and noncharacters).
function droppedCodePoint(cp: number): boolean {
  if ((cp >= 0x1 && cp <= 0x8) || cp === 0xb || (cp >= 0xe && cp <= 0x1f)) return true;
  if (cp >= 0x7f && cp <= 0x9f) return true;
  if (cp >= 0xfdd0 && cp <= 0xfdef) return true;
  return (cp & 0xfffe) === 0xfffe;
}

/** Decodes a numeric reference body (`#123` / `#x1F600`) like Python's html.unescape. */
function numericReference(body: string): string | undefined {
  const hex = /^#[xX]([0-9a-fA-F]+)$/.exec(body);
  const dec = hex ? null : /^#([0-9]+)$/.exec(body);
  if (!hex && !dec) return undefined;
  const digits = (hex ? hex[1] : dec![1]).replace(/^0+/, '');
  // Arbitrarily long digit strings are valid in Python and simply exceed U+10FFFF.
  if (digits.length > 8) return '\ufffd';
  const cp = digits === '' ? 0 : parseInt(digits, hex ? 16 : 10);
  if (cp === 0) return '\ufffd';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return CP1252_HIGH[cp - 0x80];
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  if (droppedCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

/**
 * ftfy's entity pass: only complete `&name;` / `&#n;` references are replaced, so informal text such
 * as `AT&T` or `this&not that` is left alone. One pass; ftfy's outer loop repeats it.
 */
export function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&#?[0-9A-Za-z]{1,24};/g, (ref) => {
    const body = ref.slice(1, -1);
    if (body.startsWith('#')) return numericReference(body) ?? ref;
    return NAMED.get(body) ?? ref;
  });
}
