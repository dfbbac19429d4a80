"""The ``deba`` command line.

Sub-commands register themselves in :data:`COMMANDS` (``deba.app.command_table``, which the
command modules import, so they never import this module back); each gets an ``argparse``
sub-parser and a function returning an exit code. User errors print one line on stderr
(``deba <command>: error: ...``) and exit 2, never a traceback: a value argparse cannot parse, and
a :class:`DebaConfigError` (a value out of range, an unknown name), which each command raises while
checking its options, before it loads data or creates a folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn, Sequence

import yaml

from deba.app.command_table import COMMANDS, command
from deba.errors import DebaConfigError, DebaError

__all__ = ["main", "COMMANDS"]


def _dump(data: object, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# deba profile -----------------------------------------------------------------------------------


def _profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="a timm/torchvision model name, a profile name, or a profile file")
    p.add_argument("--schema", action="store_true", help="print the JSON schema of ArchitectureProfile")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml")
    p.add_argument("--list", action="store_true", help="list the available profiles")


def _profile(args: argparse.Namespace) -> int:
    from deba.profiles.detection import build_model, detect
    from deba.profiles.schema import ArchitectureProfile
    from deba.profiles.loading import builtin_profiles, load_profile

    if args.schema:
        print(json.dumps(ArchitectureProfile.model_json_schema(), indent=2))
        return 0
    if args.list or not args.model:
        for name, prof in builtin_profiles().items():
            print(f"{name:18s} {prof.family:13s} {prof.description}")
        return 0
    spec = args.model
    try:
        model = build_model(spec)
    except DebaConfigError as model_error:
        # Not a model: maybe a profile name or file.
        try:
            profile = load_profile(spec)
        except DebaConfigError:
            raise model_error from None
        print(_dump({"profile": profile.to_dict()}, args.format), end="")
        return 0
    found = detect(model)
    out = {
        "model": spec,
        "detection": {k: v for k, v in found.to_dict().items() if k != "traits"},
        "traits": found.traits.model_dump(mode="json"),
        "profile": found.profile.to_dict(),
    }
    print(_dump(out, args.format), end="")
    return 0


command("profile", "detect a model's architecture and print its traits and profile", _profile_args)(_profile)


# deba plugins -----------------------------------------------------------------------------------


def _plugins_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table")


def _expected_types() -> dict[str, type]:
    """What each extension kind must be (the registry itself is generic)."""
    import deba

    return {"strategies": deba.ScoringStrategy, "collectors": deba.MetricCollector, "policies": deba.BatchPolicy,
            "adapters": deba.FrameworkAdapter, "profiles": deba.ArchitectureProfile}


def _status_text(kind: str, name: str, status: str) -> str:
    """``ok``, the load error, or for an adapter whose framework is missing, how to install it."""
    if kind != "adapters" or status != "ok":
        return status
    from deba.registry import registry

    adapter = registry.load("adapters", name)
    return "ok" if adapter.available() else f"ok ({adapter.describe()})"


def _plugins(args: argparse.Namespace) -> int:
    from deba.registry import KINDS, registry

    rows = []
    expected = _expected_types()
    for kind, group in KINDS.items():
        for info, status in registry.status(kind, expected[kind]):
            status = _status_text(kind, info.name, status)
            rows.append(
                {
                    "group": group,
                    "name": info.name,
                    "target": info.target,
                    "distribution": info.distribution or info.source,
                    "version": info.version or "",
                    "status": status,
                }
            )
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    widths = {k: max([len(k)] + [len(str(r[k])) for r in rows]) for k in ("group", "name", "distribution", "version")}
    header = "  ".join(k.upper().ljust(widths[k]) for k in widths) + "  STATUS"
    print(header)
    for r in rows:
        print("  ".join(str(r[k]).ljust(widths[k]) for k in widths) + "  " + r["status"])
    return 0 if all(r["status"].startswith("ok") for r in rows) else 1


command("plugins", "list strategies, collectors, policies, adapters and profiles with their load status",
        _plugins_args)(_plugins)


# Entry point ------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other ``deba`` error.

    argparse prints the whole usage block before its message; for a command with many options that
    buries the one line that says what was wrong. Sub-parsers are built with this class too.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` and a pointer to ``--help``; exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``deba`` argument parser."""
    _load_builtin_commands()
    parser = _Parser(prog="deba", description="Dynamic Efficient Batch Adaptation for PyTorch")
    from deba import __version__

    parser.add_argument("--version", action="version", version=f"deba {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _load_builtin_commands() -> None:
    """Import the modules that register the training sub-commands (run, calibrate, bench).

    They are part of the distribution: a failure to import them is a broken install and is raised,
    never hidden (a missing sub-command would otherwise read as "invalid choice").
    """
    import deba.app.commands  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Returns:
        0 on success, 1 for other DEBA errors, 2 for a bad option value (argparse's or a
        :class:`DebaConfigError`), 130 when interrupted; ``--help`` and ``--version`` return 0.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits for --help, --version and unparsable values
        return exc.code if isinstance(exc.code, int) else 2
    if not args.command:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command][2](args)
    except DebaConfigError as exc:
        print(f"deba {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except DebaError as exc:
        print(f"deba {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deba {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    # Run through the imported module so sub-commands register into the same COMMANDS table.
    from deba.app.cli import main as _main

    sys.exit(_main())
