import pytest

from vigil.triton.errors import TritonNotInstalledError, TritonStartError
from vigil.triton.server import EmbeddedTriton, TritonPorts, tail


def test_start_when_server_not_installed_says_how_to_get_it(tmp_path):
    server = EmbeddedTriton(tmp_path / "none", tmp_path, tmp_path / "log", shm_prefix="vigil_x_")
    with pytest.raises(TritonNotInstalledError, match="make triton"):
        server.start()
    server.stop()  # idempotent when nothing started


def test_command_uses_explicit_model_control_and_the_shm_prefix(tmp_path):
    server = EmbeddedTriton(
        tmp_path,
        tmp_path / "repo",
        tmp_path / "log",
        ports=TritonPorts(1, 2, 3),
        shm_prefix="vigil_9_ab_pb_",
    )
    command = server.command()
    assert "--model-control-mode=explicit" in command
    assert "--backend-config=python,shm-region-prefix-name=vigil_9_ab_pb_" in command
    assert {"--http-port=1", "--grpc-port=2", "--metrics-port=3"} <= set(command)
    assert server.grpc_url == "127.0.0.1:2"


def test_tail_returns_last_lines_or_empty(tmp_path):
    log = tmp_path / "triton.log"
    assert tail(log) == ""
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 2) == "line 98\nline 99"


def test_start_error_message_carries_log_tail_and_path():
    error = TritonStartError("Triton exited", "E1 boom", "/x/triton.log")
    assert "boom" in str(error)
    assert "/x/triton.log" in str(error)
