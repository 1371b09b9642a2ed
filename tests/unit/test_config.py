from pathlib import Path

import pytest
from pydantic import ValidationError

from vigil.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_read_nested_environment_variables(monkeypatch):
    monkeypatch.setenv("VIGIL_PIPELINE__MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("VIGIL_TRITON__URL", "triton:8001")
    settings = Settings()
    assert settings.pipeline.max_batch_size == 8
    assert settings.triton.url == "triton:8001"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("VIGIL_PIPELINE__MAX_BATCH_SIZE", "0", "pipeline.max_batch_size"),
        ("VIGIL_MODEL__CONFIDENCE_THRESHOLD", "1.5", "model.confidence_threshold"),
        ("VIGIL_TRITON__NOPE", "1", "triton.nope"),
        ("VIGIL_NOPE", "1", "unknown settings in the environment: VIGIL_NOPE"),
        ("VIGIL_MODEL__NAME__X", "1", "model.name"),
    ],
)
def test_settings_when_environment_is_wrong_names_the_setting(
    monkeypatch, variable, value, message
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        Settings()


def test_settings_embedded_paths_default_to_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path))
    settings = Settings()
    assert settings.triton_server_dir() == tmp_path / "tritonserver-2.51.0"
    assert settings.triton_python_env() == tmp_path / "tritonserver-2.51.0" / "python-env"


def test_readme_configuration_reference_is_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ref", ROOT / "scripts/config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.markdown() in readme, "run scripts/config_reference.py and paste into README"


def test_settings_load_yaml_with_environment_on_top(tmp_path, monkeypatch):
    path = tmp_path / "vigil.yaml"
    path.write_text(
        "api: {port: 9000}\n"
        "pipeline: {max_batch_size: 2}\n"
        "streams:\n  - {id: cam-1, url: 'rtsp://10.0.0.5/s1', inference_interval: 2}\n"
    )
    monkeypatch.setenv("VIGIL_PIPELINE__MAX_BATCH_SIZE", "6")
    settings = Settings.load(path)
    assert settings.api.port == 9000
    assert settings.pipeline.max_batch_size == 6, "the environment overrides the file"
    assert settings.streams[0].id == "cam-1"
    assert settings.streams[0].inference_interval == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api: {prot: 9000}\n", "api.prot"),
        ("colour: red\n", "colour"),
        ("streams: [{id: x, url: 'ftp://h/v'}]\n", "unsupported url scheme"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("api: {port: [\n", "cannot read config file"),
    ],
)
def test_settings_load_rejects_bad_files_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "vigil.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        Settings.load(path)


def test_api_keys_are_secret_in_reprs(monkeypatch):
    monkeypatch.setenv("VIGIL_API__API_KEYS", '["hunter2"]')
    settings = Settings()
    assert settings.api.api_keys[0].get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()
