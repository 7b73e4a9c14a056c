"""Random-weight encoders declare the seed of their weights in their spec, and `rdm reference build`
writes it into every reference header (so references of another seed are told apart)."""

from __future__ import annotations

from rdm_core.artifacts import read_meta
from rdm_core.plugins import registry
from rdm_testing.reliability import rdm, write_recipe


def test_random_weight_encoders_declare_their_seed_and_fixed_ones_none():
    encoders = registry("encoders")
    assert encoders.spec("digits_random").seed == 0
    assert encoders.spec("digits_pixels").seed is None  # a fixed function: no weights drawn
    built = encoders.create("digits_random", variant="full", seed=5)
    assert built.spec.seed == 5 and built.spec.name == "digits_random"


def test_reference_headers_carry_the_encoder_seed(tmp_path, capsys):
    recipe = write_recipe(
        tmp_path,
        encoders={"train": ["digits_random", "digits_pixels"], "held_out": [], "args": {"digits_random": {"seed": 5}}},
        references={"val": None, "eval_bank_size": 64},
        eval={"metrics": []},
    )
    code, _, err = rdm(capsys, "reference", "build", recipe)
    assert code == 0, err
    random_header = read_meta(tmp_path / "refs" / "digits_random.safetensors")
    pixels_header = read_meta(tmp_path / "refs" / "digits_pixels.safetensors")
    assert random_header["encoder_spec"]["seed"] == 5
    assert pixels_header["encoder_spec"]["seed"] is None
