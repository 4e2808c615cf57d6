r"""What the INNA family's ``torch.optim`` optimizers share: the bookkeeping around their updates.

:class:`inna.INNA` and :class:`inna.INNAprop` differ in their update (:mod:`inna.torch.functional`,
:mod:`inna.torch.innaprop`), their hyperparameters and the state they keep; everything else is here, written once
and parametrised by each class's name, state keys and hyperparameter ranges:

- validation of hyperparameters, with a ``ValueError`` that names the parameter and its allowed range, before
  anything changes (constructor, :meth:`add_param_group`, :meth:`load_state_dict`);
- the ``state_dtype`` master copy of low-precision parameters (:func:`master_dtype`);
- the once-only :class:`~inna.INNAStabilityWarning`, pointed at the user's ``step()`` call;
- :meth:`psi`, the authors' :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi` from the stored phase :math:`\phi`;
- a :meth:`load_state_dict` that checks a state dict against this optimizer (optimizer, model, hyperparameters)
  before changing anything, and keeps high-precision state at its saved precision;
- ``__setstate__`` back-fill of options that older state dicts and pickles lack;
- ``torch.amp.GradScaler``'s fused route with ``fused=True`` (:meth:`_amp_inputs`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..formulas import INNAStabilityWarning, psi_from_phase, stability_rule_broken, stability_warning_message
from ._amp import amp_scalars, unscale_and_check
from ._warn import caller_stacklevel

__all__ = ["InnaFamilyOptimizer", "Range", "master_dtype"]

#: A hyperparameter check: (name, value, the allowed range as text, predicate on the float value).
Range = tuple[str, Any, str, Callable[[float], bool]]

_GRAD, _IS_SPARSE = Tensor.grad.__get__, Tensor.is_sparse.__get__

_FLOAT_RANK = {torch.float16: 1, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3}

#: Keys torch and its schedulers put in parameter groups (never an optimizer's hyperparameter).
_BOOKKEEPING_GROUP_KEYS = frozenset({"params", "param_names", "initial_lr"})


def master_dtype(param: Tensor, state_dtype: torch.dtype | None) -> torch.dtype | None:
    """The dtype of the master copy for ``param``, or None when the parameter's own precision suffices."""
    if state_dtype is None or _FLOAT_RANK.get(param.dtype, 99) >= _FLOAT_RANK[state_dtype]:
        return None
    return state_dtype


def as_float(optimizer: str, name: str, value: Any) -> float:
    """``value`` (a number or a 1-element Tensor) as a float; TypeError/ValueError naming ``name`` otherwise."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element, got shape {tuple(value.shape)}")
        return float(value.detach().reshape(()).item())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{optimizer}: {name} must be a real number, got {type(value).__name__}")
    return float(value)


class InnaFamilyOptimizer(Optimizer):
    """Base class of :class:`inna.INNA` and :class:`inna.INNAprop` (not for direct use).

    A subclass sets the class attributes below and implements :meth:`_ranges` (its hyperparameters and their
    allowed ranges), ``_init_group`` and ``step``.
    """

    #: The optimizer's name in messages.
    NAME: ClassVar[str]
    #: Group keys a state dict must have to come from this optimizer.
    REQUIRED_GROUP_KEYS: ClassVar[tuple[str, ...]] = ("lr", "alpha", "beta")
    #: The other per-group options, with the value a state dict saved by an older version that lacks them gets.
    BACKFILL: ClassVar[dict[str, Any]]
    #: Every key of the per-parameter state, and those every saved per-parameter state must have.
    STATE_KEYS: ClassVar[frozenset[str]]
    REQUIRED_STATE_KEYS: ClassVar[frozenset[str]] = frozenset({"phase"})
    #: State keys holding a 1-element tensor (a step counter) rather than a tensor shaped like the parameter.
    SCALAR_STATE_KEYS: ClassVar[frozenset[str]] = frozenset()
    #: Group options of another optimizer that this one refuses (INNA-family siblings' options are refused too).
    FOREIGN_GROUP_KEYS: ClassVar[frozenset[str]] = frozenset()

    _family: ClassVar[list[type[InnaFamilyOptimizer]]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        InnaFamilyOptimizer._family.append(cls)

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]], defaults: dict
    ) -> None:
        self._check_hyperparameters(defaults)
        self._warned_unstable = False
        super().__init__(params, defaults)

    # ------------------------------------------------------------------------------------------ validation

    @classmethod
    def _ranges(cls, group: dict[str, Any]) -> list[Range]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @classmethod
    def _group_keys(cls) -> frozenset[str]:
        return frozenset(cls.REQUIRED_GROUP_KEYS) | frozenset(cls.BACKFILL)

    @classmethod
    def _check_hyperparameters(cls, group: dict[str, Any]) -> None:
        """Raise ValueError naming the first hyperparameter of ``group`` outside its allowed range."""
        name_ = cls.NAME
        for name, value, allowed, ok in cls._ranges(group):
            if name != "lr" and isinstance(value, Tensor):
                raise TypeError(f"{name_}: {name} must be a float, not a Tensor (only lr may be a Tensor)")
            v = as_float(name_, name, value)
            if not math.isfinite(v) or not ok(v):
                raise ValueError(f"Invalid {name} value: {v} ({name_} requires {allowed})")
        if group.get("fused") and group.get("foreach"):
            raise ValueError(f"{name_}: `fused` and `foreach` cannot both be True")
        if group.get("differentiable") and (group.get("fused") or group.get("foreach")):
            raise ValueError(f"{name_}: `differentiable=True` is only supported with foreach=False and fused=False")
        state_dtype = group.get("state_dtype")
        if state_dtype is not None and state_dtype not in (torch.float32, torch.float64):
            raise ValueError(
                f"Invalid state_dtype value: {state_dtype} ({name_} requires None, torch.float32 or torch.float64)"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group; its hyperparameters are checked before anything changes."""
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_hyperparameters(merged)
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_warned_unstable", False)
        for group in self.param_groups:
            for key, value in self.BACKFILL.items():
                group.setdefault(key, value)

    # ---------------------------------------------------------------------------------------------- state

    def _master(self, param: Tensor, state: dict[str, Any], state_dtype: torch.dtype | None) -> torch.dtype | None:
        """Create, refresh or drop ``state["master"]`` for ``param``; return the master dtype (None: no master)."""
        dtype = master_dtype(param, state_dtype)
        if dtype is None:
            state.pop("master", None)  # state_dtype switched off: the parameter holds the values
        elif "master" not in state or state["master"].dtype != dtype:
            state["master"] = param.detach().to(dtype, copy=True)
        return dtype

    def _reject_sparse(self, params: list[Tensor]) -> None:
        if any(map(_IS_SPARSE, map(_GRAD, params))):  # before any state is created (C-level iteration)
            raise RuntimeError(f"{self.NAME} does not support sparse gradients")

    def _group_of(self, param: Tensor) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(p is param for p in g["params"]))

    def psi(self, param: Tensor) -> Tensor | None:
        r"""The authors' :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi` for ``param`` (``None`` before its
        first step)."""
        state = self.state.get(param)
        if not state or "phase" not in state:
            return None
        group = self._group_of(param)
        theta = state.get("master", param).detach()
        return psi_from_phase(theta, state["phase"], group["alpha"], group["beta"])

    # ----------------------------------------------------------------------------------- GradScaler's route

    @property
    def _step_supports_amp_scaling(self) -> bool:
        """With ``fused=True``, ``torch.amp.GradScaler`` hands step() ``grad_scale`` and ``found_inf`` (its fused
        route: unscaling and skipping happen in the kernel, with no host sync)."""
        return bool(self.defaults.get("fused"))

    def _amp_inputs(self) -> tuple[Tensor | None, Tensor | None] | None:
        """This step's ``(grad_scale, found_inf)`` from GradScaler's fused route (``(None, None)`` without it), or
        ``None`` when the step must be skipped.

        A step where some parameter with a gradient has no state yet (the first step) takes the scaler's default
        route here instead (one host read of ``found_inf``): an initial state may need the unscaled gradient
        (INNA's initial phase), and a skipped first step must create no state."""
        # GradScaler sets these two attributes around step() (see _step_supports_amp_scaling).
        grad_scale, found_inf = amp_scalars(getattr(self, "grad_scale", None), getattr(self, "found_inf", None))
        if (grad_scale is not None or found_inf is not None) and self._some_state_missing():
            grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
            if unscale_and_check(grads, grad_scale, found_inf):
                return None
            return None, None
        return grad_scale, found_inf

    def _some_state_missing(self) -> bool:
        return any(
            p.grad is not None and not self.REQUIRED_STATE_KEYS <= self.state.get(p, {}).keys()
            for group in self.param_groups
            for p in group["params"]
        )

    # ------------------------------------------------------------------------------------------- warnings

    def _warn_once(self, key: str, message: str) -> None:
        """Warn ``message`` (a UserWarning, pointed at the user's ``step()``) the first time ``key`` comes up."""
        warned = self.__dict__.setdefault("_warned", set())
        if key not in warned:
            warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())

    # ------------------------------------------------------------------------------------ stability warning

    def _maybe_warn_unstable(self) -> None:
        if not self._warned_unstable and not torch.compiler.is_compiling():
            self._warn_if_unstable()

    def _warn_if_unstable(self) -> None:
        for i, group in enumerate(self.param_groups):
            lr, rtol = group["lr"], 0.0
            if isinstance(lr, Tensor):
                if lr.device.type != "cpu":
                    continue  # reading it would synchronise the device every step
                # a Tensor lr holds beta only to its dtype's precision (0.1 in float32 reads back 0.10000000149)
                lr, rtol = lr.item(), torch.finfo(lr.dtype).eps if lr.is_floating_point() else 0.0
            alpha, beta = group["alpha"], group["beta"]
            if stability_rule_broken(lr, alpha, beta, rtol=rtol):
                self._warned_unstable = True
                warnings.warn(
                    stability_warning_message(self.NAME, f"param group {i}", lr, alpha, beta),
                    INNAStabilityWarning,
                    stacklevel=caller_stacklevel(),
                )
                return

    # ---------------------------------------------------------------------------------------- state dicts

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state saved by :meth:`state_dict`.

        As for every ``torch.optim`` optimizer, the saved parameter groups' hyperparameters (``lr``, ``alpha``,
        ``beta``, ...) replace this optimizer's, also when the state dict was saved before the first step (and
        so holds no per-parameter state). The state is checked against this optimizer before anything changes:
        a state dict that is not a dict, comes from another optimizer (another group layout or other state
        keys), from another model (other group sizes or parameter shapes) or has out-of-range hyperparameters
        raises ``ValueError`` saying what does not match, and leaves the optimizer as it was. A step counter
        saved as a number or a 1-element tensor loads as a 0-dim float32 tensor, as ``torch.optim.AdamW`` does.

        The check runs as the last ``load_state_dict`` pre-hook (after the user's, which may rewrite the state
        dict), and the high-precision state (``state_dtype``) comes back exactly as saved in a post-hook that runs
        before the user's.
        """
        self._check_is_state_dict(state_dict)
        keep_dtype: list[tuple[Tensor, str, Tensor]] = []

        def check(optimizer: Optimizer, loaded: dict[str, Any]) -> dict[str, Any]:
            keep_dtype.extend(self._check_loadable(loaded))
            return self._with_tensor_counters(loaded)

        def restore(optimizer: Optimizer) -> None:
            # the base class casts floating state to the parameter's dtype; a high-precision state must come
            # back exactly as saved
            for param, key, saved in keep_dtype:
                self.state[param][key] = saved.to(device=param.device, copy=True)

        pre = self.register_load_state_dict_pre_hook(check)
        post = self.register_load_state_dict_post_hook(restore, prepend=True)
        try:
            super().load_state_dict(state_dict)
        finally:
            pre.remove()
            post.remove()

    def _with_tensor_counters(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` (a copy where something changes) with every step counter a 0-dim float32 tensor."""
        if not self.SCALAR_STATE_KEYS:
            return state_dict
        states = {}
        for index, value in state_dict["state"].items():
            if isinstance(value, dict):
                value = dict(value)
            for key in self.SCALAR_STATE_KEYS & (value.keys() if isinstance(value, dict) else set()):
                count = value[key]
                count = count.detach() if isinstance(count, Tensor) else torch.tensor(float(count))
                value[key] = count.to(torch.float32, copy=True).reshape(())
            states[index] = value
        return {**state_dict, "state": states}

    def _check_is_state_dict(self, state_dict: Any) -> None:
        if (
            not isinstance(state_dict, dict)
            or not isinstance(state_dict.get("param_groups"), list)
            or not isinstance(state_dict.get("state"), dict)
        ):
            raise ValueError(
                f"{self.NAME}.load_state_dict: expected a dict with 'state' and 'param_groups' (from state_dict())"
            )

    def _not_saved_by_us(self, state_dict: dict[str, Any]) -> str:
        """The end of the 'was not saved by' message (subclasses may point at a converter)."""
        return f"this state dict was not saved by {self.NAME}"

    def _check_loadable(self, state_dict: dict[str, Any]) -> list[tuple[Tensor, str, Tensor]]:
        """Raise ValueError when ``state_dict`` cannot be loaded here; return the saved high-precision state
        tensors to keep as saved, as ``(parameter, state key, tensor)``."""
        self._check_is_state_dict(state_dict)
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{self.NAME}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        index_to_param: dict[Any, tuple[int, Tensor, str]] = {}
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            self._check_group(g, saved, group, state_dict)
            names = group.get("param_names") or [""] * len(group["params"])
            for i, (key, param, name) in enumerate(zip(saved["params"], group["params"], names)):
                index_to_param[key] = (g, param, name or f"#{i}")
        keep_dtype: list[tuple[Tensor, str, Tensor]] = []
        for key, value in state_dict["state"].items():
            if key in index_to_param:
                g, param, name = index_to_param[key]
                # load_state_dict replaces a group's options by the saved ones, state_dtype included
                wanted = master_dtype(param, saved_groups[g].get("state_dtype"))
                self._check_state(f"parameter {name} of group {g}", value, param, state_dict)
                if wanted is not None:
                    keep_dtype += [
                        (param, k, t)
                        for k, t in value.items()
                        if k not in self.SCALAR_STATE_KEYS and _dtype(t) == wanted
                    ]
        return keep_dtype

    def _check_group(self, g: int, saved: Any, group: dict[str, Any], state_dict: dict[str, Any]) -> None:
        """Raise ValueError when the saved parameter group ``g`` does not fit this optimizer's ``group``."""
        where_ = f"{self.NAME}.load_state_dict: parameter group {g}"
        if not isinstance(saved, dict) or not isinstance(saved.get("params"), list):
            raise ValueError(f"{where_} is not a dict with a 'params' list")
        keys = sorted(k for k in saved if k != "params")
        missing = [k for k in self.REQUIRED_GROUP_KEYS if k not in saved]
        if missing:
            raise ValueError(
                f"{where_} lacks {missing}: {self._not_saved_by_us(state_dict)} (its group keys are {keys})"
            )
        # an INNA-family sibling's options (INNAprop's sigma in an INNA state dict, say) mean another optimizer,
        # even in a state dict saved before any step, which has no per-parameter state to tell
        family = frozenset().union(*(cls._group_keys() for cls in InnaFamilyOptimizer._family))
        foreign = (set(saved) & (family | self.FOREIGN_GROUP_KEYS)) - self._group_keys() - _BOOKKEEPING_GROUP_KEYS
        if foreign:
            raise ValueError(
                f"{where_} has {sorted(foreign)}, which {self.NAME} does not have: "
                f"{self._not_saved_by_us(state_dict)} (its group keys are {keys})"
            )
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(
                f"{where_} has {len(saved['params'])} parameters in the state dict and {len(group['params'])} in "
                "this optimizer: the state dict comes from another model"
            )
        try:
            self._check_hyperparameters({**self.BACKFILL, **saved})
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where_}: {err}") from err

    def _check_state(self, where: str, value: Any, param: Tensor, state_dict: dict[str, Any]) -> None:
        """Raise ValueError when ``value``, the saved state of ``param`` (``where``), does not fit it."""
        where_ = f"{self.NAME}.load_state_dict"
        if not isinstance(value, dict) or set(value) - self.STATE_KEYS or self.REQUIRED_STATE_KEYS - set(value):
            keys = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(
                f"{where_}: the state of {where} has keys {keys}, {self.NAME} keeps "
                f"{sorted(self.STATE_KEYS)}: {self._not_saved_by_us(state_dict)}"
            )
        for state_key, tensor in value.items():
            if state_key in self.SCALAR_STATE_KEYS:
                if not _is_count(tensor):
                    raise ValueError(
                        f"{where_}: the saved {state_key} of {where} must be a number or a 1-element real "
                        f"tensor, got {tensor!r:.80}"
                    )
                continue
            if isinstance(tensor, Tensor) and (
                tensor.is_complex() != param.is_complex() or not (tensor.is_floating_point() or tensor.is_complex())
            ):
                raise ValueError(
                    f"{where_}: the saved {state_key} of {where} has dtype {tensor.dtype} but the "
                    f"parameter has dtype {param.dtype}: the state dict comes from another model"
                )
            if not isinstance(tensor, Tensor) or tensor.shape != param.shape:
                shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise ValueError(
                    f"{where_}: the saved {state_key} of {where} has shape {shape} but the parameter "
                    f"has shape {tuple(param.shape)}: the state dict comes from another model"
                )


def _dtype(value: Any) -> torch.dtype | None:
    return value.dtype if isinstance(value, Tensor) else None


def _is_count(value: Any) -> bool:
    """A step counter as a state dict may hold it: a real number, or a 1-element real tensor."""
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, (int, float)) and not isinstance(value, bool)
