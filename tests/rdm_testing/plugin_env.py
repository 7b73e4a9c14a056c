"""Install packages into a throwaway environment and run ``rdm`` there, never in the running one.

A :class:`PluginEnv` is a ``pip install --target`` directory put first on the ``PYTHONPATH`` of
child processes started with this interpreter: children see rdm and its dependencies (the running
venv) plus whatever was installed into the environment, entry points included, while the running
interpreter and every other test see nothing of it. Sources are copied to a temporary directory
before pip builds them, so no ``build/`` or ``*.egg-info`` directory is left in the source tree.

Typical use (the ``plugin_env`` fixture of ``tests/conftest.py`` gives a fresh one per test)::

    pkg = plugin_env.make_package("rdm-bad-encoder", {"rdm_bad/hooks.py": HOOKS}, {"bad": "rdm_bad.hooks"})
    plugin_env.install(pkg)
    done = plugin_env.rdm("plugins", "--json")
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

from rdm_testing import subprocess_env

# What pip must not copy out of a source directory (leftovers of earlier in-tree builds, caches).
_IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".venv")


class PluginEnv:
    """A temporary install target under ``root`` and the commands that run inside it.

    Args:
        root: an empty (or missing) directory owned by the caller, e.g. a pytest ``tmp_path``.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.site = self.root / "site-packages"
        self.site.mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a child process: this target first on PYTHONPATH, then ``tests/``."""
        env = subprocess_env(**extra)
        env["PYTHONPATH"] = os.pathsep.join([str(self.site), env["PYTHONPATH"]])
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        return env

    def install(self, *sources: str | os.PathLike[str]) -> None:
        """``pip install --no-deps --target`` each source directory, built from a temporary copy.

        ``--no-build-isolation`` keeps the build offline (the running environment's setuptools);
        ``--no-deps`` because every dependency a test package may have (rdm, torch) is already
        visible to the child processes.
        """
        for source in sources:
            src = Path(source).resolve()
            copy = self.root / "src" / src.name
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(src, copy, ignore=_IGNORE)
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
            done = subprocess.run(
                [*cmd, "--target", str(self.site), str(copy)],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                raise RuntimeError(f"pip install {src} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")

    def make_package(
        self,
        name: str,
        files: Mapping[str, str],
        entry_points: Mapping[str, str],
        *,
        version: str = "0.1.0",
    ) -> Path:
        """Write a minimal third-party plugin package (not installed yet) and return its directory.

        Args:
            name: distribution name, e.g. ``"rdm-bad-encoder"``.
            files: relative path -> source text (dedented), e.g. ``{"rdm_bad/hooks.py": "..."}``;
                every top-level directory is a package (``__init__.py`` is added), every top-level
                ``.py`` file a module.
            entry_points: ``rdm`` entry-point name -> module, e.g. ``{"bad": "rdm_bad.hooks"}``.
            version: distribution version.
        """
        pkg = self.root / "packages" / name
        packages = sorted({Path(rel).parts[0] for rel in files if len(Path(rel).parts) > 1})
        modules = sorted(Path(rel).stem for rel in files if len(Path(rel).parts) == 1 and rel.endswith(".py"))
        for rel, text in files.items():
            path = pkg / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        for top in packages:
            (pkg / top / "__init__.py").touch()
        eps = "".join(f"{json.dumps(key)} = {json.dumps(value)}\n" for key, value in entry_points.items())
        (pkg / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f"[project]\nname = {json.dumps(name)}\nversion = {json.dumps(version)}\n\n"
            f"[project.entry-points.rdm]\n{eps}\n"
            f"[tool.setuptools]\npackages = {json.dumps(packages)}\npy-modules = {json.dumps(modules)}\n"
        )
        return pkg

    def python(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``python ARGS...`` in the environment (text output captured)."""
        done = subprocess.run([sys.executable, *args], env=self.env(**env), capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"python {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
        return done

    def rdm(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``rdm ARGS...`` (as ``python -m rdm_core``) in the environment."""
        return self.python("-m", "rdm_core", *args, check=check, **env)
