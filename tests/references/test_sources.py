"""Data sources: folder order and crop, jsonl captions, teacher determinism, mix, prompts, curation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rdm_core.errors import ArtifactError, RecipeError


def test_folder_lists_images_recursively_sorted_and_ignores_other_files(tmp_path):
    from rdm_references.sources.folder import FolderSource

    for rel in ("b/2.png", "a/z.JPEG", "a/1.webp", "c.jpg", "readme.md", "a/x.txt"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith((".md", ".txt")):
            p.write_text("no")
        else:
            fmt = {".png": "PNG", ".jpeg": "JPEG", ".webp": "WEBP", ".jpg": "JPEG"}[p.suffix.lower()]
            Image.fromarray(np.zeros((9, 13, 3), dtype=np.uint8)).save(p, format=fmt)
    src = FolderSource(str(tmp_path), resolution=8)
    assert [src.key(i) for i in range(len(src))] == ["a/1.webp", "a/z.JPEG", "b/2.png", "c.jpg"]
    batch = src.read([3, 0])
    assert batch.images.shape == (2, 3, 8, 8) and batch.keys == ["c.jpg", "a/1.webp"] and batch.captions is None


def test_adm_center_crop_against_a_direct_computation():
    from rdm_core.images import adm_center_crop, pil_to_tensor

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(70, 150, 3), dtype=np.uint8)  # (H, W): short side 70 >= 2 x 32
    img = Image.fromarray(arr)
    out = pil_to_tensor(adm_center_crop(img, 32))
    # Brute force: one BOX halving to 75x35, BICUBIC to round(75*32/35) x 32, centre cut.
    half = img.resize((75, 35), resample=Image.BOX)
    full = np.asarray(half.resize((round(75 * 32 / 35), 32), resample=Image.BICUBIC))
    left = (full.shape[1] - 32) // 2
    expect = torch.from_numpy(full[:, left : left + 32].copy()).permute(2, 0, 1).float() / 255
    assert out.shape == (3, 32, 32) and torch.equal(out, expect)
    # A flat image stays flat; an upscale (short side < size) also works.
    flat = pil_to_tensor(adm_center_crop(Image.fromarray(np.full((5, 9, 3), 200, dtype=np.uint8)), 16))
    assert torch.allclose(flat, torch.full_like(flat, 200 / 255), atol=1 / 255)


def test_jsonl_rows_relative_to_file_with_captions(tmp_path):
    from rdm_references.sources.jsonl import JsonlSource

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(np.full((10, 12, 3), 40 * i, dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    rows = [{"image": f"imgs/{i}.png", "caption": f"a photo {i}"} for i in range(3)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    src = JsonlSource(str(path), resolution=8)
    batch = src.read([2, 0])
    assert batch.captions == ["a photo 2", "a photo 0"]
    assert torch.allclose(batch.images[0], torch.full((3, 8, 8), 80 / 255))
    before = src.fingerprint(1)
    path.write_text("\n".join(json.dumps({**r, "caption": r["caption"] + "!"}) for r in rows))
    assert JsonlSource(str(path), resolution=8).fingerprint(1) != before  # a re-captioned row changed
    (tmp_path / "imgs" / "1.png").unlink()
    with pytest.raises(ArtifactError, match="remove the row"):
        src.fingerprint(1)
    (tmp_path / "bad.jsonl").write_text('{"caption": "no image"}\n')
    with pytest.raises(RecipeError, match="bad.jsonl:1 has no 'image' field"):
        JsonlSource(str(tmp_path / "bad.jsonl"))


def test_prompt_files(tmp_path):
    from rdm_references.sources.prompts import PromptFile

    (tmp_path / "p.txt").write_text("a cat\n\n  a dog  \n")
    assert PromptFile(str(tmp_path / "p.txt"), repeat=2).prompts() == ["a cat", "a dog", "a cat", "a dog"]
    (tmp_path / "p.jsonl").write_text('{"prompt": "x", "tag": "t"}\n{"prompt": "y"}\n')
    assert PromptFile(str(tmp_path / "p.jsonl")).prompts() == ["x", "y"]
    (tmp_path / "q.jsonl").write_text('{"other": "x"}\n')
    with pytest.raises(ArtifactError, match="q.jsonl:1 has no"):
        PromptFile(str(tmp_path / "q.jsonl"))


@pytest.fixture
def prompt_file(tmp_path):
    p = tmp_path / "prompts.txt"
    p.write_text("a red cube\na blue ball\na green cone\n")
    return str(p)


def test_teacher_renders_are_deterministic_per_row(prompt_file):
    from rdm_core.plugins import registry
    from rdm_references.sources.teacher import TeacherSource

    def make(seed=7):
        return TeacherSource(
            "tiny_teacher",
            prompts=prompt_file,
            repeats=2,
            steps=3,
            seed=seed,
            resolution=12,
            batch_size=4,
            device="cpu",
        )

    a, b = make(), make()
    assert len(a) == 6
    rows = list(range(6))
    first = a.read(rows)
    assert torch.equal(first.images, b.read(rows).images)  # a fresh generator instance, same pixels
    assert first.captions == ["a red cube", "a red cube", "a blue ball", "a blue ball", "a green cone", "a green cone"]
    assert first.keys[5] == f"teacher/00000005/seed{7 * 1_000_003 + 5}"
    # Row-determinism: rendering a row alone or in another batch gives the same image.
    alone = a.read([5]).images[0]
    assert torch.allclose(alone, first.images[5], atol=1e-6)
    # The row's image is the teacher's k-step sample from noise seeded seed*1_000_003+row.
    gen = registry("generators").create("tiny_teacher")
    noise = torch.randn((3, 8, 8), generator=torch.Generator().manual_seed(7 * 1_000_003 + 3))[None]
    direct = gen.teacher_sample(noise, gen.conditions_from_prompts(["a blue ball"]), 3)
    assert torch.allclose(first.images[3], direct[0], atol=1e-6)
    assert not torch.allclose(make(seed=8).read([3]).images, first.images[3:4])
    assert a.fingerprint(3) == b.fingerprint(3) != make(seed=8).fingerprint(3)


def test_teacher_without_prompts_uses_sample_conditions_and_rejects_bad_setup():
    from rdm_references.sources.teacher import TeacherSource

    str(Path(__file__).resolve().parents[2] / "plugins" / "rdm_flux2" / "data" / "tiny_prompts.txt")
    src = TeacherSource("tiny_teacher", count=5, steps=2, seed=1, device="cpu")
    x = src.read([0, 1, 2, 3, 4]).images
    assert x.shape == (5, 3, 12, 12) and torch.equal(x, src.read([0, 1, 2, 3, 4]).images)
    assert src.read([0]).captions is None
    with pytest.raises(RecipeError, match="needs `prompts` or a positive `count`"):
        TeacherSource("tiny_teacher")


@pytest.mark.parametrize(
    ("generator", "prompts", "needed_by", "lacks"),
    [
        ("tiny_one_step", False, "the teacher reference source", "teacher_sample() (capability TeacherSampler)"),
        (
            "tiny_unprompted",
            True,
            "teacher renders of a prompts file",
            "conditions_from_prompts() (capability PromptConditionedGenerator)",
        ),
    ],
)
def test_teacher_source_names_the_capability_its_generator_lacks(prompt_file, generator, prompts, needed_by, lacks):
    from rdm_core.capabilities import MissingCapabilityError
    from rdm_references.sources.teacher import TeacherSource

    args = {"prompts": prompt_file} if prompts else {"count": 2}
    src = TeacherSource(generator, steps=2, device="cpu", **args)
    with pytest.raises(MissingCapabilityError) as info:
        src.read([0])
    assert str(info.value).startswith(f"generator '{generator}' (")
    assert f"cannot serve {needed_by}: it lacks {lacks}. Fix: " in str(info.value)


def test_mix_concatenates_sources_in_order(prompt_file):
    from rdm_references.sources.mix import MixSource

    mix = MixSource(
        [
            {"name": "teacher", "args": {"generator": "tiny_teacher", "prompts": prompt_file, "device": "cpu"}},
            {
                "name": "teacher",
                "args": {"generator": "tiny_teacher", "prompts": prompt_file, "repeats": 2, "seed": 5, "device": "cpu"},
            },
        ],
        resolution=12,
    )
    assert len(mix) == 9
    assert mix.key(0).startswith("0:teacher/") and mix.key(3) == f"1:teacher/00000000/seed{5 * 1_000_003}"
    batch = mix.read([2, 3, 8])
    assert batch.captions == ["a green cone", "a red cube", "a green cone"]
    assert torch.allclose(batch.images[1], mix.parts[1].read([0]).images[0], atol=1e-6)


def _brightness(images, captions):
    return images.mean(dim=(1, 2, 3))


def test_pickscore_topk_keeps_best_per_caption_and_caches(prompt_file, tmp_path):
    from rdm_references.curation import PickScoreTopK
    from rdm_references.sources.teacher import TeacherSource

    str(Path(__file__).resolve().parents[2] / "plugins" / "rdm_flux2" / "data" / "tiny_prompts.txt")
    src = TeacherSource("tiny_teacher", prompts=prompt_file, repeats=4, steps=2, device="cpu")
    cache = tmp_path / "scores.json"
    kept = PickScoreTopK(src, k=2, scorer=_brightness, batch_size=5, cache=str(cache))
    scores = _brightness(src.read(list(range(12))).images, None)
    expect = []
    for p in range(3):  # brute force: two brightest of each prompt's four renders
        rows = list(range(4 * p, 4 * p + 4))
        expect += sorted(rows, key=lambda r: -float(scores[r]))[:2]
    assert kept.indices == sorted(expect) and len(kept) == 6
    assert kept.captions(list(range(6))) == [src.captions([i])[0] for i in sorted(expect)]

    calls = []

    def counting(images, captions):
        calls.append(len(images))
        return _brightness(images, captions)

    first = PickScoreTopK(src, k=2, scorer=counting, cache=str(cache))
    assert first.indices == kept.indices and sum(calls) == 12  # another scorer: scored again
    again = PickScoreTopK(src, k=1, scorer=counting, cache=str(cache))
    assert sum(calls) == 12  # same scorer, same items: the cached scores, another selection
    assert len(again) == 3 and set(again.indices) < set(kept.indices)


def test_geneval_correct_keeps_flagged_renders_capped_per_prompt(prompt_file):
    from rdm_references.curation import GenevalCorrect
    from rdm_references.sources.teacher import TeacherSource

    str(Path(__file__).resolve().parents[2] / "plugins" / "rdm_flux2" / "data" / "tiny_prompts.txt")
    src = TeacherSource("tiny_teacher", prompts=prompt_file, repeats=4, steps=2, device="cpu")
    flags = [1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0]

    stream = iter(flags)

    def tracked(images, prompts):  # marks renders correct in row order
        return [float(next(stream)) for _ in prompts]

    kept = GenevalCorrect(src, scorer=tracked, max_per_prompt=2, batch_size=5)
    assert kept.indices == [0, 2, 8, 9]
    with pytest.raises(RecipeError, match="kept no items"):
        GenevalCorrect(src, scorer=lambda im, p: torch.zeros(len(p)))
    with pytest.raises(RecipeError, match="returned 1 scores for 5 images"):
        GenevalCorrect(src, scorer=lambda im, p: [1.0], batch_size=5)


def test_recipe_filters_curate_the_train_pool_with_a_cached_selection(prompt_file, tmp_path):
    from rdm_core.recipe.load import recipe_from_dict
    from rdm_references.pipeline import build_references

    recipe = recipe_from_dict(
        {
            "run": {"device": "cpu"},
            "encoders": {"train": ["tiny_a"], "variant": "tiny"},
            "objective": {"distance": {"landmarks": 4}},
            "references": {
                "dir": str(tmp_path / "refs"),
                "resolution": 16,
                "shard_size": 4,
                "train": {
                    "name": "teacher",
                    "args": {
                        "generator": "tiny_teacher",
                        "prompts": prompt_file,
                        "repeats": 3,
                        "steps": 2,
                        "device": "cpu",
                    },
                },
                "filters": [{"name": "pickscore_topk", "args": {"k": 2, "scorer": "test_sources:_brightness"}}],
            },
        }
    )
    build_references(recipe)
    manifest = json.loads((tmp_path / "refs" / "manifest.json").read_text())
    keys = [k for k, _, _ in manifest["sources"]["train"]["items"]]
    assert len(keys) == 6 and all(k.startswith("teacher/") for k in keys)
    cache = tmp_path / "refs" / "curation" / "00_pickscore_topk.json"
    assert len(json.loads(cache.read_text())["scores"]) == 9
    again = build_references(recipe)
    assert again.computed_shards == [] and again.rebuilt == []


def test_corrupt_image_is_one_clear_error(tmp_path):
    from rdm_core.images import load_image

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ArtifactError, match="broken.png cannot be decoded.*replace or delete"):
        load_image(bad, 8)


def test_teacher_render_cache_renders_each_row_once(prompt_file, tmp_path):
    from rdm_references.sources.teacher import TeacherSource

    def make():
        return TeacherSource(
            "tiny_teacher",
            prompts=prompt_file,
            repeats=2,
            steps=2,
            resolution=12,
            device="cpu",
            cache_dir=str(tmp_path / "renders"),
        )

    first = make()
    images = first.read([0, 1, 2, 3])
    assert first.generator().calls == 1 and len(list((tmp_path / "renders").glob("*.png"))) == 4
    direct = TeacherSource("tiny_teacher", prompts=prompt_file, repeats=2, steps=2, resolution=12, device="cpu")
    assert torch.allclose(images.images, direct.read([0, 1, 2, 3]).images, atol=0.5 / 255 + 1e-6)  # 8-bit PNGs
    again = make()
    assert torch.equal(again.read([3, 1]).images, images.images[[3, 1]])
    assert again._gen is None  # read back from the cache: the generator was never built
    again.read([4])
    assert again.generator().calls == 1 and len(list((tmp_path / "renders").glob("*.png"))) == 5


def test_mix_of_captioned_and_uncaptioned_parts(tmp_path, prompt_file):
    from rdm_references.sources.folder import FolderSource
    from rdm_references.sources.mix import MixSource
    from rdm_references.sources.teacher import TeacherSource

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "a.png")
    mix = MixSource(
        [
            FolderSource(str(tmp_path / "imgs"), resolution=12),
            TeacherSource("tiny_teacher", prompts=prompt_file, resolution=12, device="cpu"),
        ]
    )
    batch = mix.read([0, 1])
    assert batch.images.shape == (2, 3, 12, 12) and batch.captions is None  # fine for a marginal pool
    with pytest.raises(RecipeError, match="combines captioned and uncaptioned parts"):
        mix.captions([0, 1])


def test_video_teacher_rows_are_frames_of_renders():
    import torch

    from rdm_references.sources.teacher import TeacherSource

    prompts = str(Path(__file__).resolve().parents[2] / "plugins" / "rdm_flux2" / "data" / "tiny_prompts.txt")
    src = TeacherSource(
        "wan",
        {"variant": "tiny", "height": 32, "width": 32, "num_frames": 5, "ctx_len": 16},
        prompts=prompts,
        steps=1,
        resolution=32,
        frames=5,
        device="cpu",
    )
    assert len(src) == 5 * len(src.prompt_list)
    whole = src.read(range(10)).images  # two whole videos
    assert whole.shape == (10, 3, 32, 32)
    picked = src.read([7, 2, 9])
    assert torch.allclose(picked.images, whole[[7, 2, 9]], atol=1e-6)  # frames do not depend on the batch
    assert picked.keys[0].endswith("/frame2") and picked.captions[0] == src.prompt_list[1]
    wrong = TeacherSource(
        "wan",
        {"variant": "tiny", "height": 32, "width": 32, "num_frames": 5, "ctx_len": 16},
        prompts=prompts,
        steps=1,
        resolution=32,
        frames=3,
        device="cpu",
    )
    with pytest.raises(RecipeError, match="set frames: 5"):
        wrong.read([0])
