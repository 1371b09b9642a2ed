import numpy as np
import pytest

from vigil.detections import Detections


def _dets(n: int) -> Detections:
    return Detections(
        xyxy=np.arange(n * 4, dtype=np.float32).reshape(n, 4),
        confidence=np.linspace(0.1, 0.9, n, dtype=np.float32),
        class_id=np.arange(n, dtype=np.int32),
    )


def test_detections_empty_is_valid():
    empty = Detections.empty()
    assert len(empty) == 0
    assert list(empty) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("xyxy", np.zeros((3, 5), np.float32), "xyxy must have shape (3, 4)"),
        ("confidence", np.zeros((2,), np.float32), "confidence must have shape (3,)"),
        ("class_id", np.zeros((3, 1), np.int32), "class_id must have shape (3,)"),
        ("tracker_id", np.zeros((4,), np.int64), "tracker_id must have shape (3,)"),
    ],
)
def test_detections_when_shapes_disagree_names_the_field(field, value, message):
    kwargs = {
        "xyxy": np.zeros((3, 4), np.float32),
        "confidence": np.zeros((3,), np.float32),
        "class_id": np.zeros((3,), np.int32),
    }
    kwargs[field] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Detections(**kwargs)


def test_detections_when_data_column_has_wrong_length():
    with pytest.raises(ValueError, match="data\\['mask'\\] has 2 rows, expected 3"):
        Detections(
            xyxy=np.zeros((3, 4), np.float32),
            confidence=np.zeros((3,), np.float32),
            class_id=np.zeros((3,), np.int32),
            data={"mask": np.zeros((2, 4, 4), bool)},
        )


def test_detections_when_indexed_by_mask_returns_matching_rows():
    dets = _dets(4)
    picked = dets[dets.confidence > 0.5]
    assert len(picked) == 2
    assert picked.class_id.tolist() == [2, 3]
    assert picked.xyxy.shape == (2, 4)


def test_detections_iter_yields_rows():
    rows = list(_dets(2))
    assert rows[1][2] == 1
    assert rows[0][3] is None
