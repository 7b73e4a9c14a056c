"""Joint feature, floors, feature files and the `rdm reference` command."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch

from rdm_core.artifacts import read_meta
from rdm_core.cli.main import main
from rdm_core.errors import ArtifactError, RecipeError, ShapeError
from rdm_mmd.features_io import load_features, save_features
from rdm_mmd.floors import compute_floor, load_floors, save_floors
from rdm_mmd.joint import joint_beta, joint_features, text_bandwidth
from rdm_mmd.kernels import GaussianKernel
from rdm_mmd.nystrom import NystromReference
from rdm_testing.mmd.mmd_brute import kernel_matrix, median_heuristic


def test_joint_features_concatenate_and_factorise_the_kernel():
    phi = torch.randn(6, 4, dtype=torch.bfloat16, requires_grad=True)
    tau = torch.nn.functional.normalize(torch.randn(6, 3), dim=1).requires_grad_()
    out = joint_features(phi, tau, beta=0.7)
    assert out.dtype == torch.float32 and out.shape == (6, 7)
    assert torch.allclose(out[:, 4:], 0.7 * tau.detach())
    out.sum().backward()
    assert phi.grad is not None and tau.grad is None  # gradient through phi only
    sigma_img, s_txt = 1.3, 0.4
    beta = joint_beta(sigma_img, s_txt)
    x = joint_features(phi.detach().float().double(), tau.detach().double(), beta).double()
    k = kernel_matrix("gaussian", x, x, sigma_img)
    img = kernel_matrix("gaussian", phi.detach().double(), phi.detach().double(), sigma_img)
    txt = kernel_matrix("gaussian", tau.detach().double(), tau.detach().double(), s_txt)
    assert torch.allclose(k, img * txt, atol=1e-6)
    with pytest.raises(ShapeError):
        joint_features(torch.randn(5, 4), torch.randn(6, 3), 1.0)
    with pytest.raises(RecipeError):
        joint_beta(1.0, 0.0)


def test_text_bandwidth_is_the_seeded_median():
    tau = torch.nn.functional.normalize(torch.randn(40, 5, dtype=torch.float64), dim=1)
    assert text_bandwidth(tau, subsample=2000) == pytest.approx(median_heuristic(tau.numpy()), rel=1e-12)


def test_compute_floor_averages_the_exact_training_loss():
    gen = torch.Generator().manual_seed(0)
    pool = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    val = torch.randn(100, 4, generator=gen, dtype=torch.float64)
    ref = NystromReference.build(pool, GaussianKernel(2.0), landmarks=20)
    floor = compute_floor(ref, val, n=30, draws=3, seed=5)
    # the training loss written out (V-statistic repulsion, Nystrom attraction, k_rr) on the same
    # seeded subsets, without ref.distance
    z, alpha = ref.landmarks.double(), ref.alpha.double()
    g = torch.Generator().manual_seed(5)
    values = []
    for _ in range(3):
        x = val[torch.randperm(100, generator=g)[:30]]
        k_gg = kernel_matrix("gaussian", x, x, 2.0).mean()
        k_gr = (kernel_matrix("gaussian", x, z, 2.0) @ alpha).mean()
        values.append(float(k_gg - 2 * k_gr + ref.k_rr))
    assert floor == pytest.approx(sum(values) / 3, rel=1e-13)  # measured: 2e-16
    # the biased estimator's offset makes floors depend on N
    assert compute_floor(ref, val, n=10, draws=3) > compute_floor(ref, val, n=100, draws=1)
    with pytest.raises(ShapeError, match="n=500"):
        compute_floor(ref, val, n=500)


def test_floors_file_stores_n(tmp_path: Path):
    path = tmp_path / "floors.json"
    save_floors(path, {"a": 0.25}, n=5120, draws=8, seed=0)
    assert json.loads(path.read_text())["n"] == 5120
    assert load_floors(path, expect_n=5120) == {"a": 0.25}
    with pytest.raises(ArtifactError, match="N=5120"):
        load_floors(path, expect_n=10240)
    path.write_text('{"a": 1}')
    with pytest.raises(ArtifactError, match="floors file"):
        load_floors(path)


def test_feature_files(tmp_path: Path):
    feats = torch.randn(20, 3)
    save_features(tmp_path / "f.safetensors", feats, {"encoder": "tiny"})
    back, meta = load_features(tmp_path / "f.safetensors")
    assert torch.equal(back, feats) and meta["encoder"] == "tiny" and meta["n"] == 20
    from rdm_core.artifacts import save_tensors

    save_tensors(tmp_path / "other.safetensors", {"x": feats})
    with pytest.raises(ArtifactError, match="'features'"):
        load_features(tmp_path / "other.safetensors")


def test_cli_build_and_info(tmp_path: Path, capsys):
    feats = torch.randn(200, 5)
    save_features(tmp_path / "f.safetensors", feats, {"encoder": "tiny", "source_fingerprint": "abc"})
    out = tmp_path / "ref.safetensors"
    rc = main(
        [
            "reference",
            "build",
            "--features",
            str(tmp_path / "f.safetensors"),
            "--landmarks",
            "16",
            "--bandwidth-scale",
            "0.5",
            "--seed",
            "3",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    meta = read_meta(out)
    assert meta["kind"] == "nystrom" and meta["encoder"] == "tiny" and meta["landmarks"] == 16
    assert meta["bandwidth_scale"] == 0.5 and meta["seed"] == 3 and meta["source_fingerprint"] == "abc"
    capsys.readouterr()
    assert main(["reference", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["header"]["kind"] == "nystrom" and info["tensors"]["landmarks"]["shape"] == [16, 5]
    assert main(["reference", "info", str(out)]) == 0
    assert "landmarks" in capsys.readouterr().out
    rff = tmp_path / "rff.safetensors"
    assert (
        main(
            [
                "reference",
                "build",
                "--features",
                str(tmp_path / "f.safetensors"),
                "--kind",
                "rff",
                "--arg",
                "num_features=32",
                "-o",
                str(rff),
            ]
        )
        == 0
    )
    assert read_meta(rff)["num_features"] == 32


def test_cli_errors_are_one_line(tmp_path: Path, capsys):
    assert main(["reference", "build", "--features", str(tmp_path / "nope.safetensors"), "-o", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["reference", "build", "--landmarks", "3"]) == 2
    assert "--features" in capsys.readouterr().err
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00")
    assert main(["reference", "info", str(tmp_path / "cut.safetensors")]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_cli_recipe_mode_dispatches_to_the_pipeline(monkeypatch):
    seen = {}

    def run_build(args):
        seen.update(vars(args))
        return 0

    fake = types.ModuleType("rdm_references.pipeline")
    fake.run_build = run_build
    monkeypatch.setitem(sys.modules, "rdm_references.pipeline", fake)
    rc = main(
        [
            "reference",
            "build",
            "my_recipe.yaml",
            "--encoders",
            "dinov2,clip",
            "--split",
            "val",
            "--set",
            "references.dir=/tmp/r",
            "--set",
            "run.seed=3",
        ]
    )
    assert rc == 0
    assert seen["recipe"] == "my_recipe.yaml" and seen["encoders"] == "dinov2,clip" and seen["split"] == "val"
    assert seen["overrides"] == ["references.dir=/tmp/r", "run.seed=3"]
    seen.clear()
    assert main(["reference", "build", "r.yaml", "train.rollout=64", "--set", "run.seed=1"]) == 0
    assert seen["overrides"] == ["run.seed=1", "train.rollout=64"] and seen["split"] is None
    assert seen["encoders"] is None


def test_load_training_reference_checks_the_recipe(tmp_path: Path):
    from rdm_core.errors import ReferenceMismatchError
    from rdm_core.recipe.load import load_recipe
    from rdm_mmd.recipe_glue import load_training_reference

    (tmp_path / "r.yaml").write_text(
        f"generator: {{name: toy}}\nencoders: {{train: [tiny]}}\nreferences: {{dir: {tmp_path}}}\n"
        "objective: {distance: {landmarks: 16, gen_chunk: 7, bandwidth_scale: 0.5}}\n"
    )
    recipe = load_recipe(str(tmp_path / "r.yaml"))
    with pytest.raises(ArtifactError, match="does not exist"):
        load_training_reference(recipe, "tiny")
    NystromReference.build(torch.randn(100, 3), "gaussian", landmarks=16, encoder="tiny", bandwidth_scale=0.5).save(
        tmp_path / "tiny.safetensors"
    )
    ref = load_training_reference(recipe, "tiny", dim=3)
    assert ref.options["gen_chunk"] == 7
    with pytest.raises(ReferenceMismatchError, match="dim=3"):
        load_training_reference(recipe, "tiny", dim=768)
    NystromReference.build(torch.randn(100, 3), "gaussian", landmarks=8, encoder="tiny", bandwidth_scale=0.5).save(
        tmp_path / "tiny.safetensors"
    )
    with pytest.raises(ReferenceMismatchError, match="landmarks=8"):
        load_training_reference(recipe, "tiny")


def test_recipe_mode_without_pipeline_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rdm_references.pipeline", None)  # import fails
    assert main(["reference", "build", "r.yaml"]) == 2
    assert "--features" in capsys.readouterr().err


def _recipe(tmp_path: Path, extra: str):
    from rdm_core.recipe.load import load_recipe

    (tmp_path / "r.yaml").write_text(f"generator: {{name: toy}}\nencoders: {{train: [tiny]}}\nobjective:\n{extra}\n")
    return load_recipe(str(tmp_path / "r.yaml"))


def test_build_reference_from_recipe_marginal_and_joint(tmp_path: Path):
    from rdm_mmd.recipe_glue import build_reference_from_recipe, expected_header

    phi = torch.randn(120, 4, dtype=torch.float64) * 2
    tau = torch.nn.functional.normalize(torch.randn(120, 3, dtype=torch.float64), dim=1)
    recipe = _recipe(tmp_path, "  distance: {landmarks: 10, bandwidth_scale: 0.5, seed: 2}")
    ref = build_reference_from_recipe(recipe, "tiny", phi)
    assert ref.header["landmarks"] == 10 and ref.header["seed"] == 2 and ref.header["joint"] is False
    from rdm_mmd.reference_header import check_expect

    check_expect(ref.header, expected_header(recipe, "tiny", dim=4), "ref")
    joint = _recipe(
        tmp_path, "  distance: {landmarks: 10, bandwidth_scale: 0.25}\n  joint: {enabled: true, s_txt: 0.5}"
    )
    ref = build_reference_from_recipe(joint, "tiny", phi, tau_rows=tau)
    sigma_img = 0.25 * median_heuristic(phi.numpy())
    h = ref.header
    assert h["joint"] is True and h["dim"] == 7 and h["d_img"] == 4 and h["d_txt"] == 3 and h["s_txt"] == 0.5
    assert h["bandwidth"] == pytest.approx(sigma_img, rel=1e-12) and h["beta"] == pytest.approx(
        sigma_img / 0.5, rel=1e-12
    )
    x = torch.cat([phi, h["beta"] * tau], 1)
    k_img_txt = kernel_matrix("gaussian", phi, phi, sigma_img) * kernel_matrix("gaussian", tau, tau, 0.5)
    assert torch.allclose(kernel_matrix("gaussian", x, x, h["bandwidth"]), k_img_txt, atol=1e-14, rtol=1e-13)
    check_expect(h, expected_header(joint, "tiny", dim=7), "ref")
    with pytest.raises(RecipeError, match="tau"):
        build_reference_from_recipe(joint, "tiny", phi)
    median_txt = _recipe(tmp_path, "  joint: {enabled: true, s_txt: null}\n  distance: {reference: frechet}")
    fd = build_reference_from_recipe(median_txt, "tiny", phi, tau_rows=tau)
    assert fd.header["s_txt"] == pytest.approx(median_heuristic(tau.numpy()), rel=1e-12) and fd.header["kernel"] is None
