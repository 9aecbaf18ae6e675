"""Triton python-backend model: ONNX Runtime on model.onnx. Thin on purpose.

Triton's dynamic batcher hands us several requests at once; requests of equal [H, W] are joined
into one ONNX Runtime call and the outputs are split back, one response (or error) per request.
A group where no request asks for the mask runs the enhanced-only graph (parameter
``onnx_file_enhanced_only``): ONNX Runtime runs every node whatever outputs are asked for, and
the mask's upsampling and argmax are 8% of the model's time.
"""

import json
import os
from collections import defaultdict

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.input_name = config["input"][0]["name"]
        self.output_names = [o["name"] for o in config["output"]]
        self.output_dtypes = {
            o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]
        }
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_num_threads", "0"))
        options.inter_op_num_threads = int(params.get("inter_op_num_threads", "1"))
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Tiny weights produce denormals that make x86 convolutions many times slower.
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
        # Idle ORT threads spin by default; on a small host that steals the cores the gateway,
        # workers and codecs need between batches.
        spin = params.get("allow_spinning", "1")
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        folder = os.path.join(args["model_repository"], args["model_version"])

        def open_session(name):
            path = os.path.join(folder, name)
            return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        self.session = open_session(params["onnx_file"])
        enhanced_only = params.get("onnx_file_enhanced_only")
        self.enhanced_session = open_session(enhanced_only) if enhanced_only else None

    def execute(self, requests):
        images = [
            pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests
        ]
        groups = defaultdict(list)
        for i, image in enumerate(images):
            groups[image.shape[1:]].append(i)
        responses = [None] * len(requests)
        for members in groups.values():
            try:
                batch = np.concatenate([images[i] for i in members]) if len(members) > 1 else images[members[0]]
                session, names = self.session, self.output_names
                wanted = {name for i in members for name in requests[i].requested_output_names()}
                if self.enhanced_session is not None and wanted <= {self.output_names[0]}:
                    session, names = self.enhanced_session, self.output_names[:1]
                outputs = session.run(names, {self.input_name: batch})
                offset = 0
                for i in members:
                    n = images[i].shape[0]
                    tensors = [
                        pb_utils.Tensor(name, np.ascontiguousarray(out[offset : offset + n], dtype=self.output_dtypes[name]))
                        for name, out in zip(names, outputs)
                    ]
                    responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                    offset += n
            except Exception as exc:  # one bad group must not fail the other requests
                for i in members:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
        return responses
