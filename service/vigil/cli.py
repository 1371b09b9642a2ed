"""The ``vigil`` command.

``vigil run --source [ID=]PATH ... [--workers N]`` processes video files to their end through
Triton (in this process, or dealt over N worker processes that share one Triton), with
a live progress bar per stream, then prints a summary table per stream.

Exit codes: 0 all streams finished; 1 some stream ended in error; 2 the job could not run
(unknown model, Triton failed to start or died, bad arguments); 128 + N on signal N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vigil import __version__
from vigil.config import Settings
from vigil.infer.errors import InferError
from vigil.job_workers import JobWorkerError, WorkerJob
from vigil.jobs import JobResult, file_spec, run_streams
from vigil.pipeline.stream_state import StreamState, StreamStatus
from vigil.plugins.discovery import PluginError, check_refs
from vigil.runtime import Runtime
from vigil.triton.errors import RepositoryError, TritonServerError

EXIT_OK, EXIT_STREAM_FAILED, EXIT_JOB_FAILED = 0, 1, 2

log = logging.getLogger("vigil")


def parse_source(text: str, index: int) -> tuple[str, str]:
    """Split ``[ID=]PATH`` into ``(id, path)``; the id defaults to ``stream-<index>``."""
    sid, sep, path = text.partition("=")
    if sep and sid and "/" not in sid:
        return sid, path
    return f"stream-{index}", text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vigil`` command."""
    parser = argparse.ArgumentParser(prog="vigil", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"vigil {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="process video files to their end")
    run.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="[ID=]PATH",
        help="video file; repeat for several streams (ID names the sensor)",
    )
    run.add_argument("--model", help="model name in the repository (default from settings)")
    run.add_argument("--out", type=Path, help="events JSONL file (default: events.jsonl)")
    run.add_argument("--triton-url", help="use an external Triton (gRPC host:port)")
    run.add_argument("--model-repository", type=Path, help="model repository directory")
    run.add_argument("--batch-size", type=int, help="max frames per inference request")
    run.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="deal the streams over N worker processes sharing one Triton (default 1: "
        "this process); one interpreter's per-frame work bounds a job on a fast GPU",
    )
    run.add_argument("--no-progress", action="store_true", help="no live progress bars")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    srv = sub.add_parser("serve", help="run as a service with a REST API")
    srv.add_argument("--config", type=Path, help="YAML settings file (env VIGIL_* overrides it)")
    srv.add_argument("--host", help="API listen address (default 127.0.0.1)")
    srv.add_argument("--port", type=int, help="API port (default 8080)")
    srv.add_argument("--triton-url", help="use an external Triton (gRPC host:port)")
    srv.add_argument("--model-repository", type=Path, help="model repository directory")
    srv.add_argument("--model", help="model name in the repository")
    srv.add_argument("--out", type=Path, help="events JSONL file")
    srv.add_argument(
        "--ota-override",
        type=Path,
        metavar="FILE",
        help="watch FILE naming a model version or file; a change hot-swaps the model",
    )
    srv.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    for sub_parser in (run, srv):
        sub_parser.add_argument(
            "--no-recover",
            action="store_true",
            help="when Triton dies, stop and exit with code 2 instead of recovering in-process",
        )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the config file and environment, with command-line flags on top."""
    settings = Settings.load(getattr(args, "config", None))
    triton = settings.triton.model_copy(
        update={
            k: v
            for k, v in {"url": args.triton_url, "model_repository": args.model_repository}.items()
            if v is not None
        }
    )
    if args.no_recover:
        recovery = triton.recovery.model_copy(update={"enabled": False})
        triton = triton.model_copy(update={"recovery": recovery})
    model_update: dict[str, object] = {"name": args.model} if args.model else {}
    if getattr(args, "ota_override", None):
        model_update["ota_override_file"] = args.ota_override
    model = settings.model.model_copy(update=model_update)
    events = settings.events.model_copy(update={"jsonl_path": args.out} if args.out else {})
    pipeline = settings.pipeline
    if getattr(args, "batch_size", None):
        pipeline = pipeline.model_copy(update={"max_batch_size": args.batch_size})
    api = settings.api.model_copy(
        update={
            k: v
            for k, v in {
                "host": getattr(args, "host", None),
                "port": getattr(args, "port", None),
            }.items()
            if v is not None
        }
    )
    return settings.model_copy(
        update={
            "triton": triton,
            "model": model,
            "events": events,
            "pipeline": pipeline,
            "api": api,
        }
    )


class _ProgressView:
    """Live progress bars fed from the pipeline's stream counters."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:6.1f} fps"),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
        )
        self.statuses: Callable[[], list[StreamStatus]] = list
        self._tasks: dict[str, int] = {}

    def attach(self, runtime: Runtime) -> None:
        self.statuses = runtime.streams.statuses

    def refresh(self, statuses: list[StreamStatus] | None = None) -> None:
        if statuses is None:
            statuses = self.statuses()
        for status in statuses:
            sid = status.stream_id
            if sid not in self._tasks:
                self._tasks[sid] = self.progress.add_task(sid, total=None, fps=0.0, state="")
            self.progress.update(
                self._tasks[sid],
                completed=status.stats.frames_processed,
                total=status.expected_frames,
                fps=status.stats.fps,
                state=status.state.value,
            )

    async def run(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(0.25)


def summary_table(result: JobResult) -> Table:
    """A per-stream summary: frames, fps, detections per class, latency, drops, state."""
    table = Table(title=f"vigil run — model {result.model}, {result.elapsed_s:.1f} s")
    for column in ("stream", "state", "frames", "fps", "detections", "p50 ms", "p99 ms", "dropped"):
        text_column = column in ("stream", "state", "detections")
        justify = "left" if text_column else "right"
        table.add_column(column, justify=justify, no_wrap=not text_column)
    for sid, status in result.streams.items():
        stats = status.stats
        top = ", ".join(f"{name} {n}" for name, n in stats.detections.most_common(3)) or "-"
        p50 = stats.latency_percentile_ms(50)
        p99 = stats.latency_percentile_ms(99)
        state = status.state.value
        if status.state is StreamState.ERROR:
            state = f"[red]error[/red]: {status.reason}"
        table.add_row(
            sid,
            state,
            str(stats.frames_processed),
            f"{stats.fps:.1f}",
            top,
            "-" if p50 is None else f"{p50:.0f}",
            "-" if p99 is None else f"{p99:.0f}",
            str(stats.frames_dropped),
        )
    return table


async def _run(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    try:
        specs = [file_spec(*parse_source(text, i)) for i, text in enumerate(args.source, start=1)]
    except ValidationError as e:
        console.print(f"[red]error:[/red] invalid --source: {e}", markup=True, highlight=False)
        return EXIT_JOB_FAILED
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        console.print(f"[red]error:[/red] duplicate stream ids in --source: {ids}")
        return EXIT_JOB_FAILED
    view = _ProgressView(console, enabled=not args.no_progress)
    refresher = None
    try:
        with view.progress:
            refresher = asyncio.create_task(view.run())
            if args.workers > 1:
                job = WorkerJob(settings, specs, args.workers)
                view.statuses = lambda: list(job.statuses.values())
                result = await job.run()
            else:
                result = await run_streams(settings, specs, on_start=view.attach)
            view.refresh(list(result.streams.values()))
    except (InferError, TritonServerError, RepositoryError, PluginError, JobWorkerError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        return EXIT_JOB_FAILED
    finally:
        if refresher:
            refresher.cancel()
    console.print(summary_table(result))
    if settings.events.jsonl_path:
        console.print(f"{result.events_written} events written to {settings.events.jsonl_path}")
    for status in result.failed:
        console.print(f"[red]stream {status.stream_id} failed:[/red] {status.reason}", markup=True)
    return EXIT_STREAM_FAILED if result.failed else EXIT_OK


def _serve(settings: Settings, console: Console) -> int:
    from vigil.service import serve

    try:
        return asyncio.run(serve(settings))
    except (InferError, TritonServerError, RepositoryError, PluginError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        return EXIT_JOB_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vigil`` command."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        # Plugins are checked before anything starts: a typo costs no Triton start-up.
        check_refs("stage", "stages", settings.stages)
        check_refs("sink", "sinks", settings.sinks)
    except (ValidationError, ValueError) as e:
        print(f"error: invalid settings: {e}", file=sys.stderr)
        return EXIT_JOB_FAILED
    logging.basicConfig(
        level="DEBUG" if args.verbose else settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    console = Console(stderr=False)
    if args.command == "serve":
        return _serve(settings, console)

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        received: list[int] = []
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):

            def on_signal(sig: int = sig) -> None:
                received.append(sig)
                task.cancel()

            loop.add_signal_handler(sig, on_signal)
        try:
            return await _run(args, settings, console)
        except asyncio.CancelledError:
            if received:
                console.print(f"stopped by {signal.Signals(received[0]).name}")
                return 128 + received[0]
            raise

    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(guarded())
    return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
