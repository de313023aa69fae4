"""What every ``trajopt-loader`` command shares: its flags, its ``--help`` text, progress bars.

Flag names are spelled with dashes (``--num-batches``); ``trajopt_loader.cli`` also accepts the
underscore spelling (``--num_batches``) and ``--no-FLAG`` for ``--noFLAG``. ``--config.FIELD=VALUE``
overrides keep the config's field names (``--config.num_envs=256``).

Each command module defines its flags with :func:`define` (or claims another module's with
:func:`uses`) and sets ``USAGE`` (one line), ``ARGUMENTS`` (``(NAME, text)`` pairs of its
positional arguments) and ``EXAMPLE`` (one command line); :func:`command_help` builds the text of
``trajopt-loader COMMAND --help`` from them and from the flags absl records for the module.
"""

from __future__ import annotations

import sys
import textwrap

from absl import flags

FLAGS = flags.FLAGS
#: Config fields of the commands that take ``--config`` (shown once in their help).
CONFIG_OVERRIDE_HELP = (
    "--config.FIELD=VALUE",
    "Override one config field, e.g. --config.num_envs=256 (field names as in the config).",
)
_PLACEHOLDERS = {
    "int": "N",
    "float": "X",
    "list": "A,B,...",
    "multi string": "VALUE",
    "string": "VALUE",
    "config": "CONFIG",
}


def _caller() -> str:
    return sys._getframe(2).f_globals["__name__"]


def define(kind: str, name: str, default, help_text: str, **kwargs) -> None:
    """``flags.DEFINE_<kind>(name, default, help_text)`` once per process, listed by the calling
    module's ``--help``. A second command module imported in the same process (tests) reuses the
    flag of the first (one name, one meaning)."""
    if name not in FLAGS:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, **kwargs)
    FLAGS.register_key_flag_for_module(_caller(), FLAGS[name])


def define_config() -> None:
    """``--config`` (an ml-collections config name or file, with ``--config.FIELD=VALUE``
    overrides) once per process, listed by the calling module's ``--help``."""
    if "config" not in FLAGS:
        from ml_collections import config_flags

        config_flags.DEFINE_config_file(
            "config",
            None,
            "Config file or name: cassie, digit_v3, "
            "default, or a path such as my_config.py[:overrides].",
            lock_config=True,
        )
    FLAGS.register_key_flag_for_module(_caller(), FLAGS["config"])


def uses(*names: str) -> None:
    """Declare flags defined by another command module as flags of the calling module too."""
    module = _caller()
    for name in names:
        FLAGS.register_key_flag_for_module(module, FLAGS[name])


def progress_enabled(requested: bool | None, stream=None) -> bool:
    """Whether to draw progress bars: ``requested`` (``--progress`` / ``--no-progress``) when given,
    else only when ``stream`` (default ``sys.stderr``) is a terminal: a bar redraws its line with
    ``\\r``, which a log file or pipe keeps as garbage."""
    if requested is not None:
        return bool(requested)
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


PROGRESS_HELP = (
    "Show progress bars (default: only when stderr is a terminal; --no-progress turns them off)."
)


def _flag_line(flag) -> tuple[str, str]:
    kind = flag.flag_type()
    short = f"-{flag.short_name}, " if flag.short_name else ""
    text = " ".join(flag.help.split()).replace(
        "; repeat this option to specify a list of values", " (repeatable)"
    )
    if kind == "bool":
        left = f"{short}--[no-]{flag.name}"
        if flag.default is not None:
            text += f" (default: {'on' if flag.default else 'off'})"
    else:
        placeholder = "CONFIG" if flag.name == "config" else _PLACEHOLDERS.get(kind, "VALUE")
        left = f"{short}--{flag.name} {placeholder}"
        if flag.default not in (None, [], "") and flag.name != "config":
            shown = ",".join(flag.default) if isinstance(flag.default, list) else flag.default
            text += f" (default: {shown})"
    return left, text


def command_help(name: str, summary: str, module) -> str:
    """The text of ``trajopt-loader NAME --help``: usage, summary, positional arguments, the
    module's flags (sorted, with defaults) and one example."""
    lines = [f"usage: {module.USAGE}", "", summary]
    arguments = list(getattr(module, "ARGUMENTS", ()))
    if arguments:
        lines += ["", "arguments:"]
        lines += [f"  {arg:<22} {text}" for arg, text in arguments]
    rows = [
        _flag_line(f)
        for f in sorted(FLAGS.get_key_flags_for_module(module.__name__), key=lambda f: f.name)
    ]
    if "config" in FLAGS and FLAGS["config"] in FLAGS.get_key_flags_for_module(module.__name__):
        rows.append(CONFIG_OVERRIDE_HELP)
    rows.append(("-h, --help", "Show this help and exit."))
    lines += ["", "flags:"]
    for left, text in rows:
        body = textwrap.wrap(text, 100 - 25) or [""]
        first = f"  {left:<22} {body[0]}" if len(left) <= 22 else f"  {left}\n{' ' * 25}{body[0]}"
        lines += [first] + [" " * 25 + more for more in body[1:]]
    lines += [
        "",
        "Flags may also be spelled with underscores (--num_batches for --num-batches).",
        "",
        "example:",
        f"  {module.EXAMPLE}",
    ]
    return "\n".join(lines)
