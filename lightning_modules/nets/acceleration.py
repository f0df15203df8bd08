"""Two speed options of a network, applied in place: channels-last memory format and ``torch.compile``.

``channels_last`` stores every 4-D weight as NHWC (``torch.channels_last``) and, through a forward pre-hook,
hands the network its (B, C, H, W) images in the same layout, which is what cuDNN's tensor-core convolutions
(and oneDNN's on a CPU) read without a transpose. Paths that bypass ``net(...)`` (timm's ``forward_features``
of the CAM callbacks, ``embed`` of the triplet network) still get channels-last feature maps: a convolution
with channels-last weights returns a channels-last output. Only the layout changes, not the values beyond
float round-off.

``compile`` calls ``net.compile(**options)``: the module's ``__call__`` is compiled in place, so the module keeps
its own ``state_dict`` keys (``torch.compile(net)`` would return a wrapper whose keys carry an ``_orig_mod.``
prefix) and a checkpoint loads into a compiled or an eager network alike. Other methods (``forward_features``,
``embed``, ...) stay eager. TorchInductor, the default backend, compiles C++ (CPU) or Triton (GPU) kernels and
needs a C++ compiler (``$CXX``, else ``g++``); without one the option stops at once with an error saying so,
instead of at the first training step.
"""

from __future__ import annotations

import inspect
import os
import shutil

import torch
from torch import nn

from dermlab.errors import DataError

COMPILE_OPTIONS = tuple(name for name in inspect.signature(torch.compile).parameters if name != "model")


def use_channels_last(net: nn.Module) -> nn.Module:
    """Convert ``net``'s 4-D parameters and buffers to channels-last and make it convert its 4-D inputs too."""
    net.to(memory_format=torch.channels_last)
    net.register_forward_pre_hook(channels_last_inputs)
    return net


def channels_last_inputs(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: each 4-D tensor argument (B, C, H, W) in channels-last layout; others unchanged."""
    return tuple(arg.contiguous(memory_format=torch.channels_last)
                 if isinstance(arg, torch.Tensor) and arg.ndim == 4 else arg for arg in args)


def compile_in_place(net: nn.Module, options: bool | dict) -> nn.Module:
    """``net.compile(**options)``: ``True`` or a dict (its keyword arguments, e.g. ``{"mode": "max-autotune"}``)
    compiles, ``False`` or ``None`` leaves ``net`` eager.

    Raises:
        DataError: an option torch.compile does not take, or the inductor backend without a C++ compiler.
    """
    if options is False or options is None:
        return net
    kwargs = {} if options is True else dict(options)
    unknown = sorted(set(kwargs) - set(COMPILE_OPTIONS))
    if unknown:
        raise DataError(f"compile: unknown torch.compile option(s) {unknown}; it takes {list(COMPILE_OPTIONS)}")
    if kwargs.get("backend", "inductor") == "inductor":
        require_cxx_compiler()
    net.compile(**kwargs)
    return net


def require_cxx_compiler() -> str:
    """The C++ compiler TorchInductor will use (its own search: ``$CXX``, else ``g++``).

    Raises:
        DataError: none works; the message says how to go on.
    """
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:  # inductor moved its helper: fall back to the same default search
        found = shutil.which(os.environ.get("CXX", "g++"))
        if found:
            return found
    else:
        try:
            return get_cpp_compiler()
        except InvalidCxxCompiler:
            pass
    raise DataError(f"compile: torch.compile's inductor backend needs a C++ compiler and none works here "
                    f"(looked for {os.environ.get('CXX', 'g++')!r}; set CXX or install g++), or set compile: false "
                    "(eager), or compile: {backend: aot_eager} (no compiler, little speed-up)")


def apply_speed_options(net: nn.Module, channels_last: bool = False, compile: bool | dict = False) -> nn.Module:
    """``net`` in channels-last layout and / or compiled in place (layout first, so compilation sees it)."""
    if channels_last:
        use_channels_last(net)
    return compile_in_place(net, compile)
