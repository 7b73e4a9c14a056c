"""Entry point of the rdm_mmd plugin: registrations only (cheap, no heavy imports)."""

from __future__ import annotations

from rdm_core import hookimpl
from rdm_core.interfaces import ObjectiveSpec
from rdm_core.registry import CommandSpec


@hookimpl
def rdm_register_kernels(registry) -> None:
    registry.add("gaussian", "rdm_mmd.kernels:GaussianKernel", help="exp(-|x-y|^2 / 2 sigma^2) (production)")
    registry.add("imq", "rdm_mmd.kernels:IMQKernel", help="inverse multiquadric (1 + |x-y|^2/sigma^2)^-e")
    registry.add("laplace", "rdm_mmd.kernels:LaplaceKernel", help="exp(-|x-y| / sigma)")
    registry.add("multiscale", "rdm_mmd.kernels:MultiScaleGaussianKernel", help="mean of Gaussians at scales x sigma")


@hookimpl
def rdm_register_references(registry) -> None:
    registry.add("nystrom", "rdm_mmd.nystrom:NystromReference", help="k-means landmarks + alpha + k_rr (iRDM)")
    registry.add("exact", "rdm_mmd.exact:ExactReference", help="real pool, fresh subsample per step")
    registry.add("rff", "rdm_mmd.rff:RFFReference", help="random Fourier feature mean")
    registry.add("frechet", "rdm_mmd.frechet:FrechetReference", help="Frechet distance (ablation)")
    registry.add(
        "sliced_wasserstein",
        "rdm_mmd.sliced:SlicedWassersteinReference",
        help="sliced Wasserstein, fresh projections per step (ablation)",
    )


@hookimpl
def rdm_register_objectives(registry) -> None:
    registry.add(
        "mmd",
        "rdm_mmd.objective:MMDObjective",
        spec=ObjectiveSpec(
            settings="rdm_mmd.config:MMDSettings",
            check="rdm_mmd.config:check_recipe",
            plan="rdm_mmd.config:plan_cost",
        ),
        help="squared MMD per encoder against frozen references, self-normalised and weighted",
    )


@hookimpl
def rdm_register_commands(registry) -> None:
    registry.add(
        "reference",
        "rdm_mmd.cli:configure",
        spec=CommandSpec(help="Build reference sets (`build`) and inspect them (`info`)."),
    )
