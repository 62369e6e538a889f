"""tensim.ray on a real local Ray cluster of 2 worker CPUs: the matrix equals
the single-process tensim.matrix bit for bit, also when a worker dies."""
import os
import subprocess
import sys

import numpy as np
import pytest

import tensim

ray = pytest.importorskip("ray")
import tensim.ray  # noqa: E402  (after the skip: needs Ray)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "io", "tests", "fixtures")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster with 2 worker CPUs; its workers inherit the crash hook's variable."""
    armed = tmp_path_factory.mktemp("crash") / "armed"
    os.environ[tensim.ray.CRASH_ONCE_ENV] = str(armed)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
             log_to_driver=False)
    yield armed
    ray.shutdown()
    del os.environ[tensim.ray.CRASH_ONCE_ENV]


def classifier(seed, d=10, h=6, o=4):
    rng = np.random.default_rng(seed)
    return tensim.bilinear_classifier(rng.normal(size=(h, d)), rng.normal(size=(h, d)),
                                      rng.normal(size=(o, h)))


def transformer(seed, vocab=11, d=8, layers=1):
    """A small random bilinear-attention transformer (the published layout)."""
    rng = np.random.default_rng(seed)
    sd = {"embed.weight": rng.normal(size=(vocab, d)), "unembed.weight": rng.normal(size=(vocab, d))}
    for i in range(layers):
        for p in ("q1", "k1", "q2", "k2", "v", "o"):
            sd[f"layers.{i}.{p}.weight"] = rng.normal(size=(d, d)) / np.sqrt(d)
    config = {"heads": 2, "context": 8}
    spec = f"""
[transformer]
heads = {config['heads']}
context = {config['context']}
embed = "embed.weight"
unembed = "unembed.weight"
[transformer.attention]
q1 = "layers.{{i}}.q1.weight"
k1 = "layers.{{i}}.k1.weight"
q2 = "layers.{{i}}.q2.weight"
k2 = "layers.{{i}}.k2.weight"
v = "layers.{{i}}.v.weight"
out = "layers.{{i}}.o.weight"
residual = "add"
scale = 0.35
"""
    return tensim.from_state_dict(sd, arch=spec)


def saved(models, directory, name):
    paths = []
    for k, m in enumerate(models):
        path = os.path.join(directory, f"{name}-{k:02d}.safetensors")
        m.save(path, step=k)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    return saved([classifier(s) for s in range(11)], tmp_path_factory.mktemp("seq"), "clf")


@pytest.fixture(scope="module")
def transformers(tmp_path_factory):
    return saved([transformer(s) for s in range(5)], tmp_path_factory.mktemp("lm"), "lm")


def single_process(paths, metric, **options):
    return tensim.matrix([tensim.load(p) for p in paths], metric=metric, **options)


@pytest.mark.parametrize("metric", ["tensor", "gaussian", "slice:2", "gaussian-centred",
                                    "matrix-cosine", "monte-carlo"])
def test_sequential_matrices_equal_the_single_process_bit_for_bit(cluster, classifiers, metric):
    options = {"samples": 500, "seed": 3} if metric == "monte-carlo" else {}
    expected = single_process(classifiers, metric, **options)
    for block in (None, 3):  # the default split (6 rows), and uneven 3-row blocks of 11 models
        got = tensim.ray.matrix(classifiers, metric, block=block, progress=False, **options)
        assert got.dtype == np.float64 and got.shape == (11, 11)
        assert np.array_equal(got, expected), (metric, block)


def test_inputs_are_shared_once_and_give_the_same_matrix(cluster, classifiers):
    x = np.random.default_rng(5).normal(size=(30, 10))
    for metric in ("output-cosine", "cka"):
        expected = single_process(classifiers, metric, inputs=x)
        got = tensim.ray.matrix(classifiers, metric, inputs=x, block=3, progress=False)
        assert np.array_equal(got, expected), metric
    with pytest.raises(ValueError, match="needs inputs"):
        tensim.ray.matrix(classifiers, "cka")


@pytest.mark.parametrize("metric", ["gaussian", "slice:3", "matrix-cosine"])
def test_transformer_matrices_equal_the_single_process_bit_for_bit(cluster, transformers, metric):
    expected = single_process(transformers, metric, positions=3)
    got = tensim.ray.matrix(transformers, metric, positions=3, block=2, progress=False)
    assert np.array_equal(got, expected), metric


def test_a_worker_killed_mid_run_is_retried_and_the_matrix_is_whole(cluster, classifiers):
    cluster.write_text("")  # the first block to finish kills its worker before returning
    got = tensim.ray.matrix(classifiers, "tensor", block=3, progress=False)
    assert not cluster.exists(), "no worker was killed"
    assert np.array_equal(got, single_process(classifiers, "tensor"))


def test_a_block_whose_workers_keep_dying_fails_after_its_retries(cluster, classifiers):
    cluster.write_text("")
    with pytest.raises(RuntimeError, match="failed after 0 retries"):
        tensim.ray.matrix(classifiers, "tensor", block=3, max_retries=0, progress=False)
    assert not cluster.exists()


def test_bad_files_raise_at_once_naming_the_file(cluster, classifiers, tmp_path):
    missing = str(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="missing.safetensors"):
        tensim.ray.matrix(classifiers[:3] + [missing], "tensor", block=2, progress=False)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        tensim.ray.matrix([corrupt] + classifiers[:3], "gaussian", progress=False)
    spec = tmp_path / "paper.toml"
    spec.write_text('[[layers]]\nkind = "bilinear"\nfused = "w"\n[[layers]]\nkind = "linear"\nweight = "p"\n')
    steps = os.path.join(FIXTURES, "steps.pt")
    with pytest.raises(ValueError, match="steps.pt: holds 2 checkpoints.*tensim convert"):
        tensim.ray.matrix([steps, os.path.join(FIXTURES, "classifier.npz")], arch=spec, progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        tensim.ray.matrix(classifiers, "nope")
    with pytest.raises(ValueError, match="no models"):
        tensim.ray.matrix([], "tensor")


def test_foreign_checkpoints_through_a_spec(cluster, tmp_path):
    spec = tmp_path / "paper.toml"
    spec.write_text('[[layers]]\nkind = "bilinear"\nfused = "w"\n[[layers]]\nkind = "linear"\nweight = "p"\n')
    files = [os.path.join(FIXTURES, f) for f in ("classifier_f16.pt", "classifier.npz")]
    expected = tensim.matrix([tensim.load(f, arch=str(spec)) for f in files])
    assert np.array_equal(tensim.ray.matrix(files, arch=spec, progress=False), expected)


def test_blocks_cover_every_pair_once():
    for n in (1, 2, 7, 11, 30):
        for size in (1, 3, 4, n):
            pairs = [p for block in tensim.ray._blocks(n, size) for p in block]
            assert sorted(pairs) == [(i, j) for i in range(n) for j in range(i, n)]
            assert all(len({i for i, _ in b}) <= size and len({j for _, j in b}) <= size
                       for b in tensim.ray._blocks(n, size))
    assert tensim.ray._default_block(50, 2) == 25  # 2 groups of rows: 3 blocks for 2 CPUs
    assert tensim.ray._default_block(50, 16) == 8  # 7 groups: 28 blocks for 16 CPUs
    assert tensim.ray._default_block(3, 64) == 1  # never more blocks than pairs


def test_importing_tensim_does_not_import_ray_and_a_missing_ray_says_what_to_install():
    code = "import sys, tensim; assert 'ray' not in sys.modules; tensim.matrix"
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys; sys.modules['ray'] = None\ntry:\n import tensim.ray\nexcept ImportError as e: print(e)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install 'tensim[ray]'" in out.stdout


def test_progress_is_one_line_on_stderr_as_blocks_finish(cluster, classifiers, capsys):
    tensim.ray.matrix(classifiers, "tensor", block=4)
    err = capsys.readouterr().err
    assert "tensim.ray.matrix: 6/6 blocks, 66/66 pairs" in err
