"""The machine a measurement ran on (CPU model, native bf16, cores, GPU) and the load it shared the machine with,
detected at run time: every figure in the docs names both."""

from __future__ import annotations

import os

SHARED_LOAD = 0.5  # 1-minute load average per CPU above which other work competed for the cores


def cpu_model() -> str:
    from embedkit.models.precision import cpu_name

    return cpu_name()


def gpu_name() -> str | None:
    """The first CUDA device's name, ``None`` without one (or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def describe() -> str:
    """``"<CPU model> (<native bf16 sets> | no native bf16), <n> CPUs, <GPU> | no GPU"``."""
    from embedkit.models.precision import cpu_bf16_features

    features = ", ".join(cpu_bf16_features()) or "no native bf16"
    return f"{cpu_model()} ({features}), {os.cpu_count()} CPUs, {gpu_name() or 'no GPU'}"


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def shared(one_minute: float | None = None) -> bool:
    """Whether other work competed for the cores (the 1-minute load average against the CPU count)."""
    one_minute = os.getloadavg()[0] if one_minute is None else one_minute
    return one_minute > SHARED_LOAD * (os.cpu_count() or 1)


def load_note(moment: str = "at the end", verdict: bool = False) -> str:
    """``"load average 1.2 / 0.9 (1 / 5 min) at the end on 2 CPUs"``; with ``verdict`` (for a figure taken before
    the work, when the run's own load is not in it yet) what the load says about the times measured."""
    one, five, _ = os.getloadavg()
    note = f"load average {one:.1f} / {five:.1f} (1 / 5 min) {moment} on {os.cpu_count()} CPUs"
    if not verdict:
        return note
    return note + (": other jobs shared the machine: times are not comparable with an idle machine's"
                   if shared(one) else ": nothing else was running")


def facts() -> dict:
    """The machine as a JSON object: ``cpu``, ``cpus``, ``gpu``, ``load_average`` (now: call it before the work)
    and a ``note`` saying whether other jobs shared the cores."""
    load = load_average()
    note = ("shared machine: other jobs ran on the same cores during this run (see load_average)" if shared(load[0])
            else "nothing else was running when this run started (see load_average)")
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "gpu": gpu_name(), "load_average": load, "note": note}
