"""The benchmark's PeopleNet-class model: a Triton repository writer.

:func:`write_repository` puts a Python-backend model (``model.py`` from
``peoplenet_model.py``, the network from ``peoplenet_net.py``, and weights made by the caller)
into a repository directory; nothing is committed, nothing is downloaded.

Its outputs are parsed by Vigil's own ``detectnet_v2`` parser (output names set in the
config's ``vigil.cov_output`` / ``vigil.bbox_output`` parameters).
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL_NAME = "peoplenet_rn34"
INPUT_NAME = "input_1"
COVERAGE = "output_cov"
BBOX = "output_bbox"
LABELS = ("person", "bag", "face")
GRID = (34, 60)


def config_text(
    max_batch: int,
    instances: int,
    device_id: int = 0,
    group: int = 1,
    name: str = MODEL_NAME,
    queue_delay_us: int = 0,
) -> str:
    """``config.pbtxt`` of the model: fp16 CHW input, fp32 outputs, GPU instances.

    ``group`` > 1 turns on dynamic batching with room for ``group`` requests of ``max_batch``
    frames: an instance then takes up to that many queued requests per ``execute`` and runs
    them back to back (:mod:`peoplenet_model`), instead of idling the GPU between them;
    ``queue_delay_us`` is how long Triton may hold a request for others to join it (paced
    streams send requests one at a time)."""
    classes = len(LABELS)
    # the model runs each request on its own (peoplenet_model.execute), padded to the next of
    # these sizes: a request's batch is 1..max_batch frames (partial ones come from paced
    # cameras, on the batch timeout), and each new shape would be autotuned mid-run
    warm = ",".join(str(size) for size in bucket_sizes(max_batch))
    batching = ""
    if group > 1:
        batching = f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
    return f"""name: "{name}"
backend: "python"
max_batch_size: {max_batch * group}
{batching}input [{{ name: "{INPUT_NAME}" data_type: TYPE_FP16 dims: [3, 544, 960] }}]
output [
  {{ name: "{COVERAGE}" data_type: TYPE_FP32 dims: [{classes}, {GRID[0]}, {GRID[1]}] }},
  {{ name: "{BBOX}" data_type: TYPE_FP32 dims: [{4 * classes}, {GRID[0]}, {GRID[1]}] }}
]
instance_group [{{ kind: KIND_GPU count: {instances} gpus: [{device_id}] }}]
parameters {{ key: "FORCE_CPU_ONLY_INPUT_TENSORS" value {{ string_value: "no" }} }}
parameters {{ key: "vigil.parser" value {{ string_value: "detectnet_v2" }} }}
parameters {{ key: "vigil.cov_output" value {{ string_value: "{COVERAGE}" }} }}
parameters {{ key: "vigil.bbox_output" value {{ string_value: "{BBOX}" }} }}
parameters {{ key: "vigil.labels" value {{ string_value: "labels.txt" }} }}
parameters {{ key: "bench.warm_batches" value {{ string_value: "{warm}" }} }}
"""


def bucket_sizes(max_batch: int, step: int = 8) -> list[int]:
    """The batch sizes the model runs at, a request padded to the next one: 1 (the naive
    client's per-frame requests, never padded), multiples of ``step`` up to ``max_batch``, and
    ``max_batch`` itself (as a TensorRT engine is built for a few profile shapes)."""
    return sorted({1, *range(step, max_batch, step), max_batch})


def python_paths() -> list[str]:
    """``sys.path`` entries the backend stub needs to find torch (it ignores PYTHONPATH)."""
    paths = [p for p in sys.path if p and Path(p).is_dir() and "site-packages" in p]
    paths += [p for p in site.getsitepackages() if p not in paths]
    return paths


def write_repository(
    repository: Path,
    weights: Path,
    *,
    max_batch: int,
    instances: int,
    device_id: int = 0,
    group: int = 1,
    name: str = MODEL_NAME,
    queue_delay_us: int = 0,
) -> Path:
    """Write the model into ``repository`` (created if needed); returns the model directory.

    Args:
        repository: Triton model repository directory.
        weights: A ``state_dict`` of :class:`peoplenet_net.PeopleNetRN34` saved with
            ``torch.save`` (linked, not copied).
        max_batch: Frames per request (the model's ``max_batch_size`` is this × ``group``).
        instances: Model instances on the GPU (Python processes running the network).
        device_id: The GPU.
        group: Requests an instance may take per ``execute`` (dynamic batching when > 1).
        name: The model's name in the repository.
        queue_delay_us: Dynamic batching's longest wait for more requests.
    """
    model_dir = repository / name
    version = model_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    config = config_text(max_batch, instances, device_id, group, name, queue_delay_us)
    (model_dir / "config.pbtxt").write_text(config)
    (model_dir / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (model_dir / "peoplenet_net.py").write_text((HERE / "peoplenet_net.py").read_text())
    header = f"import sys\nsys.path[:0] = {python_paths()!r}\n"
    (version / "model.py").write_text(header + (HERE / "peoplenet_model.py").read_text())
    link = version / "weights.pt"
    link.unlink(missing_ok=True)
    link.symlink_to(weights.resolve())
    return model_dir
