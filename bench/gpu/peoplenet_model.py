"""Triton Python-backend model: the PeopleNet-class detector in torch, on the GPU.

The benchmark writes this file as ``model.py`` (with a ``sys.path`` header naming the
interpreter's packages) next to ``peoplenet_net.py`` and ``weights.pt``. With
``FORCE_CPU_ONLY_INPUT_TENSORS: "no"`` Triton hands the input over in GPU memory (read from the
client's CUDA shared memory) and the model takes it by DLPack; the outputs go back by DLPack
too, and Triton copies them into the client's CUDA shared memory. Nothing crosses the host.
"""

import json
import os
import sys
import time

import torch
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import peoplenet_net


class TritonPythonModel:
    """Triton's Python-backend entry point."""

    def initialize(self, args):
        """Load the weights onto this instance's GPU and warm up at the largest batch."""
        config = json.loads(args["model_config"])
        self.device = torch.device("cuda", int(args["model_instance_device_id"]))
        torch.cuda.set_device(self.device)
        torch.backends.cudnn.benchmark = True
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        net = peoplenet_net.PeopleNetRN34()
        net.load_state_dict(torch.load(os.path.join(version_dir, "weights.pt"), map_location="cpu"))
        self.net = peoplenet_net.for_inference(net, self.device)
        self.input_name = config["input"][0]["name"]
        self.output_names = [o["name"] for o in config["output"]]
        # requests, and those with inputs in CPU memory, by origin (the naive client's ids
        # start with "naive-"; Vigil's requests carry none): written to counts-<pid>.json
        # beside the weights, at most every second and at the end, for the benchmark
        self.counts = {"vigil": [0, 0], "naive": [0, 0]}
        self.counts_path = os.path.join(version_dir, f"counts-{os.getpid()}.json")
        self.written = 0.0
        # cuDNN autotunes each new input shape on its first run, which stops the model for
        # a moment (paced cameras' partial batches did that mid-run, one new size at a
        # time). A request runs padded to the next of a few sizes, each warmed up here, as
        # a TensorRT engine is built for a few profile shapes; the largest three times.
        parameters = config.get("parameters", {})
        sizes = parameters.get("bench.warm_batches", {}).get("string_value", "")
        self.sizes = sorted(int(s) for s in sizes.split(",") if s) or [config["max_batch_size"]]
        self.padded = {
            size: torch.zeros(
                size, 3, peoplenet_net.INPUT_HEIGHT, peoplenet_net.INPUT_WIDTH,
                dtype=torch.float16, device=self.device,
            ).contiguous(memory_format=torch.channels_last)
            for size in self.sizes
        }  # fmt: skip
        with torch.inference_mode():
            for size in self.sizes + [self.sizes[-1]] * 2:
                self.net(torch.rand_like(self.padded[size]))
        torch.cuda.synchronize(self.device)

    def execute(self, requests):
        """Run each request's batch; inputs and outputs stay in GPU memory.

        With dynamic batching Triton hands over several requests at once: their batches are
        launched back to back on one stream and synchronized once, so the GPU does not idle
        between them while this process answers (each request keeps its own batch)."""
        results = []
        with torch.inference_mode():
            for request in requests:
                tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
                origin = "naive" if request.request_id().startswith("naive-") else "vigil"
                self.counts[origin][0] += 1
                if tensor.is_cpu():
                    self.counts[origin][1] += 1
                    images = torch.from_numpy(tensor.as_numpy()).to(self.device)
                else:
                    images = torch.from_dlpack(tensor.to_dlpack())
                results.append(self._run(images))
        torch.cuda.current_stream(self.device).synchronize()
        responses = [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor.from_dlpack(name, torch.utils.dlpack.to_dlpack(value))
                    for name, value in zip(self.output_names, outputs, strict=False)
                ]
            )
            for outputs in results
        ]
        if time.monotonic() - self.written > 1.0:
            self._write_counts()
        return responses

    def _run(self, images):
        """The network on a request's frames, padded to the next warmed-up size (the padding's
        outputs are dropped)."""
        count = images.shape[0]
        size = next((s for s in self.sizes if s >= count), count)
        if size == count:
            return self.net(images.contiguous(memory_format=torch.channels_last))
        padded = self.padded[size]
        padded[:count].copy_(images)
        return tuple(output[:count] for output in self.net(padded))

    def _write_counts(self):
        temporary = self.counts_path + ".tmp"
        with open(temporary, "w") as f:
            json.dump(self.counts, f)
        os.replace(temporary, self.counts_path)
        self.written = time.monotonic()

    def finalize(self):
        """Say where the inputs were: the benchmark checks that none of Vigil's was in CPU
        memory."""
        self._write_counts()
        for origin, (requests, cpu) in self.counts.items():
            print(
                f"peoplenet: {origin}: {requests} requests, {cpu} with inputs in CPU memory",
                flush=True,
            )
