"""Seed of the spec fuzz target's transformer path: a 1-block transformer in
the paper's published layout (`corpus/spec/published.toml`: 8 heads of 2 on
d_model 16, vocabulary 11, q/k biases, a running-energy final norm), saved
by torch itself as `{"model_state_dict": ...}`.

    python make_transformer_seed.py   # needs torch; writes pt/published.pt
"""
import os

import torch

here = os.path.dirname(os.path.abspath(__file__))
g = torch.Generator().manual_seed(0)
vocab, d = 11, 16


def weights(*shape, scale=0.5):
    return torch.randn(*shape, generator=g) * scale


state = {"embed.weight": weights(vocab, d, scale=1.0)}
for name in ["q1", "k1", "q2", "k2"]:
    state[f"layers.0.{name}.weight"] = weights(d, d)
    state[f"layers.0.{name}.bias"] = weights(d)
for name in ["v", "o"]:
    state[f"layers.0.{name}.weight"] = weights(d, d)
state["unembed.weight"] = weights(vocab, d, scale=1.0)
state["final_norm.running_mean_energy"] = torch.tensor([1.7])
torch.save({"model_state_dict": state}, os.path.join(here, "pt", "published.pt"))
