"""``vigilctl models``: list, show, upload, swap, rollback."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vigil_client.client import VigilClient
from vigil_client.models import ClusterSwapInfo, ModelDetail, SwapInfo, TensorInfo
from vigil_client.output import (
    NONE,
    add_json_flag,
    format_seconds,
    format_time,
    print_json,
    print_result,
    print_table,
)

LIST_COLUMNS = ("MODEL", "VERSION", "STATE", "SERVING", "FORMAT", "PARSER", "CLASSES", "ADDED")
SHOW_COLUMNS = ("VERSION", "STATE", "SERVING", "PARSER", "CLASSES", "INPUTS", "SHA256", "ORIGIN")


def register(commands: Any) -> None:
    """Add the ``models`` command to ``vigilctl``'s subcommands."""
    models = commands.add_parser("models", help="list, show, upload, swap, rollback")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = actions.add_parser("list", help="every model and version, and what is serving")
    add_json_flag(ls)
    ls.set_defaults(handler=_list)

    show = actions.add_parser("show", aliases=["get"], help="one model's versions and labels")
    show.add_argument("name", metavar="MODEL")
    add_json_flag(show)
    show.set_defaults(handler=_show)

    upload = actions.add_parser("upload", help="add a new version from a local file")
    upload.add_argument("name", metavar="MODEL")
    upload.add_argument(
        "file", metavar="FILE", help="model.onnx, model.plan, ... or a .zip/.tar.gz of a version"
    )
    upload.add_argument(
        "--sha256", metavar="HEX", help="expected checksum (default: the file's, computed here)"
    )
    upload.add_argument("--version", type=int, metavar="N", help="version number (default: next)")
    add_json_flag(upload)
    upload.set_defaults(handler=_upload)

    swap = actions.add_parser("swap", help="serve another version, without stopping streams")
    swap.add_argument("name", metavar="MODEL")
    swap.add_argument("version", type=_version, metavar="VERSION", help="a number or 'latest'")
    swap.add_argument(
        "--allow-replan",
        action="store_true",
        help="allow other inputs, outputs, classes or parser (re-planned at the switch)",
    )
    add_json_flag(swap)
    swap.set_defaults(handler=_swap)

    rollback = actions.add_parser("rollback", help="serve the version that served before")
    rollback.add_argument("name", metavar="MODEL")
    add_json_flag(rollback)
    rollback.set_defaults(handler=_rollback)


def _version(text: str) -> int | str:
    if text == "latest":
        return text
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a version number or 'latest', got {text!r}"
        ) from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"version numbers start at 1, got {number}")
    return number


def _list(client: VigilClient, args: argparse.Namespace) -> int:
    listing = client.list_models()
    if args.json:
        print_json(listing.to_dict(), sys.stdout)
        return 0
    serving = f"serving: {listing.serving.model} version {listing.serving.version}"
    if listing.previous:
        last = listing.previous[-1]
        serving += f" (rollback to: {last.model} version {last.version})"
    if listing.swap_in_progress:
        serving += "; a swap is in progress"
    print(serving)
    rows = [
        (
            model.name,
            str(v.version),
            v.state,
            "*" if v.serving else "",
            v.format,
            v.parser,
            str(v.classes),
            format_time(v.added_at),
        )
        for model in listing.models
        for v in model.versions
    ]
    if rows:
        print_table(LIST_COLUMNS, rows, sys.stdout, numeric={"VERSION", "CLASSES"})
    else:
        print("no models")
    return 0


def _show(client: VigilClient, args: argparse.Namespace) -> int:
    model = client.get_model(args.name)
    if args.json:
        print_json(model.to_dict(), sys.stdout)
        return 0
    print(_model_summary(model))
    rows = [
        (
            str(v.version),
            v.state,
            "*" if v.serving else "",
            v.parser,
            str(v.classes),
            ", ".join(_tensor(t) for t in v.signature.inputs),
            v.sha256[:12],
            v.origin,
        )
        for v in model.versions
    ]
    if rows:
        print_table(SHOW_COLUMNS, rows, sys.stdout, numeric={"VERSION", "CLASSES"})
    serving = model.serving_version or (model.versions[-1] if model.versions else None)
    if serving is not None and serving.labels:
        print(f"labels (version {serving.version}): {', '.join(serving.labels)}")
    return 0


def _upload(client: VigilClient, args: argparse.Namespace) -> int:
    version = client.upload_model_version(
        args.name, args.file, sha256=args.sha256, version=args.version
    )
    print_result(
        version,
        f"added {args.name} version {version.version} ({version.format}, parser "
        f"{version.parser}, {version.classes} classes, sha256 {version.sha256[:12]})",
        as_json=args.json,
    )
    return 0


def _swap(client: VigilClient, args: argparse.Namespace) -> int:
    return _report_swap(
        client.swap_model(args.name, args.version, allow_replan=args.allow_replan), args
    )


def _rollback(client: VigilClient, args: argparse.Namespace) -> int:
    return _report_swap(client.rollback_model(args.name), args)


def _report_swap(swap: SwapInfo | ClusterSwapInfo, args: argparse.Namespace) -> int:
    if args.json:
        print_json(swap.to_dict(), sys.stdout)
    elif isinstance(swap, ClusterSwapInfo):
        print(f"{swap.model}: version {swap.version} on every worker: {swap.state}")
        rows = [[w.worker, w.state, w.serving or NONE, w.error or NONE] for w in swap.workers]
        print_table(["WORKER", "STATE", "SERVING", "ERROR"], rows, sys.stdout)
    else:
        line = (
            f"{swap.model}: version {swap.from_version} → {swap.version}: {swap.state} "
            f"in {format_seconds(swap.duration_s)}"
        )
        if swap.error:
            line += f" ({swap.error})"
        print(line)
    return 0 if swap.state == "ok" else 1


def _model_summary(model: ModelDetail) -> str:
    text = f"{model.name}: {model.format}, max batch {model.max_batch_size}"
    if not model.loadable_here:
        text += " (this server's Triton cannot load this format)"
    return text


def _tensor(tensor: TensorInfo) -> str:
    dims = ",".join(str(d) for d in tensor.shape) or NONE
    return f"{tensor.name} {tensor.dtype}[{dims}]"
