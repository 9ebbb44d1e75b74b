"""Mixed precision against torch's own recipes: fp16 with dynamic loss scaling against
torch.amp.GradScaler, bf16 with fp32 master weights against a master copy kept by hand, and the
pure-bf16 writers (stochastic rounding, Kahan summation)."""

import math

import pytest
import torch

import mixprec.torch as mt
from conftest import batches, loss_of, make_model, twin

BF16_U = 2.0 ** -8   # unit roundoff of bfloat16
FP16_U = 2.0 ** -11  # of float16


class MasterReference:
    """torch's way to train a low-precision model with fp32 master weights: backward in the model's
    dtype, the gradients widened into fp32 master parameters, GradScaler / clip_grad_norm_ / the optimizer
    on the masters, the masters rounded back into the model."""

    def __init__(self, model, make_opt, scaler=None, clip=None):
        self.model = model
        self.master = [p.detach().float().clone().requires_grad_(True) for p in model.parameters()]
        self.opt = make_opt(self.master)
        self.scaler, self.clip = scaler, clip
        self.scales, self.skipped = [], []

    def step(self, loss):
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        for m, p in zip(self.master, self.model.parameters()):
            m.grad = p.grad.float()
            p.grad = None
        if self.scaler:
            before = self.scaler.get_scale()
            self.scaler.unscale_(self.opt)
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.master, self.clip, foreach=True)
            self.scaler.step(self.opt)
            self.scaler.update()
            self.scales.append(self.scaler.get_scale())
            self.skipped.append(self.scaler.get_scale() < before)
        else:
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.master, self.clip, foreach=True)
            self.opt.step()
        with torch.no_grad():
            for m, p in zip(self.master, self.model.parameters()):
                p.copy_(m)


def max_rel(tensors_a, tensors_b):
    return max(((a.double() - b.double()).abs().max() / b.double().abs().max()).item()
               for a, b in zip(tensors_a, tensors_b))


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def compare_with_masters(model, opt, ref_model, ref, steps):
    """Steps both; returns how many first steps started from identical low-precision weights (so saw
    identical gradients), the worst master difference after those steps, and the final loss of each."""
    exact, worst, diverged = 0, 0.0, False
    scales, skipped = [], []
    for x, y in batches(steps):
        diverged = diverged or not same_weights(model, ref_model)
        opt.scale(loss_of(model, x, y)).backward()
        opt.step()
        opt.zero_grad()
        s = opt.stats()
        scales.append(s["loss_scale"])
        skipped.append(s["last_step_skipped"])
        ref.step(loss_of(ref_model, x, y))
        if not diverged:
            exact += 1
            worst = max(worst, max_rel(list(opt.master_parameters().values()), ref.master))
    x, y = next(batches(1, seed=99, batch=256))
    with torch.no_grad():
        final = (loss_of(model, x, y).item(), loss_of(ref_model, x, y).item())
    return exact, worst, final, scales, skipped


# While the low-precision weights of both are equal, both see the same gradients and the master
# weights differ by fp32 rounding of the update only. Once a master lies within an fp32 ulp of a
# rounding boundary of the model's format, the copies differ by one ulp of that format, later
# gradients differ, and Adam's normalised steps let the runs drift apart (measured: the first such
# step is 19 for fp16, a few for bf16); from then on only the training itself is compared.


def test_fp16_dynamic_scale_skips_and_scales_as_grad_scaler():
    model = make_model(dtype=torch.float16)
    ref_model = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3,
                       loss_scale=dict(init_scale=2.0 ** 24, growth_interval=10), clip_grad_norm=1.0)
    ref = MasterReference(ref_model, lambda p: torch.optim.AdamW(p, lr=1e-3, fused=True),
                          scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 24, growth_interval=10), clip=1.0)
    exact, worst, final, scales, skipped = compare_with_masters(model, opt, ref_model, ref, 200)
    assert sum(ref.skipped) >= 3  # the model overflows fp16 at these scales
    assert skipped == ref.skipped
    assert scales == ref.scales
    assert opt.stats()["skipped_steps"] == sum(ref.skipped)
    assert exact >= 10 and worst <= 1e-6
    assert abs(final[0] - final[1]) <= 0.02 * final[1]
    s = opt.stats()
    assert 0.0 <= s["zero_fraction"] <= 1.0 and 0.0 <= s["subnormal_fraction"] <= 1.0


def test_bf16_with_fp32_master_matches_a_master_copy_kept_by_hand():
    model = make_model(dtype=torch.bfloat16)
    ref_model = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1, clip_grad_norm=1.0)
    ref = MasterReference(ref_model, lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1), clip=1.0)
    exact, worst, final, _, _ = compare_with_masters(model, opt, ref_model, ref, 200)
    assert exact >= 2 and worst <= 1e-6
    assert abs(final[0] - final[1]) <= 0.02 * final[1]
    for p in model.parameters():
        assert p.dtype == torch.bfloat16


def train_losses(model, opt, steps, seed=1):
    losses = []
    for x, y in batches(steps, seed):
        loss = loss_of(model, x, y)
        opt.scale(loss).backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("writer", ["stochastic", "kahan"])
def test_pure_bf16_writers_train_as_fp32_does_where_nearest_stalls(writer):
    # A small learning rate: most updates are below half a bf16 ulp of the weight, so rounding each
    # update to nearest loses them; stochastic rounding keeps them in expectation, Kahan in a compensation.
    lr = 2e-4
    fp32 = make_model()
    f = train_losses(fp32, mt.Optimizer(fp32.named_parameters(), "adamw", lr=lr, clip_grad_norm=1.0), 300)
    model = make_model(dtype=torch.bfloat16)
    ours = train_losses(model, mt.Optimizer(model.named_parameters(), "adamw", lr=lr, master_weights=False,
                                            writer=writer, clip_grad_norm=1.0), 300)
    stalled = make_model(dtype=torch.bfloat16)
    near = train_losses(stalled, mt.Optimizer(stalled.named_parameters(), "adamw", lr=lr, master_weights=False,
                                              writer="nearest", clip_grad_norm=1.0), 300)
    end = lambda v: sum(v[-30:]) / 30  # noqa: E731
    assert abs(end(ours) - end(f)) < 0.02 * end(f) + 0.01
    assert end(near) > end(ours) + 0.05  # rounding to nearest stalls
    for p in model.parameters():
        assert p.dtype == torch.bfloat16


def test_kahan_matches_a_transcription():
    # Pure bf16 AdamW with Kahan compensation, the compensation in bf16, transcribed in float32:
    # y = step - c; w' = bf16(w + y); c' = bf16((w' - w) - y), with step = (w * decay + u) - w.
    model = make_model(dtype=torch.bfloat16)
    ref_model = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1, master_weights=False,
                       writer="kahan", clip_grad_norm=1e9)
    ref_opt_params = [p.detach().float().clone().requires_grad_(True) for p in ref_model.parameters()]
    inner = torch.optim.AdamW(ref_opt_params, lr=1e-3, weight_decay=0.1)
    comp = [torch.zeros_like(p, dtype=torch.bfloat16) for p in ref_model.parameters()]
    for x, y in batches(50):
        opt.scale(loss_of(model, x, y)).backward()
        opt.step()
        opt.zero_grad()
        loss_of(ref_model, x, y).backward()
        with torch.no_grad():
            for m, p in zip(ref_opt_params, ref_model.parameters()):
                m.copy_(p.float())
                m.grad = p.grad.float()
                p.grad = None
            inner.step()  # m now holds the exact update of the weight
            for m, p, c in zip(ref_opt_params, ref_model.parameters(), comp):
                w = p.float()
                step = m - w
                y_ = step - c.float()
                new = (w + y_).to(torch.bfloat16)
                c.copy_(((new.float() - w) - y_).to(torch.bfloat16))
                p.copy_(new)
    diffs = [(a.float() - b.float()).abs().max().item() for a, b in zip(model.parameters(), ref_model.parameters())]
    # AdamW's update here and torch's differ by rounding; a weight then differs by at most one bf16 ulp.
    for d, b in zip(diffs, ref_model.parameters()):
        assert d <= 2 * BF16_U * b.float().abs().max().item()


def test_clip_matches_clip_grad_norm():
    model = make_model()
    ref = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, clip_grad_norm=0.5)
    ropt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    norms = []
    for x, y in batches(100):
        opt.scale(loss_of(model, x, y)).backward()
        opt.step()
        opt.zero_grad()
        loss_of(ref, x, y).backward()
        norms.append(torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5).item())
        ropt.step()
        ropt.zero_grad()
        s = opt.stats()
        assert math.isclose(s["grad_norm"], norms[-1], rel_tol=1e-4)
        assert math.isclose(s["clip_coef"], min(1.0, 0.5 / (norms[-1] + 1e-6)), rel_tol=1e-4)
    assert any(n > 0.5 for n in norms)  # it clipped
    for a, b in zip(model.parameters(), ref.parameters()):
        assert ((a - b).abs().max() / b.abs().max()).item() <= 1e-6


@pytest.mark.parametrize("p", [1.0, 3.0, float("inf")])
def test_clip_norm_types(p):
    model = make_model()
    ref = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-2, clip_grad_norm=0.2, norm_type=p)
    ropt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    for x, y in batches(20):
        opt.scale(loss_of(model, x, y)).backward()
        opt.step()
        opt.zero_grad()
        loss_of(ref, x, y).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.2, norm_type=p)
        ropt.step()
        ropt.zero_grad()
    for a, b in zip(model.parameters(), ref.parameters()):
        assert ((a - b).abs().max() / b.abs().max()).item() <= 1e-6
