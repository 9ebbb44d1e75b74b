"""Plain DistributedDataParallel (gloo, 2 processes, gradient_as_bucket_view=False) in front of the
optimizer: DDP's all-reduce writes the averaged gradients into the arena's views, and both ranks
end where one process training on the whole batch ends."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mixprec.torch as mt
from conftest import batches, loss_of, make_model, worst_rel_err

STEPS = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, world, port, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = make_model(seed=rank)  # different weights: DDP broadcasts rank 0's before the optimizer takes them
    ddp = torch.nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=False)
    opt = mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1)
    for x, y in batches(STEPS, batch=24):
        half = slice(rank * 12, (rank + 1) * 12)
        loss = loss_of(ddp, x[half], y[half])
        opt.scale(loss).backward()
        opt.step()
        opt.zero_grad()
    torch.save([p.detach().clone() for p in model.parameters()], os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch without gloo")
def test_ddp_with_grads_copied_into_the_arena(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for a, b in zip(*ranks):
        assert torch.equal(a, b)
    single = make_model(seed=0)
    opt = mt.Optimizer(single.named_parameters(), "adamw", lr=1e-3, weight_decay=0.1)
    for x, y in batches(STEPS, batch=24):
        opt.scale(loss_of(single, x, y)).backward()
        opt.step()
        opt.zero_grad()
    ddp_model = make_model(seed=0)
    with torch.no_grad():
        for p, w in zip(ddp_model.parameters(), ranks[0]):
            p.copy_(w)
    # The mean of two half-batch gradients is the whole batch's up to fp32 rounding.
    assert worst_rel_err(ddp_model, single) <= 1e-5
