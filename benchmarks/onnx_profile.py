"""Where an ONNX export spends its time, per operator type, and the residual-LayerNorm kernels side by side.

Two measurements, both with ONNX Runtime on the CPU:

* **kernels**: ``SkipLayerNormalization`` (what ONNX Runtime fuses residual Add + LayerNorm into) against the
  ``Add`` + ``Add`` + ``LayerNormalization`` it replaces, on one [1, length, hidden] input. This is why distiltune's
  CPU sessions disable ``SkipLayerNormFusion`` (``distiltune.export.CPU_DISABLED_OPTIMIZERS``).
* **export** (``--export DIR``, a ``distiltune export`` folder): samples/s and the share of kernel time per operator
  type, predicting IMDb reviews one per batch (what the ONNX token budget gives for reviews this long), once with
  distiltune's session settings and once letting ONNX Runtime fuse ``SkipLayerNormalization`` back in.

    .venv/bin/python benchmarks/onnx_profile.py
    .venv/bin/python benchmarks/onnx_profile.py --export runs/<run>/export/onnx-int8 --reviews 100

Both write benchmarks/results/onnx_profile_<date>_<host>.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "imdb"
RESULTS = REPO_ROOT / "benchmarks" / "results"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import save_results  # noqa: E402  (a sibling script, not a package)


def layer_norm_graph(fused: bool, length: int, hidden: int, seed: int = 0) -> bytes:
    """out = LayerNorm(x + skip + bias), as one SkipLayerNormalization node or as Add, Add, LayerNormalization."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)

    def constant(name: str, values: np.ndarray) -> Any:
        return helper.make_tensor(name, TensorProto.FLOAT, [hidden], values.astype(np.float32))

    initializers = [
        constant("gamma", 1 + 0.1 * rng.standard_normal(hidden)),
        constant("beta", 0.1 * rng.standard_normal(hidden)),
        constant("bias", 0.1 * rng.standard_normal(hidden)),
    ]
    if fused:
        nodes = [
            helper.make_node(
                "SkipLayerNormalization",
                ["x", "skip", "gamma", "beta", "bias"],
                ["out"],
                domain="com.microsoft",
                epsilon=1e-12,
            )
        ]
    else:
        nodes = [
            helper.make_node("Add", ["x", "skip"], ["summed"]),
            helper.make_node("Add", ["summed", "bias"], ["biased"]),
            helper.make_node("LayerNormalization", ["biased", "gamma", "beta"], ["out"], axis=-1, epsilon=1e-12),
        ]
    shape = [1, length, hidden]
    graph = helper.make_graph(
        nodes,
        "residual_layer_norm",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("x", "skip")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def time_layer_norms(length: int, hidden: int, threads: int, repeats: int) -> dict[str, float]:
    """Microseconds per call of each form, and the largest output difference between them."""
    import onnxruntime as ort

    rng = np.random.default_rng(1)
    feeds = {name: rng.standard_normal((1, length, hidden)).astype(np.float32) for name in ("x", "skip")}
    timings: dict[str, float] = {}
    outputs = {}
    for name, fused in (("SkipLayerNormalization", True), ("Add+Add+LayerNormalization", False)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # No graph rewrites: each session runs exactly the nodes above.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(layer_norm_graph(fused, length, hidden), options, ["CPUExecutionProvider"])
        outputs[name] = session.run(None, feeds)[0]
        for _ in range(repeats // 10):
            session.run(None, feeds)
        started = time.perf_counter()
        for _ in range(repeats):
            session.run(None, feeds)
        timings[name] = (time.perf_counter() - started) / repeats * 1e6
    first, second = outputs.values()
    timings["max_difference"] = float(np.abs(first - second).max())
    return timings


def profile_export(
    export_dir: Path, texts: list[str], threads: int, settings: dict[str, list[str]], rounds: int
) -> dict[str, dict[str, Any]]:
    """Per session setting (name: disabled optimizers): samples/s over ``texts`` one per batch, the median of
    ``rounds`` timings taken in turn with the other settings (this VM's speed drifts by 10-20% within minutes), and
    the per-operator share of kernel time from one profiled pass."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    encoded = [tokenizer(text, truncation=True, max_length=512) for text in texts]

    def session(disabled: list[str], profile_prefix: str | None = None) -> Any:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        return ort.InferenceSession(
            str(export_dir / "model.onnx"), options, ["CPUExecutionProvider"], disabled_optimizers=disabled
        )

    def predict_all(active: Any) -> float:
        names = [item.name for item in active.get_inputs()]
        started = time.perf_counter()
        for row in encoded:
            feeds = {name: np.array([row.get(name, [0] * len(row["input_ids"]))], dtype=np.int64) for name in names}
            active.run(["logits"], feeds)
        return time.perf_counter() - started

    sessions = {name: session(disabled) for name, disabled in settings.items()}
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    for active in sessions.values():
        predict_all(active)  # warm-up
    for _ in range(rounds):
        for name, active in sessions.items():
            seconds[name].append(predict_all(active))
    results = {}
    for name, disabled in settings.items():
        with tempfile.TemporaryDirectory() as folder:
            profiled = session(disabled, str(Path(folder) / "profile"))
            predict_all(profiled)
            events = json.loads(Path(profiled.end_profiling()).read_text())
        kernel_time: collections.Counter[str] = collections.Counter()
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                kernel_time[event["args"]["op_name"]] += event["dur"]
        total = sum(kernel_time.values()) or 1
        results[name] = {
            "samples_per_second": [round(len(encoded) / each, 2) for each in seconds[name]],
            "median_samples_per_second": round(len(encoded) / float(np.median(seconds[name])), 2),
            "operator_share": {op: round(us / total, 3) for op, us in kernel_time.most_common()},
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, default=None, help="A distiltune export folder to profile.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Folder with test.jsonl (IMDb).")
    parser.add_argument("--reviews", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="Timings of each session setting, taken in turn.")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 281, 512], help="281: IMDb's mean length.")
    parser.add_argument("--hidden-sizes", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--output-dir", type=Path, default=RESULTS, help="Where onnx_profile_<date>_<host>.json goes.")
    args = parser.parse_args()
    measured: dict[str, Any] = {"kernels": []}

    print(f"residual LayerNorm kernels, {args.threads} threads (microseconds per call):")
    print(f"{'hidden':>6} {'length':>6} {'SkipLayerNorm':>14} {'Add+LayerNorm':>14} {'ratio':>6}")
    for hidden in args.hidden_sizes:
        for length in args.lengths:
            timing = time_layer_norms(length, hidden, args.threads, args.repeats)
            skip, plain = timing["SkipLayerNormalization"], timing["Add+Add+LayerNormalization"]
            assert timing["max_difference"] < 1e-4, timing  # same function, or the comparison means nothing
            print(f"{hidden:>6} {length:>6} {skip:>14.0f} {plain:>14.0f} {skip / plain:>5.1f}x", flush=True)
            measured["kernels"].append(
                {
                    "hidden": hidden,
                    "length": length,
                    "skip_layer_norm_us": round(skip, 1),
                    "add_add_layer_norm_us": round(plain, 1),
                    "ratio": round(skip / plain, 2),
                }
            )

    if args.export is None:
        save_results("onnx_profile", args.output_dir, args, measured)
        return
    from distiltune.export import CPU_DISABLED_OPTIMIZERS

    rows = [json.loads(line) for line in (args.data / "test.jsonl").open(encoding="utf-8")]
    texts = [row["text"] for row in rows[: args.reviews]]
    settings = {
        "distiltune session (SkipLayerNormFusion off)": list(CPU_DISABLED_OPTIMIZERS),
        "ONNX Runtime defaults (SkipLayerNormFusion on)": [],
    }
    results = profile_export(args.export, texts, args.threads, settings, args.rounds)
    for label, result in results.items():
        shares = ", ".join(f"{op} {share:.0%}" for op, share in list(result["operator_share"].items())[:6])
        print(
            f"\n{label}: {result['median_samples_per_second']} samples/s (median of {result['samples_per_second']})"
            f"\n  {shares}",
            flush=True,
        )
    first, second = (result["median_samples_per_second"] for result in results.values())
    print(f"\nratio: {first / second:.2f}x")
    measured["export"] = results
    save_results("onnx_profile", args.output_dir, args, measured)


if __name__ == "__main__":
    main()
