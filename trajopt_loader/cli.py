"""``trajopt-loader`` command line: a thin dispatcher over ``trajopt_loader.commands``.

Usage::

    trajopt-loader export ROOT OUT.zarr --source cassie --convention mujoco
    trajopt-loader inspect OUT.zarr
    trajopt-loader verify OUT.zarr
    trajopt-loader stream --config=trajopt_loader/configs/cassie.py --config.zarr_path=OUT.zarr
    trajopt-loader demo
    trajopt-loader bench

Each sub-command lives in its own module (``trajopt_loader/commands/<name>.py``) defining its absl
flags and a ``main(argv)``; only the chosen one is imported, so flags never collide.
"""

from __future__ import annotations

import importlib
import sys
import threading

COMMANDS = {
    "export": "Export a tree of trajectory .npz files to a Zarr store.",
    "inspect": "Print a store's tree, lengths, dt, conventions, keys and value ranges.",
    "verify": "Read every chunk of a store and check it against its index; exit 1 on a problem.",
    "stream": "Stream windows through the pipeline into a jitted consumer; report throughput.",
    "demo": "Export the bundled Cassie sample and train a tiny MLP on streamed windows.",
    "bench": "Run the throughput benchmarks of benchmarks/.",
    "plot": "Plot trajectories: base path, height, roll/pitch/yaw, joints, flags, ref_* signals.",
    "plot-batch": "Draw a streamed batch per env: trajectory, steps, valid, loop, episode starts.",
    "render": "Render trajectories with MuJoCo's offscreen renderer to MP4 / GIF / PNG.",
}


def _usage() -> str:
    lines = ["usage: trajopt-loader COMMAND [ARGS] [--flags]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    lines += [
        "",
        "trajopt-loader COMMAND --help shows the flags of one command;",
        "trajopt-loader --version prints the version.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``trajopt-loader`` console script."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    if argv[1] in ("-V", "--version"):
        from trajopt_loader import __version__

        print(f"trajopt-loader {__version__}")
        sys.exit(0)
    name = argv[1]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(
            f"trajopt-loader: unknown command {name!r}{hint} (commands: {', '.join(COMMANDS)}; "
            "trajopt-loader --help describes them)",
            file=sys.stderr,
        )
        sys.exit(2)
    _stop_on_interrupt(name)
    try:
        _main(name, argv)
    except KeyboardInterrupt:  # before or after the command's own main (imports, flag parsing)
        _exit_interrupted(name)


def _main(name: str, argv: list[str]) -> None:
    module = importlib.import_module(f"trajopt_loader.commands.{name.replace('-', '_')}")
    from absl import app  # imported late: `trajopt-loader --help` stays fast.

    rest = _spell_flags(argv[2:])
    if any(a in ("-h", "--help") for a in _before_separator(rest)):
        from trajopt_loader.commands.common import command_help

        print(command_help(name, COMMANDS[name], module))
        sys.exit(0)
    rest = [_resolve_config_flag(name, a) for a in rest]
    if not any(a.startswith(("--verbosity", "-v=", "--v=")) for a in rest):
        rest = [
            "--verbosity=-1"
        ] + rest  # WARNING and above; JAX's INFO backend probing is noise here.
    started = []  # set once flags are parsed and the command's main runs
    try:
        app.run(
            _clear_errors(name, module.main, started),
            argv=[f"trajopt-loader {name}"] + rest,
            flags_parser=lambda args: _parse_flags(name, args),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        if started:
            raise
        # A bad --config.x override fails inside absl's flag parsing (ml_collections raises
        # AttributeError/KeyError there): report it like any usage error, in one line.
        print(
            f"trajopt-loader {name}: error in flags: {_public(_flag_error_text(e))}",
            file=sys.stderr,
        )
        sys.exit(2)


def _parse_flags(name: str, args: list[str]) -> list[str]:
    """absl's flag parsing; a bad flag is one line pointing at ``--help`` (exit 2), where absl
    would point at ``--helpfull`` (every flag of every library) and exit 1."""
    from absl import flags

    try:
        return flags.FLAGS(args)
    except flags.Error as e:
        print(
            f"trajopt-loader {name}: error in flags: {_public(e)} "
            f"(trajopt-loader {name} --help lists the flags)",
            file=sys.stderr,
        )
        sys.exit(2)


def _before_separator(args: list[str]) -> list[str]:
    return args[: args.index("--")] if "--" in args else args


def _spell_flags(args: list[str]) -> list[str]:
    """Accept the other spellings of the command's flags (defined with dashes, see
    :mod:`trajopt_loader.commands.common`): ``--num_batches`` → ``--num-batches``,
    ``--no-progress`` / ``--no_progress`` → ``--noprogress``. ``--config.FIELD`` overrides, short
    flags, unknown names (absl reports them) and everything after ``--`` pass unchanged."""
    from absl import flags

    known = flags.FLAGS
    out = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        if not arg.startswith("--") or arg.startswith("--config"):
            out.append(arg)
            continue
        flag, eq, value = arg[2:].partition("=")
        dashed = flag.replace("_", "-")
        if flag not in known and dashed in known:
            flag = dashed
        elif flag not in known and dashed.startswith("no") and dashed not in known:
            negated = dashed.removeprefix("no").removeprefix("-")
            if negated in known and known[negated].flag_type() == "bool":
                flag = f"no{negated}"
        out.append(f"--{flag}{eq}{value}")
    return out


def _resolve_config_flag(command: str, arg: str) -> str:
    """``--config=cassie[:overrides]`` → the packaged ``configs/cassie.py``; no such file → exit 2.

    Config files are loaded by ``ml_collections.config_flags`` from a path; named configs
    (``default``, ``cassie``, ``digit_v3``) also work from any directory and from an installed
    (non-editable) package.
    """
    if not arg.startswith("--config="):
        return arg
    from trajopt_loader.configs import NAMED, config_file, load_config
    from trajopt_loader.errors import ConfigError

    value = arg.removeprefix("--config=")
    path, sep, overrides = value.partition(":")
    path = config_file(path) or ""
    if path:
        if overrides:  # absl would bury a bad "file.py:field=value" in a traceback: check first
            try:
                load_config(f"{path}:{overrides}")
            except ConfigError as e:
                print(
                    f"trajopt-loader {command}: error in flags: --config={value!r}: {_public(e)}",
                    file=sys.stderr,
                )
                sys.exit(2)
        return f"--config={path}{sep}{overrides}"
    print(
        f"trajopt-loader {command}: error in flags: --config={value!r}: no such config file and "
        f"not a named config; expected a path to a config .py file or one of {sorted(NAMED)} "
        "(e.g. --config=cassie).",
        file=sys.stderr,
    )
    sys.exit(2)


def _public(message) -> str:
    """``message`` with the install location of the package shown as ``trajopt_loader``: a message
    names the packaged config (``trajopt_loader/configs/cassie.py``), not a machine's path to it."""
    import os

    package = os.path.dirname(os.path.abspath(__file__))
    return str(message).replace(package, "trajopt_loader")


def _flag_error_text(error: BaseException) -> str:
    """The message of a flag-parsing error, unwrapped from ml_collections' nested KeyError."""
    while isinstance(error, BaseException) and error.args:
        inner = error.args[0]
        if not isinstance(inner, BaseException):
            break
        error = inner
    text = error.args[0] if error.args else str(error)
    return " ".join(str(text).split())


def _clear_errors(name: str, command_main, started: list):
    """Run ``command_main``; a :class:`TrajoptLoaderError` prints one line and exits 1.

    The messages already name the file / key / value and the fix, so a traceback only hides them;
    set ``TRAJOPT_LOADER_TRACEBACK=1`` to get it anyway.
    """
    import os

    from trajopt_loader.errors import TrajoptLoaderError

    def run(argv):
        started.append(True)
        try:
            return command_main(argv)
        except KeyboardInterrupt:
            _exit_interrupted(name)
        except TrajoptLoaderError as e:
            if os.environ.get("TRAJOPT_LOADER_TRACEBACK"):
                raise
            print(f"trajopt-loader {name}: error: {_public(e)}", file=sys.stderr)
            sys.exit(1)
        except Exception as e:  # not raised on purpose: say what and where to see more
            if os.environ.get("TRAJOPT_LOADER_TRACEBACK"):
                raise
            text = _public(" ".join(str(e).split())) or "(no message)"
            print(
                f"trajopt-loader {name}: error: {type(e).__name__}: {text} (set "
                "TRAJOPT_LOADER_TRACEBACK=1 for the traceback)",
                file=sys.stderr,
            )
            sys.exit(1)

    return run


#: Seconds a Ctrl-C (SIGINT) may take to unwind (cleanup included) before the process is ended.
INTERRUPT_GRACE_S = 0.8
#: Commands whose Ctrl-C unwinds (runs ``finally`` blocks) instead of ending the process at once.
UNWIND_ON_INTERRUPT = ("export",)
_interrupted: list = []  # [True] once the "interrupted" line is printed
_interrupt_timer: list = []  # the timer started by the first Ctrl-C
_interrupt_lock = threading.RLock()  # re-entered by a second Ctrl-C during the print


def _exit_interrupted(name: str) -> None:
    """Print ``trajopt-loader NAME: interrupted`` once and end the process with status 130.

    ``os._exit``: worker threads (prefetch, zarr I/O) must not keep the process alive.
    """
    import os

    with _interrupt_lock:
        if not _interrupted:
            _interrupted.append(True)
            try:
                sys.stdout.flush()
            except Exception:  # a closed pipe must not hide the line below
                pass
            print(f"trajopt-loader {name}: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


def _stop_on_interrupt(name: str) -> None:
    """Make Ctrl-C stop ``trajopt-loader NAME`` within :data:`INTERRUPT_GRACE_S` with one line.

    For the commands of :data:`UNWIND_ON_INTERRUPT` (pure Python and file I/O: ``export``) the
    SIGINT handler raises ``KeyboardInterrupt`` in the main thread, so ``finally`` blocks (the
    export's temporary-directory cleanup) run, and starts a timer that ends the process after the
    grace time (a ``KeyboardInterrupt`` raised while a garbage-collector callback runs is swallowed
    by Python, and threads can block interpreter shutdown). The other commands run JAX: a
    ``KeyboardInterrupt`` raised inside its start-up (JAX/XLA calling back into Python) was seen
    to abort the process (SIGABRT / SIGSEGV), and one raised in a gc callback JAX installs is
    swallowed; they have nothing to clean up, so the handler ends them at once. A second Ctrl-C
    ends any command at once.
    """
    import signal

    def handler(signum, frame):
        if _interrupt_timer or name not in UNWIND_ON_INTERRUPT:
            _exit_interrupted(name)
        timer = threading.Timer(INTERRUPT_GRACE_S, _exit_interrupted, args=(name,))
        timer.daemon = True
        _interrupt_timer.append(timer)
        timer.start()
        raise KeyboardInterrupt

    default_hook = sys.unraisablehook

    def unraisable(info):  # the swallowed KeyboardInterrupt: the timer ends the process
        if not (_interrupt_timer and isinstance(info.exc_value, KeyboardInterrupt)):
            default_hook(info)

    if threading.current_thread() is threading.main_thread():  # signals reach the main thread
        sys.unraisablehook = unraisable
        signal.signal(signal.SIGINT, handler)


if __name__ == "__main__":
    main()
