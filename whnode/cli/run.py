"""``whnode init``, ``whnode run`` and ``whnode id``: the data directory and its daemon."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from whnode.cli.base import ExitCode, config_flags, config_sources, print_json
from whnode.cli.config import plain_assignments, render_default_toml
from whnode.cli.parsing import Commands
from whnode.config import CONFIG_FILE_NAME, build_config, resolve_data_dir
from whnode.errors import UsageError


def _identity_lines(data_dir: Path, *, create: bool) -> tuple[str, str]:
    """(node id, public key) in hex, of the identity kept in ``data_dir``."""
    from whnode.identity import identity_path, load_identity, load_or_create_identity
    from whnode.record.keys import node_id_for

    if create:
        signing_key = load_or_create_identity(data_dir)
    elif identity_path(data_dir).exists():
        signing_key = load_identity(identity_path(data_dir))
    else:
        raise UsageError(f"no node identity in {data_dir}; run `whnode init` first")
    public_key = signing_key.public_key
    return node_id_for(public_key).hex(), bytes(public_key).hex()


def _cmd_init(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    flags = config_flags(args)
    data_dir = resolve_data_dir(environ=environ, flags=flags)
    target = data_dir / CONFIG_FILE_NAME
    if target.exists() and not args.force:
        raise UsageError(f"{target} already exists; use --force to overwrite it")
    assignments = plain_assignments({k: v for k, v in flags.items() if k != "node.data_dir"})
    text = render_default_toml(assignments)
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = target.with_name(f".{CONFIG_FILE_NAME}.{os.getpid()}.tmp")
        staging.write_text(text, encoding="utf-8")
        try:
            build_config(config_file=staging, environ={}, flags={"node.data_dir": str(data_dir)})
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    node_id, public_key = _identity_lines(data_dir, create=True)
    sys.stdout.write(
        f"initialised {data_dir}\n"
        f"config      {target}\n"
        f"node id     {node_id}\n"
        f"public key  {public_key}\n"
        f"next: whnode run --data-dir {data_dir}\n"
    )
    return ExitCode.OK


def _cmd_id(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    config = config_sources(args, environ).build()
    node_id, public_key = _identity_lines(config.node.data_dir, create=False)
    if args.json:
        print_json({"node_id": node_id, "public_key": public_key})
    else:
        sys.stdout.write(f"node id     {node_id}\npublic key  {public_key}\n")
    return ExitCode.OK


def _cmd_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from whnode import daemon
    from whnode.logs import configure_logging

    sources = config_sources(args, environ)
    config = sources.build()
    configure_logging(config.log)
    from whnode.sdnotify import Notifier

    return daemon.run(config, reload=sources.build, notifier=Notifier(environ.get("NOTIFY_SOCKET")))


def register(commands: Commands) -> None:
    init = commands.add(
        "init",
        "create the data directory, the node identity and a commented whnode.toml",
        ["whnode init --data-dir ~/.whnode --seed seed1.example.org:8468"],
        parents=[commands.config],
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing whnode.toml")
    init.set_defaults(handler=_cmd_init)

    run = commands.add(
        "run",
        "run the node daemon in the foreground (SIGTERM/Ctrl-C drain and stop, SIGHUP reloads"
        " sources)",
        ["whnode run --data-dir ~/.whnode --log-format json"],
        parents=[commands.config_logging],
    )
    run.set_defaults(handler=_cmd_run)

    ident = commands.add(
        "id",
        "print the node id and public key kept in the data directory",
        ["whnode id --data-dir ~/.whnode"],
        parents=[commands.config],
    )
    ident.add_argument("--json", action="store_true", help="print JSON")
    ident.set_defaults(handler=_cmd_id)
