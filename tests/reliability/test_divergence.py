"""Item 6: a diverging run stops after train.max_nonfinite_steps consecutive non-finite steps with a
non-zero exit, the last checkpoint with finite weights survives rotation, and `rdm generate` /
`rdm eval` refuse the non-finite weights."""

from __future__ import annotations

import torch

from rdm_testing.reliability import error_line, rdm, write_recipe


def _blow_up_from_step(monkeypatch, first: int) -> None:
    """From step ``first`` on, the weights hold NaN when the step starts (what a blown-up update
    leaves): every such step has a non-finite loss and is skipped."""
    from rdm_gradcache.trainer import GradCacheTrainer

    train_step = GradCacheTrainer.train_step

    def diverging(self, step, ctx):
        if step >= first:
            with torch.no_grad():
                next(self.module.parameters()).fill_(float("nan"))
        return train_step(self, step, ctx)

    monkeypatch.setattr(GradCacheTrainer, "train_step", diverging)


def test_diverging_run_stops_keeps_a_finite_checkpoint_and_is_not_sampled(project, capsys, monkeypatch):
    from rdm_core.checkpoints import is_finite_checkpoint, list_checkpoints

    recipe = write_recipe(project, name="diverge", train={"steps": 50, "keep_checkpoints": 2, "max_nonfinite_steps": 4})
    _blow_up_from_step(monkeypatch, 2)
    code, _, err = rdm(capsys, "train", recipe, "--no-progress")
    monkeypatch.undo()
    assert code == 2
    line = error_line(err)
    run = project / "runs" / "diverge"
    assert "training diverged: steps 2-5" in line and "4 consecutive steps" in line and "train.lr" in line
    assert str(run / "checkpoints" / "step_0000001") in line  # where to go back to
    kept = list_checkpoints(run)
    assert kept[-1][0] == 5  # stopped at the 4th non-finite step in a row (steps 2..5), not at 50
    assert [s for s, p in kept if is_finite_checkpoint(p)] == [1]  # rotation kept the finite one
    assert [s for s, _ in kept] == [1, 4, 5]  # keep_checkpoints=2 newest + the newest finite

    out_dir = project / "samples"
    code, _, err = rdm(capsys, "generate", recipe, "--checkpoint", run, "--num", "4", "--out", out_dir)
    assert code == 2
    line = error_line(err)
    assert "non-finite weights" in line and "step_0000001" in line
    assert not out_dir.exists() or not any(out_dir.iterdir())
    code, _, err = rdm(capsys, "eval", recipe, "--checkpoint", run)
    assert code == 2 and "non-finite weights" in error_line(err)
    # the finite checkpoint still generates
    code, _, err = rdm(capsys, "generate", recipe, "--checkpoint", kept[0][1], "--num", "4", "--out", out_dir)
    assert code == 0, err


def test_isolated_non_finite_steps_do_not_stop_the_run(project, capsys, monkeypatch):
    """Non-finite steps below the limit are skipped and counted again from zero after a finite one."""
    recipe = write_recipe(project, name="blips", train={"steps": 4, "max_nonfinite_steps": 2})
    from rdm_gradcache.trainer import GradCacheTrainer

    train_step = GradCacheTrainer.train_step

    def one_bad_step(self, step, ctx):
        if step in (2, 4):  # a NaN in the drawn noise: that step alone is non-finite
            draw = self.draw_chunks
            self.draw_chunks = lambda device: [type(c)(c.noise * float("nan"), c.conditions) for c in draw(device)]
            try:
                return train_step(self, step, ctx)
            finally:
                del self.draw_chunks
        return train_step(self, step, ctx)

    monkeypatch.setattr(GradCacheTrainer, "train_step", one_bad_step)
    code, _, err = rdm(capsys, "train", recipe, "--no-progress")
    assert code == 0, err
    assert "step 2: non-finite" in err and "step 4: non-finite" in err
