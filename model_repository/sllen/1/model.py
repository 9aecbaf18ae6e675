"""Triton python-backend model: ONNX Runtime on model.onnx. Thin on purpose.

Triton hands over several requests at once, of any sizes. Several images run one per core
("lanes": single-thread sessions, no barrier at every operator); a lone image, or a big photo
beside small ones, runs on every core, whichever ``lane_split`` predicts finishes first. A request
that does not ask for the mask runs the enhanced-only graph. Figures: docs/decisions.md.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from ort_options import session_options  # beside this file: the stub puts its folder on sys.path


def lpt_makespan(costs, lanes):
    """Longest-processing-time-first onto `lanes` lanes, as the lane pool runs them."""
    loads = [0.0] * lanes
    for cost in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += cost
    return max(loads)


def lane_split(pixels, lanes, speedup_base, speedup_per_mp):
    """How many of the images (``pixels``, biggest first) to share out over the lanes; the rest
    then run one by one on every core. Chosen by the finishing time each split predicts, which
    keeps every core on a lone image and stops one big photo from leaving a small one's core
    idle. Costs in a lane's time per pixel; every core gains more on bigger images (their
    activations outgrow the caches that two lanes share)."""
    alone = [px / (speedup_base + speedup_per_mp * px / 1e6) for px in pixels]
    best, best_time = 0, sum(alone)
    for n in range(2, len(pixels) + 1 if lanes > 1 else 0):
        time = lpt_makespan(pixels[:n], lanes) + sum(alone[n:])
        if time < best_time:
            best, best_time = n, time
    return best


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.input_name = config["input"][0]["name"]
        self.output_names = [o["name"] for o in config["output"]]
        self.output_dtypes = {
            o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]
        }
        threads = int(params.get("intra_op_num_threads", "0"))
        inter_threads = int(params.get("inter_op_num_threads", "1"))
        cores = threads or len(os.sched_getaffinity(0))
        lanes = int(params.get("lanes", "0")) or cores
        # How much sooner the all-core session finishes one image than one lane does, by size.
        self.speedup_base = float(params.get("all_cores_speedup", "1.6"))
        self.speedup_per_mp = float(params.get("all_cores_speedup_per_mp", "0.18"))
        folder = os.path.join(args["model_repository"], args["model_version"])
        spin = params.get("allow_spinning", "1") == "1"

        def open_session(name, intra_threads, spinning=spin):
            # One memory arena for every session of this process: each session's own arena
            # grows to its largest photo and keeps it.
            options = session_options(intra_threads, inter_threads, spinning, shared_arena=True)
            path = os.path.join(folder, name)
            return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        graphs = {"full": params["onnx_file"]}
        if params.get("onnx_file_enhanced_only"):
            graphs["enhanced"] = params["onnx_file_enhanced_only"]
        self.all_cores = {g: open_session(f, threads) for g, f in graphs.items()}
        # A small image alone runs on threads that spin between operators (config.pbtxt says
        # why only then); they stop spinning when the run returns.
        self.spin_max_pixels = int(params.get("spin_lone_max_pixels", "0"))
        self.spinning = (
            {g: open_session(f, threads, True) for g, f in graphs.items()}
            if self.spin_max_pixels and not spin
            else self.all_cores  # already spinning (or never asked to)
        )
        # One single-thread session per graph serves every lane: Run is thread-safe, and each
        # call computes on the thread that makes it.
        self.one_core = {g: open_session(f, 1) for g, f in graphs.items()} if lanes > 1 else {}
        self.lanes = ThreadPoolExecutor(lanes, thread_name_prefix="lane") if lanes > 1 else None
        self.lane_count = lanes

    def graph_for(self, request):
        """The enhanced-only graph unless this request asks for the mask."""
        wanted = set(request.requested_output_names())
        if "enhanced" in self.all_cores and wanted <= {self.output_names[0]}:
            return "enhanced", self.output_names[:1]
        return "full", self.output_names

    def execute(self, requests):
        images = [
            pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests
        ]
        plans = [self.graph_for(r) for r in requests]
        area = [image.shape[1] * image.shape[2] for image in images]
        items = [(i, k) for i, image in enumerate(images) for k in range(len(image))]
        items.sort(key=lambda item: -area[item[0]])
        pixels = [area[i] for i, _ in items]
        split = lane_split(pixels, self.lane_count, self.speedup_base, self.speedup_per_mp)

        def run_one(sessions, item):
            i, k = item
            graph, names = plans[i]
            return sessions[graph].run(names, {self.input_name: images[i][k : k + 1]})

        futures = [self.lanes.submit(run_one, self.one_core, item) for item in items[:split]]
        outcomes = {}
        for item, future in zip(items[:split], futures, strict=True):
            outcomes[item] = future.exception() or future.result()
        alone_and_small = len(items) == 1 and split == 0 and pixels[0] <= self.spin_max_pixels
        every_core = self.spinning if alone_and_small else self.all_cores
        for item in items[split:]:
            try:
                outcomes[item] = run_one(every_core, item)
            except Exception as exc:  # one bad image fails its own request only
                outcomes[item] = exc
        return [
            self.respond(plans[i][1], [outcomes[(i, k)] for k in range(len(image))])
            for i, image in enumerate(images)
        ]

    def respond(self, names, parts):
        """One response from a request's images, or its error if any of them failed."""
        failure = next((part for part in parts if isinstance(part, Exception)), None)
        if failure is not None:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(failure)))
        outputs = (
            parts[0] if len(parts) == 1 else [np.concatenate(p) for p in zip(*parts, strict=True)]
        )
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(out, dtype=self.output_dtypes[name]))
            for name, out in zip(names, outputs, strict=True)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self):
        if self.lanes is not None:
            self.lanes.shutdown(wait=True)
