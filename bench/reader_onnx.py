"""Would ONNX Runtime read faster than torch on these CPUs? (It did not: the reader stays on torch.)

Exports the shipped reader to ONNX and times one read of 5 passages x 230 tokens (the /ask default)
with both, 2 threads, median of 10 after 3 warm-up runs; prints the largest logit difference.
Needs `pip install onnxruntime onnx` (not project dependencies).

    python bench/reader_onnx.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from qa.pipeline import load_reader
from qa.settings import Settings


def median_ms(fn, repeats: int = 10) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    torch.set_num_threads(2)
    model = load_reader(Settings()).model
    ids = torch.randint(5, 1000, (5, 230), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    path = Path(tempfile.mkdtemp()) / "reader.onnx"
    axes = {"b": 0, "t": 1}
    torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"], output_names=["start_logits", "end_logits"],
                      dynamic_axes={n: {v: k for k, v in axes.items()} for n in ("input_ids", "attention_mask", "start_logits", "end_logits")},
                      opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    with torch.inference_mode():
        t_torch = median_ms(lambda: model(input_ids=ids, attention_mask=mask))
        ref = model(input_ids=ids, attention_mask=mask).start_logits.numpy()
    t_ort = median_ms(lambda: sess.run(None, feed))
    diff = float(np.abs(sess.run(None, feed)[0] - ref).max())
    print(f"5 x 230 tokens, 2 threads: torch {t_torch:.0f} ms, onnxruntime {ort.__version__} {t_ort:.0f} ms (largest start-logit difference {diff:.1e})")


if __name__ == "__main__":
    main()
