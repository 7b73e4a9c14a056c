"""Context pools (build, resume, memory-mapped rows, errors) and `rdm generate` / `rdm context` CLIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rdm_core.errors import ArtifactError, RdmError

RECIPE = str(Path(__file__).resolve().parents[2] / "recipes" / "flux2-klein-tiny.yaml")
PROMPTS = [f"prompt number {i} with a {c} ball" for i, c in enumerate(["red", "blue", "green"] * 4)]


def test_pool_build_rows_and_meta(klein, tmp_path):
    from rdm_flux2.context_pool import ContextPool, build_context_pool

    out = build_context_pool(
        PROMPTS,
        klein.encode_prompts,
        tmp_path / "pool.npy",
        ctx_len=48,
        dim=96,
        variant="tiny",
        batch_size=5,
        show_progress=False,
    )
    assert out == tmp_path / "pool.npy"
    meta = json.loads((tmp_path / "pool_meta.json").read_text())
    assert {k: meta[k] for k in ("n", "ctx_len", "dim", "variant", "dtype")} == {
        "n": 12,
        "ctx_len": 48,
        "dim": 96,
        "variant": "tiny",
        "dtype": "float16",
    }
    arr = np.load(out, mmap_mode="r", allow_pickle=False)
    assert arr.dtype == np.float16 and arr.shape == (12, 48, 96)
    pool = ContextPool(out, expect={"ctx_len": 48, "dim": 96})
    rows = torch.tensor([7, 2, 7, 0])
    got = pool.rows(rows)
    want = klein.encode_prompts([PROMPTS[i] for i in rows.tolist()])
    assert got.dtype == torch.float32
    assert torch.allclose(got, want.half().float(), atol=0, rtol=0)  # exactly the fp16 rounding
    assert (got - want).abs().max() <= 1e-3 * want.abs().max()
    assert pool.prompts() == PROMPTS
    assert not (tmp_path / "pool.npy.partial").exists() and not (tmp_path / "pool.progress.json").exists()


def test_pool_build_resumes_after_interruption(klein, tmp_path):
    from rdm_flux2.context_pool import build_context_pool

    calls: list[int] = []

    def flaky(prompts):
        calls.append(len(prompts))
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed during the third chunk
        return klein.encode_prompts(prompts)

    with pytest.raises(KeyboardInterrupt):
        build_context_pool(
            PROMPTS, flaky, tmp_path / "p.npy", ctx_len=48, dim=96, variant="tiny", batch_size=4, show_progress=False
        )
    assert not (tmp_path / "p.npy").exists() and (tmp_path / "p.npy.partial").exists()
    resumed: list[list[str]] = []

    def counting(prompts):
        resumed.append(list(prompts))
        return klein.encode_prompts(prompts)

    build_context_pool(
        PROMPTS, counting, tmp_path / "p.npy", ctx_len=48, dim=96, variant="tiny", batch_size=4, show_progress=False
    )
    assert resumed == [PROMPTS[8:12]]  # only the unfinished chunk is encoded again
    build_context_pool(
        PROMPTS,
        klein.encode_prompts,
        tmp_path / "q.npy",
        ctx_len=48,
        dim=96,
        variant="tiny",
        batch_size=12,
        show_progress=False,
    )
    assert np.array_equal(np.load(tmp_path / "p.npy"), np.load(tmp_path / "q.npy"))
    # a finished pool with the same prompts is not rebuilt
    build_context_pool(
        PROMPTS,
        lambda p: pytest.fail("rebuilt"),
        tmp_path / "p.npy",
        ctx_len=48,
        dim=96,
        variant="tiny",
        show_progress=False,
    )


def test_pool_errors(klein, tmp_path):
    from rdm_core.prompts import read_prompts
    from rdm_flux2.context_pool import ContextPool, build_context_pool

    with pytest.raises(ArtifactError, match="rdm context build"):
        ContextPool(tmp_path / "none.npy")
    build_context_pool(
        PROMPTS[:2], klein.encode_prompts, tmp_path / "p.npy", ctx_len=48, dim=96, variant="tiny", show_progress=False
    )
    with pytest.raises(ArtifactError, match="ctx_len=48.*232"):
        ContextPool(tmp_path / "p.npy", expect={"ctx_len": 232})
    with pytest.raises(RdmError, match="outside a pool of 2"):
        ContextPool(tmp_path / "p.npy").rows(torch.tensor([2]))
    with pytest.raises(RdmError, match="expected"):
        build_context_pool(
            PROMPTS[:2],
            klein.encode_prompts,
            tmp_path / "w.npy",
            ctx_len=32,
            dim=96,
            variant="tiny",
            show_progress=False,
        )
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"nope": 1}\n')
    with pytest.raises(RdmError, match="bad.jsonl:2"):
        read_prompts(tmp_path / "bad.jsonl")
    (tmp_path / "good.jsonl").write_text('{"prompt": "a"}\n\n{"caption": "b"}\n')
    assert read_prompts(tmp_path / "good.jsonl") == ["a", "b"]


def test_sample_conditions_from_pool_is_seeded(klein_dir, klein, tmp_path):
    from rdm_flux2.context_pool import build_context_pool
    from rdm_flux2.generator import Flux2KleinGenerator

    build_context_pool(
        PROMPTS, klein.encode_prompts, tmp_path / "pool.npy", ctx_len=48, dim=96, variant="tiny", show_progress=False
    )
    gen = Flux2KleinGenerator(
        model_dir=str(klein_dir),
        variant="tiny",
        resolution=64,
        vae_dtype="fp32",
        context_pool=str(tmp_path / "pool.npy"),
    )
    a = gen.sample_conditions(5, torch.Generator().manual_seed(3))
    b = gen.sample_conditions(5, torch.Generator().manual_seed(3))
    assert torch.equal(a.caption_ids, b.caption_ids) and torch.equal(a.inputs, b.inputs)
    assert a.inputs.shape == (5, 48, 96) and a.captions == [PROMPTS[i] for i in a.caption_ids.tolist()]
    assert gen.num_conditions() == 12
    img = gen.generate(torch.randn(5, *gen.noise_shape()), a)
    assert img.shape == (5, 3, 64, 64)
    with pytest.raises(ArtifactError, match="ctx_len"):
        Flux2KleinGenerator(
            model_dir=str(klein_dir), variant="tiny", resolution=64, ctx_len=32, context_pool=str(tmp_path / "pool.npy")
        ).sample_conditions(1, torch.Generator())


def test_prompts_file_without_pool(tmp_path):
    from rdm_flux2.generator import Flux2KleinGenerator

    (tmp_path / "p.txt").write_text("\n".join(PROMPTS[:3]) + "\n")
    gen = Flux2KleinGenerator(variant="tiny", resolution=64, prompts=str(tmp_path / "p.txt"))
    cond = gen.sample_conditions(4, torch.Generator().manual_seed(0))
    assert gen.num_conditions() == 3 and cond.inputs.shape == (4, 48, 96)
    direct = gen.encode_prompts([PROMPTS[i] for i in cond.caption_ids.tolist()])
    assert torch.equal(cond.inputs, direct.half().float())


def _recipe_args(klein_dir):
    return ["--set", f"generator.args.model_dir={klein_dir}", "--set", "run.device=cpu"]


def test_rdm_generate_with_prompts_writes_pngs_and_grid(klein_dir, tmp_path):
    from PIL import Image

    from rdm_core.cli.main import main

    out = tmp_path / "samples"
    code = main(
        [
            "generate",
            RECIPE,
            "--base",
            "--prompt",
            "a red apple",
            "--prompt",
            "a cat",
            "--per-prompt",
            "2",
            "--seed",
            "7",
            "--batch-size",
            "3",
            "--out",
            str(out),
            *_recipe_args(klein_dir),
        ]
    )
    assert code == 0
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == ["00000.png", "00001.png", "00002.png", "00003.png", "grid.png"]
    assert Image.open(out / "00000.png").size == (64, 64)
    assert Image.open(out / "grid.png").size == (2 * 66 + 2, 2 * 66 + 2)
    index = json.loads((out / "samples.json").read_text())
    assert [s["prompt"] for s in index["samples"]] == ["a red apple", "a red apple", "a cat", "a cat"]
    # per-sample seeds: the batch size does not change a sample
    out2 = tmp_path / "again"
    assert (
        main(
            [
                "generate",
                RECIPE,
                "--base",
                "--prompt",
                "a red apple",
                "--prompt",
                "a cat",
                "--per-prompt",
                "2",
                "--seed",
                "7",
                "--batch-size",
                "1",
                "--out",
                str(out2),
                *_recipe_args(klein_dir),
            ]
        )
        == 0
    )
    for name in files[:-1]:
        a, b = np.asarray(Image.open(out / name)), np.asarray(Image.open(out2 / name))
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert not np.array_equal(np.asarray(Image.open(out / "00000.png")), np.asarray(Image.open(out / "00001.png")))


def test_rdm_context_build_then_generate_num_with_checkpoint(klein_dir, tmp_path):
    from PIL import Image

    from rdm_core.checkpoints import save_checkpoint
    from rdm_core.cli.main import main
    from rdm_flux2.generator import Flux2KleinGenerator

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    pool = tmp_path / "ctx.npy"
    assert (
        main(
            [
                "context",
                "build",
                RECIPE,
                "--prompts",
                str(prompts),
                "-o",
                str(pool),
                "--device",
                "cpu",
                *_recipe_args(klein_dir),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "ctx_meta.json").read_text())["n"] == len(PROMPTS)
    assert main(["context", "info", str(pool)]) == 0

    student = Flux2KleinGenerator(model_dir=str(klein_dir), variant="tiny", resolution=64)
    with torch.no_grad():
        for p in student.transformer.parameters():
            p.mul_(1.5)
    save_checkpoint(tmp_path / "run", 2, student.transformer.state_dict(), {}, {})
    outs = {}
    for tag, extra in (("base", ["--base"]), ("student", ["--checkpoint", str(tmp_path / "run")])):
        out = tmp_path / tag
        assert (
            main(
                [
                    "generate",
                    RECIPE,
                    "--num",
                    "5",
                    "--seed",
                    "1",
                    "--out",
                    str(out),
                    "--set",
                    f"generator.args.context_pool={pool}",
                    "--set",
                    "generator.args.prompts=null",
                    *extra,
                    *_recipe_args(klein_dir),
                ]
            )
            == 0
        )
        assert len(list(out.glob("0000*.png"))) == 5 and (out / "grid.png").exists()
        outs[tag] = np.asarray(Image.open(out / "00000.png"))
    assert not np.array_equal(outs["base"], outs["student"])  # the checkpoint was loaded


def test_rdm_generate_errors(klein_dir, tmp_path, capsys):
    from rdm_core.cli.main import main

    assert (
        main(
            [
                "generate",
                RECIPE,
                "--base",
                "--prompts",
                str(tmp_path / "none.txt"),
                "--out",
                str(tmp_path / "o"),
                *_recipe_args(klein_dir),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert (
        main(["generate", RECIPE, "--base", "--num", "0", "--out", str(tmp_path / "o"), *_recipe_args(klein_dir)]) == 2
    )


def test_pool_must_match_the_prompts_file(klein_dir, klein, tmp_path):
    from rdm_flux2.context_pool import build_context_pool
    from rdm_flux2.generator import Flux2KleinGenerator

    build_context_pool(
        PROMPTS, klein.encode_prompts, tmp_path / "pool.npy", ctx_len=48, dim=96, variant="tiny", show_progress=False
    )
    (tmp_path / "same.txt").write_text("\n".join(PROMPTS) + "\n")
    (tmp_path / "other.txt").write_text("\n".join(reversed(PROMPTS)) + "\n")
    ok = Flux2KleinGenerator(
        model_dir=str(klein_dir),
        variant="tiny",
        resolution=64,
        context_pool=str(tmp_path / "pool.npy"),
        prompts=str(tmp_path / "same.txt"),
    )
    assert ok.num_conditions() == len(PROMPTS)
    bad = Flux2KleinGenerator(
        model_dir=str(klein_dir),
        variant="tiny",
        resolution=64,
        context_pool=str(tmp_path / "pool.npy"),
        prompts=str(tmp_path / "other.txt"),
    )
    with pytest.raises(ArtifactError, match="rows differ"):
        bad.sample_conditions(1, torch.Generator())


def test_rdm_context_build_refuses_a_generator_without_context_encoding(tmp_path, capsys):
    from rdm_core.cli.main import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red ball\n")
    recipe = str(Path(__file__).resolve().parents[2] / "recipes" / "wan-tiny.yaml")
    args = ["context", "build", recipe, "--prompts", str(prompts), "-o", str(tmp_path / "ctx.npy"), "--device", "cpu"]
    assert main(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert (
        "generator 'wan' (WanGenerator) cannot serve rdm context build (pools of precomputed text contexts): "
        "it lacks ctx_dim (capability ContextEncoder)" in lines[0]
    )
    assert not list(tmp_path.glob("ctx*"))
