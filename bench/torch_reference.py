#!/usr/bin/python3
"""bertfleet's PyTorch reference: the figures bertfleet is measured against, on the same machine in the same run.

  torch_reference.py train --config tiny --batch 32 --threads 1 --procs 1 --steps 5 --warmup 2 [--micro 8]
  torch_reference.py allreduce --elements 4433468 --procs 2 --reps 20

`train` times BERT pretraining steps (MLM + NSP, AdamW, global-norm clipping at 1.0) on the shapes
bench/train-step.ts uses: sequence 128 (every token real), 20 masked positions per sequence, vocabulary
30 522. With --procs P > 1 the global --batch is split over P processes wrapped in DistributedDataParallel
(gloo on 127.0.0.1); the printed seq/s is global. --micro M accumulates each process's share in micro-batches
of M sequences (one optimizer step per global batch), as bertfleet's microBatchSize. `allreduce` times gloo's all_reduce of E float32 over P
processes. Each prints one JSON line on stdout, with the OpenBLAS core the process loaded.

Needs Debian's python3-torch (1.13) and OpenBLAS; run it with /usr/bin/python3.
"""
import argparse, ctypes, json, math, os, resource, socket, time

# With --threads > 1, PyTorch's OpenMP workers spin between ops by default and take the cores
# OpenBLAS's threads need (measured here: 2 threads 0.6x of 1 thread; passive: 1.4x). Set before
# torch loads; a value in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "base": (12, 768, 12)}  # (layers, hidden, heads), as shared/model/config.ts
VOCAB, SEQ, MASKED = 30522, 128, 20


def openblas(threads):
    """Sets OpenBLAS's thread count (torch.set_num_threads does not reach it) and returns its core name."""
    maps = open("/proc/self/maps").read().split("\n")
    paths = sorted({l.split()[-1] for l in maps if "libopenblas" in l})
    if not paths:
        return None
    lib = ctypes.CDLL(paths[0])
    lib.openblas_set_num_threads(threads)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


class Layer(nn.Module):
    """A post-LN encoder layer with Hugging Face's parameter layout."""

    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(hidden, hidden) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(hidden, eps=1e-12), nn.LayerNorm(hidden, eps=1e-12)
        self.up, self.down = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)
        self.drop = nn.Dropout(0.1)

    def split(self, x):  # [b, s, H] -> [b, heads, s, d]
        b, s, h = x.shape
        return x.view(b, s, self.heads, h // self.heads).transpose(1, 2)

    def forward(self, x):  # [b, s, H]
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        probs = self.drop(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1))  # [b, heads, s, s]
        context = (probs @ v).transpose(1, 2).flatten(2)  # [b, s, H]
        x = self.ln1(x + self.drop(self.out(context)))
        return self.ln2(x + self.drop(self.down(F.gelu(self.up(x)))))


class BertForPreTraining(nn.Module):
    def __init__(self, layers, hidden, heads):
        super().__init__()
        self.words, self.positions, self.types = nn.Embedding(VOCAB, hidden), nn.Embedding(512, hidden), nn.Embedding(2, hidden)
        self.ln, self.drop = nn.LayerNorm(hidden, eps=1e-12), nn.Dropout(0.1)
        self.layers = nn.ModuleList(Layer(hidden, heads) for _ in range(layers))
        self.pooler, self.transform, self.nsp = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, 2)
        self.transform_ln = nn.LayerNorm(hidden, eps=1e-12)
        self.mlm_bias = nn.Parameter(torch.zeros(VOCAB))

    def forward(self, ids, types, masked_at, mlm_labels, nsp_labels):
        x = self.words(ids) + self.types(types) + self.positions.weight[: ids.shape[1]]  # [b, s, H]
        x = self.drop(self.ln(x))
        for layer in self.layers:
            x = layer(x)
        at = torch.gather(x, 1, masked_at[..., None].expand(-1, -1, x.shape[-1]))  # [b, MASKED, H]
        h = self.transform_ln(F.gelu(self.transform(at)))
        mlm = F.linear(h, self.words.weight, self.mlm_bias)  # [b, MASKED, VOCAB], decoder tied to the embeddings
        nsp = self.nsp(torch.tanh(self.pooler(x[:, 0])))  # [b, 2]
        return F.cross_entropy(mlm.flatten(0, 1), mlm_labels.flatten()) + F.cross_entropy(nsp, nsp_labels)


def random_batch(batch, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, SEQ), generator=g)
    types = (torch.arange(SEQ) >= SEQ // 2).long().expand(batch, SEQ)
    masked_at = (1 + 5 * torch.arange(MASKED)).expand(batch, MASKED)  # as bench/train-step.ts
    return ids, types, masked_at, torch.randint(5, VOCAB, (batch, MASKED), generator=g), torch.randint(0, 2, (batch,), generator=g)


def adamw(model):
    """AdamW (ε 1e-6, weight decay 0.01) with no decay on LayerNorm weights and biases, as bertfleet."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=1e-4, eps=1e-6)


def median_s(times):
    return sorted(times)[len(times) // 2]


def join_group(rank, a):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}", rank=rank, world_size=a.procs)


def train(rank, a):
    torch.set_num_threads(a.threads)
    core = openblas(a.threads)
    torch.manual_seed(0)  # the same initial weights in every process
    model = BertForPreTraining(*PRESETS[a.config])
    params = sum(p.numel() for p in model.parameters())
    if a.procs > 1:
        join_group(rank, a)
        model = nn.parallel.DistributedDataParallel(model)
    opt = adamw(model)
    share = a.batch // a.procs
    micro = a.micro or share
    count = share // micro  # micro-batches per step; each loss is scaled so their gradients sum to the batch mean's
    batches = [random_batch(micro, 100 * rank + i) for i in range(max(4, count))]
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for m in range(count):
            loss = model(*batches[(i * count + m) % len(batches)]) / count
            if a.procs > 1 and m < count - 1:
                with model.no_sync():
                    loss.backward()
            else:
                loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    if rank == 0:
        med = median_s(times)
        print(json.dumps({"bench": "train", "impl": "pytorch", "torch": torch.__version__, "config": a.config, "procs": a.procs,
                          "threads": a.threads, "batch": a.batch, "micro": micro, "params": params, "steps": a.steps,
                          "step_ms_median": round(med * 1e3, 1), "seq_per_s": round(a.batch / med, 2), "openblas_core": core,
                          "rss_max_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)}), flush=True)
    if a.procs > 1:
        dist.destroy_process_group()


def allreduce(rank, a):
    torch.set_num_threads(1)
    core = openblas(1)
    join_group(rank, a)
    x = torch.ones(a.elements, dtype=torch.float32)
    times = []
    for i in range(a.warmup + a.reps):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(x)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    if rank == 0:
        med = median_s(times)
        print(json.dumps({"bench": "allreduce", "impl": "gloo", "torch": torch.__version__, "procs": a.procs, "elements": a.elements,
                          "reps": a.reps, "ms_median": round(med * 1e3, 2), "openblas_core": core}), flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["train", "allreduce"])
    ap.add_argument("--config", choices=list(PRESETS), default="tiny")
    ap.add_argument("--batch", type=int, default=32, help="global batch, split over --procs")
    ap.add_argument("--threads", type=int, default=1, help="threads per process")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--micro", type=int, default=0, help="micro-batch size per process (default: the whole share)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--elements", type=int, default=4433468, help="float32 to all-reduce (default: tiny's gradient)")
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    if a.batch % a.procs != 0:
        ap.error(f"--batch ({a.batch}) must be a multiple of --procs ({a.procs})")
    if a.micro and (a.batch // a.procs) % a.micro != 0:
        ap.error(f"--micro ({a.micro}) must divide the per-process batch ({a.batch // a.procs})")
    if a.mode == "allreduce" and a.procs < 2:
        ap.error(f"allreduce needs --procs >= 2, got {a.procs}")
    with socket.socket() as s:  # a free port for the process group's rendezvous
        s.bind(("127.0.0.1", 0))
        a.port = s.getsockname()[1]
    fn = train if a.mode == "train" else allreduce
    if a.procs == 1:
        fn(0, a)
    else:
        mp.spawn(fn, args=(a,), nprocs=a.procs)


if __name__ == "__main__":
    main()
