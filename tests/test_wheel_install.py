"""The built wheel works as a real package: installed into a scratch virtual environment, with the
checkout nowhere on the path, ``aees`` finds its presets and trains from an empty directory.

The wheel is built from a copy of the sources (nothing is written into the checkout), without
build isolation (no network: the setuptools of this environment builds it) and installed with
``--no-deps --no-index``. The scratch environment gets the *dependencies* (torch, scikit-learn,
...) by one path line in a ``.pth`` file naming this environment's site-packages: a path line
only adds that directory to ``sys.path``; the ``.pth`` files inside it, among them the editable
install's pointer to ``src/``, are not processed, so the only ``aees`` the scratch interpreter
can import is the one the wheel installed (checked). About 30 s on a 2-core CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-4000:])
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    shutil.copytree(
        CHECKOUT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "-w", str(dist), str(source)],
        tmp_path, env,
    )  # fmt: skip
    (wheel,) = dist.glob("aees-*.whl")
    return wheel


def _scratch_venv(tmp_path: Path, wheel: Path, env: dict[str, str]) -> Path:
    root = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        tmp_path, env,
    ).strip()  # fmt: skip
    deps = sysconfig.get_paths()["purelib"]  # this environment's: torch, scikit-learn, ...
    assert not Path(deps).resolve().is_relative_to(CHECKOUT / "src")
    Path(purelib, "aees-test-deps.pth").write_text(deps + "\n", encoding="utf-8")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        tmp_path, env,
    )  # fmt: skip
    return root


def test_the_wheel_works_from_an_empty_directory(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "AEES_CONFIGS", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    wheel = _build_wheel(tmp_path, env)
    names = zipfile.ZipFile(wheel).namelist()
    assert "aees/presets/demo.toml" in names and "aees/py.typed" in names
    assert not any(n.startswith(("tests/", "configs/", "bench/")) for n in names)

    root = _scratch_venv(tmp_path, wheel, env)
    aees = str(root / "bin" / "aees")
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([str(root / "bin" / "python"), "-c", "import aees; print(aees.__file__)"],
                 empty, env).strip()  # fmt: skip
    assert Path(where).is_relative_to(root) and not Path(where).is_relative_to(CHECKOUT)

    listing = _run([aees, "plan", "--list"], empty, env)
    assert "no presets" not in listing
    assert any(line.split()[:3] == ["demo", "21", "runs"] for line in listing.splitlines())

    _run([aees, "plan", "demo", "--out", "m.json"], empty, env)
    manifest = json.loads((empty / "m.json").read_text(encoding="utf-8"))
    assert manifest["preset"] == "demo" and len(manifest["runs"]) == 21

    _run([aees, "train", "digits", "--epochs", "1", "--quiet", "--output", "r.json"], empty, env)
    result = json.loads((empty / "r.json").read_text(encoding="utf-8"))
    assert result["task_name"] == "digits" and result["total_epochs"] == 1
    # what the run wrote stays where it was told: the scratch directory holds only these
    assert sorted(p.name for p in empty.iterdir()) == ["m.json", "r.json"]
