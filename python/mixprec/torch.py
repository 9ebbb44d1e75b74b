"""mixprec.torch.Optimizer: mixprec's fused mixed-precision step as a torch.optim.Optimizer.

    opt = mixprec.torch.Optimizer(model.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1,
                                  model_dtype=torch.bfloat16, clip_grad_norm=1.0)
    for x, y in data:
        loss = loss_fn(model(x), y)
        opt.scale(loss).backward()   # the loss times the device-resident loss scale (1 without scaling)
        opt.step()                   # unscale, non-finite check, clip, update, model write: no host sync
        opt.zero_grad()              # zeroes the gradient arena in place

The parameters' .data and .grad become views into mixprec's arena (one
buffer per role), so backward writes the gradients where the step reads
them. param_groups are torch's: lr and weight_decay may differ between
groups and change at any step (lr_scheduler works); the other
hyperparameters are shared by all groups. Everything the step keeps (fp32
master weights, moments, loss scale, counters) lives in device memory and is
read on the host only by stats(), state_dict() and the checkpoint calls.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any, Callable, Iterable, Optional

import torch

from . import _jit, backend
from ._errors import Error
from ._recipes import Recipe

__all__ = ["Optimizer", "Error"]

# torch's argument names and defaults (torch.optim; Lion as lion-pytorch,
# LAMB as Apex FusedLAMB, Adam-mini as its authors' package).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
    "adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False),
    "adamw": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False),
    "lion": dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0),
    "lamb": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01),
    "adafactor": dict(lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0, weight_decay=0.0, maximize=False),
    "adam_mini": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, dim=2048, n_heads=32,
                      n_kv_heads=None),
}
# The only hyperparameters that may differ between param_groups.
_PER_GROUP = ("lr", "weight_decay")

_DTYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
# moments_dtype: a torch dtype or "8bit" (block-quantized codes of the dynamic map)
_MOMENTS = {torch.float32: "fp32", torch.bfloat16: "bf16", "8bit": "8bit", torch.float8_e4m3fn: "fp8"}
_FIELD_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_EXTENT = {0: "element", 1: "parameter", 2: "row", 3: "column", 4: "scalar"}
_STATE_DICT_VERSION = 1
_EMA_WARMUP = {None: 0, "tensorflow": 1, "timm_v3": 2}


class Optimizer(torch.optim.Optimizer):
    """mixprec's fused step behind torch.optim.Optimizer's interface.

    params: model.named_parameters() (names are kept: checkpoints,
        safetensors and Adam-mini use them), plain parameters, or
        torch-style param group dicts of either.
    optimizer: 'sgd', 'adam', 'adamw', 'lion', 'lamb', 'adafactor' or 'adam_mini';
        its hyperparameters are keyword arguments with torch's names and defaults.

    Precision options:
        model_dtype: torch.float32, torch.bfloat16 or torch.float16 (default: the
            parameters' dtype); the parameters are cast to it.
        master_weights: keep fp32 master weights (default True; an fp32 model is its own).
        moments_dtype: torch.float32, torch.bfloat16 (stochastically rounded), '8bit' (one byte
            per moment: codes of the dynamic quantization map with an fp32 scale per block
            of 256 elements, as bitsandbytes' and torchao's 8-bit AdamW) or
            torch.float8_e4m3fn (e4m3 codes, a scale per block of 256); the block-quantized
            ones for sgd, adam, adamw and lion. state_dict() keeps their codes (uint8) and
            each field's scales as '<field>_scales'.
        writer: how the weights are written: 'nearest' (default), 'stochastic'
            (stochastic rounding) or 'kahan' (Kahan compensation; no master weights).
        loss_scale: None, a number (static), 'dynamic' or a dict of GradScaler's
            arguments (init_scale, growth_factor, backoff_factor, growth_interval;
            also hysteresis, min_scale, max_scale), or 'grad_scaler' to take the
            scale from a torch.amp.GradScaler driving this optimizer.
        clip_grad_norm: max_norm of clip_grad_norm_ (None: no clipping); norm_type: its p.
        ema_decay: keep an exponential moving average of the weights; ema_warmup: None,
            'tensorflow' (min(decay, (1 + t) / (10 + t))) or 'timm_v3' (timm's ModelEmaV3 ramp).
        statistics: record gradient statistics each step for stats() (default: with
            dynamic loss scaling).
        no_decay: a predicate (name, parameter) -> bool putting those parameters in a
            group of their own with weight_decay 0 (biases and norms, say).
        seed: the stochastic-rounding seed.
    """

    def __init__(self, params: Iterable, optimizer: str = "adamw", *, model_dtype: Optional[torch.dtype] = None,
                 master_weights: bool = True, moments_dtype: Any = torch.float32, writer: str = "nearest",
                 loss_scale: Any = None, clip_grad_norm: Optional[float] = None, norm_type: float = 2.0,
                 ema_decay: Optional[float] = None, ema_warmup: Optional[str] = None,
                 statistics: Optional[bool] = None,
                 no_decay: Optional[Callable[[str, torch.Tensor], bool]] = None, seed: int = 0, **hyperparameters):
        if optimizer not in _DEFAULTS:
            raise ValueError(f"mixprec: unknown optimizer {optimizer!r}; choose one of {', '.join(_DEFAULTS)}")
        defaults = dict(_DEFAULTS[optimizer])
        for k, v in hyperparameters.items():
            if k not in defaults:
                raise TypeError(f"mixprec: unknown option {k!r} for optimizer {optimizer!r} (its hyperparameters: "
                                f"{', '.join(defaults)}; mixprec's options: model_dtype, master_weights, "
                                f"moments_dtype, writer, loss_scale, clip_grad_norm, norm_type, ema_decay, "
                                f"ema_warmup, statistics, no_decay, seed)")
            defaults[k] = v
        groups, names, tensors = _named_groups(params, no_decay)
        device, dtype = _check_tensors(names, tensors, model_dtype)

        scaler, scale_args = _loss_scale(loss_scale)
        if statistics is None:
            statistics = scaler == "dynamic"
        if clip_grad_norm is not None and not (math.isfinite(clip_grad_norm) and clip_grad_norm > 0):
            raise ValueError(f"mixprec: clip_grad_norm must be positive and finite (got {clip_grad_norm})")
        if not (norm_type >= 1):
            raise ValueError(f"mixprec: norm_type must be >= 1 or inf (got {norm_type})")
        if ema_decay is not None and not (0.0 <= ema_decay <= 1.0):
            raise ValueError(f"mixprec: ema_decay must lie in [0, 1] (got {ema_decay})")
        if ema_warmup not in _EMA_WARMUP:
            raise ValueError(f"mixprec: ema_warmup is None, 'tensorflow' or 'timm_v3' (got {ema_warmup!r})")
        try:
            moments = _MOMENTS[moments_dtype]
        except (KeyError, TypeError):
            raise ValueError(f"mixprec: moments_dtype is torch.float32, torch.bfloat16, '8bit' or "
                             f"torch.float8_e4m3fn (got {moments_dtype!r})") from None
        recipe = Recipe(optimizer, _DTYPES[dtype], master=bool(master_weights) or dtype == torch.float32,
                        moments=moments, writer=writer, scaler=scaler,
                        clip=clip_grad_norm is not None, ema=ema_decay is not None, stats=bool(statistics))
        if dtype == torch.float32 and not master_weights:
            raise ValueError("mixprec: an fp32 model is its own master copy; master_weights=False needs "
                             "model_dtype=torch.bfloat16 or torch.float16")

        self._recipe = recipe
        self._device = device
        self._dtype = dtype
        self._names = names
        self._params = tensors
        self._warned_none_grad = False
        torch_groups = []
        for g in groups:
            tg = {k: v for k, v in g.items() if k != "__mixprec_group"}
            tg["params"] = [(n, t) for n, t in g["params"]]
            torch_groups.append(tg)
        super().__init__(torch_groups, defaults)  # stores the groups; changes no tensor
        self.clip_grad_norm = clip_grad_norm
        self.norm_type = float(norm_type)
        self.ema_decay = ema_decay
        self.ema_warmup = ema_warmup
        self.seed = int(seed)
        self._scale_args = scale_args

        self._module = backend(device.type)
        _jit.ensure(self._module, recipe)
        core = self._module.Core.create(recipe.key)
        self._core = core
        with _on_device(device):
            core.build(names, [list(t.shape) for t in tensors],
                       [g["__mixprec_group"] for g in groups for _ in g["params"]])
            # Every hyperparameter is checked (the chain's own rules) before the model is touched.
            self._hyper = self._module.Hyper()
            self._signature = None
            self._group_factors = [None] * len(self.param_groups)
            h = self._refresh_hyper(validate=True)

            # The arena takes the weights (master weights exact, the model rounded to nearest) and the
            # parameters become its views.
            self._master_buf = core.buffer("master") if recipe.model != "fp32" else None
            self._model_buf = core.buffer("model")
            self._grad_buf = core.buffer("grad")
            self._offsets = core.offsets()
            views = []
            with torch.no_grad():
                for t, off in zip(tensors, self._offsets):
                    n = t.numel()
                    flat = t.detach().reshape(-1)
                    if self._master_buf is not None:
                        self._master_buf[off:off + n].copy_(flat)
                        self._model_buf[off:off + n].copy_(self._master_buf[off:off + n])
                    else:
                        self._model_buf[off:off + n].copy_(flat)
                    g = self._grad_buf[off:off + n].view(t.shape)
                    if t.grad is not None:
                        g.copy_(t.grad)
                    views.append((self._model_buf[off:off + n].view(t.shape), g))
            for t, (w, g) in zip(tensors, views):
                t.data = w
                t.grad = g
            self._grads = [g for _, g in views]
            self._pointers = [w.data_ptr() for w, _ in views]
            core.init(h, self._stream())
            self._refresh_hyper(force_groups=True)
        self._scale = core.loss_scale_tensor()
        if recipe.scaler == "gradscaler":
            self._step_supports_amp_scaling = True
        self._expose_state()

    # ---- the training loop --------------------------------------------------------------------

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """loss times the loss scale in effect (a 0-d device tensor that aliases the scale: no host sync)."""
        if self._recipe.scaler == "gradscaler":
            raise RuntimeError("mixprec: this optimizer takes its scale from a torch.amp.GradScaler: use "
                               "scaler.scale(loss)")
        return loss * self._scale

    def step(self, closure: Optional[Callable[[], Any]] = None):
        """One fused step: no host synchronisation, on the current stream on CUDA."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_arena()
        h = self._refresh_hyper()
        if self._recipe.scaler == "gradscaler":
            gs = getattr(self, "grad_scale", None)
            fi = getattr(self, "found_inf", None)
            h.grad_scale = _address_of(gs, self._device, "grad_scale")
            h.found_inf = _address_of(fi, self._device, "found_inf")
        self._core.step(h, self._stream())
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zeroes the gradient arena in place (set_to_none is ignored: the gradients stay views of the arena)."""
        self._core.zero_grad(self._stream())
        for p, g in zip(self._params, self._grads):
            if p.grad is not g:
                p.grad = g

    def stats(self) -> dict:
        """Loss scale, steps, skipped steps, gradient norm, clip coefficient and gradient
        statistics of the last step (a host read: waits for the step)."""
        s = self._core.stats(self._stream())
        s["lr"] = self.param_groups[0]["lr"]
        return s

    # ---- what it is -----------------------------------------------------------------------------

    @property
    def recipe(self) -> Recipe:
        return self._recipe

    def describe(self) -> str:
        """The chain's passes and what each measures (mixprec's plan)."""
        return self._core.describe()

    def state_bytes(self) -> int:
        """Bytes the optimizer keeps besides the model and its gradients: state fields and fp32 master weights."""
        master = self._master_buf.numel() * 4 if self._master_buf is not None else 0
        return int(self._core.state_bytes()) + master

    def master_parameters(self) -> dict[str, torch.Tensor]:
        """The fp32 master weights by name (views: they change at every step)."""
        buf = self._master_buf if self._master_buf is not None else (
            self._model_buf if self._recipe.model == "fp32" else None)
        if buf is None:
            return {}
        return {n: buf[o:o + p.numel()].view(p.shape) for n, p, o in zip(self._names, self._params, self._offsets)}

    def ema_parameters(self) -> dict[str, torch.Tensor]:
        """The exponential moving average of the weights by name (fp32 views), with ema_decay."""
        for f in self._core.fields():
            if f["name"] == "ema":
                return {n: f["data"][f["base"][k]:f["base"][k] + f["count"][k]].view(p.shape)
                        for k, (n, p) in enumerate(zip(self._names, self._params))}
        raise RuntimeError("mixprec: this optimizer keeps no EMA (pass ema_decay=...)")

    # ---- state dicts ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """torch's layout: per parameter its state fields by name (exp_avg, exp_avg_sq, momentum_buffer, ...),
        'step', and 'master' (fp32) where the model is narrower; param_groups; and a 'mixprec' entry with
        the recipe, counters and device scalars. Tensors are copies in their own formats (fp32 stays fp32)."""
        self._core.synchronize(self._stream())
        state: dict[int, dict[str, Any]] = {}
        steps = int(self._core.stats(self._stream())["steps"])
        fields = self._core.fields()
        for k, p in enumerate(self._params):
            entry: dict[str, Any] = {"step": torch.tensor(float(steps), dtype=torch.float32)}
            for f in fields:
                if not f["saved"] or f["count"][k] == 0:
                    continue
                entry[_state_key(f, fields)] = _field_tensor(f, k, p.shape).clone()
                if f["block"]:
                    entry[_state_key(f, fields) + "_scales"] = _field_scales(f, k).clone()
            if self._master_buf is not None:
                o = self._offsets[k]
                entry["master"] = self._master_buf[o:o + p.numel()].view(p.shape).clone()
            state[k] = entry
        groups = []
        index = 0
        for g in self.param_groups:
            pg = {k: v for k, v in g.items() if k != "params"}
            pg["params"] = list(range(index, index + len(g["params"])))
            index += len(g["params"])
            groups.append(pg)
        stats = self._core.stats(self._stream())
        mixprec_entry = {
            "version": _STATE_DICT_VERSION,
            "recipe": self._recipe.key,
            "describe": self._core.describe(),
            "steps": steps,
            "skipped_steps": int(stats["skipped_steps"]),
            "loss_scale": float(stats["loss_scale"]),
            "scalars": [list(s) for s in self._core.scalars(self._stream())],
            "names": list(self._names),
            "shapes": [list(p.shape) for p in self._params],
        }
        return {"state": state, "param_groups": groups, "mixprec": mixprec_entry}

    def load_state_dict(self, state_dict: dict) -> None:
        """Loads a state_dict() of this optimizer (exact: nothing is downcast), or a plain torch.optim
        AdamW/Adam/SGD state dict (its moments and step; the master weights keep the current weights).
        Everything is checked before anything changes."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("mixprec: not an optimizer state dict (needs 'state' and 'param_groups')")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"mixprec: the state dict has {len(saved_groups)} param groups, this optimizer "
                             f"{len(self.param_groups)}: it was saved for another model or grouping")
        order = []
        for mine, theirs in zip(self.param_groups, saved_groups):
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError("mixprec: a param group of the state dict has "
                                 f"{len(theirs['params'])} parameters where this optimizer has "
                                 f"{len(mine['params'])}: it was saved for another model")
            order.extend(theirs["params"])
        ours = state_dict.get("mixprec")
        if ours is not None:
            theirs_moments = str(ours.get("recipe", "")).split("-")[3:4]
            if theirs_moments and theirs_moments[0] != self._recipe.moments:
                raise ValueError(f"mixprec: the state dict was saved with {theirs_moments[0]} moments, this optimizer "
                                 f"keeps {self._recipe.moments} moments: load it into an optimizer with the "
                                 f"moments_dtype it was saved with")
            if ours.get("version") != _STATE_DICT_VERSION:
                raise ValueError(f"mixprec: state dict version {ours.get('version')} (this release reads "
                                 f"{_STATE_DICT_VERSION})")
            if ours["names"] != list(self._names) or [list(s) for s in ours["shapes"]] != \
                    [list(p.shape) for p in self._params]:
                raise ValueError("mixprec: the state dict was saved for parameters with other names or shapes")
        fields = self._core.fields()
        plan = []  # (destination view, source tensor), all checked before any copy
        steps_seen = set()
        momentum_loaded = False
        for k, p in enumerate(self._params):
            entry = state_dict["state"].get(order[k], {})
            if ours is None and not entry:
                continue  # torch keeps no state for a parameter before its first step
            for f in fields:
                if not f["saved"] or f["count"][k] == 0:
                    continue
                key = _state_key(f, fields)
                dest = _field_tensor(f, k, p.shape)
                src = entry.get(key)
                if src is None:
                    if f["name"] == "max_exp_avg_sq" or (f["name"] == "momentum_buffer" and ours is None):
                        continue
                    raise ValueError(f"mixprec: the state of parameter {self._names[k]!r} has no {key!r} "
                                     f"(saved by another optimizer?)")
                if not torch.is_tensor(src) or tuple(src.shape) != tuple(dest.shape):
                    raise ValueError(f"mixprec: {key!r} of parameter {self._names[k]!r} has shape "
                                     f"{tuple(getattr(src, 'shape', ()))}, expected {tuple(dest.shape)}")
                if f["block"]:
                    # 8-bit codes: only codes of this format, with their scales (never float values as codes)
                    scales = entry.get(key + "_scales")
                    if src.dtype != torch.uint8 or not torch.is_tensor(scales):
                        raise ValueError(
                            f"mixprec: {key!r} of parameter {self._names[k]!r} is {src.dtype} in the state dict, but "
                            f"this optimizer keeps it as {f['format']} codes with a scale per {f['block']} "
                            f"elements: load it into an optimizer with the moments_dtype it was saved with")
                    want = _field_scales(f, k)
                    if scales.dtype != torch.float32 or tuple(scales.shape) != tuple(want.shape):
                        raise ValueError(f"mixprec: {key + '_scales'!r} of parameter {self._names[k]!r} is "
                                         f"{scales.dtype} {tuple(scales.shape)}, expected float32 "
                                         f"{tuple(want.shape)}")
                    plan.append((want, scales))
                elif not src.is_floating_point():
                    raise ValueError(f"mixprec: {key!r} of parameter {self._names[k]!r} is {src.dtype} in the state "
                                     f"dict (8-bit codes?), but this optimizer keeps {f['format']} values: load it "
                                     f"into an optimizer with the moments_dtype it was saved with")
                plan.append((dest, src))
                momentum_loaded = momentum_loaded or f["name"] == "momentum_buffer"
            if "master" in entry and self._master_buf is not None:
                o = self._offsets[k]
                m = entry["master"]
                if tuple(m.shape) != tuple(p.shape):
                    raise ValueError(f"mixprec: master weights of {self._names[k]!r} have shape {tuple(m.shape)}")
                plan.append((self._master_buf[o:o + p.numel()].view(p.shape), m))
            if "step" in entry:
                steps_seen.add(int(float(entry["step"])))
        if ours is not None:
            steps, skipped, scalars = int(ours["steps"]), int(ours["skipped_steps"]), ours["scalars"]
        else:
            if len(steps_seen) > 1:
                raise ValueError(f"mixprec: the parameters of this torch state dict have taken different numbers of "
                                 f"steps {sorted(steps_seen)}; mixprec keeps one step count for all")
            steps = steps_seen.pop() if steps_seen else 0
            if momentum_loaded and steps == 0:
                steps = 1  # torch's SGD keeps no step count; a momentum buffer means it has stepped
            skipped, scalars = 0, [list(s) for s in self._core.scalars(self._stream())]
        # Commit: the scalars first (the core checks them and writes nothing if one is refused), then the
        # tensors, whose shapes were checked above.
        self._core.set_scalars([tuple(s) for s in scalars], steps, skipped, self._stream())
        with torch.no_grad():
            for dest, src in plan:
                dest.copy_(src.to(device=dest.device))
            if self._master_buf is not None:
                for p, o in zip(self._params, self._offsets):
                    n = p.numel()
                    self._model_buf[o:o + n].copy_(self._master_buf[o:o + n])
        for mine, theirs in zip(self.param_groups, saved_groups):
            for k, v in theirs.items():
                if k not in ("params", "param_names") and k in mine:
                    mine[k] = v
        self._signature = None
        self._refresh_hyper()

    # ---- mixprec's own files --------------------------------------------------------------------

    def save_checkpoint(self, path: str, metadata: Optional[dict] = None) -> None:
        """mixprec's checkpoint: weights, state, counters and scalars by name, atomically written and
        CRC-checked; the param_groups and your metadata (str -> str) ride along."""
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        meta["mixprec.torch.param_groups"] = json.dumps(
            [{k: v for k, v in g.items() if k not in ("params",)} for g in self.param_groups])
        self._core.save_checkpoint(str(path), self._refresh_hyper(), meta, self._stream())

    def load_checkpoint(self, path: str) -> dict:
        """Loads save_checkpoint()'s file (checked before anything changes); returns your metadata."""
        meta = self._core.load_checkpoint(str(path), self._refresh_hyper(), self._stream())
        groups = meta.pop("mixprec.torch.param_groups", None)
        if groups is not None:
            for mine, theirs in zip(self.param_groups, json.loads(groups)):
                for k, v in theirs.items():
                    if k in mine and k != "param_names":
                        mine[k] = tuple(v) if isinstance(mine[k], tuple) else v
            self._signature = None
            self._refresh_hyper()
        return {k: v.decode() for k, v in meta.items()}

    def save_safetensors(self, path: str, role: str = "master", metadata: Optional[dict] = None) -> None:
        """One role of the arena ('master', 'model' or 'grad') as a .safetensors file, tensors by name."""
        if role == "master" and self._recipe.model == "fp32":
            role = "model"  # an fp32 model is its master
        self._core.save_safetensors(str(path), role, {str(k): str(v) for k, v in (metadata or {}).items()},
                                    self._stream())

    # ---- internals ------------------------------------------------------------------------------

    def _stream(self) -> int:
        if self._device.type == "cuda":
            return torch.cuda.current_stream(self._device).cuda_stream
        return 0

    def _check_arena(self) -> None:
        for k, (p, g) in enumerate(zip(self._params, self._grads)):
            if p.data_ptr() != self._pointers[k] or p.dtype != self._dtype:
                raise RuntimeError(
                    f"mixprec: parameter {self._names[k]!r} no longer lives in the optimizer's arena (the model "
                    f"was moved or cast after the optimizer was built, e.g. .to(), .half(), .cuda(), or its "
                    f".data was replaced): build the optimizer after moving the model, and use model_dtype= "
                    f"instead of casting")
            if p.grad is not g:
                self._adopt_grad(k)

    def _adopt_grad(self, k: int) -> None:
        """A gradient that is not the arena's view (assigned by the user, replaced by backward with
        create_graph=True, or set to None): its values go into the arena and the view is put back."""
        p, g = self._params[k], self._grads[k]
        with torch.no_grad():
            if p.grad is None:
                g.zero_()
                if not self._warned_none_grad:
                    warnings.warn(f"mixprec: parameter {self._names[k]!r} has no gradient; the fused step treats it "
                                  f"as zero (its moments and weight decay still advance)", stacklevel=3)
                    self._warned_none_grad = True
            else:
                if p.grad.is_sparse:
                    raise RuntimeError(f"mixprec: parameter {self._names[k]!r} has a sparse gradient; mixprec needs "
                                       f"dense gradients")
                g.copy_(p.grad.detach())
        p.grad = g

    def _refresh_hyper(self, force_groups: bool = False, validate: bool = False):
        """The step's hyperparameters from param_groups and the optimizer's options, validated when they change."""
        groups = self.param_groups
        signature = (tuple(tuple(_plain(g[k]) for k in self.defaults) for g in groups), self.clip_grad_norm,
                     self.norm_type, self.ema_decay, self.ema_warmup, self.seed)
        if signature == self._signature and not force_groups:
            return self._hyper
        first = groups[0]
        for g in groups[1:]:
            for k in self.defaults:
                if k not in _PER_GROUP and _plain(g[k]) != _plain(first[k]):
                    raise ValueError(f"mixprec: param groups differ in {k!r} ({first[k]} and {g[k]}); only lr and "
                                     f"weight_decay may differ between groups of one optimizer")
        lrs = [float(_plain(g["lr"])) for g in groups]
        wds = [float(_plain(g["weight_decay"])) for g in groups]
        for name, values in (("lr", lrs), ("weight_decay", wds)):
            for v in values:
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"mixprec: {name} must be finite and non-negative (got {v})")
        if self._recipe.optimizer == "adafactor" and len(set(lrs)) > 1:
            raise ValueError("mixprec: adafactor's relative step size takes one lr for all param groups")
        base_lr, base_wd = max(lrs), max(wds)
        h = self._hyper.copy()
        h.lr, h.weight_decay = base_lr, base_wd
        _set_optimizer_fields(h, self._recipe.optimizer, first)
        if self.clip_grad_norm is not None:
            h.max_norm, h.norm_type = float(self.clip_grad_norm), self.norm_type
        if self.ema_decay is not None:
            h.ema_decay, h.ema_warmup = float(self.ema_decay), _EMA_WARMUP[self.ema_warmup]
        for k, v in self._scale_args.items():
            setattr(h, k, v)
        h.seed = self.seed
        if self._signature is not None or force_groups or validate:
            try:
                self._core.validate(h)
            except Error as e:
                raise ValueError(str(e)) from e
        factors = [(lr / base_lr if base_lr > 0 else 1.0, wd / base_wd if base_wd > 0 else 1.0)
                   for lr, wd in zip(lrs, wds)]
        if (self._signature is not None or force_groups) and not validate:
            for k, f in enumerate(factors):
                if f != self._group_factors[k]:
                    self._core.set_group(f"group{k}", f[0], f[1], self._stream())
                    self._group_factors[k] = f
        self._hyper = h
        self._signature = signature
        return h

    def _expose_state(self) -> None:
        """self.state[p]: live views of each parameter's per-element state fields (read them between steps)."""
        fields = self._core.fields()
        for k, p in enumerate(self._params):
            for f in fields:
                if f["extent"] == 0 and f["saved"] and f["count"][k] > 0:
                    self.state[p][_state_key(f, fields)] = _field_tensor(f, k, p.shape)
                    if f["block"]:
                        self.state[p][_state_key(f, fields) + "_scales"] = _field_scales(f, k)


# ---- helpers ------------------------------------------------------------------------------------


def _plain(v):
    if torch.is_tensor(v):
        if v.numel() != 1:
            raise ValueError("mixprec: tensor hyperparameters must hold one value")
        return v.item()
    return v


def _set_optimizer_fields(h, optimizer: str, g: dict) -> None:
    if "betas" in g:
        b1, b2 = g["betas"]
        h.beta1, h.beta2 = float(_plain(b1)), float(_plain(b2))
    if optimizer == "adafactor":
        eps1, eps2 = g["eps"]
        h.eps1 = float(torch.finfo(torch.float32).eps) if eps1 is None else float(eps1)
        h.eps2 = float(eps2)
        h.beta2_decay = float(g["beta2_decay"])
        h.d = float(g["d"])
    elif "eps" in g:
        h.eps = float(g["eps"])
    for k in ("momentum", "dampening"):
        if k in g:
            setattr(h, k, float(g[k]))
    if optimizer == "adam_mini":
        h.dim, h.n_heads = int(g["dim"]), int(g["n_heads"])
        h.n_kv_heads = 0 if g["n_kv_heads"] is None else int(g["n_kv_heads"])
    for k in ("nesterov", "maximize", "amsgrad"):
        if k in g:
            setattr(h, k, bool(g[k]))


def _loss_scale(arg):
    """(scaler kind, Hyper fields) from the loss_scale option."""
    if arg is None:
        return "none", {}
    if isinstance(arg, str):
        if arg == "dynamic":
            return "dynamic", {}
        if arg == "grad_scaler":
            return "gradscaler", {}
        raise ValueError(f"mixprec: loss_scale is None, a number, 'dynamic', a dict or 'grad_scaler' (got {arg!r})")
    if isinstance(arg, dict):
        known = {"init_scale", "growth_factor", "backoff_factor", "growth_interval", "hysteresis", "min_scale",
                 "max_scale", "enabled"}
        unknown = set(arg) - known
        if unknown:
            raise ValueError(f"mixprec: unknown loss_scale options {sorted(unknown)} (GradScaler's: init_scale, "
                             f"growth_factor, backoff_factor, growth_interval; also hysteresis, min_scale, max_scale)")
        if not arg.get("enabled", True):
            return "none", {}
        fields = {k: v for k, v in arg.items() if k != "enabled"}
        for k in ("init_scale", "growth_factor", "backoff_factor", "min_scale", "max_scale"):
            if k in fields:
                fields[k] = float(fields[k])
        for k in ("growth_interval", "hysteresis"):
            if k in fields:
                if int(fields[k]) != fields[k] or fields[k] < 1:
                    raise ValueError(f"mixprec: loss_scale {k} must be a positive integer (got {fields[k]})")
                fields[k] = int(fields[k])
        return "dynamic", fields
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        return "static", {"static_scale": float(arg)}
    raise ValueError(f"mixprec: loss_scale is None, a number, 'dynamic', a dict or 'grad_scaler' (got {arg!r})")


def _named_groups(params, no_decay):
    """Param groups as [{..., 'params': [(name, tensor)], '__mixprec_group': 'groupK'}], names unique."""
    if isinstance(params, torch.Tensor):
        raise TypeError("mixprec: params must be an iterable of parameters, (name, parameter) pairs or param "
                        "group dicts, not a tensor")
    items = list(params)
    if not items:
        raise ValueError("mixprec: the optimizer got an empty parameter list")
    raw_groups = [dict(g) for g in items] if isinstance(items[0], dict) else [{"params": items}]
    groups, names, tensors = [], [], []
    seen_names, seen_tensors = set(), set()
    counter = 0
    for g in raw_groups:
        if "params" not in g:
            raise ValueError("mixprec: a param group dict needs a 'params' entry")
        ps = g["params"]
        ps = [ps] if isinstance(ps, torch.Tensor) else list(ps)
        given = g.pop("param_names", None)
        named = []
        for j, x in enumerate(ps):
            if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str):
                name, t = x
            elif isinstance(x, torch.Tensor):
                name, t = (given[j] if given else f"param{counter}"), x
            else:
                raise TypeError(f"mixprec: expected a parameter or a (name, parameter) pair, got {type(x).__name__}")
            counter += 1
            if name in seen_names:
                raise ValueError(f"mixprec: two parameters are named {name!r}")
            if id(t) in seen_tensors:
                raise ValueError(f"mixprec: parameter {name!r} appears twice (tied weights are listed once by "
                                 f"model.named_parameters())")
            seen_names.add(name)
            seen_tensors.add(id(t))
            named.append((name, t))
        if no_decay is not None:
            keep = [x for x in named if not no_decay(*x)]
            off = [x for x in named if no_decay(*x)]
            parts = [(keep, {}), (off, {"weight_decay": 0.0})]
        else:
            parts = [(named, {})]
        for part, override in parts:
            if not part:
                continue
            ng = {k: v for k, v in g.items() if k != "params"}
            ng.update(override)
            ng["params"] = part
            ng["__mixprec_group"] = f"group{len(groups)}"
            groups.append(ng)
    # The arena's order: group by group.
    for g in groups:
        for name, t in g["params"]:
            names.append(name)
            tensors.append(t)
    return groups, names, tensors


def _check_tensors(names, tensors, model_dtype):
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"mixprec: the parameters are on several devices ({', '.join(map(str, devices))}); one "
                         f"optimizer keeps one arena on one device: move the model to one device first, or build "
                         f"one optimizer per device")
    device = devices.pop()
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"mixprec: parameters on {device.type!r} are not supported (cpu or cuda)")
    for n, t in zip(names, tensors):
        if not t.is_leaf:
            raise ValueError(f"mixprec: parameter {n!r} is not a leaf tensor (it was computed from other tensors); "
                             f"pass the model's parameters")
        if not t.requires_grad:
            raise ValueError(f"mixprec: parameter {n!r} does not require grad; leave frozen parameters out "
                             f"([(n, p) for n, p in model.named_parameters() if p.requires_grad])")
        if t.is_sparse or t.layout != torch.strided:
            raise ValueError(f"mixprec: parameter {n!r} is not a dense strided tensor")
        if not t.is_contiguous():
            raise ValueError(f"mixprec: parameter {n!r} is not contiguous; make it contiguous "
                             f"(p.data = p.data.contiguous()) before building the optimizer")
        if t.dtype not in _DTYPES:
            raise ValueError(f"mixprec: parameter {n!r} has dtype {t.dtype}; mixprec trains float32, bfloat16 and "
                             f"float16 parameters")
    dtypes = {t.dtype for t in tensors}
    if model_dtype is None:
        if len(dtypes) > 1:
            raise ValueError(f"mixprec: the parameters have several dtypes ({', '.join(map(str, dtypes))}); one "
                             f"arena holds one model dtype: cast the model first, or pass model_dtype=")
        model_dtype = dtypes.pop()
    if model_dtype not in _DTYPES:
        raise ValueError(f"mixprec: model_dtype is torch.float32, torch.bfloat16 or torch.float16 (got {model_dtype})")
    return device, model_dtype


class _on_device:
    def __init__(self, device):
        self.device = device
        self.ctx = torch.cuda.device(device) if device.type == "cuda" else None

    def __enter__(self):
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def _address_of(t, device, what: str) -> int:
    if t is None:
        return 0
    if not torch.is_tensor(t) or t.dtype != torch.float32 or t.numel() != 1 or t.device != device:
        raise RuntimeError(f"mixprec: GradScaler's {what} must be a one-element float32 tensor on {device}")
    return t.data_ptr()


def _state_key(f, fields) -> str:
    """A field's name in state dicts: its own, or path.name when two components use the name."""
    clash = sum(1 for g in fields if g["name"] == f["name"] and g["saved"]) > 1
    return f"{f['path']}.{f['name']}" if clash else f["name"]


def _field_scales(f, k: int) -> torch.Tensor:
    """Parameter k's block scales of a field of 8-bit codes (a view)."""
    base, count = f["scale_base"][k], f["scale_count"][k]
    return f["scales"][base:base + count]


def _field_tensor(f, k: int, shape) -> torch.Tensor:
    """Parameter k's entries of a field, shaped as torch shapes such state (a view)."""
    base, count = f["base"][k], f["count"][k]
    flat = f["data"][base:base + count]
    extent = _EXTENT[f["extent"]]
    shape = tuple(shape)
    if extent == "element":
        return flat.view(shape)
    if extent == "row":
        return flat.view(shape[:-1]) if len(shape) >= 2 else flat
    if extent == "column":
        return flat.view(shape[:-2] + shape[-1:]) if len(shape) >= 2 else flat
    return flat.view(())
