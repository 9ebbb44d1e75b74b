"""Reference weight trajectories for Adam-mini, from the authors' own code.

Writes tests/data/adam_mini_reference.txt.  Run from anywhere, with the
torch 2.x of the reference environment and the official package on
PYTHONPATH (see README.md):

    PYTHONPATH=build/pydeps build/torch-venv/bin/python scripts/reference/adam_mini.py

The reference is Adam_mini of PyPI `adam-mini` 1.1.1 (adam_mini/adam_mini.py,
by the paper's authors), run for 200 steps on float32 CPU tensors.  It
partitions parameters by name: its branch for each parameter is recorded
from its state after the first step (`v` per element, `vmean` per head, per
row or per tensor), with the weight decay its parameter group got.

The parameters are small transformers' named parameters: a LLaMA in
Hugging Face's naming with biases on q/k/v/o and grouped-query attention, a
LLaMA in Meta's naming (wq/wk/wv/wo, feed_forward, attention_norm,
tok_embeddings, output), and a GPT-2 (wte, fused c_attn, ln_*, mlp).
Initial weights and gradients come from the synthetic generator of
_synthetic.py, parameter k of the list being its k, so a C++ test recomputes
them bit for bit.  Hyperparameters are given to Adam_mini as the float32
values printed in the file, widened to double.
"""

import os
import sys

import numpy as np

os.environ["ATEN_CPU_CAPABILITY"] = "default"
import torch  # noqa: E402

# This script's name is the package's: import the package with the script's
# directory off the path, then put it back for the helpers.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [d for d in sys.path if os.path.abspath(d or ".") != _HERE]
from adam_mini import Adam_mini  # noqa: E402  (PyPI adam-mini, on PYTHONPATH)
sys.path.insert(0, _HERE)
from _refio import Writer, as_f32, f32, torch_capability  # noqa: E402
from _synthetic import generator_text, initial_weights, gradients as synthetic_gradients  # noqa: E402

STEPS = 200
CHECKS = [1, 2, 5, 20, 100, 200]

# dim 8, 4 heads of 2 (a head is 8 * 8 / 4 = 16 elements: two rows of 8),
# 2 key/value heads; MLP width 12; vocabulary 11.
DIM, HEADS, KV_HEADS, HIDDEN, VOCAB = 8, 4, 2, 12, 11
KV = DIM * KV_HEADS // HEADS


def llama_hf():
    p = [("model.embed_tokens.weight", (VOCAB, DIM))]
    for layer in range(2):
        a = "model.layers.%d." % layer
        p += [(a + "input_layernorm.weight", (DIM,)),
              (a + "self_attn.q_proj.weight", (DIM, DIM)), (a + "self_attn.q_proj.bias", (DIM,)),
              (a + "self_attn.k_proj.weight", (KV, DIM)), (a + "self_attn.k_proj.bias", (KV,)),
              (a + "self_attn.v_proj.weight", (KV, DIM)), (a + "self_attn.v_proj.bias", (KV,)),
              (a + "self_attn.o_proj.weight", (DIM, DIM)), (a + "self_attn.o_proj.bias", (DIM,)),
              (a + "post_attention_layernorm.weight", (DIM,)),
              (a + "mlp.gate_proj.weight", (HIDDEN, DIM)), (a + "mlp.up_proj.weight", (HIDDEN, DIM)),
              (a + "mlp.down_proj.weight", (DIM, HIDDEN))]
    p += [("model.norm.weight", (DIM,)), ("lm_head.weight", (VOCAB, DIM))]
    return p


def llama_meta():
    p = [("tok_embeddings.weight", (VOCAB, DIM))]
    a = "layers.0."
    p += [(a + "attention.wq.weight", (DIM, DIM)), (a + "attention.wk.weight", (KV, DIM)),
          (a + "attention.wv.weight", (KV, DIM)), (a + "attention.wo.weight", (DIM, DIM)),
          (a + "feed_forward.w1.weight", (HIDDEN, DIM)), (a + "feed_forward.w2.weight", (DIM, HIDDEN)),
          (a + "feed_forward.w3.weight", (HIDDEN, DIM)),
          (a + "attention_norm.weight", (DIM,)), (a + "ffn_norm.weight", (DIM,))]
    p += [("norm.weight", (DIM,)), ("output.weight", (VOCAB, DIM))]
    return p


def gpt2():
    a = "transformer.h.0."
    return [("transformer.wte.weight", (VOCAB, DIM)), ("transformer.wpe.weight", (6, DIM)),
            (a + "ln_1.weight", (DIM,)), (a + "ln_1.bias", (DIM,)),
            (a + "attn.c_attn.weight", (DIM, 3 * DIM)), (a + "attn.c_attn.bias", (3 * DIM,)),
            (a + "attn.c_proj.weight", (DIM, DIM)), (a + "attn.c_proj.bias", (DIM,)),
            (a + "ln_2.weight", (DIM,)), (a + "ln_2.bias", (DIM,)),
            (a + "mlp.c_fc.weight", (DIM, HIDDEN)), (a + "mlp.c_fc.bias", (HIDDEN,)),
            (a + "mlp.c_proj.weight", (HIDDEN, DIM)), (a + "mlp.c_proj.bias", (DIM,)),
            ("transformer.ln_f.weight", (DIM,)), ("transformer.ln_f.bias", (DIM,)),
            ("lm_head.weight", (VOCAB, DIM))]


MODELS = {"llama_hf": llama_hf, "llama_meta": llama_meta, "gpt2": gpt2}


def branch_of(state, p):
    """The official code's block for p, read off its optimizer state."""
    if "v" in state:
        assert state["v"].shape == p.shape
        return "element"
    vmean = state["vmean"]
    if vmean.dim() == 0:
        return "tensor"
    if "head_per_gpu" in state:
        return "head:%d" % state["head_per_gpu"]
    assert "neuron_per_gpu" in state
    return "row:%d" % state["neuron_per_gpu"]


def run(model, hp, grad_scale):
    named = MODELS[model]()
    shapes = [s for _, s in named]
    params = [torch.nn.Parameter(torch.from_numpy(w.copy()).reshape(s)) for w, s in zip(initial_weights(shapes), shapes)]
    opt = Adam_mini(named_parameters=[(n, q) for (n, _), q in zip(named, params)], lr=hp["lr"],
                    betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"], weight_decay=hp["weight_decay"],
                    dim=DIM, n_heads=HEADS, n_kv_heads=KV_HEADS, verbose=False)
    checks, branches = {}, None
    for t in range(1, STEPS + 1):
        for q, g, s in zip(params, synthetic_gradients(t, grad_scale, shapes), shapes):
            q.grad = torch.from_numpy(g).reshape(s)
        opt.step()
        if t == 1:
            branches = [branch_of(opt.state[q], q) for q in params]
        if t in CHECKS:
            checks[t] = [q.detach().numpy().reshape(-1).copy() for q in params]
    decay = [g["weight_decay"] for g in opt.param_groups]
    return named, branches, decay, checks


HP_ORDER = ["lr", "beta1", "beta2", "eps", "weight_decay"]
DEFAULTS = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)

CASES = [
    # name, model, overrides, grad_scale
    ("llama_hf_defaults", "llama_hf", dict(), 1.0),
    ("llama_hf_wd0.1_lr3e-3", "llama_hf", dict(weight_decay=0.1, lr=3e-3), 1.0),
    ("llama_meta_wd0.1_gs1e-3", "llama_meta", dict(weight_decay=0.1, beta2=0.95), 1e-3),
    ("gpt2_wd0.05", "gpt2", dict(weight_decay=0.05), 1.0),
]


def main():
    import importlib.metadata
    torch.set_num_threads(1)
    assert torch_capability(torch) in ("DEFAULT", "NO AVX"), torch_capability(torch)
    version = importlib.metadata.version("adam-mini")
    header = """\
Adam-mini reference trajectories. Generated by scripts/reference/adam_mini.py
-- do not edit by hand. Regenerate:
  PYTHONPATH=build/pydeps build/torch-venv/bin/python scripts/reference/adam_mini.py

Synthetic data (Python, arbitrary-precision ints), parameter k of a case
  being the k-th `param` line (the shapes listed below are those of its
  first case):
%s

Adam_mini of PyPI adam-mini %s (the authors' implementation), torch %s,
  float32 CPU tensors, named_parameters = the case's `param` lines, dim %d,
  n_heads %d, n_kv_heads %d, verbose=False; p.grad set each step to the
  synthetic gradient times grad_scale. Hyperparameters were passed as the
  float32 values printed here (widened to double).
torch CPU kernels: ATEN_CPU_CAPABILITY=default (capability reported: %s).
param <k> <name> <shape, e.g. 8x8>
branch <k> <the official code's block for parameter k: element (its Adam
  branch), head:<heads>, row:<rows>, tensor> <the weight decay of its group>
check <t> <k> <n> <weights of parameter k after step t, float32>""" % (
        generator_text([s for _, s in llama_hf()]), version, torch.__version__, DIM, HEADS, KV_HEADS,
        torch_capability(torch))
    w = Writer("adam_mini_reference.txt")
    w.comment(header)
    for name, model, over, gscale in CASES:
        hp = dict(DEFAULTS)
        hp.update(over)
        for key in HP_ORDER:
            hp[key] = as_f32(hp[key])
        named, branches, decay, checks = run(model, hp, gscale)
        w.begin(name)
        w.kv("optimizer", "adam_mini")
        w.kv("model", model)
        for key in HP_ORDER:
            w.kv(key, f32(hp[key]))
        w.kv("dim", DIM)
        w.kv("n_heads", HEADS)
        w.kv("n_kv_heads", KV_HEADS)
        w.kv("grad_scale", f32(gscale))
        w.kv("steps", STEPS)
        for k, (pname, shape) in enumerate(named):
            w.kv("param", k, pname, "x".join(str(d) for d in shape))
        for k, (b, d) in enumerate(zip(branches, decay)):
            w.kv("branch", k, b, f32(d))
        for t in CHECKS:
            for k, arr in enumerate(checks[t]):
                assert np.all(np.isfinite(arr)), (name, t, k)
                w.kv("check", t, k, arr.size, *[f32(x) for x in arr])
        w.end()
    w.write()


if __name__ == "__main__":
    main()
