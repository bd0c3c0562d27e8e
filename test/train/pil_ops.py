"""Independent expectations for the RandAugment tests: Pillow's ImageOps/ImageEnhance on a grey image.
stdin: JSON {"width", "height", "pixels": [..], "ops": [[name, arg], ...]}; stdout: JSON list of pixel lists."""
import json, sys
from PIL import Image, ImageOps, ImageEnhance

req = json.load(sys.stdin)
img = Image.frombytes('L', (req['width'], req['height']), bytes(req['pixels']))
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
    else: raise SystemExit('unknown op ' + name)
    out.append(list(r.tobytes()))
json.dump(out, sys.stdout)
