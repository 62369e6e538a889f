"""One similarity matrix over many checkpoint files, computed as Ray tasks.

``tensim.ray.matrix(paths, metric)`` splits the pairs ``i <= j`` of the
matrix into blocks (a range of rows by a range of columns, so a task reads
only the checkpoints of its rows and columns and prepares each once), runs
every block as a Ray task that calls the Rust core with the GIL released,
and assembles the matrix: the same numpy array, bit for bit, as
``tensim.matrix([tensim.load(p) for p in paths], metric)``.

Ray is an optional dependency: ``pip install tensim[ray]``.
"""

import math
import os
import signal
import sys
import time

try:
    import ray
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tensim.ray needs Ray, an optional dependency of tensim: "
        "pip install 'tensim[ray]' (or pip install 'ray>=2.9')"
    ) from err
import numpy as np

from tensim import _tensim

__all__ = ["matrix"]

# Test hook: when this environment variable names an existing file, the first
# block to finish removes the file and kills its own worker process (SIGKILL)
# before returning its values, as a crashed machine would.
CRASH_ONCE_ENV = "TENSIM_RAY_CRASH_ONCE"

# Default split: the fewest blocks with at least this many per CPU. Every
# model is prepared once per block of its rows or columns, so fewer blocks
# prepare less; more blocks keep every CPU busy until the end. On 2 CPUs this
# gives 2 row groups (3 blocks, which 2 CPUs share evenly: the off-diagonal
# block has as many pairs as the two triangles).
BLOCKS_PER_CPU = 1.5


def matrix(
    paths,
    metric="tensor",
    *,
    block=None,
    arch=None,
    inputs=None,
    samples=20_000,
    seed=0,
    positions=None,
    max_retries=3,
    progress=True,
):
    """The N×N matrix of ``metric`` over the checkpoint files ``paths``, as Ray tasks.

    ``paths``: one checkpoint per file (tensim safetensors, or with ``arch``, a
    TOML architecture spec, a PyTorch, npz or safetensors file); a file that
    holds several checkpoints is an error (``tensim convert FILE --arch SPEC
    -o DIR`` writes one file per step). Paths are made absolute here, so on a cluster
    they must name the same files on every node (a shared file system).

    ``metric``, ``inputs`` (``n × d_in`` for ``output-cosine`` and ``cka``,
    sent to the cluster once with ``ray.put``), ``samples``, ``seed`` (for
    ``monte-carlo``) and ``positions`` (transformers) are those of
    ``tensim.matrix``, and so is the result, bit for bit.

    ``block``: rows (and columns) per block; by default the fewest blocks
    that give every CPU of the cluster one and a half (``BLOCKS_PER_CPU``). Each model
    is prepared once in every block of its rows or columns: larger blocks
    prepare less, smaller ones balance better. ``max_retries``: how often a block is run again when
    its worker dies (a killed process, a lost node); an error the computation
    raises (a missing or corrupt file, models that do not match) is raised at
    once, naming the file, and the other blocks are cancelled.
    ``progress``: a progress line on stderr as blocks finish.

    Uses the running Ray cluster if ``ray.init`` was called, else ``ray.init()``
    (which joins the cluster named by ``RAY_ADDRESS`` or starts a local one).
    """
    paths = _absolute_paths(paths)
    arch = None if arch is None else os.path.abspath(os.fspath(arch))
    if inputs is not None:
        inputs = np.asarray(inputs)
    options = dict(arch=arch, samples=samples, seed=seed, positions=positions)
    # No pairs: checks the metric, the inputs and the spec before any task runs.
    _tensim.matrix_pairs(paths, [], metric, inputs=inputs, **options)
    if not ray.is_initialized():
        ray.init()
    size = block or _default_block(len(paths), ray.cluster_resources().get("CPU", 1))
    parts = _blocks(len(paths), size)
    paths_ref = ray.put(paths)
    inputs_ref = None if inputs is None else ray.put(inputs)
    task = _block_values.options(max_retries=max_retries, retry_exceptions=False)
    pending = {
        task.remote(paths_ref, pairs, metric, inputs_ref, **options): pairs
        for pairs in parts
    }
    report = _Progress(len(parts), sum(map(len, parts)), progress)
    values = _gather(pending, report, max_retries)
    return _tensim.assemble(metric, len(paths), values)


def _absolute_paths(paths):
    """The paths as absolute strings; one path alone is refused (a list is meant)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError("paths: give a list of checkpoint files, not one path")
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    if not paths:
        raise ValueError("no models")
    return paths


def _default_block(n, cpus):
    """Rows per block giving at least ``BLOCKS_PER_CPU`` blocks per CPU (so
    that workers finishing early find more work), and no more blocks than that."""
    want = math.ceil(BLOCKS_PER_CPU * max(1, int(cpus)))
    groups = 1
    while groups < n and groups * (groups + 1) // 2 < want:
        groups += 1
    return -(-n // groups)


def _blocks(n, size):
    """The pairs ``i <= j`` of ``n`` models in blocks of ``size`` rows by
    ``size`` columns over the upper triangle (diagonal blocks hold their
    triangle), largest blocks first so that the small ones fill the end."""
    if size < 1:
        raise ValueError(f"block: at least 1 row per block, not {size}")
    starts = range(0, n, size)
    parts = [
        [(i, j) for i in range(r, min(r + size, n)) for j in range(max(c, i), min(c + size, n))]
        for r in starts
        for c in starts
        if c >= r
    ]
    return sorted(parts, key=len, reverse=True)


@ray.remote
def _block_values(paths, pairs, metric, inputs, arch, samples, seed, positions):
    """One block's ``(pairs, values)`` (``tensim.matrix_pairs``) on as many
    threads as the task was given CPUs."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    values = _tensim.matrix_pairs(
        paths, pairs, metric, arch=arch, inputs=inputs, samples=samples,
        seed=seed, positions=positions, threads=max(1, int(cpus)),
    )
    _crash_if_armed()
    return values


def _crash_if_armed():
    """The test hook of ``CRASH_ONCE_ENV``: one worker dies, once."""
    armed = os.environ.get(CRASH_ONCE_ENV)
    if not armed:
        return
    try:
        os.unlink(armed)  # only one task can remove it
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _gather(pending, report, max_retries):
    """The values of every task in ``pending`` (task → its pairs), as they
    finish; on an error the tasks still running are cancelled."""
    values = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pairs = pending.pop(ref)
                values.append(_result(ref, pairs, max_retries))
                report.advance(len(pairs))
    finally:
        _cancel(list(pending))
        report.close()
    return values


def _cancel(refs):
    """Cancels unfinished tasks and reads the errors of those already failed
    (so that Ray does not log them as unhandled)."""
    for ref in refs:
        ray.cancel(ref)
    if refs:
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in done:
            try:
                ray.get(ref)
            except ray.exceptions.RayError:
                pass


def _result(ref, pairs, max_retries):
    """A finished task's value; the error the computation raised, as it was
    raised (a ``ValueError`` naming the file), or a ``RuntimeError`` when
    the block's workers died more than ``max_retries`` times."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
    except ray.exceptions.RayError as err:
        first, last = pairs[0], pairs[-1]
        raise RuntimeError(
            f"the block of pairs {first}..{last} failed after {max_retries} retries: {err}"
        ) from err


class _Progress:
    """One progress line on stderr, updated as blocks finish (rewritten in
    place on a terminal, a line every few seconds otherwise)."""

    def __init__(self, blocks, pairs, enabled):
        self.blocks, self.pairs = blocks, pairs
        self.done_blocks = self.done_pairs = 0
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.start = self.shown = time.monotonic()
        self.written = False

    def advance(self, pairs):
        """One more block of ``pairs`` pairs is done."""
        self.done_blocks += 1
        self.done_pairs += pairs
        now = time.monotonic()
        every = 0.2 if self.tty else 5.0
        if self.enabled and (self.done_blocks == self.blocks or now - self.shown >= every):
            self.shown = now
            self._write(now)

    def _write(self, now):
        line = (
            f"tensim.ray.matrix: {self.done_blocks}/{self.blocks} blocks, "
            f"{self.done_pairs}/{self.pairs} pairs, {now - self.start:.1f} s"
        )
        sys.stderr.write("\r" + line if self.tty else line + "\n")
        sys.stderr.flush()
        self.written = True

    def close(self):
        """Ends the line on a terminal."""
        if self.tty and self.written:
            sys.stderr.write("\n")
            sys.stderr.flush()
