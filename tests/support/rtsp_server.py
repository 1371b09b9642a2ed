"""A real RTSP camera for tests: GStreamer's RTSP server on 127.0.0.1.

Run by Debian's ``/usr/bin/python3`` (python3-gi, gir1.2-gst-rtsp-server-1.0; see
``make/rtsp.mk``), never by the project venv, which has no GObject bindings::

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --mount /cam --source testsrc
    /usr/bin/python3 tests/support/rtsp_server.py --port 0 --source clip.mp4 --codec h265

``--source testsrc`` serves a live ``videotestsrc`` (a moving ball); ``--source FILE`` plays
the file in a loop forever, decoded and re-encoded. Either way the picture is produced by a
pipeline of its own that runs whether or not a client is connected, like a real camera, and
every client sees the same live stream (one shared RTSP media). Encoders emit a key frame
every 10 frames and repeat SPS/PPS, so a reader syncs within a second.

Once the server listens it prints ``READY <port>`` on stdout (``--port 0`` picks a free
port). It exits with status 0 on SIGTERM or SIGINT, and also when its stdin reaches end of
file while ``--exit-on-stdin-eof`` is given, so a parent that dies does not leave it behind.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

KEY_INT_FRAMES = 10

ENCODERS = {
    "h264": (
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key} bframes=0 "
        "! video/x-h264,profile=constrained-baseline "
        "! rtph264pay name=pay0 pt=96 config-interval=-1"
    ),
    "h265": (
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={key} "
        "! rtph265pay name=pay0 pt=96 config-interval=-1"
    ),
    "mjpeg": "jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    parser.add_argument("--mount", default="/cam", help="path of the stream, e.g. /cam")
    parser.add_argument("--source", default="testsrc", help="'testsrc' or a video file")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true", help="exit when stdin is closed"
    )
    args = parser.parse_args(argv)
    if not args.mount.startswith("/"):
        parser.error("--mount must start with '/'")
    if args.source != "testsrc" and not Path(args.source).is_file():
        parser.error(f"--source: no such file: {args.source}")
    if min(args.width, args.height, args.fps) <= 0:
        parser.error("--width, --height and --fps must be positive")
    return args


def producer_description(args: argparse.Namespace, channel: str) -> str:
    """The pipeline that makes raw frames, whatever the clients do."""
    caps = f"video/x-raw,format=I420,width={args.width},height={args.height}"
    if args.source == "testsrc":
        head = "videotestsrc is-live=true pattern=ball ! videoconvert ! videoscale"
    else:
        location = str(Path(args.source).resolve()).replace('"', '\\"')
        head = f'filesrc location="{location}" ! decodebin ! videoconvert ! videoscale ! videorate'
    return (
        f"{head} ! {caps},framerate={args.fps}/1 "
        f"! intervideosink name=sink channel={channel} sync=true"
    )


def media_description(args: argparse.Namespace, channel: str) -> str:
    """What each RTSP media runs: the shared raw frames, encoded."""
    caps = f"video/x-raw,format=I420,width={args.width},height={args.height}"
    encoder = ENCODERS[args.codec].format(key=KEY_INT_FRAMES)
    return (
        f"( intervideosrc channel={channel} ! {caps},framerate={args.fps}/1 "
        f"! queue max-size-buffers=2 leaky=downstream ! {encoder} )"
    )


class Camera:
    """The producer pipeline plus the RTSP server that serves it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.loop = GLib.MainLoop()
        self.exit_code = 0
        channel = f"vigil-cam-{id(self)}"
        self.producer = Gst.parse_launch(producer_description(args, channel))
        bus = self.producer.get_bus()
        bus.add_signal_watch()
        bus.connect("message::eos", self._on_eos)
        bus.connect("message::error", self._on_error)

        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(args.port))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(media_description(args, channel))
        factory.set_shared(True)
        self.server.get_mount_points().add_factory(args.mount, factory)

    def run(self) -> int:
        # Handlers first: a SIGTERM right after READY must still end the loop cleanly.
        for signum in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, self._on_signal)
        self.producer.set_state(Gst.State.PLAYING)
        if self.server.attach(None) == 0:
            print(f"cannot listen on 127.0.0.1:{self.args.port}", file=sys.stderr, flush=True)
            self.producer.set_state(Gst.State.NULL)
            return 1
        print(f"READY {self.server.get_bound_port()}", flush=True)
        if self.args.exit_on_stdin_eof:
            GLib.io_add_watch(
                GLib.IOChannel.unix_new(sys.stdin.fileno()),
                GLib.PRIORITY_DEFAULT,
                GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
                self._on_stdin,
            )
        try:
            self.loop.run()
        finally:
            self.producer.set_state(Gst.State.NULL)
        return self.exit_code

    def _on_signal(self) -> bool:
        self.loop.quit()
        return GLib.SOURCE_REMOVE

    def _on_stdin(self, channel: GLib.IOChannel, condition: GLib.IOCondition) -> bool:
        data = sys.stdin.buffer.read1(4096) if condition & GLib.IOCondition.IN else b""
        if data:
            return GLib.SOURCE_CONTINUE
        self.loop.quit()
        return GLib.SOURCE_REMOVE

    def _on_eos(self, bus: Gst.Bus, message: Gst.Message) -> None:
        # End of the file: start it again, so the camera never stops.
        self.producer.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0)

    def _on_error(self, bus: Gst.Bus, message: Gst.Message) -> None:
        error, debug = message.parse_error()
        print(f"producer error: {error.message} ({debug})", file=sys.stderr, flush=True)
        self.exit_code = 1
        self.loop.quit()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Gst.init(None)
    return Camera(args).run()


if __name__ == "__main__":
    sys.exit(main())
