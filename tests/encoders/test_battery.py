"""rdm_core.battery: ordered differentiable calls, chunked no-grad extraction, feature cache."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from rdm_core.artifacts import read_meta
from rdm_core.battery import Battery
from rdm_core.errors import ArtifactError, NonFiniteError, UnknownNameError
from rdm_core.interfaces import EncoderSpec, ImageBatch, Preprocessing


class PixelEncoder(nn.Module):
    """A small frozen encoder: fixed random projection of a 4x4 average-pooled image."""

    def __init__(self, name: str, dim: int, seed: int, poison: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.proj = nn.Parameter(torch.randn(48, dim, generator=g), requires_grad=False)
        self.spec = EncoderSpec(
            name=name,
            library="test",
            model_id=f"pix{seed}",
            pooling="avg",
            dim=dim,
            split="train",
            preprocessing=Preprocessing(resolution=4),
        )
        self.calls = 0
        self.poison = poison

    def forward(self, images):
        self.calls += 1
        feats = nn.functional.adaptive_avg_pool2d(images, 4).flatten(1) @ self.proj
        if self.poison:
            feats = feats.clone()
            feats[-1, 0] = float("nan")
        return feats


def _battery(**kw):
    return Battery({"b": PixelEncoder("b", 5, 1), "a": PixelEncoder("a", 3, 2)}, chunk_size=3, **kw)


def _imgs(n=7, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


class ListSource:
    """An ImageSource over a tensor (keys, fingerprints, read)."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return self.images.shape[0]

    def key(self, i):
        return f"img{i}"

    def fingerprint(self, i):
        return str(float(self.images[i].sum()))

    def read(self, indices):
        return ImageBatch(self.images[list(indices)], [self.key(i) for i in indices])


def test_call_is_ordered_differentiable_and_filters():
    bat = _battery()
    x = _imgs().requires_grad_(True)
    out = bat(x)
    assert list(out) == ["b", "a"] and out["b"].shape == (7, 5) and out["a"].shape == (7, 3)
    (out["a"].sum() + out["b"].sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    only = bat(x, only=["a", "b"])
    assert list(only) == ["b", "a"]  # battery order, whatever order was asked
    assert list(bat(x, only=["a"])) == ["a"]
    with pytest.raises(UnknownNameError, match="'c'"):
        bat(x, only=["c"])
    video = torch.rand(2, 3, 4, 16, 16)  # (B,3,F,H,W) -> frames
    assert bat(video)["a"].shape == (8, 3)


def test_extract_equals_call_chunked_and_no_grad():
    bat = _battery()
    x = _imgs()
    feats = bat.extract(x, progress=False)
    with torch.no_grad():
        full = bat(x)
    for n in ("a", "b"):
        assert not feats[n].requires_grad and feats[n].device.type == "cpu"
        torch.testing.assert_close(feats[n], full[n])
    assert bat.encoders["a"].calls == 3 + 1  # 7 images in chunks of 3, plus the direct call


@pytest.mark.parametrize("kind", ["source", "iterable", "batches"])
def test_extract_accepts_sources_and_iterables(kind):
    bat = _battery()
    x = _imgs(5)
    src = {
        "source": ListSource(x),
        "iterable": [x[:2], x[2:]],
        "batches": [ImageBatch(x[:4], ["k"] * 4), (x[4:], None)],
    }[kind]
    feats = bat.extract(src, progress=True)
    with torch.no_grad():
        torch.testing.assert_close(feats["b"], bat(x)["b"])


def test_feature_cache_roundtrip_partial_reuse_and_invalidation(tmp_path):
    path = tmp_path / "feats.safetensors"
    x = _imgs()
    bat = _battery()
    first = bat.extract(x, cache_path=path, progress=False, only=["a"])
    meta = read_meta(path)
    assert meta["kind"] == "battery_features" and meta["n"] == 7 and set(meta["encoders"]) == {"a"}
    assert meta["encoders"]["a"]["model_id"] == "pix2"
    calls_a = bat.encoders["a"].calls
    both = bat.extract(x, cache_path=path, progress=False)  # only 'b' is computed
    assert bat.encoders["a"].calls == calls_a
    torch.testing.assert_close(both["a"], first["a"])
    assert set(read_meta(path)["encoders"]) == {"a", "b"}
    # a changed spec for 'a' (e.g. another resolution) recomputes 'a' only
    bat.encoders["a"].spec = replace(bat.encoders["a"].spec, preprocessing=Preprocessing(resolution=8))
    calls_b = bat.encoders["b"].calls
    bat.extract(x, cache_path=path, progress=False)
    assert bat.encoders["b"].calls == calls_b and bat.encoders["a"].calls > calls_a
    # other images: nothing reused
    bat.extract(_imgs(seed=9), cache_path=path, progress=False)
    assert bat.encoders["b"].calls > calls_b


def test_cache_path_of_another_artifact_is_refused(tmp_path):
    from rdm_core.artifacts import save_tensors

    other = tmp_path / "other.safetensors"
    save_tensors(other, {"Z": torch.zeros(2)}, meta={"kind": "nystrom"})
    with pytest.raises(ArtifactError, match="not a battery feature cache"):
        _battery().extract(_imgs(), cache_path=other, progress=False)


def test_non_finite_features_name_the_encoder():
    bat = Battery({"ok": PixelEncoder("ok", 2, 1), "broken": PixelEncoder("broken", 2, 3, poison=True)}, chunk_size=4)
    with pytest.raises(NonFiniteError, match="'broken'.*images 0..3"):
        bat.extract(_imgs(), progress=False)


def test_build_from_registry_with_tiny_real_encoders():
    bat = Battery.build(["mae", "convnext"], variant="tiny", chunk_size=2)
    assert bat.names == ["mae", "convnext"] and bat.dims == {"mae": 64, "convnext": 128}
    x = torch.rand(3, 3, 64, 64)
    feats = bat.extract(x, progress=False)
    with torch.no_grad():
        direct = bat(x)
    for n in bat.names:
        torch.testing.assert_close(feats[n], direct[n])


def test_bad_arguments():
    with pytest.raises(ValueError):
        Battery({})
    with pytest.raises(ValueError):
        Battery({"a": PixelEncoder("a", 2, 1)}, chunk_size=0)


def test_encoders_must_be_modules_with_a_spec():
    from rdm_core.errors import RdmError

    with pytest.raises(RdmError, match=r"^encoder 'f' is a function, not an nn.Module with a .spec\. Fix: "):
        Battery({"f": lambda images: images.flatten(1)})
    with pytest.raises(RdmError, match=r"^encoder 'bare' is a Linear, not an nn.Module with a .spec"):
        Battery({"a": PixelEncoder("a", 2, 1), "bare": nn.Linear(3, 2)})


def test_bf16_weights_cast_all_but_fp32_encoders():
    full = Battery.build(["inception", "mae"], variant="tiny")
    half = Battery.build(["inception", "mae"], variant="tiny", bf16_weights=True)
    half.encoders["mae"].load_state_dict({k: v.bfloat16() for k, v in full.encoders["mae"].state_dict().items()})
    half.encoders["inception"].load_state_dict(full.encoders["inception"].state_dict())
    assert all(p.dtype == torch.bfloat16 for p in half.encoders["mae"].parameters())
    assert all(p.dtype == torch.float32 for p in half.encoders["inception"].parameters())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = full(x), half(x)
    assert torch.equal(a["inception"], b["inception"]) and b["mae"].dtype == torch.float32
    assert (a["mae"] - b["mae"]).norm() / a["mae"].norm() < 0.05


def test_tiny_recipe_battery_end_to_end(tmp_path):
    """The shipped tiny recipe's 14 encoders through assemble.build_encoders, extracted and cached."""
    from rdm_core.recipe.load import load_recipe
    from rdm_encoders.specs import PANEL

    recipe = load_recipe("flux2-klein-tiny")
    bat = Battery.from_recipe(recipe, which="all")
    assert bat.names == [s.name for s in PANEL] and bat.chunk_size == recipe.encoders.batch_size
    x = torch.rand(3, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    feats = bat.extract(x, cache_path=tmp_path / "f.safetensors", progress=False)
    assert {n: tuple(f.shape) for n, f in feats.items()} == {n: (3, d) for n, d in bat.dims.items()}
    assert all(torch.isfinite(f).all() for f in feats.values())
    meta = read_meta(tmp_path / "f.safetensors")
    assert all(meta["encoders"][n]["variant"] == "tiny" for n in bat.names)
