/**
 * A minimal protobuf wire-format encoder. Messages are built as lists of byte chunks so that large raw
 * tensor payloads are referenced, not copied, until the final concatenation.
 */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  private length = 0;

  get byteLength(): number {
    return this.length + this.scratch.length;
  }

  private flushScratch(): void {
    if (this.scratch.length) {
      this.chunks.push(Uint8Array.from(this.scratch));
      this.length += this.scratch.length;
      this.scratch = [];
    }
  }

  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v));
    if (x < 0x80n) {
      this.scratch.push(Number(x));
      return;
    }
    while (x >= 0x80n) {
      this.scratch.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.scratch.push(Number(x));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.scratch.push(...b);
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2);
    this.varint(b.byteLength);
    this.flushScratch();
    if (b.byteLength) {
      this.chunks.push(b);
      this.length += b.byteLength;
    }
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, m: ProtoWriter): this {
    this.tag(field, 2);
    this.varint(m.byteLength);
    this.flushScratch();
    m.flushScratch();
    // A loop, not push(...chunks): big graphs have hundreds of thousands of chunks, past the argument limit.
    for (const c of m.chunks) this.chunks.push(c);
    this.length += m.length;
    return this;
  }

  /** Packed repeated varints (ints64 / int32 lists). */
  packedInts(field: number, values: ArrayLike<number | bigint>): this {
    const inner = new ProtoWriter();
    for (let i = 0; i < values.length; i++) inner.varint(values[i]!);
    inner.flushScratch();
    return this.bytes(field, concat(inner.chunks, inner.length));
  }

  packedFloats(field: number, values: ArrayLike<number>): this {
    const f = Float32Array.from(values as ArrayLike<number>);
    return this.bytes(field, new Uint8Array(f.buffer));
  }

  finish(): Uint8Array {
    this.flushScratch();
    return concat(this.chunks, this.length);
  }
}

function concat(chunks: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
