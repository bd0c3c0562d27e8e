"""Independent expectations for the RandAugment tests: Pillow's ImageOps, ImageEnhance and affine
transforms on a grey ("L") or RGB image.
stdin: JSON {"width", "height", "channels": 1|3, "pixels": [..], "ops": [[name, arg], ...]};
stdout: JSON list of pixel lists (HWC, like the input).

Geometric ops follow the official TF definitions (autoaugment.py): the output pixel (x, y) takes
the input pixel nearest to M (x, y, 1) for the op's affine matrix M, and 128 outside. Pillow
samples at pixel centres and floors, TF at integer coordinates and rounds: for a row (a, b, c) of
M, Pillow's offset c + 0.5 - 0.5a - 0.5b picks the same pixel. Rotation uses Pillow's own
rotate() about the image centre."""
import json, sys
from PIL import Image, ImageOps, ImageEnhance

req = json.load(sys.stdin)
mode = 'L' if req.get('channels', 1) == 1 else 'RGB'
fill = 128 if mode == 'L' else (128, 128, 128)
img = Image.frombytes(mode, (req['width'], req['height']), bytes(req['pixels']))


def affine(m):
    a, b, c, d, e, f = m
    data = (a, b, c + 0.5 - 0.5 * a - 0.5 * b, d, e, f + 0.5 - 0.5 * d - 0.5 * e)
    return img.transform(img.size, Image.AFFINE, data, resample=Image.NEAREST, fillcolor=fill)


out = []
for name, arg in req['ops']:
    if name == 'AutoContrast': r = ImageOps.autocontrast(img)
    elif name == 'Equalize': r = ImageOps.equalize(img)
    elif name == 'Invert': r = ImageOps.invert(img)
    elif name == 'Posterize': r = ImageOps.posterize(img, arg)
    elif name == 'Solarize': r = ImageOps.solarize(img, arg)
    elif name == 'Contrast': r = ImageEnhance.Contrast(img).enhance(arg)
    elif name == 'Brightness': r = ImageEnhance.Brightness(img).enhance(arg)
    elif name == 'Sharpness': r = ImageEnhance.Sharpness(img).enhance(arg)
    elif name == 'Color': r = ImageEnhance.Color(img).enhance(arg)
    elif name == 'Rotate': r = img.rotate(arg, resample=Image.NEAREST, fillcolor=fill)
    elif name == 'ShearX': r = affine((1, arg, 0, 0, 1, 0))
    elif name == 'ShearY': r = affine((1, 0, 0, arg, 1, 0))
    elif name == 'TranslateX': r = affine((1, 0, arg, 0, 1, 0))
    elif name == 'TranslateY': r = affine((1, 0, 0, 0, 1, arg))
    else: raise SystemExit('unknown op ' + name)
    out.append(list(r.tobytes()))
json.dump(out, sys.stdout)
