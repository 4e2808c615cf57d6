r"""INNAprop's state dicts to and from the official INNAprop code's format (:math:`\psi` instead of the phase)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .. import formulas

if TYPE_CHECKING:
    from .innaprop import INNAprop

__all__ = ["OFFICIAL_GROUP_KEYS", "from_official_state_dict", "to_official_state_dict"]

#: The hyperparameters a group of the official code and of ours both hold.
OFFICIAL_GROUP_KEYS = ("lr", "alpha", "beta", "sigma", "eps", "weight_decay")


def from_official_state_dict(official: dict[str, Any], optimizer: INNAprop) -> dict[str, Any]:
    r"""A state dict of the official INNAprop code, converted for ``optimizer.load_state_dict``.

    The official code keeps, per parameter, ``step``, ``exp_avg_sq`` (:math:`v`) and ``psi`` (:math:`\psi`), and
    per group ``lr, alpha, beta, sigma, eps, weight_decay, maximize, capturable``. The phase
    :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` needs :math:`\theta`: **load the model's weights from the
    same checkpoint first**, then::

        model.load_state_dict(ckpt["model"])
        opt = inna.INNAprop(model.parameters())
        opt.load_state_dict(inna.torch.innaprop.from_official_state_dict(ckpt["optimizer"], opt))

    and ``opt`` continues the official run's trajectory (to round-off: computing :math:`\phi` from
    :math:`\psi` once costs a few ulps of :math:`\|\theta\|/\beta`). ``foreach``, ``fused``, ``differentiable``
    and ``state_dtype`` are kept from ``optimizer``; ``capturable`` is dropped. Parameters are matched by order, as
    ``torch.optim`` does; a mismatch raises ``ValueError``.
    """
    where = "from_official_state_dict"
    if not isinstance(official, dict) or "state" not in official or "param_groups" not in official:
        raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups' (the official state_dict())")
    if len(official["param_groups"]) != len(optimizer.param_groups):
        raise ValueError(
            f"{where}: the state dict has {len(official['param_groups'])} parameter groups, "
            f"the optimizer has {len(optimizer.param_groups)}"
        )
    groups, state = [], {}
    for g, (saved, group) in enumerate(zip(official["param_groups"], optimizer.param_groups)):
        missing = [k for k in OFFICIAL_GROUP_KEYS if k not in saved]
        if missing:
            raise ValueError(f"{where}: parameter group {g} lacks {missing}: not a state dict of INNAprop")
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(
                f"{where}: parameter group {g} has {len(saved['params'])} parameters in the state dict and "
                f"{len(group['params'])} in the optimizer: the state dict comes from another model"
            )
        ours = {k: saved[k] for k in OFFICIAL_GROUP_KEYS}
        ours["maximize"] = bool(saved.get("maximize", False))
        ours.update({k: group[k] for k in ("foreach", "fused", "differentiable", "state_dtype")})
        ours.update({k: saved[k] for k in ("initial_lr", "param_names") if k in saved})
        groups.append({**ours, "params": list(saved["params"])})
        for key, param in zip(saved["params"], group["params"]):
            if key not in official["state"]:
                continue
            s = official["state"][key]
            if not isinstance(s, dict) or not {"step", "exp_avg_sq", "psi"} <= set(s):
                keys = sorted(s) if isinstance(s, dict) else type(s).__name__
                raise ValueError(
                    f"{where}: the state of parameter {key} has keys {keys}, expected step, exp_avg_sq and psi"
                )
            psi = s["psi"]
            if psi.shape != param.shape:
                raise ValueError(
                    f"{where}: the saved psi of parameter {key} has shape {tuple(psi.shape)} but the parameter has "
                    f"shape {tuple(param.shape)}: the state dict comes from another model"
                )
            theta = param.detach().to(device=psi.device, dtype=psi.dtype)
            state[key] = {
                "step": torch.as_tensor(s["step"], dtype=torch.float32).detach().reshape(()).cpu().clone(),
                "exp_avg_sq": s["exp_avg_sq"].detach().clone(),
                "phase": formulas.phase_from_psi(theta, psi.detach(), saved["alpha"], saved["beta"]),
            }
    return {"state": state, "param_groups": groups}


def to_official_state_dict(optimizer: INNAprop) -> dict[str, Any]:
    r"""``optimizer``'s state in the official INNAprop code's format (``psi`` from :meth:`INNAprop.psi`, the step as
    a 0-dim float32 tensor, ``capturable=False``), for ``load_state_dict`` of the official optimizer."""
    ours = optimizer.state_dict()
    groups = []
    for saved in ours["param_groups"]:
        official = {k: saved[k] for k in OFFICIAL_GROUP_KEYS}
        official.update(maximize=saved["maximize"], capturable=False, params=list(saved["params"]))
        groups.append(official)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    for key, value in ours["state"].items():
        param = params[key]
        state[key] = {
            "step": value["step"].detach().to(device="cpu", dtype=torch.float32).reshape(()).clone(),
            "exp_avg_sq": value["exp_avg_sq"].detach().clone(),
            "psi": optimizer.psi(param).clone(),
        }
    return {"state": state, "param_groups": groups}
