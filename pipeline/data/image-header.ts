/**
 * Dimensions of upright JPEGs and PNGs read from their headers in JS, so the transform needs one
 * sharp call per image instead of two: sharp's `metadata()` costs about 2 M instructions (a sixth
 * of a 224 px eval transform's overhead over the decode itself). Only answers when sure that
 * libvips will see the same thing: any EXIF orientation other than 1, more than one EXIF block,
 * anything malformed or unusual returns undefined and the caller asks sharp instead (and sharp
 * reports corrupt files with its own messages).
 *
 * JPEG: markers up to the first scan (ITU T.81 B.1.1), size from the SOFn frame header, orientation
 * from EXIF IFD0 tag 0x0112 (CIPA DC-008, TIFF 6.0 section 2), which is where libexif, and so
 * libvips, reads it. PNG: IHDR, and no eXIf chunk anywhere (libpng reads it before or after IDAT).
 */

export interface UprightSize {
  width: number;
  height: number;
}

/** SOFn markers that carry a frame header: C0–CF except DHT (C4), JPG (C8) and DAC (CC). */
const isStartOfFrame = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/**
 * EXIF orientation from an APP1 payload that starts with "Exif": 1 when the tag is absent, the
 * tag's value when it is a single SHORT in 1..8, undefined when anything is off.
 */
function exifOrientation(app1: Buffer): number | undefined {
  if (app1.length < 14 || app1[4] !== 0 || app1[5] !== 0) return undefined;
  const tiff = app1.subarray(6);
  const order = tiff.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return undefined;
  const le = order === 'II';
  const u16 = (at: number) => (le ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number) => (le ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  if (u16(2) !== 42) return undefined;
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > tiff.length) return undefined;
  const entries = u16(ifd);
  if (ifd + 2 + entries * 12 > tiff.length) return undefined;
  let orientation: number | undefined;
  for (let i = 0; i < entries; i++) {
    const at = ifd + 2 + i * 12;
    if (u16(at) !== 0x0112) continue;
    // A second Orientation entry, another type or count: libexif's choice is not obvious.
    if (orientation !== undefined || u16(at + 2) !== 3 || u32(at + 4) !== 1) return undefined;
    orientation = u16(at + 8);
    if (orientation < 1 || orientation > 8) return undefined;
  }
  return orientation ?? 1;
}

/** Size of a JPEG whose EXIF orientation is absent or 1; undefined otherwise (or when unsure). */
export function uprightJpegSize(bytes: Buffer): UprightSize | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let pos = 2;
  let size: UprightSize | undefined;
  let exifBlocks = 0;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) return undefined;
    const marker = bytes[pos + 1]!;
    if (marker === 0xff) {
      pos++; // fill byte before a marker
      continue;
    }
    // Only segments with a length may come before the first scan; SOS ends the header.
    if (marker === 0xda) return size;
    if (marker === 0xd8 || marker === 0xd9 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) return undefined;
    const length = bytes.readUInt16BE(pos + 2);
    const end = pos + 2 + length;
    if (length < 2 || end > bytes.length) return undefined;
    const body = bytes.subarray(pos + 4, end);
    if (isStartOfFrame(marker)) {
      if (size || body.length < 6) return undefined;
      const height = body.readUInt16BE(1);
      const width = body.readUInt16BE(3);
      if (width === 0 || height === 0) return undefined; // height 0: defined later by DNL
      size = { width, height };
    } else if (marker === 0xe1 && body.length >= 4 && body.toString('latin1', 0, 4) === 'Exif') {
      if (++exifBlocks > 1 || exifOrientation(body) !== 1) return undefined;
    }
    pos = end;
  }
  return undefined; // no scan: truncated or not a JPEG after all
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Size of a PNG without an eXIf chunk; undefined otherwise (or when unsure). Chunk CRCs are left to libpng. */
export function uprightPngSize(bytes: Buffer): UprightSize | undefined {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE) || bytes.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (width === 0 || height === 0) return undefined;
  for (let pos = 8; pos + 8 <= bytes.length; ) {
    const type = bytes.toString('latin1', pos + 4, pos + 8);
    if (type === 'eXIf') return undefined;
    if (type === 'IEND') return { width, height };
    pos += 12 + bytes.readUInt32BE(pos);
  }
  return undefined; // truncated
}
