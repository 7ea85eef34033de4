#!/usr/bin/env python3
"""Reference for sequent-train's global-norm gradient clipping: torch.nn.utils.clip_grad_norm_.

Two parameters (a [2, 3] weight and a [2] bias) get gradients A and c; the fixture holds A, c, the
total norm PyTorch reports and the clipped gradients, for max_norm 1.0 (clips) and 100.0 (does not).
Writes crates/train/tests/fixtures/clip.safetensors.  Run: python3 scripts/gen_clip_fixture.py
"""
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "train", "tests", "fixtures", "clip.safetensors")
torch.manual_seed(0)
A = torch.randn(2, 3)
c = torch.randn(2)
data = {"A": A, "c": c}
for max_norm in (1.0, 100.0):
    w = torch.zeros(2, 3, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    w.grad, b.grad = A.clone(), c.clone()
    total = torch.nn.utils.clip_grad_norm_([w, b], max_norm)
    tag = str(int(max_norm))
    data[f"total_{tag}"] = total.reshape(1)
    data[f"A_{tag}"] = w.grad.clone()
    data[f"c_{tag}"] = b.grad.clone()
os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file({k: v.contiguous() for k, v in data.items()}, OUT)
print("wrote", os.path.normpath(OUT))
