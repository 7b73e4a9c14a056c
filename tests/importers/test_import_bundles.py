"""rdm reference import: the authors' Nystrom/joint bundles, pools, sigma files and refusals."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
import torch

from rdm_core.artifacts import load_tensors, read_json, read_meta
from rdm_core.cli.main import main
from rdm_core.errors import ArtifactError, ShapeError
from rdm_core.recipe.assemble import load_reference
from rdm_import.references import import_paths
from rdm_testing.importers.authors_files import gauss, pool_dict, save, save_joint, save_nystrom


def _pool(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d)) * 2.0
    return centres[rng.integers(0, 4, n)] + rng.normal(size=(n, d))


def _brute(bundle: dict, g: torch.Tensor) -> torch.Tensor:
    """k_gg - 2 mean K(g, Z) alpha + k_rr, in float64, from the raw file's numbers."""
    z = bundle["Z"].double()
    alpha = bundle["alpha"].double()
    gamma = 1.0 / (2.0 * float(bundle["sigma"]) ** 2)
    k_gg = torch.exp(-gamma * torch.cdist(g, g).pow(2)).mean()
    k_gr = (torch.exp(-gamma * torch.cdist(g, z).pow(2)) @ alpha).mean()
    return k_gg - 2.0 * k_gr + float(bundle["k_rr"])


def test_nystrom_bundle_distance_matches_the_raw_file(tmp_path, capsys):
    src = tmp_path / "data/fid_stats/bundles/nystrom/dinov2_nystrom_M4096.pt"
    bundle = save_nystrom(src, _pool(300, 6, 0), 24)  # 24 landmarks although the name says M4096
    out = tmp_path / "refs"
    assert main(["reference", "import", str(src), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    ref = load_reference(out / "dinov2.safetensors", expect={"kind": "nystrom", "encoder": "dinov2", "landmarks": 24})
    h = ref.header
    assert h["imported_from"] == {"file": src.name, "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}
    assert h["bandwidth_scale"] == 1.0 and h["landmarks"] == 24 and h["dim"] == 6 and h["joint"] is False
    assert h["pool_path"] == "data/fid_stats/pools/dinov2_nystrom_M4096.pt"
    for key in ("seed", "n", "krr_n", "fit_n", "kmeans_iters", "jitter"):
        assert h[key] is None
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "seed" in warning[0] and "krr_n" in warning[0] and "null" in warning[0]

    g64 = torch.from_numpy(_pool(40, 6, 1)).requires_grad_(True)
    want = _brute(bundle, g64)
    (want_grad,) = torch.autograd.grad(want, g64)
    g32 = g64.detach().float().requires_grad_(True)
    have = ref.distance(g32)
    (have_grad,) = torch.autograd.grad(have, g32)
    assert float(have.detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    torch.testing.assert_close(have_grad.double(), want_grad, rtol=1e-5, atol=1e-5 * float(want_grad.abs().max()))


def test_joint_bundle_keeps_beta_s_txt_and_blocks(tmp_path):
    img, tau = _pool(200, 5, 2), _pool(200, 3, 3)
    tau /= np.linalg.norm(tau, axis=1, keepdims=True)
    src = tmp_path / "clip_joint_M4096.pt"
    bundle = save_joint(src, img, tau, 16, s_txt=1.0)
    (item,) = import_paths([src], tmp_path / "refs")
    assert item.kind == "joint" and item.encoder == "clip" and "pool_path" in item.missing
    ref = load_reference(tmp_path / "refs" / "clip.safetensors")
    h = ref.header
    assert h["joint"] is True and h["d_img"] == 5 and h["d_txt"] == 3 and h["dim"] == 8
    assert h["beta"] == pytest.approx(bundle["beta"]) and h["s_txt"] == 1.0
    assert h["bandwidth"] == pytest.approx(bundle["sigma"]) and h["bandwidth_scale"] == 0.25
    g = torch.from_numpy(np.concatenate([img[:30], bundle["beta"] * tau[:30]], 1))
    assert float(ref.distance(g.float())) == pytest.approx(float(_brute(bundle, g)), rel=1e-5)


def test_pool_and_sigma_files(tmp_path):
    feats = _pool(50, 4, 4)
    pool = save(tmp_path / "pools" / "mae_train.pt", pool_dict(feats))
    sigma = save(tmp_path / "sigma" / "mae.pt", {"sigma": 3.5, "scale": 1.0})
    items = import_paths([pool, sigma], tmp_path / "refs")
    assert [i.kind for i in items] == ["pool", "sigma"]
    tensors, meta = load_tensors(tmp_path / "refs/features/mae_train.safetensors")
    torch.testing.assert_close(tensors["features"], torch.from_numpy(feats).float())
    assert meta["kind"] == "features" and meta["encoder"] == "mae" and meta["n"] == 50
    bw = read_json(tmp_path / "refs/bandwidth/mae.json")
    assert bw["sigma"] == 3.5 and bw["median"] == 3.5 and bw["imported_from"]["file"] == "mae.pt"


def test_pool_whose_recorded_n_disagrees_is_refused(tmp_path):
    bad = pool_dict(_pool(10, 3, 5))
    bad["n"] = 11
    src = save(tmp_path / "x_train.pt", bad)
    with pytest.raises(ShapeError, match="records n=11"):
        import_paths([src], tmp_path / "refs")


class Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Plain:
    pass


@pytest.mark.parametrize("case", ["code", "class", "lambda", "dtype"])
def test_other_objects_are_refused_in_one_line_and_nothing_runs(tmp_path, capsys, case):
    marker = tmp_path / "executed"
    src = tmp_path / "bundle.pt"
    if case == "code":
        torch.save({"Z": Payload(str(marker))}, src)
    elif case == "class":
        torch.save({"Z": Plain()}, src)
    elif case == "lambda":  # a pickle whose reduce builds a lambda through eval
        src.write_bytes(pickle.dumps(_EvalLambda(str(marker))))
    else:  # weights-only-loadable, but not tensors, numbers or strings
        torch.save({"Z": torch.float32}, src)
    rc = main(["reference", "import", str(src), "-o", str(tmp_path / "refs")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "only imports tensors, numbers and strings" in err
    assert not marker.exists() and not (tmp_path / "refs").exists()
    with pytest.raises(ArtifactError):
        read_meta(tmp_path / "refs" / "bundle.safetensors")


class _EvalLambda:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"(lambda: __import__('os').system('touch {self.marker}'))()",))


def test_gauss_helper_is_the_gaussian_kernel():
    a = np.array([[0.0, 0.0]])
    b = np.array([[3.0, 4.0]])
    assert gauss(a, b, 5.0)[0, 0] == pytest.approx(np.exp(-25.0 / 50.0))
