"""Nystrom reference: both forms, exactness with all landmarks, determinism, files, mismatches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rdm_core.artifacts import read_meta
from rdm_core.errors import ArtifactError, RecipeError, ReferenceMismatchError, ShapeError
from rdm_core.interfaces import EncoderSpec, Preprocessing, ReferenceSet
from rdm_core.numerics import median_bandwidth
from rdm_core.recipe.assemble import load_reference
from rdm_mmd.kernels import GaussianKernel
from rdm_mmd.nystrom import NystromReference
from rdm_testing.mmd.mmd_brute import kernel_matrix


def _pool(n=400, d=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(5, d, generator=gen, dtype=torch.float64) * 3
    return centres[torch.randint(5, (n,), generator=gen)] + torch.randn(n, d, generator=gen, dtype=torch.float64)


SPEC = EncoderSpec(
    name="tiny_enc",
    library="rdm",
    model_id="tiny",
    pooling="cls",
    dim=6,
    split="train",
    preprocessing=Preprocessing(resolution=32),
)


def test_implements_protocol_and_header():
    ref = NystromReference.build(_pool(), "gaussian", landmarks=32, seed=1, encoder=SPEC, bandwidth_scale=0.5)
    assert isinstance(ref, ReferenceSet)
    h = ref.header
    assert h["kind"] == "nystrom" and h["encoder"] == "tiny_enc" and h["encoder_spec"]["model_id"] == "tiny"
    assert h["dim"] == 6 and h["landmarks"] == 32 and h["n"] == 400 and h["seed"] == 1
    assert h["bandwidth"] == pytest.approx(median_bandwidth(_pool(), scale=0.5, seed=1))
    assert h["kernel"] == {"name": "gaussian", "bandwidth": h["bandwidth"]} and h["bandwidth_scale"] == 0.5
    assert h["joint"] is False and h["rdm_version"] and len(h["source_fingerprint"]) == 16
    assert ref.landmarks.dtype == torch.float32 and ref.alpha.dtype == torch.float32 and ref.alpha.shape == (32,)


def test_alpha_form_equals_explicit_psi_form():
    pool = _pool()
    k = GaussianKernel(2.5)
    ref = NystromReference.build(pool, k, landmarks=40, seed=0)
    z = ref.landmarks.double()
    kzz = kernel_matrix("gaussian", z, z, 2.5) + 1e-6 * torch.eye(40, dtype=torch.float64)
    vals, vecs = torch.linalg.eigh(kzz)
    whiten = vecs @ torch.diag(vals.clamp_min(1e-6).rsqrt())  # psi(x) = k(x, Z) U diag(l^-1/2)
    mu_bar = (kernel_matrix("gaussian", pool, z, 2.5) @ whiten).mean(0)
    g = torch.randn(50, 6, dtype=torch.float64) * 2
    psi_form = ((kernel_matrix("gaussian", g, z, 2.5) @ whiten) @ mu_bar).mean()
    # the stored alpha is fp32: compare with an fp64 solve too, and the fp32-rounded result loosely
    mu = kernel_matrix("gaussian", z, pool, 2.5).mean(1)
    alpha64 = torch.linalg.solve(kzz, mu)
    alpha_form = (kernel_matrix("gaussian", g, z, 2.5) @ alpha64).mean()
    # measured: the two fp64 forms agree within 3e-17; the stored-fp32 alpha within 6e-11 (~0.01 values)
    assert torch.allclose(alpha_form, psi_form, atol=1e-15, rtol=0)
    assert torch.allclose(ref.attraction(g), psi_form, atol=5e-9, rtol=0)


def test_loss_and_gradient_match_brute_force():
    pool = _pool()
    ref = NystromReference.build(pool, GaussianKernel(2.0), landmarks=24, seed=0)
    ref.configure(gen_chunk=11)
    z, a = ref.landmarks.double(), ref.alpha.double()
    g = (torch.randn(30, 6, dtype=torch.float64) * 2).requires_grad_()
    loss = ref.distance(g)
    (grad,) = torch.autograd.grad(loss, g)
    gb = g.detach().clone().requires_grad_()
    expected = (
        kernel_matrix("gaussian", gb, gb, 2.0).mean()
        - 2 * (kernel_matrix("gaussian", gb, z, 2.0) @ a).mean()
        + ref.k_rr
    )
    (grad_b,) = torch.autograd.grad(expected, gb)
    assert torch.allclose(loss, expected, atol=1e-14, rtol=0) and torch.allclose(grad, grad_b, atol=1e-14, rtol=0)


def test_all_landmarks_gives_the_exact_mmd():
    pool = _pool(120, 4, seed=3)
    k = GaussianKernel(1.5)
    ref = NystromReference.build(pool, k, landmarks=10_000, seed=0, krr_subsample=10_000, jitter=1e-10)
    assert ref.header["landmarks"] == 120
    g = torch.randn(25, 4, dtype=torch.float64) + 0.3
    exact = (
        kernel_matrix("gaussian", g, g, 1.5).mean()
        - 2 * kernel_matrix("gaussian", g, pool, 1.5).mean()
        + kernel_matrix("gaussian", pool, pool, 1.5).mean()
    )
    # measured: within 3e-9 (landmarks and alpha stored in float32)
    assert ref.distance(g).item() == pytest.approx(exact.item(), abs=2e-7)
    assert ref.distance(pool).item() == pytest.approx(0.0, abs=2e-7)


def test_k_rr_matches_a_seeded_random_subsample():
    pool = _pool(300, 5, seed=4)
    ref = NystromReference.build(pool, GaussianKernel(2.0), landmarks=16, seed=9, krr_subsample=100)
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(9))[:100]
    sub = pool[idx].float().double()
    assert ref.k_rr == pytest.approx(kernel_matrix("gaussian", sub, sub, 2.0).mean().item(), abs=1e-6)
    assert ref.header["krr_n"] == 100


def test_build_is_deterministic_for_a_seed(tmp_path: Path):
    pool = _pool()
    a = NystromReference.build(pool, "gaussian", landmarks=20, seed=5)
    b = NystromReference.build(pool, "gaussian", landmarks=20, seed=5)
    c = NystromReference.build(pool, "gaussian", landmarks=20, seed=6)
    assert torch.equal(a.landmarks, b.landmarks) and torch.equal(a.alpha, b.alpha) and a.k_rr == b.k_rr
    assert not torch.equal(a.landmarks, c.landmarks)
    a.save(tmp_path / "a.safetensors")
    b.save(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_save_load_round_trip_and_expect(tmp_path: Path):
    ref = NystromReference.build(_pool(), "gaussian", landmarks=16, seed=0, encoder="tiny_enc", bandwidth_scale=0.25)
    path = tmp_path / "tiny_enc.safetensors"
    ref.save(path)
    meta = read_meta(path)
    assert meta["kind"] == "nystrom" and meta["k_rr"] == ref.k_rr
    expect = {
        "encoder": "tiny_enc",
        "dim": 6,
        "kind": "nystrom",
        "kernel": "gaussian",
        "bandwidth_scale": 0.25,
        "landmarks": 16,
        "joint": False,
    }
    loaded = load_reference(path, expect=expect)
    assert isinstance(loaded, NystromReference)
    g = torch.randn(20, 6)
    assert torch.equal(loaded.distance(g), ref.distance(g))
    assert loaded.kernel.bandwidth == ref.kernel.bandwidth


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("encoder", "clip", "encoder='tiny_enc'"),
        ("dim", 1024, "dim=6"),
        ("bandwidth_scale", 1.0, "bandwidth_scale=0.25"),
        ("kernel", "imq", "kernel='gaussian'"),
        ("landmarks", 4096, "landmarks=16"),
        ("joint", True, "joint=False"),
    ],
)
def test_mismatch_is_refused_with_the_fix(tmp_path: Path, key, value, needle):
    path = tmp_path / "ref.safetensors"
    NystromReference.build(_pool(), "gaussian", landmarks=16, encoder="tiny_enc", bandwidth_scale=0.25).save(path)
    with pytest.raises(ReferenceMismatchError) as err:
        NystromReference.load(path, expect={key: value})
    assert needle in str(err.value) and "rdm reference build RECIPE --encoders" in err.value.fix


def test_other_kind_and_wrong_feature_dim_are_refused(tmp_path: Path):
    path = tmp_path / "ref.safetensors"
    ref = NystromReference.build(_pool(), "gaussian", landmarks=16, encoder="tiny_enc")
    ref.save(path)
    from rdm_mmd.exact import ExactReference

    with pytest.raises(ReferenceMismatchError, match="'nystrom' reference"):
        ExactReference.load(path)
    with pytest.raises(ShapeError, match="dim 6"):
        ref.distance(torch.randn(10, 7))


def test_truncated_and_corrupt_files_are_detected(tmp_path: Path):
    path = tmp_path / "ref.safetensors"
    NystromReference.build(_pool(), "gaussian", landmarks=16).save(path)
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        load_reference(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError):
        NystromReference.load(tmp_path / "junk.safetensors")
    with pytest.raises(ArtifactError, match="does not exist"):
        NystromReference.load(tmp_path / "missing.safetensors")
    from rdm_core.artifacts import save_tensors

    save_tensors(tmp_path / "feats.safetensors", {"x": torch.randn(4, 6)})  # an rdm file, but not a reference
    with pytest.raises(ArtifactError, match="not an rdm reference"):
        NystromReference.load(tmp_path / "feats.safetensors")


def test_tampered_tensors_are_refused(tmp_path: Path):
    from rdm_core.artifacts import load_tensors, save_tensors

    path = tmp_path / "ref.safetensors"
    NystromReference.build(_pool(), "gaussian", landmarks=16).save(path)
    tensors, meta = load_tensors(path)
    tensors["alpha"] = tensors["alpha"][:5]
    save_tensors(path, tensors, meta)
    with pytest.raises(ArtifactError, match="disagree"):
        NystromReference.load(path)


def test_bad_build_inputs():
    with pytest.raises(ShapeError):
        NystromReference.build(torch.randn(1, 3), "gaussian")
    with pytest.raises(RecipeError):
        NystromReference.build(_pool(), "gaussian", landmarks=0)
    bad = _pool()
    bad[3, 1] = float("nan")
    from rdm_core.errors import NonFiniteError

    with pytest.raises(NonFiniteError):
        NystromReference.build(bad, "gaussian")
    with pytest.raises(RecipeError, match="no option"):
        NystromReference.build(_pool(), "gaussian", landmarks=8, bogus=1)

    class GramWithoutDescription:
        name, bandwidth = "g", 1.0

        def gram(self, x, y):
            return x @ y.T

    with pytest.raises(RecipeError, match=r"is not a kernel \(needs name, bandwidth, gram\(\) and describe\(\)\)"):
        NystromReference.build(_pool(), GramWithoutDescription(), landmarks=8)


def test_joint_header(tmp_path: Path):
    pool = _pool(200, 6)
    ref = NystromReference.build(
        pool, "gaussian", landmarks=8, joint={"beta": 0.5, "s_txt": 1.0, "d_img": 4, "d_txt": 2}
    )
    assert ref.header["joint"] is True and ref.header["beta"] == 0.5 and ref.header["d_txt"] == 2
    with pytest.raises(ShapeError):
        NystromReference.build(pool, "gaussian", landmarks=8, joint={"beta": 0.5, "s_txt": 1.0, "d_img": 4, "d_txt": 3})
    json.dumps(ref.header)  # the header is plain JSON


@settings(max_examples=20, deadline=None)
@given(
    m=st.integers(1, 25),
    n=st.integers(2, 60),
    d=st.integers(1, 5),
    sigma=st.floats(0.8, 4.0),
    seed=st.integers(0, 10_000),
)
def test_alpha_solve_equals_psi_form_property(m, n, d, sigma, seed):
    from rdm_mmd.nystrom import _nystrom_alpha

    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(n, d, generator=gen, dtype=torch.float64) * 2
    z = torch.randn(m, d, generator=gen, dtype=torch.float64) * 2
    g = torch.randn(7, d, generator=gen, dtype=torch.float64) * 2
    alpha, mu = _nystrom_alpha(z, pool, GaussianKernel(sigma), jitter=1e-6, memory_budget=5 * m * 8 * 3)
    assert torch.allclose(mu, kernel_matrix("gaussian", z, pool, sigma).mean(1), atol=1e-14, rtol=0)
    kzz = kernel_matrix("gaussian", z, z, sigma) + 1e-6 * torch.eye(m, dtype=torch.float64)
    vals, vecs = torch.linalg.eigh(kzz)
    whiten = vecs * vals.clamp_min(1e-6).rsqrt()
    psi = lambda x: kernel_matrix("gaussian", x, z, sigma) @ whiten
    psi_form = (psi(g) @ psi(pool).mean(0)).mean()
    alpha_form = (kernel_matrix("gaussian", g, z, sigma) @ alpha).mean()
    assert torch.allclose(alpha_form, psi_form, atol=1e-12, rtol=0)  # measured: 7e-15


def test_the_pool_is_streamed_in_blocks_that_fit_the_memory_budget():
    from rdm_mmd.nystrom import _nystrom_alpha

    pool = _pool(100, 6)
    z = pool[:12]
    kernel = GaussianKernel(2.0)
    sizes: list[int] = []
    # 12 landmarks x 8 bytes x 3 scratch buffers per pool row: a budget of 7 such rows
    alpha, mu = _nystrom_alpha(z, pool, kernel, jitter=1e-6, memory_budget=12 * 8 * 3 * 7, on_chunk=sizes.append)
    assert sizes == [7] * 14 + [2]
    whole, mu_whole = _nystrom_alpha(z, pool, kernel, jitter=1e-6, memory_budget=None)
    assert torch.allclose(mu, mu_whole, atol=1e-15, rtol=0) and torch.allclose(alpha, whole, atol=1e-12, rtol=0)
    # a float32 pool is streamed in float64 like a float64 copy of the same values
    _, mu32 = _nystrom_alpha(z, pool.float(), kernel, jitter=1e-6, memory_budget=None)
    _, mu64 = _nystrom_alpha(z, pool.float().double(), kernel, jitter=1e-6, memory_budget=None)
    assert mu32.dtype == torch.float64 and torch.equal(mu32, mu64)


def test_runtime_options_reach_the_estimator(gram_calls):
    ref = NystromReference.build(_pool(), "gaussian", landmarks=15, seed=0)
    g = torch.randn(30, 6, dtype=torch.float64)
    want_attraction, want_distance = ref.attraction(g).item(), ref.distance(g).item()
    calls = gram_calls

    def blocks(fn):
        calls.clear()
        value = fn(g).item()
        cross = {rows for rows, cols in calls if cols == 15}  # against the 15 landmarks
        own = {rows for rows, cols in calls if cols != 15}  # the repulsion's blocks of g
        return value, max(cross), max(own, default=0)

    # budget of 4 landmark rows (15 x 8 x 3 bytes each); the repulsion's rows are 30 wide: 2 fit
    ref.configure(method="checkpoint", memory_budget=15 * 8 * 3 * 4)
    value, cross, _ = blocks(ref.attraction)
    assert value == pytest.approx(want_attraction, rel=1e-13) and cross == 4
    value, cross, own = blocks(ref.distance)
    assert value == pytest.approx(want_distance, rel=1e-13) and (cross, own) == (4, 2)
    ref.configure(gen_chunk=7, memory_budget=1 << 20)
    assert blocks(ref.distance)[1:] == (30, 7)
    ref.configure(method="bogus")
    for fn in (ref.attraction, ref.distance):
        with pytest.raises(RecipeError, match="bogus"):
            fn(g)


def test_landmarks_of_another_dimension_are_refused(tmp_path: Path):
    from rdm_core.artifacts import load_tensors, save_tensors

    path = tmp_path / "ref.safetensors"
    NystromReference.build(_pool(), "gaussian", landmarks=16).save(path)
    tensors, meta = load_tensors(path)
    tensors["landmarks"] = torch.cat([tensors["landmarks"], tensors["landmarks"][:, :1]], dim=1)  # (16, 7)
    save_tensors(path, tensors, meta)
    with pytest.raises(ArtifactError, match="disagree"):
        NystromReference.load(path)
