"""PyTorch CPU baseline for the training case of `tensim bench`.

The same step as tensim's: the backdoor classifier y = D((L x) ⊙ (R x))
(784 → 64 → 10, no biases, no residual, nn.Linear initialisation), one
AdamW step (lr 1e-3, weight decay 1e-3, default betas and eps) on a batch of
512 with fresh Gaussian input noise (std 0.05), cross-entropy loss, and the
batch accuracy read back as tensim's step reports it. The batch is the
bench's fixed synthetic one, so both sides time the step alone.

Usage (not part of CI; needs `pip install torch`):

    python benches/pytorch_backdoor.py --threads 2 --runs 15

Prints the median and best time of 20 steps and the steps per second, like
the bench's "training throughput" line.
"""

import argparse
import statistics
import time

import torch


class Bilinear(torch.nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int):
        super().__init__()
        self.left = torch.nn.Linear(d_in, hidden, bias=False)
        self.right = torch.nn.Linear(d_in, hidden, bias=False)
        self.down = torch.nn.Linear(hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.left(x) * self.right(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    batch, dim = 512, 784
    i = torch.arange(batch * dim)
    inputs = ((i * 7919) % 256).float().div(255.0).reshape(batch, dim)
    labels = torch.arange(batch) % 10

    model = Bilinear(dim, 64, 10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)

    def step() -> tuple[float, float]:
        x = inputs + 0.05 * torch.randn_like(inputs)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = (logits.argmax(1) == labels).float().mean()
        return loss.item(), accuracy.item()

    for _ in range(args.steps):  # warm-up
        step()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        f"pytorch {torch.__version__}: {torch.get_num_threads()} threads, "
        f"{args.steps} steps median {median * 1e3:.2f} ms (best {min(times) * 1e3:.2f} ms): "
        f"{args.steps / median:.1f} steps/s"
    )


if __name__ == "__main__":
    main()
