"""The `trajopt-loader` command line as a person meets it: per-command help, --version, command
suggestions, flag spellings, progress bars only on a terminal, no machine paths in messages."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import trajopt_loader
from trajopt_loader import cli

PACKAGE_DIR = str(Path(trajopt_loader.__file__).resolve().parent)

# The flags each command reads (from its module), and its positional arguments.
COMMAND_FLAGS = {
    "export": (
        {
            "source",
            "motion",
            "convention",
            "quat-order",
            "lin-vel-frame",
            "ang-vel-frame",
            "dt",
            "key",
            "max-trajs-per-motion",
            "overwrite",
            "allow-missing",
            "model",
            "derive-qvel",
            "resample-dt",
            "ee-sites",
            "bodies",
            "progress",
            "lock-timeout",
            "single-writer",
            "chunk-key-separator",
        },
        ["ROOT", "OUT"],
    ),
    "inspect": ({"model", "max-trajs"}, ["STORE"]),
    "verify": ({"remote-timeout-s", "remote-retries"}, ["STORE"]),
    "stream": ({"config", "num-batches", "warmup", "progress", "compare"}, []),
    "demo": (
        {"steps", "num-envs", "window-size", "hidden", "learning-rate", "log-every", "seed"},
        [],
    ),
    "bench": ({"only", "list", "benchmarks-dir"}, []),
    "plot": ({"traj", "refs", "output", "model", "robot", "dpi"}, ["STORE"]),
    "plot-batch": ({"config", "batch", "max-envs", "output", "dpi"}, []),
    "render": (
        {
            "ghost",
            "width",
            "height",
            "fps",
            "max-frames",
            "frame",
            "distance",
            "traj",
            "output",
            "model",
        },
        ["STORE"],
    ),
}


def run_cli(*args, cwd=REPO, text=True):
    """``trajopt-loader ARGS`` in a subprocess, stdout / stderr captured (pipes, not a terminal);
    ``text=False``: bytes, with ``\r`` kept."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    env.pop("TRAJOPT_LOADER_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "trajopt_loader.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=text,
        timeout=120,
    )


def call_main(monkeypatch, capsys, *args):
    """``cli.main`` in this process (no SIGINT handler installed); returns (code, out, err)."""
    monkeypatch.setattr(cli, "_stop_on_interrupt", lambda name: None)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["trajopt-loader", *args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def listed_flags(help_text: str) -> set[str]:
    """Flag names of the ``flags:`` section: ``--name X``, ``--[no-]name``, ``-o, --name X``."""
    section = help_text.split("\nflags:\n", 1)[1].split("\n\n", 1)[0]
    names = set()
    for line in section.splitlines():
        words = line.split()
        if not line.startswith("  -") or not words:
            continue
        word = words[1] if words[0].endswith(",") else words[0]
        names.add(word.removeprefix("--[no-]").removeprefix("--").split("=")[0])
    return names


@pytest.mark.parametrize("command", sorted(COMMAND_FLAGS))
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_command_help_lists_its_flags_arguments_and_an_example(
    monkeypatch, capsys, command, option
):
    code, out, err = call_main(monkeypatch, capsys, command, option)
    assert code == 0 and err == ""
    flags, arguments = COMMAND_FLAGS[command]
    expected = flags | {"help"} | ({"config.FIELD"} if "config" in flags else set())
    assert listed_flags(out) == expected
    assert out.startswith(f"usage: trajopt-loader {command}")
    assert cli.COMMANDS[command] in out
    for name in arguments:
        assert f"\n  {name} " in out.split("\nflags:\n")[0]
    example = out.split("\nexample:\n", 1)[1].strip()
    assert example.startswith(f"trajopt-loader {command}")
    assert "Try --helpfull" not in out


def test_help_shows_defaults_and_bool_negation(monkeypatch, capsys):
    _, out, _ = call_main(monkeypatch, capsys, "demo", "--help")
    assert "--num-envs N" in out and "Envs per batch (E). (default: 32)" in out
    _, out, _ = call_main(monkeypatch, capsys, "export", "-h")
    assert "--[no-]overwrite" in out and "-h, --help" in out
    _, out, _ = call_main(monkeypatch, capsys, "plot", "-h")
    assert "-o, --output VALUE" in out


def test_help_of_a_real_process_exits_0_without_absl_hint():
    proc = run_cli("verify", "-h")
    assert proc.returncode == 0, proc.stderr
    assert listed_flags(proc.stdout) == {"remote-timeout-s", "remote-retries", "help"}
    assert "--helpfull" not in proc.stdout + proc.stderr


def test_version_prints_the_package_version(monkeypatch, capsys):
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'\nversion = "{trajopt_loader.__version__}"\n' in pyproject
    for option in ("--version", "-V"):
        code, out, _ = call_main(monkeypatch, capsys, option)
        assert (code, out) == (0, f"trajopt-loader {trajopt_loader.__version__}\n")


def test_mistyped_command_gets_a_suggestion_and_exit_2():
    proc = run_cli("exprot", "x", "y")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(
        "trajopt-loader: unknown command 'exprot'; did you mean 'export'?"
    )


def test_unrelated_command_gets_no_suggestion(monkeypatch, capsys):
    code, _, err = call_main(monkeypatch, capsys, "zzzz")
    assert code == 2 and "did you mean" not in err and "unknown command 'zzzz'" in err


def test_other_spellings_map_to_the_dashed_flags():
    from trajopt_loader.commands import stream  # noqa: F401  (defines the flags below)

    args = [
        "--num_batches=3",
        "--no-progress",
        "--no_compare",
        "--warmup",
        "2",
        "--config.num_envs=8",
        "--unknown_flag",
        "-o",
        "x",
        "--",
        "--num_batches",
    ]
    assert cli._spell_flags(args) == [
        "--num-batches=3",
        "--noprogress",
        "--nocompare",
        "--warmup",
        "2",
        "--config.num_envs=8",
        "--unknown_flag",
        "-o",
        "x",
        "--",
        "--num_batches",
    ]


def test_underscore_spelling_works_on_the_command_line(tmp_path):
    folder = tmp_path / "benches"
    folder.mkdir()
    for name in ("bench_alpha.py", "bench_beta.py", "not_a_bench.py"):
        (folder / name).write_text("print('ran')\n")
    for spelling in ("--benchmarks_dir", "--benchmarks-dir"):
        proc = run_cli("bench", "--list", f"{spelling}={folder}", "--only", "beta")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["bench_beta"]
    proc = run_cli("bench", "--no-list", "--benchmarks_dir", str(folder), "--only", "alpha")
    assert proc.returncode == 0, proc.stderr
    assert "ran" in proc.stdout.split() and "== bench_alpha: exit 0" in proc.stdout


def test_progress_follows_the_terminal_unless_asked():
    from trajopt_loader.commands.common import progress_enabled

    master, replica = os.openpty()
    with open(replica, "w") as terminal, open(os.devnull, "w") as log:
        assert progress_enabled(None, terminal) is True
        assert progress_enabled(None, log) is False
        assert progress_enabled(False, terminal) is False
        assert progress_enabled(True, log) is True
    os.close(master)


def test_export_log_has_no_carriage_returns_unless_asked(make_npz_tree, tmp_path):
    root = make_npz_tree(tmp_path / "npz", {"walk": [12, 14, 9]})
    proc = run_cli(
        "export",
        str(root),
        str(tmp_path / "a.zarr"),
        "--source",
        "s",
        "--convention",
        "mujoco",
        text=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"\r" not in proc.stderr and b"3/3" not in proc.stderr
    assert b"3 trajectories" in proc.stdout
    proc = run_cli(
        "export",
        str(root),
        str(tmp_path / "b.zarr"),
        "--source",
        "s",
        "--convention",
        "mujoco",
        "--progress",
        text=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"\r" in proc.stderr and b"3/3" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--config=cassie:num_envz=8"],
        ["--config=cassie:num_envs=abc"],
        ["--config=cassie", "--config.num_envz=8"],
    ],
)
def test_packaged_config_errors_name_no_machine_path(tmp_path, args):
    proc = run_cli("stream", *args, "--config.zarr_path=x.zarr", cwd=tmp_path)
    assert proc.returncode == 2
    assert "num_env" in proc.stderr and "Traceback" not in proc.stderr
    assert PACKAGE_DIR not in proc.stderr and str(REPO) not in proc.stderr


def test_messages_show_the_package_by_name():
    message = f"config file {PACKAGE_DIR}/configs/cassie.py: bad"
    assert cli._public(message) == "config file trajopt_loader/configs/cassie.py: bad"
    assert cli._public("no store at '/data/s.zarr'") == "no store at '/data/s.zarr'"


def test_missing_default_benchmarks_folder_names_no_machine_path(monkeypatch, tmp_path):
    from trajopt_loader.commands import bench

    monkeypatch.setattr(bench, "DEFAULT_DIR", tmp_path / "site-packages" / "benchmarks")
    with pytest.raises(FileNotFoundError) as error:
        bench.find_benchmarks()
    assert str(tmp_path) not in str(error.value)
    assert "--benchmarks-dir" in str(error.value)


def test_unknown_flag_is_one_line_pointing_at_the_command_help():
    proc = run_cli("bench", "--lsit")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("trajopt-loader bench: error in flags: Unknown command line flag")
    assert "'lsit'. Did you mean: list ?" in proc.stderr
    assert proc.stderr.endswith("(trajopt-loader bench --help lists the flags)\n")
