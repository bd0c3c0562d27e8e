#!/usr/bin/python3
"""Pillow side of bench/preprocess.ts: the same eval transform on the same files.

Usage: preprocess_pillow.py <mode> <size> <file>...   mode: eval | eval-draft | decode
Reads every file into memory first, then times the loop; prints one JSON line
{"images": n, "seconds": s}. eval = decode, RGB, centre crop of side
min(W,H)*S/(S+round(S*(1/0.875-1))), bicubic resize to SxS, raw bytes (as sharp's path).
eval-draft additionally lets libjpeg decode at a reduced scale first (Pillow's draft mode,
the counterpart of sharp's JPEG shrink-on-load).
"""
import io
import json
import sys
import time

from PIL import Image


def crop_box(w, h, size):
    side = int(size / (size + round(size * (1 / 0.875 - 1))) * min(w, h))
    left = (w - side) // 2
    top = (h - side) // 2
    return (left, top, left + side, top + side)


def main():
    mode, size, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    blobs = [open(f, 'rb').read() for f in files]
    start = time.perf_counter()
    cpu0 = time.process_time()
    for b in blobs:
        img = Image.open(io.BytesIO(b))
        if mode == 'decode':
            img.load()
            img.tobytes()
            continue
        if mode == 'eval-draft':
            img.draft('RGB', (size, size))
        img = img.convert('RGB')
        img = img.crop(crop_box(img.width, img.height, size))
        img = img.resize((size, size), Image.BICUBIC)
        img.tobytes()
    print(json.dumps({'images': len(blobs), 'seconds': time.perf_counter() - start, 'cpuSeconds': time.process_time() - cpu0}))


if __name__ == '__main__':
    main()
