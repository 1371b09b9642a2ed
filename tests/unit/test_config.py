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
