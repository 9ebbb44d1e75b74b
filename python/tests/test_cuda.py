"""The CUDA module, where a GPU is present (skipped otherwise): the same comparisons as on the host,
on the current torch stream, and a step captured in a CUDA graph."""

import pytest
import torch

from conftest import batches, loss_of, make_model, twin, worst_rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

if torch.cuda.is_available():
    import mixprec.torch as mt


def cuda_batches(steps, seed=1):
    for x, y in batches(steps, seed):
        yield x.cuda(), y.cuda()


def test_adamw_fp32_matches_torch_on_the_gpu():
    model = make_model().cuda()
    ref = twin(model)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1)
    ropt = torch.optim.AdamW(ref.parameters(), lr=1e-3, weight_decay=0.1)
    for x, y in cuda_batches(200):
        opt.scale(loss_of(model, x, y)).backward()
        opt.step()
        opt.zero_grad()
        loss_of(ref, x, y).backward()
        ropt.step()
        ropt.zero_grad()
    assert worst_rel_err(model, ref) <= 1e-5  # cuBLAS and the GPU's reductions round differently from the host


def test_fp16_dynamic_scale_on_a_side_stream():
    model = make_model(dtype=torch.float16).cuda()
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, loss_scale=dict(init_scale=2.0 ** 24,
                                                                                 growth_interval=10),
                       clip_grad_norm=1.0)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        for x, y in cuda_batches(50):
            opt.scale(loss_of(model, x, y)).backward()
            opt.step()
            opt.zero_grad()
    side.synchronize()
    s = opt.stats()
    assert s["steps"] + s["skipped_steps"] == 50 and s["skipped_steps"] >= 1


def test_step_captured_in_a_cuda_graph():
    model = make_model(dtype=torch.bfloat16).cuda()
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, clip_grad_norm=1.0)
    x, y = next(cuda_batches(1))
    opt.scale(loss_of(model, x, y)).backward()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        opt.step()  # warm-up outside the graph
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        opt.step()
    before = opt.stats()["steps"]
    g.replay()
    torch.cuda.synchronize()
    assert opt.stats()["steps"] == before + 1
