#!/usr/bin/env python3
"""The model zoo: real architectures with random weights, exported to ONNX, with PyTorch's own outputs.

  make_zoo.py OUT_DIR [--only a,b,...] [--list]

For every model NAME it writes OUT_DIR/NAME.onnx (opset 13, batch 1, fp32, input "input", output "output"),
OUT_DIR/NAME.input.npy and OUT_DIR/NAME.output.npy (PyTorch's result on that input): the layout that
scripts/bench_zoo.sh and the peers' comparison read. It runs under Debian's python3 with python3-torchvision
(scripts/deps.sh --zoo installs it); weights are random (seeded), so nothing is downloaded.
"""
import os
import sys

import numpy as np
import torch
import torchvision


def vision(ctor, size=224):
    def make():
        return ctor(weights=None).eval(), torch.rand(1, 3, size, size)
    return make


class Encoder(torch.nn.Module):
    """A BERT-style stack: torch.nn.TransformerEncoder with GELU, post-norm, batch first."""

    def __init__(self, d_model, heads, ff, layers):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, activation="gelu", batch_first=True)
        self.stack = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x):
        return self.stack(x)


def encoder(d_model, heads, ff, layers, seq):
    def make():
        return Encoder(d_model, heads, ff, layers).eval(), torch.rand(1, seq, d_model) * 2 - 1
    return make


MODELS = {
    "resnet18": vision(torchvision.models.resnet18),
    "resnet50": vision(torchvision.models.resnet50),
    "mobilenet_v2": vision(torchvision.models.mobilenet_v2),
    "mobilenet_v3_large": vision(torchvision.models.mobilenet_v3_large),
    "squeezenet1_1": vision(torchvision.models.squeezenet1_1),
    "efficientnet_b0": vision(torchvision.models.efficientnet_b0),
    "shufflenet_v2_x1_0": vision(torchvision.models.shufflenet_v2_x1_0),
    "regnet_y_400mf": vision(torchvision.models.regnet_y_400mf),
    "convnext_tiny": vision(torchvision.models.convnext_tiny),
    "densenet121": vision(torchvision.models.densenet121),
    "googlenet": vision(lambda weights: torchvision.models.googlenet(weights=weights, aux_logits=False, init_weights=True)),
    # The small encoder, and a BERT-base-like width at sequence 128.
    "transformer_small": encoder(128, 4, 512, 2, 32),
    "transformer_d256_s128": encoder(256, 4, 1024, 4, 128),
}


def depends_on_input(model, x):
    with torch.no_grad():
        a, b = model(x), model(torch.rand_like(x))
    return not torch.allclose(a, b, rtol=1e-5, atol=0)


def export(name, out_dir):
    torch.manual_seed(0)
    model, x = MODELS[name]()
    # Some random initialisations (GoogLeNet's truncated normal of std 0.01) shrink the activations to nothing
    # within a few layers: the output is then the classifier's bias whatever the input, and a comparison with it
    # checks nothing. Such models get He-initialised convolution and linear weights instead.
    if not depends_on_input(model, x):
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if not depends_on_input(model, x):
            sys.exit(f"make_zoo.py: {name}'s output does not depend on its input even with He-initialised weights")
    with torch.no_grad():
        y = model(x)
    path = os.path.join(out_dir, name + ".onnx")
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["output"], opset_version=13, do_constant_folding=True)
    np.save(os.path.join(out_dir, name + ".input.npy"), x.numpy())
    np.save(os.path.join(out_dir, name + ".output.npy"), y.numpy())
    return path


def main():
    args = sys.argv[1:]
    if "--list" in args:
        print("\n".join(MODELS))
        return
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    out_dir = args[0]
    names = list(MODELS)
    if "--only" in args:
        names = args[args.index("--only") + 1].split(",")
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            sys.exit(f"make_zoo.py: no model {', '.join(unknown)}; --list names them")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    for n in names:
        print(export(n, out_dir), flush=True)


if __name__ == "__main__":
    main()
