"""Let ``import torchvision`` succeed on the CPU build of torch (environment workaround, not a recipe).

The torchvision 0.28.0 wheel from PyPI links ``libc10_cuda.so``, absent from the CPU torch on this
machine, so its C ops do not load; ``torchvision/_meta_registrations.py`` then registers fakes for
``torchvision::nms`` and ``qnms`` without the ``_has_ops()`` guard its other registrations have,
and the import fails. timm imports torchvision unconditionally, transformers when it is installed.
Defining the two schemas first lets the import finish; no recipe calls a torchvision op.
"""
import torch

try:
    import torchvision  # noqa: F401
except (RuntimeError, OSError):
    _lib = torch.library.Library("torchvision", "DEF")
    for _op in ("nms", "qnms"):
        _lib.define(_op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
