"""PickScore with a tiny random CLIPModel + tokenizer/processor saved locally and loaded through
the real loading code: the score formula, uint8 conversion, win-rate arithmetic, errors."""

from __future__ import annotations

import pytest
import torch

from rdm_core.errors import ShapeError, WeightsNotFoundError
from rdm_eval.pickscore import PickScoreMetric, PickScorer, class_prompts, to_pil, win_rate
from rdm_testing.eval.tiny_clip import build_tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_pickscore")
    build_tiny_clip(path)
    return str(path)


@pytest.fixture(scope="module")
def scorer(clip_dir):
    return PickScorer(clip_dir, clip_dir, batch_size=2)


def _manual_scores(clip_dir: str, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """exp(logit_scale) * cos in float64 from the model's own feature functions."""
    from transformers import AutoProcessor, CLIPModel

    model = CLIPModel.from_pretrained(clip_dir).eval()
    proc = AutoProcessor.from_pretrained(clip_dir)
    pixel = proc(images=to_pil(images), return_tensors="pt")["pixel_values"]
    text = proc(text=prompts, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixel)
        txt = model.get_text_features(input_ids=text["input_ids"], attention_mask=text["attention_mask"])
    img = getattr(img, "pooler_output", img).double()
    txt = getattr(txt, "pooler_output", txt).double()
    cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
    return model.logit_scale.double().exp() * cos


def test_score_is_exp_logit_scale_times_cosine(scorer, clip_dir):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 40, 48, generator=g)
    prompts = ["a photo of a tench", "a cat", "two dogs", "a red car", "a photo of a goldfish"]
    got = scorer.score(images, prompts)
    assert got.shape == (5,) and got.dtype == torch.float32
    assert torch.allclose(got.double(), _manual_scores(clip_dir, images, prompts), atol=1e-4)
    # batch size (2 here) does not change scores
    assert torch.allclose(PickScorer(clip_dir, clip_dir, batch_size=64).score(images, prompts), got, atol=1e-5)


def test_images_go_through_uint8_first(scorer):
    g = torch.Generator().manual_seed(1)
    base = (torch.randint(0, 256, (2, 3, 32, 32), generator=g).float()) / 255.0
    jitter = base + (torch.rand(base.shape, generator=g) - 0.5) * 0.9 / 255.0  # same uint8 after rounding
    assert torch.equal(scorer.score(base, ["a", "b"]), scorer.score(jitter.clamp(0, 1), ["a", "b"]))
    arr = to_pil(torch.full((1, 3, 2, 2), 0.5))[0]
    assert arr.getpixel((0, 0)) == (128, 128, 128)  # round(0.5 * 255) = 128


def test_win_rate_and_metric_arithmetic():
    a, b = torch.tensor([3.0, 1.0, 2.0, 5.0]), torch.tensor([1.0, 2.0, 2.0, 4.0])
    assert win_rate(a, b) == {"win_rate": 0.5, "tie_rate": 0.25, "n": 4}
    res = PickScoreMetric().evaluate(scores=a, baseline_scores=b)
    assert res.value == pytest.approx(2.75)
    assert res.per_item["win_rate"] == 0.5 and res.extra["baseline_mean"] == pytest.approx(2.25)
    with pytest.raises(ShapeError, match="matched"):
        win_rate(a, b[:3])


def test_class_prompts_follow_torchvision_order():
    prompts = class_prompts()
    assert len(prompts) == 1000
    assert prompts[0] == "a photo of a tench" and prompts[1] == "a photo of a goldfish"


def test_errors(scorer, tmp_path):
    with pytest.raises(ShapeError, match="one prompt per image"):
        scorer.score(torch.rand(2, 3, 32, 32), ["only one"])
    with pytest.raises(WeightsNotFoundError, match="not found"):
        PickScorer(str(tmp_path / "missing"))
    with pytest.raises(WeightsNotFoundError, match="offline|not available"):
        PickScorer("nobody/not-a-cached-model")
