import pytest

from vigil.cli import build_parser, parse_source, settings_from_args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cam-1=/videos/a.mp4", ("cam-1", "/videos/a.mp4")),
        ("/videos/a=b.mp4", ("stream-3", "/videos/a=b.mp4")),
        ("a.mp4", ("stream-3", "a.mp4")),
        ("=a.mp4", ("stream-3", "=a.mp4")),
    ],
)
def test_parse_source_splits_optional_id(text, expected):
    assert parse_source(text, 3) == expected


def test_flags_override_settings(tmp_path):
    args = build_parser().parse_args(
        [
            "run",
            "--source",
            "a.mp4",
            "--model",
            "m",
            "--out",
            str(tmp_path / "e.jsonl"),
            "--triton-url",
            "h:1",
            "--batch-size",
            "2",
        ]
    )
    settings = settings_from_args(args)
    assert settings.model.name == "m"
    assert settings.events.jsonl_path == tmp_path / "e.jsonl"
    assert settings.triton.url == "h:1"
    assert settings.pipeline.max_batch_size == 2


def test_run_requires_a_source(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run"])
    assert "--source" in capsys.readouterr().err
