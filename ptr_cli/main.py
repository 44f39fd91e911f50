"""``ptr`` entry point: dispatches to subcommand modules, imported lazily.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and a module
docstring whose first line is the command's help. Errors of the ``BagToolsError``/``PtrError``
families, and any ``OSError`` (a full disk, a read-only folder), print one line and exit 2; a
traceback means a bug.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

COMMANDS: dict[str, str] = {
    'inspect': 'ptr_cli.inspect',
    'ingest': 'ptr_cli.ingest',
    'export': 'ptr_cli.export',
    'report': 'ptr_cli.report',
    'train': 'ptr_cli.train',
    'eval': 'ptr_cli.evaluate',
    'weights': 'ptr_cli.weights',
    'score': 'ptr_cli.score',
    'record-sim': 'ptr_cli.record_sim',
    'benchmark': 'ptr_cli.benchmark',
    'demo': 'ptr_cli.demo',
}


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(COMMANDS[name])
    except ModuleNotFoundError as err:
        if err.name == COMMANDS[name]:
            return None  # not part of this build yet
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ptr',
        description='Rosbags to training data, PTR post-training, and a ROS 2 policy node.',
    )
    parser.add_argument('-v', '--verbose', action='store_true', help='log debug messages')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, add_help=False)
            continue
        module = _load(name)
        if module is None:
            continue
        doc = (module.__doc__ or '').strip().splitlines()
        cmd = sub.add_parser(name, help=doc[0] if doc else '', description=module.__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def os_error_line(err: OSError) -> str:
    """``PATH: reason`` for an ``OSError`` that reached the command (both paths of a rename)."""
    where = ' -> '.join(str(p) for p in (err.filename, err.filename2) if p is not None)
    reason = err.strerror or str(err)
    return f'{where}: {reason}' if where else reason


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')  # before torch loads: ptr_core.threads
    # Build only the chosen subcommand's parser so `ptr inspect` never imports torch.
    chosen = next((a for a in argv if a in COMMANDS), None)
    try:
        parser = build_parser(only=chosen)
    except KeyboardInterrupt:  # Ctrl-C while the subcommand's modules import: one line
        print(f'ptr {chosen or ""}: interrupted'.replace(' :', ':'), file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(levelname)s %(name)s: %(message)s',
    )
    from bag_tools.errors import BagToolsError
    from ptr_core.errors import PtrError

    try:
        code: int = args._module.run(args)
    except (BagToolsError, PtrError) as err:
        print(f'ptr {args.command}: error: {err}', file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder: one line naming the path
        print(f'ptr {args.command}: error: {os_error_line(err)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'ptr {args.command}: interrupted', file=sys.stderr)
        return 130
    return code


if __name__ == '__main__':
    sys.exit(main())
