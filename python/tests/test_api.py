"""The optimizer as a torch user drives it: arena views, groups, schedulers, state dicts,
checkpoints, EMA, GradScaler, statistics, and every bad input refused with nothing changed."""

import math
import warnings

import pytest
import torch

import mixprec
import mixprec.torch as mt
from conftest import batches, loss_of, make_model, twin, worst_rel_err


def run(model, opt, steps, seed=1, sched=None):
    for x, y in batches(steps, seed):
        loss = loss_of(model, x, y)
        (opt.scale(loss) if isinstance(opt, mt.Optimizer) else loss).backward()
        opt.step()
        opt.zero_grad()
        if sched is not None:
            sched.step()


def snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


# ---- the arena ----------------------------------------------------------------------------------


def test_parameters_and_gradients_are_views_of_one_arena():
    model = make_model(dtype=torch.bfloat16)
    opt = mt.Optimizer(model.named_parameters(), "adamw", clip_grad_norm=1.0)
    model_buf, grad_buf = opt._model_buf, opt._grad_buf
    for p in model.parameters():
        assert p.untyped_storage().data_ptr() == model_buf.untyped_storage().data_ptr()
        assert p.grad.untyped_storage().data_ptr() == grad_buf.untyped_storage().data_ptr()
        assert p.data_ptr() % 16 == 0 and p.grad.data_ptr() % 16 == 0
    grads = [p.grad for p in model.parameters()]
    x, y = next(batches(1))
    loss_of(model, x, y).backward()  # backward accumulates into the arena in place
    for p, g in zip(model.parameters(), grads):
        assert p.grad is g
    assert grad_buf.float().abs().sum() > 0
    opt.zero_grad()  # set_to_none=True is torch's default; the views stay
    for p, g in zip(model.parameters(), grads):
        assert p.grad is g and not g.any()


def test_model_dtype_casts_and_keeps_exact_fp32_masters():
    model = make_model()
    weights = snapshot(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", model_dtype=torch.bfloat16, clip_grad_norm=1.0)
    for p, w, m in zip(model.parameters(), weights, opt.master_parameters().values()):
        assert p.dtype == torch.bfloat16
        assert torch.equal(m, w)  # the masters start from the fp32 weights, not from their bf16 rounding
        assert torch.equal(p, w.to(torch.bfloat16))


def test_scale_multiplies_the_loss_by_the_device_scale():
    model = make_model(dtype=torch.float16)
    opt = mt.Optimizer(model.named_parameters(), "adamw", loss_scale=dict(init_scale=1024.0), clip_grad_norm=1.0)
    loss = loss_of(model, *next(batches(1)))
    assert opt.scale(loss).item() == pytest.approx(loss.item() * 1024.0, rel=1e-6)
    assert opt.stats()["loss_scale"] == 1024.0


def test_replaced_gradients_are_taken_and_the_views_restored():
    model = make_model()
    ref = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "sgd", lr=0.1)
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1)
    views = [p.grad for p in model.parameters()]
    for p, r in zip(model.parameters(), ref.parameters()):
        g = torch.randn_like(p)
        p.grad = g.clone()  # user assignment
        r.grad = g.clone()
    opt.step()
    ropt.step()
    assert worst_rel_err(model, ref) <= 1e-7
    for p, v in zip(model.parameters(), views):
        assert p.grad is v
    # create_graph=True makes backward replace .grad instead of accumulating into it
    x, y = next(batches(1))
    opt.zero_grad()
    ropt.zero_grad()
    loss_of(model, x, y).backward(create_graph=True)
    loss_of(ref, x, y).backward()
    assert any(p.grad is not v for p, v in zip(model.parameters(), views))
    opt.step()
    ropt.step()
    assert worst_rel_err(model, ref) <= 1e-6
    for p, v in zip(model.parameters(), views):
        assert p.grad is v


def test_a_gradient_set_to_none_is_a_zero_gradient_with_a_warning():
    model = make_model()
    opt = mt.Optimizer(model.named_parameters(), "sgd", lr=0.1)
    before = snapshot(model)
    model.embed.weight.grad = None
    with pytest.warns(UserWarning, match="no gradient"):
        opt.step()
    assert torch.equal(model.embed.weight, before[0])


# ---- groups and schedules -----------------------------------------------------------------------


def no_decay(name, p):
    return p.ndim < 2


def test_no_decay_predicate_matches_torch_groups():
    model = make_model()
    ref = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1, no_decay=no_decay)
    decay = [p for p in ref.parameters() if p.ndim >= 2]
    rest = [p for p in ref.parameters() if p.ndim < 2]
    ropt = torch.optim.AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}], lr=1e-3, weight_decay=0.1)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    run(model, opt, 100)
    run(ref, ropt, 100)
    ours = dict(model.named_parameters())
    theirs = dict(ref.named_parameters())
    for n in ours:
        assert (ours[n] - theirs[n]).abs().max() / theirs[n].abs().max() <= 1e-6


def test_param_group_dicts_and_schedulers_with_per_group_lrs():
    model = make_model()
    ref = twin(model)

    def groups(m, named):
        body = [(n, p) for n, p in m.named_parameters() if not n.startswith("head")]
        head = [(n, p) for n, p in m.named_parameters() if n.startswith("head")]
        if not named:
            body, head = [p for _, p in body], [p for _, p in head]
        return [{"params": body}, {"params": head, "lr": 3e-3, "weight_decay": 0.0}]

    opt = mt.Optimizer(groups(model, True), "adamw", lr=1e-3, weight_decay=0.05)
    ropt = torch.optim.AdamW(groups(ref, False), lr=1e-3, weight_decay=0.05)
    warm = lambda s: min(1.0, (s + 1) / 20)  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warm)
    rsched = torch.optim.lr_scheduler.LambdaLR(ropt, warm)
    run(model, opt, 60, sched=sched)
    run(ref, ropt, 60, sched=rsched)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40)
    rcos = torch.optim.lr_scheduler.CosineAnnealingLR(ropt, T_max=40)
    run(model, opt, 40, seed=2, sched=cos)
    run(ref, ropt, 40, seed=2, sched=rcos)
    assert opt.param_groups[1]["lr"] == ropt.param_groups[1]["lr"]
    assert worst_rel_err(model, ref) <= 1e-6


def test_lr_changed_by_hand_takes_effect_at_the_next_step():
    model = make_model()
    ref = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "sgd", lr=0.1)
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1)
    run(model, opt, 3)
    run(ref, ropt, 3)
    for g in opt.param_groups + ropt.param_groups:
        g["lr"] = 0.0
    before = snapshot(model)
    run(model, opt, 2, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
    for g in opt.param_groups + ropt.param_groups:
        g["lr"] = 0.05
    run(model, opt, 3, seed=6)
    run(ref, ropt, 3, seed=6)
    assert worst_rel_err(model, ref) <= 1e-6


# ---- state dicts, checkpoints, weight files -------------------------------------------------------


def test_state_dict_round_trip_resumes_bit_identically():
    kw = dict(model_dtype=torch.bfloat16, clip_grad_norm=1.0, moments_dtype=torch.bfloat16)
    a = make_model()
    opt_a = mt.Optimizer(a.named_parameters(), "adamw", lr=1e-3, **kw)
    run(a, opt_a, 30)
    sd = opt_a.state_dict()
    weights = {n: p.detach().clone() for n, p in a.named_parameters()}
    run(a, opt_a, 30, seed=7)  # the uninterrupted run

    b = make_model(seed=123)  # other weights: the state dict brings the masters
    with torch.no_grad():
        for n, p in b.named_parameters():
            p.copy_(weights[n].float())
    opt_b = mt.Optimizer(b.named_parameters(), "adamw", lr=1e-3, **kw)
    opt_b.load_state_dict(sd)
    run(b, opt_b, 30, seed=7)
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)
    for x, y in zip(opt_a.master_parameters().values(), opt_b.master_parameters().values()):
        assert torch.equal(x, y)
    sd_a, sd_b = opt_a.state_dict(), opt_b.state_dict()
    assert sd_a["mixprec"]["steps"] == sd_b["mixprec"]["steps"] == 60
    for k in sd_a["state"]:
        for key, v in sd_a["state"][k].items():
            assert v.dtype == sd_b["state"][k][key].dtype
            assert torch.equal(v, sd_b["state"][k][key])
    # Formats are kept: fp32 masters stay fp32, bf16 moments bf16.
    assert sd["state"][0]["master"].dtype == torch.float32
    assert sd["state"][0]["exp_avg"].dtype == torch.bfloat16


def test_state_dict_survives_torch_save(tmp_path):
    model = make_model()
    opt = mt.Optimizer(model.named_parameters(), "adamw")
    run(model, opt, 5)
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    loaded = torch.load(tmp_path / "opt.pt", weights_only=False)
    opt2 = mt.Optimizer(twin(model).named_parameters(), "adamw")
    opt2.load_state_dict(loaded)
    assert opt2.stats()["steps"] == 5


# Continuing from a loaded state, each step can round a weight differently from torch twice (the decay
# and the update are each rounded, in another order of operations), so weights drift apart by up to
# 2 ulps of |w| per step before any effect through the gradients: a bound of 2 * steps * eps.
CONTINUATION_TOL = 2 * 40 * torch.finfo(torch.float32).eps


def test_loads_a_torch_adamw_state_dict_midway():
    model = make_model()
    ref = twin(model)
    ropt = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=0.1)
    run(ref, ropt, 40)
    with torch.no_grad():
        for p, r in zip(model.parameters(), ref.parameters()):
            p.copy_(r)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1)
    opt.load_state_dict(ropt.state_dict())
    assert opt.stats()["steps"] == 40
    run(model, opt, 40, seed=3)
    run(ref, ropt, 40, seed=3)
    assert worst_rel_err(model, ref) <= CONTINUATION_TOL


def test_loads_a_torch_sgd_momentum_state_dict():
    model = make_model()
    ref = twin(model)
    ropt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    run(ref, ropt, 10)
    with torch.no_grad():
        for p, r in zip(model.parameters(), ref.parameters()):
            p.copy_(r)
    opt = mt.Optimizer(model.named_parameters(), "sgd", lr=0.05, momentum=0.9)
    opt.load_state_dict(ropt.state_dict())
    run(model, opt, 10, seed=3)
    run(ref, ropt, 10, seed=3)
    assert worst_rel_err(model, ref) <= CONTINUATION_TOL


def test_checkpoint_file_round_trip(tmp_path):
    a = make_model(dtype=torch.float16)
    opt_a = mt.Optimizer(a.named_parameters(), "adamw", loss_scale="dynamic", clip_grad_norm=1.0)
    run(a, opt_a, 12)
    opt_a.save_checkpoint(tmp_path / "run.ckpt", {"epoch": 3})
    run(a, opt_a, 8, seed=4)
    b = make_model(dtype=torch.float16, seed=9)
    opt_b = mt.Optimizer(b.named_parameters(), "adamw", loss_scale="dynamic", clip_grad_norm=1.0)
    meta = opt_b.load_checkpoint(tmp_path / "run.ckpt")
    assert meta == {"epoch": "3"}
    run(b, opt_b, 8, seed=4)
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)
    assert opt_a.stats()["loss_scale"] == opt_b.stats()["loss_scale"]


def test_checkpoint_of_another_model_is_refused_and_changes_nothing(tmp_path):
    a = make_model()
    opt_a = mt.Optimizer(a.named_parameters(), "adamw")
    opt_a.save_checkpoint(tmp_path / "a.ckpt")
    b = torch.nn.Linear(3, 2)
    opt_b = mt.Optimizer(b.named_parameters(), "adamw")
    before = snapshot(b)
    with pytest.raises(mixprec.Error):
        opt_b.load_checkpoint(tmp_path / "a.ckpt")
    assert all(torch.equal(x, y) for x, y in zip(b.parameters(), before))


def test_save_safetensors_of_the_master_weights_by_name(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    model = make_model(dtype=torch.bfloat16)
    opt = mt.Optimizer(model.named_parameters(), "adamw", clip_grad_norm=1.0)
    run(model, opt, 3)
    opt.save_safetensors(tmp_path / "w.safetensors")
    loaded = safetensors.load_file(str(tmp_path / "w.safetensors"))
    masters = opt.master_parameters()
    assert set(loaded) == set(masters)
    for n, t in loaded.items():
        assert t.dtype == torch.float32 and torch.equal(t, masters[n])


def test_ema_of_the_weights():
    model = make_model()
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-2, ema_decay=0.9)
    ema = {n: p.detach().clone().double() for n, p in model.named_parameters()}
    for x, y in batches(20):
        opt.scale(loss_of(model, x, y)).backward()
        opt.step()
        opt.zero_grad()
        for n, p in model.named_parameters():
            ema[n] = 0.9 * ema[n] + 0.1 * p.detach().double()
    for n, v in opt.ema_parameters().items():
        assert (v.double() - ema[n]).abs().max() <= 1e-6 * ema[n].abs().max()


# ---- GradScaler and statistics --------------------------------------------------------------------


def test_grad_scaler_path_matches_grad_scaler_with_fused_adamw():
    model = make_model(dtype=torch.float16)
    ref_model = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, loss_scale="grad_scaler")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 20, growth_interval=5)
    master = [p.detach().float().clone().requires_grad_(True) for p in ref_model.parameters()]
    ropt = torch.optim.AdamW(master, lr=1e-3, fused=True)
    rscaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 20, growth_interval=5)
    skips, rskips = 0, 0
    for x, y in batches(60):
        before = scaler.get_scale()
        scaler.scale(loss_of(model, x, y)).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        skips += scaler.get_scale() < before
        rbefore = rscaler.get_scale()
        rscaler.scale(loss_of(ref_model, x, y)).backward()
        for m, p in zip(master, ref_model.parameters()):
            m.grad = p.grad.float()
            p.grad = None
        rscaler.step(ropt)
        rscaler.update()
        with torch.no_grad():
            for m, p in zip(master, ref_model.parameters()):
                p.copy_(m)
        rskips += rscaler.get_scale() < rbefore
    assert skips == rskips and skips >= 1
    assert opt.stats()["skipped_steps"] == skips
    assert scaler.get_scale() == rscaler.get_scale()


def test_stats_report_the_step():
    model = make_model(dtype=torch.float16)
    opt = mt.Optimizer(model.named_parameters(), "adamw", loss_scale="dynamic", clip_grad_norm=1.0)
    run(model, opt, 4)
    s = opt.stats()
    assert s["steps"] + s["skipped_steps"] == 4
    assert s["recorded"] and math.isfinite(s["grad_norm"]) and 0 < s["clip_coef"] <= 1
    assert 0 <= s["zero_fraction"] <= 1 and 0 <= s["subnormal_fraction"] <= 1
    assert s["lr"] == opt.param_groups[0]["lr"]
    assert "pass" in opt.describe()
    # Components are named by their path, as checkpoints name them.
    assert "adamw/scale_by_adam" in opt.describe()
    assert opt.state_bytes() > 0


# ---- recipes compiled on first use --------------------------------------------------------------


def test_a_recipe_outside_the_precompiled_set_is_compiled_once_and_cached(cache_dir, capfd):
    model = make_model()
    ref = twin(model)
    recipe = mixprec.Recipe("sgd", "fp32", clip=True)
    assert recipe not in mixprec.PRECOMPILED["host"]
    opt = mt.Optimizer(model.named_parameters(), "sgd", lr=0.1, momentum=0.5, clip_grad_norm=0.5)
    assert "compiling recipe" in capfd.readouterr().err
    assert list(cache_dir.glob("host-sgd-*.so"))
    ropt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.5)
    for x, y in batches(20):
        opt.scale(loss_of(model, x, y)).backward()
        opt.step()
        opt.zero_grad()
        loss_of(ref, x, y).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        ropt.step()
        ropt.zero_grad()
    assert worst_rel_err(model, ref) <= 1e-6
    mt.Optimizer(twin(model).named_parameters(), "sgd", lr=0.1, clip_grad_norm=0.5)
    assert "compiling" not in capfd.readouterr().err  # loaded, not compiled again


# ---- bad input --------------------------------------------------------------------------------------


def test_bad_construction_is_refused_with_a_message():
    m = make_model()
    with pytest.raises(ValueError, match="unknown optimizer"):
        mt.Optimizer(m.named_parameters(), "adamax")
    with pytest.raises(TypeError, match="unknown option 'momentum'"):
        mt.Optimizer(m.named_parameters(), "adamw", momentum=0.9)
    with pytest.raises(ValueError, match="unknown writer"):
        mt.Optimizer(m.named_parameters(), "adamw", writer="magic", model_dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="empty"):
        mt.Optimizer([], "adamw")
    with pytest.raises(ValueError, match="several dtypes"):
        mt.Optimizer([torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))])
    with pytest.raises(ValueError, match="several devices"):
        mt.Optimizer([torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3, device="meta"))])
    with pytest.raises(ValueError, match="not contiguous"):
        mt.Optimizer([torch.nn.Parameter(torch.zeros(4, 3).t())])
    with pytest.raises(ValueError, match="not a leaf"):
        mt.Optimizer([torch.zeros(3, requires_grad=True) * 2])
    with pytest.raises(ValueError, match="does not require grad"):
        mt.Optimizer([torch.zeros(3)])
    with pytest.raises(ValueError, match="own master"):
        mt.Optimizer(m.named_parameters(), "adamw", master_weights=False)
    with pytest.raises(ValueError, match="Kahan"):
        mt.Optimizer(make_model().named_parameters(), "adamw", model_dtype=torch.bfloat16, writer="kahan")
    with pytest.raises(ValueError, match="loss_scale"):
        mt.Optimizer(m.named_parameters(), "adamw", loss_scale="auto")
    with pytest.raises(ValueError, match="clip_grad_norm"):
        mt.Optimizer(m.named_parameters(), "adamw", clip_grad_norm=-1.0)
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="appears twice"):
        mt.Optimizer([("a", p), ("b", p)])


@pytest.mark.parametrize("options", [dict(lr=-1e-3), dict(eps=0.0), dict(betas=(1.0, 0.999)),
                                     dict(weight_decay=float("nan"))])
def test_refused_hyperparameters(options):
    m = make_model()
    before = snapshot(m)
    with pytest.raises(ValueError):
        mt.Optimizer(m.named_parameters(), "adamw", **options)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), before))


def test_a_refused_hyperparameter_set_later_changes_nothing():
    model = make_model()
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3)
    run(model, opt, 2)
    before = snapshot(model)
    x, y = next(batches(1))
    loss_of(model, x, y).backward()
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    opt.param_groups[0]["lr"] = 1e-3
    opt.param_groups[0]["eps"] = 0.0
    with pytest.raises(ValueError, match="eps"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
    assert opt.stats()["steps"] == 2
    opt.param_groups[0]["eps"] = 1e-8
    opt.step()
    assert opt.stats()["steps"] == 3


def test_groups_that_differ_in_betas_are_refused():
    m = make_model()
    params = list(m.named_parameters())
    opt = mt.Optimizer([{"params": params[:2]}, {"params": params[2:]}], "adamw")
    opt.param_groups[1]["betas"] = (0.8, 0.9)
    with pytest.raises(ValueError, match="betas"):
        opt.step()


def test_a_model_cast_or_moved_after_wrapping_is_detected():
    model = make_model()
    opt = mt.Optimizer(model.named_parameters(), "adamw")
    model.double()
    with pytest.raises(RuntimeError, match="no longer lives in the optimizer's arena"):
        opt.step()
    model = make_model()
    opt = mt.Optimizer(model.named_parameters(), "adamw")
    with torch.no_grad():
        model.fc.weight.data = model.fc.weight.data.clone()
    with pytest.raises(RuntimeError, match="fc.weight"):
        opt.step()


def test_state_dict_of_another_model_is_refused_and_changes_nothing():
    a = make_model()
    opt_a = mt.Optimizer(a.named_parameters(), "adamw")
    run(a, opt_a, 2)
    b = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    opt_b = mt.Optimizer(b.named_parameters(), "adamw")
    run_b = opt_b.state_dict()
    with pytest.raises(ValueError):
        opt_b.load_state_dict(opt_a.state_dict())
    with pytest.raises(ValueError):
        opt_b.load_state_dict({"nothing": 1})
    # same parameter count and group count, other shapes
    c = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 2))
    opt_c = mt.Optimizer(c.named_parameters(), "adamw")
    with pytest.raises(ValueError, match="names or shapes"):
        opt_b.load_state_dict(opt_c.state_dict())
    after = opt_b.state_dict()
    assert after["mixprec"]["steps"] == run_b["mixprec"]["steps"]
    # a torch state dict of another optimizer
    sgd = torch.optim.SGD(twin(b).parameters(), lr=0.1, momentum=0.9)
    run_params = list(sgd.param_groups[0]["params"])
    for p in run_params:
        p.grad = torch.ones_like(p)
    sgd.step()
    with pytest.raises(ValueError, match="exp_avg"):
        opt_b.load_state_dict(sgd.state_dict())


def test_a_state_dict_with_a_value_no_step_produces_is_refused_and_changes_nothing():
    import struct
    model = make_model(dtype=torch.float16)
    opt = mt.Optimizer(model.named_parameters(), "adamw", loss_scale="dynamic", clip_grad_norm=1.0)
    run(model, opt, 3)
    sd = opt.state_dict()
    before = opt.state_dict()
    for s in sd["mixprec"]["scalars"]:
        if s[0] == "dynamic_loss_scale" and s[1] == "scale":
            s[3] = struct.pack("<f", -1.0)
    for entry in sd["state"].values():
        entry["exp_avg"].fill_(7.0)
    with pytest.raises(mixprec.Error, match="loss scale"):
        opt.load_state_dict(sd)
    after = opt.state_dict()
    assert after["mixprec"]["loss_scale"] == before["mixprec"]["loss_scale"]
    for k in before["state"]:
        assert torch.equal(after["state"][k]["exp_avg"], before["state"][k]["exp_avg"])


def test_deprecations_none():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = make_model()
        opt = mt.Optimizer(model.named_parameters(), "adamw")
        run(model, opt, 1)
