"""bf16 linear layers on the CPU through oneDNN with weights packed once (and GELU fused where a model applies it
right after a linear layer).

In stock PyTorch a bf16 ``nn.Linear`` on the CPU is ``addmm``, which first copies the bias into every output row
and reorders the weight on every call: on a 2-core AMX Xeon, (7680 x 384) @ (384 x 1536) took 24 ms that way and
8 ms through ``torch.ops.mkldnn._linear_pointwise`` with the weight reordered once (``_reorder_linear_weight``:
what ``torch.compile`` does for frozen CPU models), equal to bf16 rounding (often bit-identical); the same layer
followed by GELU, 37 ms against 16 ms with GELU as the kernel's post-op (``eval/cpu_kernels.py``). fp32 gains
nothing (MKL's sgemm already fuses the bias), so only bf16 layers are replaced.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)


@functools.cache
def available() -> bool:
    """Whether this torch build runs oneDNN's bf16 linear kernel on this CPU (checked on a tiny layer)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    try:
        weight = torch.ones(4, 8, dtype=torch.bfloat16)
        got = torch.ops.mkldnn._linear_pointwise(torch.ones(2, 8, dtype=torch.bfloat16),
                                                 torch.ops.mkldnn._reorder_linear_weight(weight, None),
                                                 None, "none", [], "")
    except (RuntimeError, NotImplementedError):
        return False
    return bool((got.float() == 8).all())


class OneDnnLinear(torch.nn.Module):
    """``nn.Linear`` (bf16, CPU, inference) with its weight in oneDNN's packed layout; ``gelu``: GELU (exact, as
    ``nn.functional.gelu``) applied inside the kernel."""

    def __init__(self, linear: torch.nn.Linear, gelu: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.gelu = linear.in_features, linear.out_features, gelu
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gelu:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu", [], "none")
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, gelu={self.gelu}"


def _is_exact_gelu(module: Any) -> bool:
    """transformers' ``GELUActivation`` (erf GELU) or ``nn.GELU()`` without the tanh approximation."""
    if isinstance(module, torch.nn.GELU):
        return module.approximate != "tanh"  # the other value: exact
    return type(module).__name__ == "GELUActivation" and getattr(module, "act", None) is torch.nn.functional.gelu


def use_onednn_linears(model: torch.nn.Module) -> int:
    """Replace every bf16 ``nn.Linear`` of ``model`` (on the CPU) by :class:`OneDnnLinear`, with GELU fused where a
    module applies it right after its ``dense`` layer (the BERT family's ``intermediate``). Returns how many.
    Inference only: the packed weights are not parameters."""
    if not available():
        logger.info("oneDNN's bf16 linear kernel is not available here: bf16 linear layers stay nn.Linear")
        return 0
    replaced = 0
    for parent in list(model.modules()):
        dense = getattr(parent, "dense", None)
        fuse = isinstance(dense, torch.nn.Linear) and _is_exact_gelu(getattr(parent, "intermediate_act_fn", None))
        for name, child in list(parent.named_children()):
            if not isinstance(child, torch.nn.Linear) or child.weight.dtype != torch.bfloat16 or \
                    child.weight.device.type != "cpu":
                continue
            gelu = fuse and child is dense
            setattr(parent, name, OneDnnLinear(child, gelu=gelu))
            if gelu:
                parent.intermediate_act_fn = torch.nn.Identity()
            replaced += 1
    return replaced
