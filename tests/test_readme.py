"""Every ```python and ```bash block of README.md runs, as written, in README order.

The blocks run in one temporary working directory that looks like the repository root (every
top-level entry of the repository linked in, ``docs/`` copied so the pictures README's commands
write never change the checkout, ``../shared`` linked to the real data beside the
checkout), so relative paths such as ``../shared/data/cassie/trajopt``,
``trajopt_loader/configs/cassie.py`` and ``cassie.zarr`` (written by an earlier block) resolve as
they do for a reader at the root of a checkout. Each block is a fresh process: ``bash -e -o
pipefail`` for shell blocks, ``python -`` for Python blocks, with this checkout first on
``PYTHONPATH`` and ``JAX_PLATFORMS=cpu``. Nothing in a block is substituted.

A block may be preceded by one marker line (an HTML comment, invisible on the rendered page):

* ``<!-- readme-test: skip (WHY) -->``: not run; WHY is required (e.g. it needs two hosts) and
  is shown as the skip reason.
* ``<!-- readme-test: slow -->``: run with pytest's ``slow`` marker (``-m 'not slow'`` leaves it
  out).

Besides the exit status, a block fails when it prints a traceback or cyclic-continuation's
float32 precision warning (the README's commands must run without it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*readme-test:\s*(\w+)\s*(?:\((.*)\))?\s*-->\s*$")
LANGS = ("python", "bash")
FORBIDDEN = ("Traceback (most recent call last)", "continued base positions are offset")


def readme_blocks(text: str) -> list[dict]:
    """``[{"lang", "code", "line", "marker", "reason"}]`` of the python / bash fenced blocks, in
    order; ``line`` is the 1-based line of the opening fence; ``marker`` the marker word of the
    line before it (or None)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = lines[i - 1] if i > 0 else ""
        marker = MARKER.match(prev)
        if m.group(1) in LANGS:
            out.append(
                {
                    "lang": m.group(1),
                    "code": "\n".join(lines[i + 1 : j]) + "\n",
                    "line": i + 1,
                    "marker": marker and marker.group(1),
                    "reason": (marker and marker.group(2) or "").strip(),
                }
            )
        i = j + 1
    return out


BLOCKS = readme_blocks(README.read_text())


def _param(block: dict):
    marks = []
    if block["marker"] == "slow":
        marks.append(pytest.mark.slow)
    elif block["marker"] == "skip":
        marks.append(pytest.mark.skip(reason=f"README.md:{block['line']}: {block['reason']}"))
    return pytest.param(block, id=f"README.md:{block['line']}-{block['lang']}", marks=marks)


def test_readme_blocks_are_found_and_every_marker_is_known_and_justified():
    text = README.read_text()
    assert len(BLOCKS) >= 8 and {b["lang"] for b in BLOCKS} == set(LANGS)
    n_fences = sum(1 for ln in text.splitlines() if re.match(r"^```(python|bash)\s*$", ln))
    assert len(BLOCKS) == n_fences  # no block of these languages is missed
    for b in BLOCKS:
        assert b["marker"] in (None, "skip", "slow"), f"README.md:{b['line']}: {b['marker']!r}"
        if b["marker"] == "skip":
            assert len(b["reason"]) >= 10, f"README.md:{b['line']}: a skip needs its reason"
    markers = [ln for ln in text.splitlines() if "readme-test" in ln]
    assert len(markers) == sum(b["marker"] is not None for b in BLOCKS), (
        "a readme-test marker must sit on the line right before a python / bash block"
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A directory that looks like the repository root, with ``../shared`` beside it."""
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    for entry in REPO.iterdir():
        if entry.name == "docs":  # README commands write its pictures: never into the checkout
            shutil.copytree(entry, work / entry.name)
        elif entry.name != ".git" and not entry.name.startswith(".venv"):
            (work / entry.name).symlink_to(entry)
    (root / "shared").symlink_to(REPO.parent / "shared")
    return work


@pytest.mark.slow
@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_readme_block_runs(block, workdir):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    )
    cmd = (
        ["bash", "-e", "-o", "pipefail", "-c", block["code"]]
        if block["lang"] == "bash"
        else [sys.executable, "-"]
    )
    proc = subprocess.run(
        cmd,
        input=None if block["lang"] == "bash" else block["code"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    where = f"README.md:{block['line']} ({block['lang']}):\n{block['code']}\n--- output ---\n"
    assert proc.returncode == 0, where + output[-4000:]
    for text in FORBIDDEN:
        assert text not in output, where + output[-4000:]
