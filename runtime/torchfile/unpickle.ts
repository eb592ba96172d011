/**
 * A restricted pickle reader. It interprets the pickle opcodes itself and never imports or calls anything a
 * file names: every GLOBAL goes through the caller's allow-list, which maps the few names a weights file
 * legitimately uses (OrderedDict, tensor rebuild functions, storage types) to plain data constructors.
 * Anything else, os.system, eval, exec or builtins.getattr included, stops the load with the name given.
 */

export class UnpicklingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnpicklingError';
  }
}

/** A global the allow-list refused; carries the dotted name so the caller can word its error. */
export class ForbiddenGlobalError extends UnpicklingError {
  constructor(readonly global: string) {
    super(`refused global "${global}"`);
    this.name = 'ForbiddenGlobalError';
  }
}

/** What an allowed global becomes: called by REDUCE / NEWOBJ with its arguments; BUILD hands it state. */
export interface SafeCallable {
  readonly global: string;
  call(args: unknown[]): unknown;
}

export interface UnpickleOptions {
  resolveGlobal(module: string, name: string): SafeCallable | undefined;
  persistentLoad?(pid: unknown): unknown;
}

/** An object an allowed class produced, with the state BUILD gave it (attributes we keep but never act on). */
export interface PickledObject {
  readonly global: string;
  args: unknown[];
  state?: unknown;
}

const MARK = Symbol('mark');

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw new UnpicklingError('pickle data ended early (truncated?)');
    return this.buf[this.pos++]!;
  }

  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) throw new UnpicklingError('pickle data ended early (truncated?)');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  view(n: number): DataView {
    const b = this.bytes(n);
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  u16(): number {
    return this.view(2).getUint16(0, true);
  }

  u32(): number {
    return this.view(4).getUint32(0, true);
  }

  u64(): number {
    const v = this.view(8).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnpicklingError('length beyond 2^53 in pickle');
    return Number(v);
  }

  line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0) throw new UnpicklingError('pickle data ended early (truncated?)');
    const s = Buffer.from(this.buf.subarray(this.pos, end)).toString('latin1');
    this.pos = end + 1;
    return s;
  }
}

const utf8 = new TextDecoder('utf-8');

/** Little-endian two's complement bytes, as LONG1/LONG4 store them. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function parseTextInt(s: string): number | bigint | boolean {
  const t = s.trim().replace(/L$/, '');
  if (t === '00') return false;
  if (t === '01') return true;
  if (!/^[+-]?\d+$/.test(t)) throw new UnpicklingError(`bad integer literal "${s}" in pickle`);
  const v = BigInt(t);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function isCallable(x: unknown): x is SafeCallable {
  return typeof x === 'object' && x !== null && typeof (x as SafeCallable).call === 'function' && typeof (x as SafeCallable).global === 'string';
}

export function unpickle(data: Uint8Array, opts: UnpickleOptions): unknown {
  const r = new Reader(data);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) throw new UnpicklingError('pickle stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new UnpicklingError('pickle stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const at = marks.pop();
    if (at === undefined) throw new UnpicklingError('pickle MARK missing');
    return stack.splice(at);
  };
  const global = (module: string, name: string): SafeCallable => {
    const found = opts.resolveGlobal(module, name);
    if (!found) throw new ForbiddenGlobalError(`${module}.${name}`);
    return found;
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!isCallable(fn)) throw new UnpicklingError('pickle calls something that is not an allowed global');
    if (!Array.isArray(args)) throw new UnpicklingError(`arguments to ${fn.global} are not a tuple`);
    return fn.call(args);
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) throw new UnpicklingError('SETITEM on something that is not a dict');
    if (items.length % 2) throw new UnpicklingError('odd number of dict items in pickle');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]) => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof Set) for (const i of items) target.add(i);
    else throw new UnpicklingError('APPEND on something that is not a list');
  };
  const persistent = (pid: unknown) => {
    if (!opts.persistentLoad) throw new UnpicklingError('pickle references external data, which this file type does not allow');
    return opts.persistentLoad(pid);
  };

  for (;;) {
    const op = r.byte();
    switch (op) {
      case 0x80: // PROTO
        r.byte();
        break;
      case 0x95: // FRAME
        r.u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) throw new UnpicklingError(`pickle ended with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(r.view(4).getInt32(0, true));
        break;
      case 0x4b: // BININT1
        stack.push(r.byte());
        break;
      case 0x4d: // BININT2
        stack.push(r.u16());
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(r.bytes(r.byte())));
        break;
      case 0x8b: // LONG4
        stack.push(decodeLong(r.bytes(r.u32())));
        break;
      case 0x49: // INT
      case 0x4c: // LONG
        stack.push(parseTextInt(r.line()));
        break;
      case 0x47: // BINFLOAT
        stack.push(r.view(8).getFloat64(0, false));
        break;
      case 0x46: // FLOAT
        stack.push(Number(r.line()));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8.decode(r.bytes(r.u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8.decode(r.bytes(r.byte())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8.decode(r.bytes(r.u64())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape)
        stack.push(r.line().replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a, b) => String.fromCodePoint(parseInt(a ?? b, 16))));
        break;
      case 0x54: // BINSTRING
        stack.push(Buffer.from(r.bytes(r.view(4).getInt32(0, true))).toString('latin1'));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(Buffer.from(r.bytes(r.byte())).toString('latin1'));
        break;
      case 0x53: {
        // STRING: a quoted Python literal; only simple quoting is expected in weights files.
        const s = r.line().trim();
        stack.push(s.length >= 2 && (s[0] === "'" || s[0] === '"') ? s.slice(1, -1) : s);
        break;
      }
      case 0x42: // BINBYTES
        stack.push(Uint8Array.from(r.bytes(r.u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(Uint8Array.from(r.bytes(r.byte())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(Uint8Array.from(r.bytes(r.u64())));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x70: // PUT
        memo.set(Number(r.line()), top());
        break;
      case 0x71: // BINPUT
        memo.set(r.byte(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(r.u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: // GET
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const key = op === 0x67 ? Number(r.line()) : op === 0x68 ? r.byte() : r.u32();
        if (!memo.has(key)) throw new UnpicklingError(`pickle memo has no entry ${key}`);
        stack.push(memo.get(key));
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = r.line();
        stack.push(global(module, r.line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new UnpicklingError('STACK_GLOBAL needs two strings');
        stack.push(global(module, name));
        break;
      }
      case 0x69: {
        // INST: module and name on lines, arguments since the mark
        const module = r.line();
        const fn = global(module, r.line());
        stack.push(call(fn, popMark()));
        break;
      }
      case 0x6f: {
        // OBJ: class and arguments since the mark
        const [fn, ...args] = popMark();
        stack.push(call(fn, args));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX: keyword arguments are not used by any allowed class
        pop();
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD: state is kept as data, never applied through code
        const state = pop();
        const obj = top();
        if (obj instanceof Map) {
          // OrderedDict attributes (a state_dict's _metadata): keep nothing, they carry no tensors.
        } else if (typeof obj === 'object' && obj !== null && 'global' in obj && 'args' in obj) {
          (obj as PickledObject).state = state;
        } else if (typeof obj === 'object' && obj !== null && 'buildState' in obj) {
          (obj as { buildState: unknown }).buildState = state;
        } else {
          throw new UnpicklingError('BUILD on a value that takes no state');
        }
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x50: // PERSID
        stack.push(persistent(r.line()));
        break;
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        throw new UnpicklingError('pickle uses the copyreg extension registry, which is not allowed');
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        throw new UnpicklingError('pickle uses out-of-band buffers, which are not supported');
      default:
        throw new UnpicklingError(`unknown pickle opcode 0x${op.toString(16)} at byte ${r.pos - 1}`);
    }
  }
}
