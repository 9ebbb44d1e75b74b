"""Shared pieces of the package's tests: a small real model, data, comparisons.

torch runs its portable CPU kernels (ATEN_CPU_CAPABILITY=default, set before
torch is imported), so its results do not depend on the machine's vector
units; the library's own element rules round every operation the same way.
"""

import copy
import os

os.environ.setdefault("ATEN_CPU_CAPABILITY", "default")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

VOCAB, DIM, HIDDEN = 48, 16, 32


class TinyModel(torch.nn.Module):
    """Embedding, a linear layer with bias, LayerNorm and an output layer: matrices, vectors, norms."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, DIM)
        self.fc = torch.nn.Linear(DIM, HIDDEN)
        self.norm = torch.nn.LayerNorm(HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, VOCAB)

    def forward(self, tokens):
        return self.head(torch.relu(self.norm(self.fc(self.embed(tokens)))))


def make_model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return TinyModel().to(dtype)


def batches(steps, seed=1, batch=24):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randint(0, VOCAB, (batch,), generator=g)
        y = (x * 7 + 3) % VOCAB  # a learnable mapping
        yield x, y


def loss_of(model, x, y):
    return torch.nn.functional.cross_entropy(model(x).float(), y)


def twin(model):
    return copy.deepcopy(model)


def rel_err(a, b):
    """max |a - b| / max |b| over one tensor."""
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def worst_rel_err(model_a, model_b):
    return max(rel_err(a, b) for a, b in zip(model_a.parameters(), model_b.parameters()))


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXPREC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"
