"""The ONNX Runtime session options SLLEN is served with, for every ORT user of the project.

It sits beside model.py because Triton's python backend imports from the model's folder, not
from the project's packages; export and benchmarks load this file through sllen.serving.
"""

import functools

import onnxruntime as ort


@functools.cache
def share_arena():
    """Register, once per process, one CPU arena allocator with ONNX Runtime's environment, which
    sessions opened with ``session.use_env_allocators`` use instead of growing their own."""
    info = ort.OrtMemoryInfo(
        "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
    )
    ort.create_and_register_allocator(info, ort.OrtArenaCfg({}))


def session_options(intra_threads=0, inter_threads=1, spinning=False, shared_arena=False):
    """Options for a CPU session; ``intra_threads`` 0 is ORT's default (the physical cores)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = inter_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Tiny weights produce denormals that make x86 convolutions many times slower.
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    # Idle ORT threads spin by default; on a small host that steals the cores the gateway,
    # workers and codecs need between batches. Spinning threads stop when a run returns.
    spin = "1" if spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if spinning:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    if shared_arena:
        share_arena()
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options
