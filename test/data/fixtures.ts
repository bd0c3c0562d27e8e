/** Small image trees and tars made inside the tests (real encoders: sharp, tar-stream, zlib). */
import { createDeflate, crc32 } from 'node:zlib';
import sharp from 'sharp';
import * as tar from 'tar-stream';

/** A w×h RGB test picture (distinct colours per quadrant, so crops and flips are visible). */
export async function picture(w: number, h: number, format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff', seed = 0): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      raw[i] = x < w / 2 ? 220 : 30;
      raw[i + 1] = y < h / 2 ? 200 : 40;
      raw[i + 2] = (seed * 37 + x + y) & 0xff;
    }
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).toFormat(format).toBuffer();
}

/**
 * Raw w×h RGB pixels with photo-like statistics: smooth gradients, a hard-edged disc, a texture
 * and pixel noise (seeded), for transforms whose output depends on image content.
 */
export function photo(w: number, h: number, seed = 1): Buffer {
  const raw = Buffer.alloc(w * h * 3);
  let s = (seed * 2654435761) >>> 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const noise = s >>> 27;
      const i = (y * w + x) * 3;
      raw[i] = ((x * 200) / w + noise) & 0xff;
      raw[i + 1] = ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (h / 3) ** 2 ? 200 : 40) + noise;
      raw[i + 2] = (Math.sin(x / 7) * Math.cos(y / 11) * 100 + 120 + noise) & 0xff;
    }
  }
  return raw;
}

function pngChunk(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  body.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}

/**
 * A real, valid greyscale PNG of side×side black pixels (a decompression bomb at 20000: ~400 KB
 * file, 400 Mpx decoded). Built by streaming zero rows through zlib, never holding them.
 */
export async function bombPng(side: number): Promise<Buffer> {
  const deflate = createDeflate({ level: 1 });
  const parts: Buffer[] = [];
  deflate.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise<void>((r) => deflate.on('end', () => r()));
  const rowsPerWrite = 200; // all-zero rows (filter byte 0 + zero pixels) are identical
  const block = Buffer.alloc((side + 1) * rowsPerWrite);
  for (let y = 0; y < side; y += rowsPerWrite) {
    const rows = Math.min(rowsPerWrite, side - y);
    if (!deflate.write(block.subarray(0, rows * (side + 1)))) await new Promise((r) => deflate.once('drain', r));
  }
  deflate.end();
  await done;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', Buffer.concat(parts)), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A tar of the given members (name → bytes), in order, via tar-stream. */
export async function makeTar(members: [string, Buffer | string][]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const [name, body] of members) pack.entry({ name }, typeof body === 'string' ? Buffer.from(body) : body);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
