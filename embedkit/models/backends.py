"""Model backends: which runtime runs the transformer of an encoder (``torch``, ``onnx``, ``openvino``).

The one place this choice is made (:data:`BACKENDS`). A non-torch backend replaces only the transformer inside
the sentence-transformers model (``SentenceTransformer``, ``MultiVectorEncoder``, ``CrossEncoder``) with a module
that runs an exported graph (:class:`RuntimeModel`), so tokenisation, prompts, pooling, projection,
normalisation and everything else stay the library's own and the model is still that library's model.

Why not sentence-transformers' own ``backend="onnx" | "openvino"``: it loads through Optimum
(``optimum.onnxruntime`` / ``optimum.intel``), and neither installs beside this stack (optimum-onnx 0.1.0 needs
transformers < 5; optimum-intel 2.2.0 pins transformers 5.5 and torch 2.13). So the runtimes are used directly, as
Optimum uses them: ``torch.onnx.export`` of the transformer and ONNX Runtime's ``quantize_dynamic`` for int8 (what
``export_dynamic_quantized_onnx_model`` runs underneath); for OpenVINO, ``openvino.convert_model`` of the PyTorch
module itself (what optimum-intel's export runs), which keeps attention as one ``ScaledDotProductAttention`` op and
GELU as one op (read through ONNX they are decomposed into a dozen ops each, and ran 1.4x slower), with its CPU
plugin running bf16 natively on AVX512-BF16/AMX when asked (``INFERENCE_PRECISION_HINT``).

Exports go once into ``<cache>/model-backends/<key>/`` (:func:`~embedkit.artifacts.cache_dir`; written aside and
renamed when complete, with a manifest of versions) and are reused; the key hashes the transformer's weights, the
backend, the precision and the library versions. Whether the exported model gives the torch fp32 embeddings is
checked on the first texts by :class:`~embedkit.models.precision.PrecisionEncoder`: a miss is an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from embedkit.errors import EmbedkitError

logger = logging.getLogger(__name__)

ModelBackend = Literal["torch", "onnx", "openvino"]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
# per-vector ||backend - torch fp32|| / ||torch fp32||: fp32 graphs agree to ~1e-5; bf16 as torch's bf16 check;
# dynamic int8 (per-channel weights) measured at 0.15 worst / 0.12 mean on MiniLM (cosine >= 0.989): 0.25 is a
# cosine of 0.97, a broken graph is far beyond it. Whether int8 keeps retrieval quality is measured (nDCG@10).
TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2, "int8": 0.25}

Run = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class BackendEntry:
    name: str
    packages: tuple[str, ...]  # the modules it imports; missing: an error naming ``install``
    install: str
    precisions: tuple[str, ...]
    load: Callable[[Path, str], Run] | None  # (exported folder, precision) -> run; None: torch itself
    # writes the graph this runtime loads into a folder: (graph module, example inputs, input names, output, folder,
    # precision); None with load None
    export: Callable[[torch.nn.Module, dict[str, torch.Tensor], tuple[str, ...], str, Path, str], None] | None = None
    # rewrites the exported fp32 graph in place for this runtime before any quantization: (model.onnx, config),
    # for the Hugging Face model types in ``optimizes`` only, exported with ``attention`` (the pattern it recognises)
    optimize: Callable[[Path, Any], None] | None = None
    optimizes: tuple[str, ...] = ()
    attention: str | None = None

    int8_packages: tuple[str, ...] = ()  # what its int8 needs beyond ``packages``

    def needs(self, precision: str) -> tuple[str, ...]:
        return self.packages + (self.int8_packages if precision == "int8" else ())

    def optimizes_model(self, config: Any) -> bool:
        return self.optimize is not None and getattr(config, "model_type", None) in self.optimizes


def _onnx_file(folder: Path, precision: str) -> Path:
    return folder / ("model_int8.onnx" if precision == "int8" else "model.onnx")


def _load_onnxruntime(folder: Path, precision: str) -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()  # as many as torch would use (serve --threads)
    session = ort.InferenceSession(str(_onnx_file(folder, precision)), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return lambda feeds: session.run(None, {k: feeds[k] for k in names})[0]


def _optimize_for_onnxruntime(path: Path, config: Any) -> None:
    """ONNX Runtime's transformer optimizer on ``path``: fused Attention, SkipLayerNormalization,
    EmbedLayerNormalization and BiasGelu for BERT-like graphs (exported with eager attention, the pattern it
    recognises). Only for the model types it is known to rewrite exactly (the registry entry's ``optimizes``): on a
    ModernBERT its partial fusions moved embeddings by 4e-3 (the fp32 check allows 1e-3), so others stay as
    exported. The number of heads and the width come from the model's config (the optimizer's own detection misses
    them on exported graphs)."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads, width = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    optimized = optimize_model(str(path), model_type="bert", num_heads=heads or 0, hidden_size=width or 0)
    fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    logger.info("ONNX Runtime transformer optimizer fused %s", fused or "nothing")
    optimized.save_model_to_file(str(path))


def _export_onnx(graph: torch.nn.Module, example: dict[str, torch.Tensor], inputs: tuple[str, ...], output: str,
                 folder: Path, precision: str) -> None:
    axes = {name: {0: "batch", 1: "tokens"} for name in (*inputs, "output")}
    if output == "logits":
        axes["output"] = {0: "batch"}
    torch.onnx.export(graph, tuple(example[k] for k in inputs), str(folder / "model.onnx"), dynamo=False,
                      input_names=list(inputs), output_names=["output"], dynamic_axes=axes, opset_version=OPSET)


def _export_openvino(graph: torch.nn.Module, example: dict[str, torch.Tensor], inputs: tuple[str, ...], output: str,
                     folder: Path, precision: str) -> None:
    """``model.xml`` / ``model.bin``: OpenVINO's conversion of the PyTorch module (fp32 weights; bf16 is a run-time
    hint; int8: NNCF's 8-bit weights, see :data:`BACKENDS`)."""
    import openvino as ov

    model = ov.convert_model(graph, example_input=tuple(example[k] for k in inputs),
                             input=[([-1, -1], ov.Type.i64) for _ in inputs])  # (batch, tokens), named below
    for port, name in zip(model.inputs, inputs):
        port.get_tensor().set_names({name})
    model.outputs[0].get_tensor().set_names({"output"})
    if precision == "int8":
        import nncf

        # 8-bit weights of every MatMul (per channel); activations stay in the run-time precision
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM)
    ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)


def _load_openvino(folder: Path, precision: str) -> Run:
    import openvino as ov

    core = ov.Core()
    # fp32 must be asked for: on a CPU with native bf16, OpenVINO's default inference precision is bf16
    hint = {"bf16": "bf16"}.get(precision, "f32")
    compiled = core.compile_model(core.read_model(str(folder / "model.xml")), "CPU",
                                  {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                   "INFERENCE_NUM_THREADS": torch.get_num_threads()})
    names = [i.get_any_name() for i in compiled.inputs]
    request = compiled.create_infer_request()

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        return request.infer({k: feeds[k] for k in names})[0].copy()

    return run


BACKENDS: dict[str, BackendEntry] = {
    "torch": BackendEntry("torch", ("torch",), "torch", ("fp32", "bf16"), None),
    "onnx": BackendEntry("onnx", ("onnxruntime", "onnx"), "pip install 'embedkit[onnx]'", ("fp32", "int8"),
                         _load_onnxruntime, _export_onnx, _optimize_for_onnxruntime, ("bert", "roberta", "xlm-roberta"),
                         "eager"),
    "openvino": BackendEntry("openvino", ("openvino",), "pip install 'embedkit[openvino]'", ("fp32", "bf16", "int8"),
                             _load_openvino, _export_openvino, int8_packages=("nncf",)),
}


def backend_entry(name: str, precision: str = "fp32") -> BackendEntry:
    """The registry entry of ``name``, checked usable here with ``precision`` (errors say what to do)."""
    if name not in BACKENDS:
        raise EmbedkitError(f"model backend {name!r}: valid backends are {', '.join(BACKENDS)}")
    entry = BACKENDS[name]
    if precision not in entry.precisions:
        fits = [b for b, e in BACKENDS.items() if precision in e.precisions]
        raise EmbedkitError(f"precision {precision} is not available with model backend {name} (it runs "
                            f"{', '.join(entry.precisions)}); use model backend {' or '.join(fits)}")
    missing = [p for p in entry.needs(precision) if importlib.util.find_spec(p) is None]
    if missing:
        raise EmbedkitError(f"model backend {name} needs {', '.join(missing)}, not installed here: "
                            f"{entry.install}")
    return entry


class RuntimeModel(torch.nn.Module):
    """Stands in for the Hugging Face model inside a sentence-transformers ``Transformer`` module: takes the
    tokenizer's tensors, runs the exported graph, returns ``{output: tensor}`` (``last_hidden_state`` or ``logits``)."""

    def __init__(self, run: Run, config: Any, output: str, backend: str, precision: str):
        super().__init__()
        self.run, self.config, self.output = run, config, output
        self.backend, self.precision = backend, precision

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        out = self.run({k: v.detach().cpu().numpy().astype(np.int64) for k, v in feeds.items()})
        return {self.output: torch.from_numpy(out).to(input_ids.device)}


class _Graph(torch.nn.Module):
    """The Hugging Face model as a function of the tokenizer's tensors, for ``torch.onnx.export``."""

    def __init__(self, hf_model: torch.nn.Module, output: str, inputs: tuple[str, ...]):
        super().__init__()
        self.hf_model, self.output, self.inputs = hf_model, output, inputs

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out = self.hf_model(**dict(zip(self.inputs, args)), return_dict=True)
        return out[self.output]


def _weights_key(hf_model: torch.nn.Module) -> str:
    """A hash of every parameter and buffer (names, shapes, bytes): the export is of exactly these weights."""
    digest = hashlib.sha256()
    for name, tensor in list(hf_model.named_parameters()) + list(hf_model.named_buffers()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _attention(hf_model: torch.nn.Module, implementation: str | None) -> Iterator[None]:
    """``hf_model`` with ``implementation`` as its attention for the export (a model that has no such
    implementation keeps its own), restored after."""
    before = getattr(getattr(hf_model, "config", None), "_attn_implementation", None)
    if implementation is None or before in (None, implementation) or not hasattr(hf_model, "set_attn_implementation"):
        yield
        return
    try:
        hf_model.set_attn_implementation(implementation)
    except (ValueError, ImportError, NotImplementedError):
        yield
        return
    try:
        yield
    finally:
        hf_model.set_attn_implementation(before)


def _reason(exc: BaseException) -> str:
    """``exc`` in one line: its type and first informative line (OpenVINO's first line names only its source file)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception from ")] or lines
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _export(hf_model: torch.nn.Module, output: str, inputs: tuple[str, ...], folder: Path, precision: str,
            entry: BackendEntry) -> None:
    """Into ``folder``, the graph ``entry``'s runtime loads: ONNX (``model.onnx``, optimized for its runtime when it
    has an optimizer, and for int8 ``model_int8.onnx``, ONNX Runtime's dynamic quantization of it) or OpenVINO
    (``model.xml``)."""
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])  # (2, 5): padding exercised
    mask = (ids != 0).long()
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    assert entry.export is not None
    was_training = hf_model.training
    hf_model.eval()
    try:
        optimize = entry.optimizes_model(hf_model.config)
        with torch.no_grad(), _attention(hf_model, entry.attention if optimize else None):
            entry.export(_Graph(hf_model, output, inputs), example, inputs, output, folder, precision)
    finally:
        hf_model.train(was_training)
    if optimize and entry.optimize is not None:
        entry.optimize(folder / "model.onnx", hf_model.config)
    if precision == "int8" and entry.export is _export_onnx:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # per-channel int8 weights of the MatMuls (embedding tables stay fp32): per-tensor scales lost 2.5x more;
        # a fused Attention's projections are quantized too (QAttention)
        quantize_dynamic(str(folder / "model.onnx"), str(folder / "model_int8.onnx"), weight_type=QuantType.QInt8,
                         per_channel=True, op_types_to_quantize=["MatMul", "Attention"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fused ops: no inference


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from embedkit.artifacts import versions

    found = versions()
    for name in ("onnx", "onnxruntime", "openvino", "nncf"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def exported_folder(hf_model: torch.nn.Module, output: str, inputs: tuple[str, ...], precision: str,
                    entry: BackendEntry) -> Path:
    """The cached export of ``hf_model`` for ``entry``'s runtime (made now when missing; atomic, with a manifest)."""
    from embedkit.artifacts import cache_dir, publish_dir, settings_key, write_json

    graph_precision = "int8" if precision == "int8" else "fp32"  # bf16 is a run-time hint, same graph
    found = _versions()
    optimized = entry.optimizes_model(hf_model.config)
    key = settings_key([_weights_key(hf_model), output, list(inputs), graph_precision, OPSET, found, entry.name] +
                       ([entry.attention] if optimized else []))
    final = cache_dir() / "model-backends" / key
    if (final / "manifest.json").is_file():
        return final
    logger.info("exporting %s for %s (%s) into %s", type(hf_model).__name__, entry.name, graph_precision, final)
    try:
        with publish_dir(final, overwrite=True, keep_partial=False) as work:
            _export(hf_model, output, inputs, work, graph_precision, entry)
            write_json(work / "manifest.json", {"what": "embedkit model backend export", "model": type(hf_model)
                                                .__name__, "output": output, "inputs": list(inputs),
                                                "backend": entry.name, "precision": graph_precision,
                                                "opset": OPSET, "versions": found,
                                                "optimized_for": entry.name if optimized else None,
                                                "attention": entry.attention})
    except EmbedkitError:
        raise
    except Exception as exc:
        raise EmbedkitError(f"could not export {type(hf_model).__name__} for model backend {entry.name} "
                            f"({_reason(exc)}); use model backend torch") from exc
    return final


def _signature(module: Any, hf_model: torch.nn.Module) -> tuple[tuple[str, ...], str]:
    """The graph's inputs (``token_type_ids`` only for models that take it) and the output the library reads."""
    import inspect

    params = inspect.signature(hf_model.forward).parameters
    takes_types = "token_type_ids" in params and bool(getattr(hf_model.config, "type_vocab_size", 0))
    inputs = INPUTS if takes_types else INPUTS[:2]
    config = getattr(module, "modality_config", None) or {}
    output = config.get("text", {}).get("method_output_name", "last_hidden_state")
    if isinstance(output, (list, tuple)):
        output = output[0] if len(output) == 1 else None
    if output not in ("last_hidden_state", "logits"):
        raise EmbedkitError(f"model backends export last_hidden_state or logits; this model's transformer gives "
                            f"{output!r}: use model backend torch")
    return inputs, output


def runs_torch(backend: str) -> bool:
    """Whether ``backend`` keeps torch's own forward (the packed ModernBERT forward included)."""
    return BACKENDS[backend].load is None


def switches(backend: str, precision: str) -> bool:
    """Whether an encoder on ``backend`` in ``precision`` differs from torch fp32 (and is checked against it)."""
    return precision != "fp32" or not runs_torch(backend)


def tolerance(backend: str, precision: str) -> float:
    from embedkit.models.precision import BF16_TOLERANCE

    return BF16_TOLERANCE if runs_torch(backend) else TOLERANCE[precision]


def switch(model: Any, backend: str, precision: str) -> None:
    """Make ``model`` (loaded in torch fp32) run on ``backend`` in ``precision``: torch bf16 casts its weights
    once (:func:`~embedkit.models.precision.cast_to_bf16`), other backends run an export (:func:`use_backend`)."""
    backend_entry(backend, precision)
    if runs_torch(backend):
        if precision == "bf16":
            from embedkit.models.precision import cast_to_bf16

            cast_to_bf16(model)
        return
    use_backend(model, backend, precision)


def use_backend(model: Any, backend: str, precision: str) -> None:
    """Run ``model``'s transformer on ``backend`` from now on (exported or loaded from the cache).

    Raises:
        EmbedkitError: an unknown or missing runtime, a precision it does not run, or a failed export.
    """
    from embedkit.models.precision import transformer_module

    entry = backend_entry(backend, precision)
    if entry.load is None:
        return
    module = transformer_module(model)
    if module is None:
        raise EmbedkitError(f"model backend {backend}: {type(model).__name__} has no transformer module to export")
    hf_model = module.auto_model
    if isinstance(hf_model, RuntimeModel):
        return
    inputs, output = _signature(module, hf_model)
    folder = exported_folder(hf_model, output, inputs, precision, entry)
    try:
        run = entry.load(folder, precision)
    except Exception as exc:
        raise EmbedkitError(f"model backend {backend} could not load the export in {folder} "
                            f"({_reason(exc)})") from exc
    attr = "model" if isinstance(getattr(type(module), "auto_model", None), property) else "auto_model"
    setattr(module, attr, RuntimeModel(run, hf_model.config, output, backend, precision))
    logger.info("model backend %s (%s) from %s", backend, precision, folder)
