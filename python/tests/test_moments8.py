"""Block-quantized moments from PyTorch (moments_dtype='8bit' and torch.float8_e4m3fn): the
optimizer's weights, codes and scales against the independent float32 transcription of AdamW with
8-bit moments (scripts/reference/adamw_blockwise.py, numpy only), bit for bit over 200 steps;
state_dict round trips; refusals that leave the optimizer unchanged."""

import os
import sys

import pytest
import torch

import mixprec.torch as mt
from conftest import batches, loss_of, make_model

_REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "reference")
sys.path.insert(0, os.path.abspath(_REFERENCE))
import adamw_blockwise as ref  # noqa: E402
from _synthetic import initial_weights  # noqa: E402

POLICIES = {"8bit": ("dynamic8", ref.CASES[0]), torch.float8_e4m3fn: ("e4m3", ref.CASES[2])}


@pytest.mark.parametrize("moments", ["8bit", torch.float8_e4m3fn], ids=["8bit", "fp8"])
def test_adamw_matches_the_transcription_bit_for_bit(moments):
    policy, (case, case_policy, block, hp) = POLICIES[moments]
    assert case_policy == policy and block == 256  # the package's block
    expected = ref.run_adamw(hp, policy, block)
    params = [torch.nn.Parameter(torch.from_numpy(w.copy()).view(shape))
              for w, shape in zip(initial_weights(ref.SHAPES), ref.SHAPES)]
    opt = mt.Optimizer([(f"p{k}", p) for k, p in enumerate(params)], "adamw", moments_dtype=moments,
                       lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                       weight_decay=hp["weight_decay"])
    checked = 0
    for t in range(1, ref.STEPS + 1):
        for p, g in zip(params, ref.step_gradients(t, None)):
            p.grad = torch.from_numpy(g.copy()).view(p.shape)
        opt.step()
        if t not in expected:
            continue
        for k, (p, (w, mc, ms, vc, vs)) in enumerate(zip(params, expected[t])):
            st = opt.state[p]
            assert torch.equal(p.detach().flatten(), torch.from_numpy(w)), f"{case} step {t} weights of p{k}"
            assert torch.equal(st["exp_avg"].flatten().long(), torch.from_numpy(mc)), f"step {t} m codes of p{k}"
            assert torch.equal(st["exp_avg_scales"], torch.from_numpy(ms)), f"step {t} m scales of p{k}"
            assert torch.equal(st["exp_avg_sq"].flatten().long(), torch.from_numpy(vc)), f"step {t} v codes of p{k}"
            assert torch.equal(st["exp_avg_sq_scales"], torch.from_numpy(vs)), f"step {t} v scales of p{k}"
            checked += 1
    assert checked == len(ref.CHECKS) * len(ref.SHAPES)


def _train(opt, model, steps, seed):
    for x, y in batches(steps, seed=seed):
        loss_of(model, x, y).backward()
        opt.step()
        opt.zero_grad()


def test_state_dict_round_trip_resumes_bit_for_bit():
    model = make_model(dtype=torch.bfloat16)
    opt = mt.Optimizer(model.named_parameters(), "adamw", moments_dtype="8bit", clip_grad_norm=1.0, lr=1e-2)
    _train(opt, model, 5, seed=1)
    saved = opt.state_dict()
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    first = next(iter(saved["state"].values()))
    assert first["exp_avg"].dtype == torch.uint8 and first["exp_avg_scales"].dtype == torch.float32
    _train(opt, model, 4, seed=2)
    after = [p.detach().clone() for p in model.parameters()]

    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(weights[n])
    opt.load_state_dict(saved)
    _train(opt, model, 4, seed=2)
    assert all(torch.equal(a, p.detach()) for a, p in zip(after, model.parameters()))


def test_optimizer_state_is_two_bytes_per_parameter_and_scales():
    model = make_model()
    n = sum(p.numel() for p in model.parameters())
    blocks = sum((p.numel() + 255) // 256 for p in model.parameters())
    lean = mt.Optimizer(model.named_parameters(), "adamw", moments_dtype="8bit")
    full = mt.Optimizer(make_model().named_parameters(), "adamw")
    # fp32 model (its own master): the moments alone, plus the step's few device scalars
    assert lean.state_bytes() - 2 * (n + 4 * blocks) == full.state_bytes() - 8 * n
    assert lean.state_bytes() < full.state_bytes() / 3


def test_float_moments_are_refused_by_an_8bit_optimizer_and_codes_by_a_float_one():
    model = make_model()
    fp32 = mt.Optimizer(model.named_parameters(), "adamw")
    _train(fp32, model, 2, seed=3)
    eight = mt.Optimizer(make_model().named_parameters(), "adamw", moments_dtype="8bit")
    before = {k: v.clone() for k, v in eight.state_dict()["state"][0].items()}
    with pytest.raises(ValueError, match="saved with fp32 moments, this optimizer keeps 8bit moments"):
        eight.load_state_dict(fp32.state_dict())
    plain = fp32.state_dict()
    del plain["mixprec"]  # as a torch state dict: the moments as float tensors
    with pytest.raises(ValueError, match="exp_avg.*is torch.float32 in the state dict.*dynamic8"):
        eight.load_state_dict(plain)
    after = eight.state_dict()["state"][0]
    assert all(torch.equal(before[k], after[k]) for k in before)

    codes = mt.Optimizer(make_model().named_parameters(), "adamw", moments_dtype="8bit")
    _train(codes, make_model(), 1, seed=4)
    as_plain = codes.state_dict()
    del as_plain["mixprec"]
    with pytest.raises(ValueError, match="exp_avg.*is torch.uint8 in the state dict"):
        fp32.load_state_dict(as_plain)


@pytest.mark.parametrize("optimizer", ["lamb", "adafactor", "adam_mini"])
def test_block_quantized_moments_are_refused_where_the_engine_cannot_keep_them(optimizer):
    with pytest.raises(ValueError, match="cannot keep 8bit moments|adafactor keeps factored"):
        mt.Optimizer(make_model().named_parameters(), optimizer, moments_dtype="8bit")


def test_unknown_moments_dtype_is_refused():
    with pytest.raises(ValueError, match="moments_dtype is torch.float32, torch.bfloat16, '8bit'"):
        mt.Optimizer(make_model().named_parameters(), "adamw", moments_dtype=torch.float16)
    with pytest.raises(ValueError, match="moments_dtype"):
        mt.Optimizer(make_model().named_parameters(), "adamw", moments_dtype="4bit")
