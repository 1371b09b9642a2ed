"""Model registry (adding versions, archives, formats), signatures and the OTA file parser."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.swap_models import VERSION_1, tiny_detector, tiny_repository
from vigil.infer.errors import RegistryError
from vigil.infer.model_formats import ModelFormat, format_of
from vigil.infer.registry import ModelRegistry
from vigil.infer.signature import Signature, read_onnx_signature
from vigil.infer.tensors import TensorSpec
from vigil.ota import OverrideError, parse_override
from vigil.triton.materializer import read_model_config


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tiny_repository(tmp_path / "repo"), max_upload_bytes=1 << 20)


async def test_add_version_numbers_it_and_records_origin_and_checksum(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    source = tiny_detector(tmp_path / "new.onnx", VERSION_1)

    record = await registry.add_version(
        "tiny", registry.stage_path("tiny", source), origin="test:new.onnx"
    )

    assert record.version == 3
    assert record.origin == "test:new.onnx"
    assert (registry.repository / "tiny" / "3" / "vigil-version.json").is_file()
    # the same bytes as version 1: what OTA's reuse of an existing version relies on
    assert registry.find_by_checksum("tiny", record.sha256) == 1
    assert registry.find_by_checksum("tiny", "0" * 64) is None
    assert not list((registry.repository / "tiny").glob(".incoming-*"))


async def test_add_version_refuses_existing_number_and_cleans_staging(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    source = tiny_detector(tmp_path / "new.onnx", VERSION_1)

    with pytest.raises(RegistryError) as caught:
        await registry.add_version(
            "tiny", registry.stage_path("tiny", source), origin="t", version=2
        )

    assert caught.value.status == 409
    assert not list((registry.repository / "tiny").glob(".incoming-*"))


def test_stage_path_enforces_import_roots_and_size(tmp_path: Path) -> None:
    repo = tiny_repository(tmp_path / "repo")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    registry = ModelRegistry(repo, import_roots=[allowed], max_upload_bytes=100)
    outside = tiny_detector(tmp_path / "outside.onnx", VERSION_1)
    inside = tiny_detector(allowed / "inside.onnx", VERSION_1)

    with pytest.raises(RegistryError, match="outside the allowed import roots") as outside_err:
        registry.stage_path("tiny", outside)
    with pytest.raises(RegistryError, match="max_upload_bytes") as size_err:
        registry.stage_path("tiny", inside)
    with pytest.raises(RegistryError, match="must be absolute"):
        registry.stage_path("tiny", Path("relative.onnx"))

    assert (outside_err.value.status, size_err.value.status) == (422, 413)


def _tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.addfile(member, io.BytesIO(data) if data else None)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "make", "words"),
    [
        ("v.zip", lambda: _zip({"../escape.onnx": b"x"}), "escapes"),
        ("v.zip", lambda: _zip({"/abs.onnx": b"x"}), "escapes"),
        ("v.zip", lambda: b"not a zip", "not a valid zip"),
        ("v.tar.gz", lambda: _tar_with(_link("model.onnx", "/etc/passwd")), "not a file"),
        ("v.tgz", lambda: _tar_with(_file("a/../../x", 1), b"x"), "escapes"),
        ("v.zip", lambda: _zip({"big.bin": b"x" * 5000}), "max_upload_bytes"),
    ],
)
def test_archives_are_refused_when_unsafe(
    tmp_path: Path, filename: str, make: object, words: str
) -> None:
    registry = ModelRegistry(tiny_repository(tmp_path / "repo"), max_upload_bytes=4096)
    upload = tmp_path / "upload"
    upload.write_bytes(make())  # type: ignore[operator]

    with pytest.raises(RegistryError, match=words):
        registry.stage_upload("tiny", upload, filename)

    assert not list((registry.repository / "tiny").glob(".incoming-*"))
    assert not (tmp_path / "x").exists()


def test_archive_unpacks_a_directory_version(tmp_path: Path) -> None:
    registry = ModelRegistry(tiny_repository(tmp_path / "repo"))
    model = tiny_detector(tmp_path / "m.onnx", VERSION_1).read_bytes()
    upload = tmp_path / "upload"
    upload.write_bytes(_zip({"model.onnx": model, "labels.txt": b"a\nb\n"}))

    staged = registry.stage_upload("tiny", upload, "v.zip")

    assert sorted(p.name for p in staged.iterdir()) == ["labels.txt", "model.onnx"]


def test_format_of_reads_platform_and_backend(tmp_path: Path) -> None:
    cases = {
        'platform: "onnxruntime_onnx"': ModelFormat.ONNX,
        'platform: "tensorrt_plan"': ModelFormat.TENSORRT,
        'platform: "tensorflow_savedmodel"': ModelFormat.SAVEDMODEL,
        'platform: "tensorflow_graphdef"': ModelFormat.GRAPHDEF,
        'backend: "python"': ModelFormat.PYTHON,
        'backend: "tensorflow"': ModelFormat.SAVEDMODEL,
    }
    for line, expected in cases.items():
        path = tmp_path / "config.pbtxt"
        path.write_text(f'name: "m"\n{line}\n')
        assert format_of(read_model_config(path)) is expected, line


def test_signature_differences_name_the_tensor_and_both_values(tmp_path: Path) -> None:
    small = read_onnx_signature(tiny_detector(tmp_path / "a.onnx", VERSION_1, size=32), True)
    large = read_onnx_signature(tiny_detector(tmp_path / "b.onnx", VERSION_1), True)

    assert small.differences(small) == []
    assert large.differences(small) == ["input image_tensor: shape [64, 64, 3] → [32, 32, 3]"]
    labelled = Signature(large.inputs, large.outputs, ("a", "b"))
    relabelled = Signature(large.inputs, large.outputs, ("a", "c"))
    assert labelled.differences(relabelled) == ["labels differ at 1: 'b' → 'c'"]


def test_config_scalar_reshape_matches_a_file_dimension_of_one() -> None:
    declared = Signature((), (TensorSpec("n", np.dtype(np.float32), (1,)),))
    found = Signature((), (TensorSpec("n", np.dtype(np.float32), ()),))

    assert found.conflicts_with_config(declared) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 3\n", {"version": 3}),
        ('{"version": "latest", "model": "ssd"}', {"version": "latest", "model": "ssd"}),
        ("file: /models/a.onnx\nallow_replan: true\n", {"file": Path("/models/a.onnx")}),
        ("[primary-gie]\nonnx-file=/models/b.onnx\n", {"file": Path("/models/b.onnx")}),
        ("[primary-gie]\nmodel-engine-file=/m/c.plan\n", {"file": Path("/m/c.plan")}),
    ],
)
def test_parse_override_accepts_yaml_json_and_deepstream(text: str, expected: dict) -> None:
    override = parse_override(text)

    for key, value in expected.items():
        assert getattr(override, key) == value


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("version: [1\n", "not valid YAML"),
        ("- 1\n", "mapping"),
        ("version: 1\nfile: /a.onnx\n", "exactly one"),
        ("file: relative.onnx\n", "absolute"),
        ("version: 0\n", ">= 1"),
        ("verzion: 2\n", "verzion"),
        ("[primary-gie]\nbatch-size=4\n", "names no onnx-file"),
        ("[application]\nenable=1\n", "no [primary-gie]"),
    ],
)
def test_parse_override_names_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(OverrideError, match=words.replace("[", r"\[")):
        parse_override(text)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _file(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


@pytest.mark.parametrize(("param", "expected"), [(None, "stretch"), ("letterbox", "letterbox")])
async def test_listed_input_format_says_how_frames_are_resized(
    tmp_path: Path, param: str | None, expected: str
) -> None:
    repo = tiny_repository(tmp_path / "repo")
    if param is not None:
        config = repo / "tiny" / "config.pbtxt"
        config.write_text(
            config.read_text()
            + f'parameters: {{ key: "vigil.resize" value: {{ string_value: "{param}" }} }}\n'
        )
    record = await ModelRegistry(repo).model("tiny")
    assert record.version(1).input_format is not None
    assert record.version(1).input_format["resize"] == expected
