"""Adam-mini from named_parameters() against its authors' implementation (PyPI adam-mini 1.1.1):
the partition into blocks comes from the parameters' names and shapes, as theirs does."""

import pytest
import torch

import mixprec.torch as mt
from conftest import worst_rel_err

adam_mini = pytest.importorskip("adam_mini")

DIM, HEADS, KV_HEADS, VOCAB = 32, 4, 2, 40


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        kv = DIM // HEADS * KV_HEADS
        self.q_proj = torch.nn.Linear(DIM, DIM, bias=True)
        # No key bias: it shifts every score of a query equally, so softmax makes its gradient zero and
        # what backward returns is rounding noise, which Adam's normalisation turns into O(lr) steps that
        # no two implementations share.
        self.k_proj = torch.nn.Linear(DIM, kv, bias=False)
        self.v_proj = torch.nn.Linear(DIM, kv, bias=True)
        self.o_proj = torch.nn.Linear(DIM, DIM, bias=False)

    def forward(self, x):
        b, t, _ = x.shape
        hd = DIM // HEADS
        q = self.q_proj(x).view(b, t, HEADS, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, KV_HEADS, hd).transpose(1, 2).repeat_interleave(HEADS // KV_HEADS, 1)
        v = self.v_proj(x).view(b, t, KV_HEADS, hd).transpose(1, 2).repeat_interleave(HEADS // KV_HEADS, 1)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(a.transpose(1, 2).reshape(b, t, DIM))


class Layer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = torch.nn.LayerNorm(DIM)
        self.self_attn = Attention()
        self.post_attention_layernorm = torch.nn.LayerNorm(DIM)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(DIM, 2 * DIM), torch.nn.SiLU(), torch.nn.Linear(2 * DIM, DIM))

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(torch.nn.Module):
    """A LLaMA-style model with Hugging Face's parameter names (small)."""

    def __init__(self):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(VOCAB, DIM)
        self.layers = torch.nn.ModuleList([Layer(), Layer()])
        self.norm = torch.nn.LayerNorm(DIM)
        self.lm_head = torch.nn.Linear(DIM, VOCAB, bias=False)

    def forward(self, tokens):
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


def train(model, opt, steps=200):
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        x = torch.randint(0, VOCAB, (4, 12), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x)[:, :-1].reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        (opt.scale(loss) if isinstance(opt, mt.Optimizer) else loss).backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_mini_matches_the_authors_implementation(weight_decay):
    torch.manual_seed(0)
    model = Llama()
    ref = Llama()
    ref.load_state_dict(model.state_dict())
    opt = mt.Optimizer(model.named_parameters(), "adam_mini", lr=1e-3, weight_decay=weight_decay, dim=DIM,
                       n_heads=HEADS, n_kv_heads=KV_HEADS)
    official = adam_mini.Adam_mini(ref.named_parameters(), lr=1e-3, weight_decay=weight_decay, dim=DIM,
                                   n_heads=HEADS, n_kv_heads=KV_HEADS, verbose=False)
    train(model, opt)
    train(ref, official)
    assert worst_rel_err(model, ref) <= 1e-6
