"""``torch.amp.GradScaler``'s two routes, as the INNA family's updates take them.

The *fused* route hands ``grad_scale`` and ``found_inf`` to the update (the C loop and the compiled route unscale
in their kernel and write nothing when ``found_inf`` is nonzero, with no host read); the *default* route unscales
the gradients in place by the scaler's inverse scale and skips the step when ``found_inf`` is nonzero (one host
read). Both may have any 1-element shape, as for torch's fused optimizers.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["amp_prologue", "amp_scalars", "inverse_scale", "unscale_and_check"]


def amp_scalars(grad_scale: Tensor | None, found_inf: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """GradScaler's ``grad_scale`` and ``found_inf`` as 0-dim tensors (they may come as any 1-element shape)."""
    out = []
    for name, t in (("grad_scale", grad_scale), ("found_inf", found_inf)):
        if t is not None and t.dim() != 0:
            if t.numel() != 1:
                raise ValueError(f"{name} must be a 1-element tensor, got shape {tuple(t.shape)}")
            t = t.reshape(())
        out.append(t)
    return out[0], out[1]


def inverse_scale(grad_scale: Tensor) -> Tensor:
    """The scaler's own inverse, ``float(1 / double(scale))`` (0-dim)."""
    return grad_scale.reshape(()).double().reciprocal().float()


def unscale_and_check(grads: list[Tensor], grad_scale: Tensor | None, found_inf: Tensor | None) -> bool:
    """The scaler's default route on ``grads`` (in place); True when the step must be skipped."""
    if grad_scale is not None and grads:
        torch._foreach_mul_(grads, inverse_scale(grad_scale).to(grads[0].device))
    return found_inf is not None and bool(found_inf.item())


def amp_prologue(
    grads: list[Tensor],
    masters: list[Tensor | None] | None,
    fused: bool | None,
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> tuple[bool, Tensor | None, Tensor | None]:
    """What an update does with GradScaler's inputs before it runs: ``(skip, grad_scale, found_inf)``.

    The fused path takes them into its kernel; the others take the default route here. Master copies are unscaled
    here too, before the upcast, in the gradients' own dtype, as the scaler's default route does."""
    grad_scale, found_inf = amp_scalars(grad_scale, found_inf)
    if not fused and (grad_scale is not None or found_inf is not None):
        return unscale_and_check(grads, grad_scale, found_inf), None, None
    if grad_scale is not None and masters is not None and any(m is not None for m in masters):
        torch._foreach_mul_(grads, inverse_scale(grad_scale).to(grads[0].device))
        grad_scale = None
    return False, grad_scale, found_inf
