"""The `skinlib` command line: one sub-command per job, each a thin wrapper over the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data.errors import DataError


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", help="HAM10000 folder (default: $SKINLIB_DATA)")


def cmd_check_data(args) -> int:
    from .data.check import check_data

    report = check_data(args.data, progress=not args.quiet)
    print(report.render())
    return 0 if report.ok else 1


def cmd_split(args) -> int:
    from .data import DEFAULT_SPLIT_PATH, load_metadata, make_split, read_split, split_summary, write_split

    frame = load_metadata(args.data)
    split = make_split(frame, fractions=tuple(args.fractions), seed=args.seed)
    if args.verify:
        shipped = read_split(args.out or DEFAULT_SPLIT_PATH)
        same = shipped[["image_id", "split"]].sort_values("image_id").reset_index(drop=True).equals(
            split[["image_id", "split"]].sort_values("image_id").reset_index(drop=True))
        print(f"{'OK' if same else 'DIFFERENT'}: split made with seed {args.seed} "
              f"{'matches' if same else 'does not match'} {args.out or DEFAULT_SPLIT_PATH}")
        return 0 if same else 1
    print(split_summary(split).to_string())
    if args.out:
        write_split(split, args.out, seed=args.seed, fractions=tuple(args.fractions))
        print(f"wrote {args.out} (and {Path(args.out).with_suffix('.json').name})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .data import DEFAULT_FRACTIONS, DEFAULT_SEED

    parser = argparse.ArgumentParser(prog="skinlib", description=__doc__)
    parser.add_argument("--version", action="version", version=f"skinlib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = sub.add_parser("check-data", help="verify a HAM10000 folder and print a summary")
    _add_data_argument(check)
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_check_data)

    split = sub.add_parser("split", help="make (or verify) the lesion-disjoint train/val/test split")
    _add_data_argument(split)
    split.add_argument("--seed", type=int, default=DEFAULT_SEED)
    split.add_argument("--fractions", type=float, nargs=3, default=list(DEFAULT_FRACTIONS), metavar=("TRAIN", "VAL", "TEST"))
    split.add_argument("--out", metavar="CSV", help="write the split here (a .json with the seed goes beside it)")
    split.add_argument("--verify", action="store_true", help="check that the split file equals a fresh split")
    split.set_defaults(func=cmd_split)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DataError as error:
        print(f"skinlib {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
