"""Convert the official DreamSim ensemble checkpoint into one safetensors file for timm branches.

Inputs (dreamsim 0.2.x release zip ``dreamsim_ensemble_checkpoint.zip``, unzipped or not):

* ``clip_vitb16_pretrain.pth.tar`` and ``open_clip_vitb16_pretrain.pth.tar``: DINO-style ViT state
  dicts with ``pos_drop`` as a LayerNorm (= ln_pre) and a separate ``proj`` (768x512);
* ``ensemble_lora/adapter_config.json`` + ``adapter_model.safetensors`` (or ``.bin``): the PEFT LoRA
  over ``extractor_list.{0,1,2}.model.blocks.*.attn.qkv``;
* the DINO ViT-B/16 backbone weights (the torch.hub ``dino_vitb16`` file, equal to timm's
  ``vit_base_patch16_224.dino``), given separately.

Output keys ``dino.*``, ``clip.*``, ``open_clip.*`` are timm state dicts with the LoRA merged
(``W += (alpha / r) * B @ A``; ``alpha / sqrt(r)`` under rsLoRA). Pickle files are read with
``torch.load(weights_only=True)`` only. Usage::

    python -m rdm_encoders.dreamsim_convert CHECKPOINT_DIR_OR_ZIP [DINO_WEIGHTS] [-o OUT]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.artifacts import fingerprint_file, save_tensors
from rdm_core.errors import ArtifactError, RdmError, WeightsNotFoundError

BRANCH_FILES = {"clip": "clip_vitb16_pretrain.pth.tar", "open_clip": "open_clip_vitb16_pretrain.pth.tar"}
BRANCH_INDEX = {0: "dino", 1: "clip", 2: "open_clip"}  # dreamsim's extractor_list order
LORA_KEY = re.compile(r"extractor_list\.(\d+)\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$")


class _Checkpoint:
    """Files of the release, from a directory or straight from the zip (found by file name)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise WeightsNotFoundError(
                f"DreamSim checkpoint {self.root} does not exist.",
                "download it with `rdm encoders fetch dreamsim` and pass its path",
            )
        if self.root.is_file():
            self.zip: zipfile.ZipFile | None = zipfile.ZipFile(self.root)
            self.names = self.zip.namelist()
        else:
            self.zip = None
            self.names = [str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()]

    def find(self, suffix: str, required: bool = True) -> str | None:
        hits = [n for n in self.names if n == suffix or n.endswith("/" + suffix)]
        if not hits and required:
            raise ArtifactError(
                f"{self.root} has no {suffix} (not a dreamsim ensemble checkpoint).",
                "pass the unzipped dreamsim_ensemble_checkpoint (or the zip itself)",
            )
        return sorted(hits, key=len)[0] if hits else None

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        return (self.root / name).read_bytes()


def _load_blob(data: bytes, name: str) -> dict[str, Tensor]:
    if name.endswith(".safetensors"):
        from safetensors.torch import load

        return load(data)
    obj: Any = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ArtifactError(f"{name} does not hold a state dict.", "use the files of the official release")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def clip_to_timm(sd: dict[str, Tensor], name: str) -> dict[str, Tensor]:
    """dreamsim's DINO-style CLIP layout -> timm CLIP ViT keys.

    ``pos_drop.*`` (the ln_pre LayerNorm) -> ``norm_pre.*``; ``proj`` (D x E) -> ``head.weight`` (E x D)
    with a zero ``head.bias``; the patch-embedding bias (zero in CLIP) is dropped.
    """
    out: dict[str, Tensor] = {}
    for k, v in sd.items():
        if k == "patch_embed.proj.bias":
            if v.abs().max().item() != 0.0:  # timm's CLIP has no patch bias: refusing beats silently dropping it
                raise ArtifactError(
                    f"{name}: patch_embed.proj.bias is non-zero, which timm's CLIP cannot hold.",
                    "check that the file is dreamsim's converted CLIP checkpoint",
                )
            continue
        if k == "proj":
            out["head.weight"] = v.t().contiguous()
            out["head.bias"] = torch.zeros(v.shape[1], dtype=v.dtype)
            continue
        if k.startswith("head."):
            continue
        out[k.replace("pos_drop.", "norm_pre.", 1) if k.startswith("pos_drop.") else k] = v
    if "head.weight" not in out:
        raise ArtifactError(f"{name} has no 'proj' matrix.", "use dreamsim's converted CLIP checkpoint files")
    return out


def merge_lora(branches: dict[str, dict[str, Tensor]], adapter: dict[str, Tensor], config: dict[str, Any]) -> int:
    """Merge PEFT LoRA weights into ``branches`` in place; returns the number of merged modules."""
    r = int(config["r"])
    alpha = float(config.get("lora_alpha", r))
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    if config.get("fan_in_fan_out"):
        raise ArtifactError(
            "LoRA adapter uses fan_in_fan_out, which dreamsim's qkv Linear layers never do.",
            "use the adapter of the official ensemble checkpoint",
        )
    pairs: dict[tuple[int, str], dict[str, Tensor]] = {}
    for key, value in adapter.items():
        m = LORA_KEY.search(key)
        if m:
            pairs.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = value
    for (idx, module), ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"} or idx not in BRANCH_INDEX:
            raise ArtifactError(
                f"LoRA adapter: incomplete or unknown pair for extractor {idx} module {module}.",
                "use the adapter of the official ensemble checkpoint",
            )
        target = branches[BRANCH_INDEX[idx]]
        wkey = f"{module}.weight"
        if wkey not in target:
            raise ArtifactError(
                f"LoRA adapter targets {module} in branch {BRANCH_INDEX[idx]}, which has no {wkey}.",
                "use the adapter that belongs to this checkpoint",
            )
        w = target[wkey]
        delta = (ab["B"].double() @ ab["A"].double()) * scale
        target[wkey] = (w.double() + delta).to(w.dtype)
    return len(pairs)


def convert_dreamsim(
    checkpoint: str | Path, dino_weights: str | Path | None = None, out: str | Path | None = None
) -> Path:
    """Convert the official ensemble checkpoint to one safetensors file (see module docstring).

    Args:
        checkpoint: the unzipped ``dreamsim_ensemble_checkpoint`` directory, or the zip.
        dino_weights: DINO ViT-B/16 backbone state dict (``.pth`` or ``.safetensors``); ``None`` =
            ``timm/vit_base_patch16_224.dino`` from the Hugging Face cache.
        out: output file; ``None`` = ``$TORCH_HOME/hub/checkpoints/rdm_dreamsim_ensemble.safetensors``.

    Returns:
        The written path.
    """
    from rdm_encoders.dreamsim import default_weights_path
    from rdm_encoders.loading import load_state_dict_file

    ck = _Checkpoint(checkpoint)
    if dino_weights is None:
        from rdm_core.weights import hub_file

        dino_weights = hub_file(
            "timm/vit_base_patch16_224.dino", "model.safetensors", fetch_command="rdm encoders fetch dreamsim"
        )
    dino = {k: v for k, v in load_state_dict_file(dino_weights).items() if not k.startswith("head.")}
    branches: dict[str, dict[str, Tensor]] = {"dino": dino}
    for prefix, fname in BRANCH_FILES.items():
        name = ck.find(fname)
        assert name is not None
        branches[prefix] = clip_to_timm(_load_blob(ck.read(name), name), fname)
    cfg_name = ck.find("ensemble_lora/adapter_config.json")
    assert cfg_name is not None
    config = json.loads(ck.read(cfg_name))
    ad_name = ck.find("ensemble_lora/adapter_model.safetensors", required=False) or ck.find(
        "ensemble_lora/adapter_model.bin"
    )
    assert ad_name is not None
    merged = merge_lora(branches, _load_blob(ck.read(ad_name), ad_name), config)
    if merged == 0:
        raise ArtifactError(
            f"{ad_name} holds no LoRA weights for extractor_list modules.",
            "use the adapter of the official ensemble checkpoint",
        )
    target = Path(out) if out is not None else default_weights_path()
    tensors = {f"{p}.{k}": v.float() for p, sd in branches.items() for k, v in sd.items()}
    save_tensors(
        target,
        tensors,
        meta={
            "kind": "dreamsim_ensemble",
            "branches": list(branches),
            "lora_modules_merged": merged,
            "lora": {k: config.get(k) for k in ("r", "lora_alpha", "use_rslora", "target_modules")},
            "sources": {
                "checkpoint": str(ck.root),
                "dino": str(dino_weights),
                "dino_fingerprint": fingerprint_file(dino_weights),
            },
        },
    )
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rdm_encoders.dreamsim_convert", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="unzipped dreamsim_ensemble_checkpoint directory, or the zip")
    parser.add_argument("dino", nargs="?", help="DINO ViT-B/16 weights (default: timm/vit_base_patch16_224.dino)")
    parser.add_argument("-o", "--out", help="output .safetensors (default: the path the encoder loads)")
    args = parser.parse_args(argv)
    try:
        path = convert_dreamsim(args.checkpoint, args.dino, args.out)
    except RdmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
