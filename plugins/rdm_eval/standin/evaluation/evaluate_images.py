"""GenEval detector STAND-IN for `rdm run --rehearse` (no mmdet, no detector weights).

Same command line, input folder layout and results format as the official
`evaluation/evaluate_images.py` of the GenEval repository: it reads
`<imagedir>/<idx>/metadata.jsonl` and `<idx>/samples/*.png`, and writes one JSON object per
image with `filename`, `tag`, `prompt` and `correct` to `--outfile`. It detects nothing: an image
is "correct" when its mean brightness is at least the median of all scored images (so about half
are, whatever the tiny generator draws). What a rehearsal proves with it
is the wiring (arguments, layout, one scorer process, results reading and the task-mean
summary), never a GenEval number.
"""

import argparse
import json
import os

import numpy as np
from PIL import Image

parser = argparse.ArgumentParser()
parser.add_argument("imagedir")
parser.add_argument("--outfile", required=True)
parser.add_argument("--model-path", required=True)
parser.add_argument("--model-config", required=True)
parser.add_argument("--options", nargs="*", default=[])
args = parser.parse_args()
for required in (args.model_path,):
    if not os.path.isdir(required):
        raise SystemExit(f"detector directory {required} does not exist")
if not os.path.isfile(args.model_config):
    raise SystemExit(f"detector config {args.model_config} does not exist")
rows = []
for folder in sorted(os.listdir(args.imagedir)):
    with open(os.path.join(args.imagedir, folder, "metadata.jsonl")) as fh:
        meta = json.loads(fh.readline())
    samples = os.path.join(args.imagedir, folder, "samples")
    for name in sorted(os.listdir(samples)):
        path = os.path.join(samples, name)
        with Image.open(path) as im:
            bright = float(np.asarray(im.convert("RGB"), dtype=np.float32).mean())
        rows.append((path, meta, bright))
median = float(np.median([b for _, _, b in rows])) if rows else 0.0
with open(args.outfile, "w") as out:
    for path, meta, bright in rows:
        row = {"filename": path, "tag": meta["tag"], "prompt": meta["prompt"], "correct": bright >= median}
        out.write(json.dumps(row) + "\n")
