"""fp32 optimizers against torch.optim (and Lion against a float32 transcription of its paper),
200 steps on a small real model: the weights agree within 1e-6 relative (max |diff| / max |w|)."""

import pytest
import torch

import mixprec.torch as mt
from conftest import batches, loss_of, make_model, twin, worst_rel_err

STEPS = 200
TOL = 1e-6


def train(model, opt, steps=STEPS, seed=1, scale=False):
    for x, y in batches(steps, seed):
        loss = loss_of(model, x, y)
        (opt.scale(loss) if scale else loss).backward()
        opt.step()
        opt.zero_grad()
    return model


CASES = [
    ("adamw", dict(lr=1e-3, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1)),
    ("adamw", dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-6, amsgrad=True),
     lambda p: torch.optim.AdamW(p, lr=1e-3, betas=(0.8, 0.99), eps=1e-6, amsgrad=True)),
    ("adam", dict(lr=1e-3, weight_decay=1e-2), lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=1e-2)),
    ("adam", dict(lr=1e-3, maximize=False), lambda p: torch.optim.Adam(p, lr=1e-3, fused=True)),
    ("sgd", dict(lr=5e-2), lambda p: torch.optim.SGD(p, lr=5e-2)),
    ("sgd", dict(lr=5e-2, momentum=0.9, weight_decay=1e-3),
     lambda p: torch.optim.SGD(p, lr=5e-2, momentum=0.9, weight_decay=1e-3)),
    ("sgd", dict(lr=5e-2, momentum=0.9, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=5e-2, momentum=0.9, nesterov=True)),
    ("adafactor", dict(lr=1e-2), lambda p: torch.optim.Adafactor(p, lr=1e-2)),
    ("adafactor", dict(lr=1e-2, weight_decay=0.01), lambda p: torch.optim.Adafactor(p, lr=1e-2, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,options,reference", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch(name, options, reference):
    model = make_model()
    ref = twin(model)
    train(model, mt.Optimizer(model.named_parameters(), name, **options))
    train(ref, reference(ref.parameters()))
    assert worst_rel_err(model, ref) <= TOL


class LionReference(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, Algorithm 2) in float32: c = b1 m + (1 - b1) g; w -= lr (sign(c) + wd w);
    m = b2 m + (1 - b2) g."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                m = self.state[p].setdefault("m", torch.zeros_like(p))
                c = m * b1 + p.grad * (1 - b1)
                p.sub_(g["lr"] * (torch.sign(c) + g["weight_decay"] * p))
                m.copy_(m * b2 + p.grad * (1 - b2))


def test_lion_matches_its_transcription():
    model = make_model()
    ref = twin(model)
    train(model, mt.Optimizer(model.named_parameters(), "lion", lr=3e-4, weight_decay=0.1))
    train(ref, LionReference(ref.parameters(), lr=3e-4, weight_decay=0.1))
    assert worst_rel_err(model, ref) <= TOL


def test_one_step_of_adamw_is_torch_s_to_the_last_bits():
    # From identical state, one step's update differs from torch's by rounding only: the weight's own
    # rounding (half an ulp of |w|) plus a few ulps of the update (about lr) from the rule's ~10 operations.
    model = make_model()
    ref = twin(model)
    train(model, mt.Optimizer(model.named_parameters(), "adamw", lr=1e-3), steps=1)
    train(ref, torch.optim.AdamW(ref.parameters(), lr=1e-3), steps=1)
    for a, b in zip(model.parameters(), ref.parameters()):
        eps = torch.finfo(torch.float32).eps
        assert ((a - b).abs() <= eps * (b.abs() + 8 * 1e-3)).all()
