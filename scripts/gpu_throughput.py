"""Image U-Net throughput on a GPU: training images/s and sampling images/s, fp32 vs bf16 vs torch.compile.

    python3 scripts/gpu_throughput.py [--out DIR] [--small]

Training times ``odebench.bench.harness.training.train.make_train_step`` (the harness's own step: fm_ot loss, backward,
gradient clipping, Adam, EMA) on the DDPM CIFAR-10 U-Net (35.7M parameters) at batch 128 with data resident on the
GPU; sampling times ``odebench.bench.core.solvers.sample`` (Euler, fixed NFE) at batch 1,000 under inference mode. Every
figure is the median of several timed repeats after warm-up (compilation included in the warm-up), timed
with CUDA events. The network's FLOPs per image (torch.utils.flop_counter) turn times into achieved TFLOP/s.
Prints a table and writes ``gpu_throughput.json`` to --out (default $OUT, else the current folder).
``--small`` shrinks everything so that the script itself can be checked on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odebench.bench.core.solvers import sample  # noqa: E402
from odebench.bench.data import Dataset  # noqa: E402
from odebench.bench.harness.process.runtime import Runtime, compile_modules  # noqa: E402
from odebench.bench.harness.training.train import TrainConfig, make_train_step  # noqa: E402
from odebench.bench.nets import build_net  # noqa: E402
from odebench.methods import get_method  # noqa: E402
from odebench.methods.couplings import IndependentCoupling  # noqa: E402

DDPM_CIFAR = {"name": "unet", "ch": 128, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 2,
              "attn_resolutions": [16], "dropout": 0.1}
SMALL = {"name": "unet", "ch": 16, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [16],
         "groups": 8}


def timer(device: str):
    """``run(fn) -> seconds`` for one call of fn, with CUDA events on a GPU (host clock on a CPU)."""
    if device.startswith("cuda"):
        def run(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000
    else:
        def run(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
    return run


def flops_per_image(net: torch.nn.Module, shape, device: str) -> float:
    """Forward FLOPs of one image (a multiply-add counts 2), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x, t = torch.randn(2, *shape, device=device), torch.rand(2, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, t)
    return counter.get_total_flops() / 2


def train_throughput(runtime: Runtime, cfg_net, shape, batch, steps, repeats, warmup) -> dict:
    torch.manual_seed(0)
    dev = runtime.device
    data = Dataset("fake", "image", train=torch.rand(5000, *shape) * 2 - 1, test=torch.zeros(1, *shape),
                   hflip=True)
    method = get_method("fm_ot")
    model = method.networks(lambda out_mult=1: build_net(cfg_net, shape, out_mult), shape).to(dev)
    ema = method.networks(lambda out_mult=1: build_net(cfg_net, shape, out_mult), shape).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    gen = torch.Generator(device=dev).manual_seed(0)
    coupling = IndependentCoupling(lambda n, g: torch.randn(n, *shape, generator=g, device=g.device),
                                   data.sample)
    step = make_train_step(method, model.train(), ema, coupling, TrainConfig(batch_size=batch, lr=2e-4), gen,
                           runtime)
    t_warm = time.perf_counter()
    for i in range(warmup):
        loss = step(i)
    float(loss)
    warm_s = time.perf_counter() - t_warm
    run = timer(dev)

    def chunk():
        for i in range(steps):
            step(warmup + i)

    secs = [run(chunk) for _ in range(repeats)]
    med = statistics.median(secs)
    return {"images_per_s": batch * steps / med, "ms_per_step": 1000 * med / steps,
            "spread": (max(secs) - min(secs)) / med, "warmup_s": warm_s, "final_loss": float(step(0))}


def sample_throughput(runtime: Runtime, cfg_net, shape, batch, nfe, repeats) -> dict:
    torch.manual_seed(0)
    dev = runtime.device
    model = torch.nn.ModuleDict({"v": build_net(cfg_net, shape)}).to(dev).eval()
    if runtime.compile:
        compile_modules(model)
    dyn = get_method("fm_ot").dynamics(model)
    x0s = [torch.randn(batch, *shape, device=dev) for _ in range(2)]  # rotate inputs between repeats
    run = timer(dev)
    with torch.inference_mode(), runtime.autocast():
        t_warm = time.perf_counter()
        res = sample(dyn, x0s[0], "euler", nfe=nfe)
        float(res.x.float().abs().mean())
        warm_s = time.perf_counter() - t_warm
        secs = [run(lambda i=i: sample(dyn, x0s[i % 2], "euler", nfe=nfe)) for i in range(repeats)]
    med = statistics.median(secs)
    return {"images_per_s": batch / med, "ms_per_nfe": 1000 * med / nfe,
            "spread": (max(secs) - min(secs)) / med, "warmup_s": warm_s,
            "finite": bool(torch.isfinite(res.x).all())}


def device_info(device: str) -> dict:
    info = {"torch": torch.__version__, "device": device}
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(device)
        info.update(name=p.name, memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count,
                    capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda,
                    cudnn_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    ap.add_argument("--small", action="store_true", help="tiny sizes, to check the script on a CPU")
    ap.add_argument("--train-steps", type=int, default=20, help="steps per timed repeat")
    ap.add_argument("--nfe", type=int, default=20)
    ap.add_argument("--variants", default="fp32,bf16,fp32+compile,bf16+compile")
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg_net, shape = (SMALL, (3, 32, 32)) if args.small else (DDPM_CIFAR, (3, 32, 32))
    batch, sbatch, steps, repeats = (16, 32, 2, 2) if args.small else (128, 1000, args.train_steps, 5)
    net = build_net(cfg_net, shape).to(device)
    result = {"info": device_info(device), "net": cfg_net, "params": sum(p.numel() for p in net.parameters()),
              "flops_per_image_fwd": flops_per_image(net, shape, device), "train_batch": batch,
              "sample_batch": sbatch, "nfe": args.nfe, "train": {}, "sample": {}}
    del net
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in args.variants.split(","):
        rt = Runtime(device, variant.split("+")[0], compile="compile" in variant)
        # written after every measurement, so a run cut short still leaves its numbers behind
        result["train"][variant] = train_throughput(rt, cfg_net, shape, batch, steps, repeats, warmup=5)
        (args.out / "gpu_throughput.json").write_text(json.dumps(result, indent=2))
        if rt.precision == "bf16" or not rt.compile:
            result["sample"][variant] = sample_throughput(rt, cfg_net, shape, sbatch, args.nfe, repeats)
            (args.out / "gpu_throughput.json").write_text(json.dumps(result, indent=2))
        torch.cuda.empty_cache() if device == "cuda" else None
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    info, fl = result["info"], result["flops_per_image_fwd"]
    print(f"\ndevice: {info.get('name', info['device'])} | torch {info['torch']} | U-Net "
          f"{result['params'] / 1e6:.1f}M params, {fl / 1e9:.2f} GFLOP/image forward")
    print(f"{'variant':<14} {'train img/s':>12} {'ms/step':>8} {'TFLOP/s':>8} {'sample img/s':>13} "
          f"{'ms/NFE':>7} {'TFLOP/s':>8}")
    for v, tr in result["train"].items():
        sa = result["sample"].get(v)
        tr_tf = 3 * fl * tr["images_per_s"] / 1e12  # forward + backward ~ 3 forward passes
        line = f"{v:<14} {tr['images_per_s']:>12.0f} {tr['ms_per_step']:>8.1f} {tr_tf:>8.1f}"
        if sa:
            sa_tf = fl * sa["images_per_s"] * result["nfe"] / 1e12
            line += f" {sa['images_per_s']:>13.0f} {sa['ms_per_nfe']:>7.1f} {sa_tf:>8.1f}"
        print(line)
    print(f"(train: batch {result['train_batch']}, fm_ot step incl. Adam + EMA; sample: batch "
          f"{result['sample_batch']}, euler NFE {result['nfe']})")


if __name__ == "__main__":
    sys.exit(main())
