"""Tests of the Python package against the CLI's numbers and the core properties."""
import json
import os
import subprocess
import tempfile

import numpy as np
import pytest

import tensim

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def find_cli():
    """The `tensim` binary: $TENSIM_BIN, else a built one under <repo>/target, else one built now."""
    if os.environ.get("TENSIM_BIN"):
        return os.environ["TENSIM_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    for profile in ("debug", "release"):
        path = os.path.join(target, profile, "tensim")
        if os.path.exists(path):
            return path
    subprocess.run(["cargo", "build", "--quiet", "-p", "tensim"], cwd=REPO, check=True)
    return os.path.join(target, "debug", "tensim")


TENSIM_BIN = None


def classifier(seed, d=12, h=6, o=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(h, d)), rng.normal(size=(h, d)), rng.normal(size=(o, h))


def cli(*args):
    global TENSIM_BIN
    if TENSIM_BIN is None:
        TENSIM_BIN = find_cli()
    out = subprocess.run([TENSIM_BIN, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_self_similarity_symmetry_and_invariance():
    L, R, P = classifier(0)
    a = tensim.bilinear_classifier(L, R, P)
    b = tensim.bilinear_classifier(*classifier(1))
    assert abs(tensim.similarity(a, a) - 1.0) < 1e-12
    assert tensim.similarity(a, b) == tensim.similarity(b, a)
    perm = np.random.default_rng(2).permutation(L.shape[0])
    permuted = tensim.bilinear_classifier(L[perm], R[perm], P[:, perm])
    swapped = tensim.bilinear_classifier(R, L, P)
    for v in (permuted, swapped):
        assert abs(tensim.similarity(a, v) - 1.0) < 1e-10
        assert abs(tensim.similarity(a, v, metric="gaussian") - 1.0) < 1e-10
        assert tensim.similarity(a, v, metric="matrix-cosine") < 0.99
    assert tensim.slices(a, b).shape == (4,)


def test_matrix_is_symmetric_with_unit_diagonal():
    models = [tensim.bilinear_classifier(*classifier(s)) for s in range(5)]
    m = tensim.matrix(models)
    assert m.shape == (5, 5)
    assert np.allclose(np.diag(m), 1.0, atol=1e-12)
    assert np.array_equal(m, m.T)


def test_float32_arrays_and_save_load_roundtrip():
    L, R, P = classifier(5)
    a = tensim.bilinear_classifier(L, R, P)
    b = tensim.bilinear_classifier(L.astype(np.float32), R.astype(np.float32), P.astype(np.float32))
    assert abs(tensim.similarity(a, b) - 1.0) < 1e-6
    x = np.random.default_rng(6).normal(size=(4, L.shape[1]))
    assert np.allclose(a.forward(x), ((x @ L.T) * (x @ R.T)) @ P.T, rtol=1e-12)
    assert np.allclose(a.forward(x.astype(np.float32)), a.forward(x), rtol=1e-5)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "a.safetensors")
        a.save(path)
        assert np.array_equal(tensim.load(path).forward(x), a.forward(x))


def test_forward_and_general_models():
    W = np.random.default_rng(3).normal(size=(5, 7))
    L, R, D = (np.random.default_rng(4 + k).normal(size=s) for k, s in enumerate([(6, 5), (6, 5), (5, 6)]))
    m = tensim.model([
        {"kind": "linear", "weight": W, "bias": np.ones(5)},
        {"kind": "bilinear", "left": L, "right": R, "down": D, "residual_scale": 0.5},
    ])
    x = np.random.default_rng(9).normal(size=(3, 7))
    e = x @ W.T + 1.0
    expected = 0.5 * e + 0.5 * (((e @ L.T) * (e @ R.T)) @ D.T)
    assert np.allclose(m.forward(x), expected, rtol=1e-12)
    assert m.input_dim == 7 and m.output_dim == 5
    assert "bilinear" in m.architecture


def test_numbers_equal_the_cli():
    with tempfile.TemporaryDirectory() as d:
        models = [tensim.bilinear_classifier(*classifier(s)) for s in range(3)]
        paths = [os.path.join(d, f"m{s}.safetensors") for s in range(3)]
        for m, p in zip(models, paths):
            m.save(p)
        doc = cli("compare", paths[0], paths[1], "--json", "--samples", "0")
        values = {m["metric"]: m["value"] for m in doc["metrics"]}
        assert values["tensor"] == tensim.similarity(models[0], models[1])
        assert values["gaussian"] == tensim.similarity(models[0], models[1], metric="gaussian")
        assert values["matrix_cosine"] == tensim.similarity(models[0], models[1], metric="matrix-cosine")
        assert doc["per_class"]["tensor"] == list(tensim.slices(models[0], models[1]))
        assert doc["per_class"]["gaussian"] == list(tensim.slices(models[0], models[1], metric="gaussian"))
        for metric in ("tensor", "gaussian", "slice:2", "gaussian-slice:1", "matrix-cosine"):
            cli_matrix = np.array(cli("matrix", *paths, "--metric", metric, "--json")["matrix"])
            assert np.array_equal(cli_matrix, tensim.matrix(models, metric=metric)), metric
        loaded = tensim.load(paths[0])
        assert tensim.similarity(loaded, models[0]) == tensim.similarity(models[0], models[0])


def test_transformers_load_and_match_the_cli():
    global TENSIM_BIN
    if TENSIM_BIN is None:
        TENSIM_BIN = find_cli()
    with tempfile.TemporaryDirectory() as d:
        run = os.path.join(d, "lm")
        subprocess.run([TENSIM_BIN, "experiment", "language", "--quick", "--out", run],
                       check=True, capture_output=True)
        names = sorted(f for f in os.listdir(os.path.join(run, "checkpoints")) if f.startswith("1-layer"))
        paths = [os.path.join(run, "checkpoints", f) for f in names[:3]]
        models = [tensim.load(p) for p in paths]
        assert all(m.kind == "transformer" for m in models)
        for metric in ("gaussian", "slice:3", "matrix-cosine"):
            doc = cli("matrix", *paths, "--metric", metric, "--positions", "3", "--json")
            ours = tensim.matrix(models, metric=metric, positions=3)
            assert np.array_equal(np.array(doc["matrix"]), ours), metric
            assert np.allclose(np.diag(ours), 1.0, atol=1e-12)
        with pytest.raises(ValueError, match="not available for transformer"):
            tensim.matrix(models, metric="cka")
        doc = cli("compare", paths[0], paths[1], "--positions", "3", "--samples", "0", "--json")
        a, b = models[0], models[1]
        assert doc["values"]["gaussian"] == tensim.similarity(a, b, metric="gaussian", positions=3)
        assert doc["values"]["matrix_cosine"] == tensim.similarity(a, b, metric="matrix-cosine")
        per_token = tensim.slices(a, b, metric="gaussian", positions=3)
        assert doc["per_token"]["gaussian"] == list(per_token)
        assert tensim.similarity(a, b, metric="slice:3", positions=3) == per_token[3]
        logits = a.forward_tokens([1, 2, 3])
        assert logits.shape == (3, a.output_dim)
        one_hot = np.eye(a.output_dim)[[1, 2, 3]]
        assert np.array_equal(a.forward(one_hot), logits)
        with pytest.raises(ValueError, match="transformer network"):
            a.input_dim


def test_foreign_checkpoints_load_through_a_spec():
    fixtures = os.path.join(os.path.dirname(__file__), "..", "..", "io", "tests", "fixtures")
    with tempfile.TemporaryDirectory() as d:
        spec = os.path.join(d, "paper.toml")
        with open(spec, "w") as f:
            f.write('[[layers]]\nkind = "bilinear"\nfused = "w"\n[[layers]]\nkind = "linear"\nweight = "p"\n')
        pt = tensim.load(os.path.join(fixtures, "classifier_f16.pt"), arch=spec)
        npz = tensim.load(os.path.join(fixtures, "classifier.npz"), arch=spec)
        steps = tensim.load(os.path.join(fixtures, "steps.pt"), arch=spec)
        assert isinstance(steps, list) and len(steps) == 2
        assert tensim.similarity(pt, steps[1]) == tensim.similarity(npz, steps[1])


def test_bad_input_raises_value_error():
    a = tensim.bilinear_classifier(*classifier(0, o=4))
    b = tensim.bilinear_classifier(*classifier(0, o=3))
    with pytest.raises(ValueError, match="output dimension"):
        tensim.similarity(a, b)
    with pytest.raises(ValueError, match="unknown metric"):
        tensim.similarity(a, a, metric="nope")
    with pytest.raises(ValueError, match="class 9 does not exist"):
        tensim.similarity(a, a, metric="slice:9")
    with pytest.raises(ValueError, match="not finite|non-finite"):
        L, R, P = classifier(0)
        L[0, 0] = np.nan
        tensim.bilinear_classifier(L, R, P)


class ArrayLike:
    """An object that is not a numpy array but speaks the `__array__` protocol
    (as PyTorch CPU tensors, JAX and xarray arrays do)."""

    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype=dtype)


def test_array_likes_nested_lists_and_half_precision_are_accepted():
    L, R, P = classifier(7)
    a = tensim.bilinear_classifier(L, R, P)
    for convert in (ArrayLike, lambda m: m.tolist()):
        b = tensim.bilinear_classifier(convert(L), convert(R), convert(P))
        assert tensim.similarity(a, b) == tensim.similarity(a, a)
    half = tensim.bilinear_classifier(L.astype(np.float16), R.astype(np.float16), P.astype(np.float16))
    assert abs(tensim.similarity(a, half) - 1.0) < 1e-4
    layer = {"kind": "linear", "weight": ArrayLike(P), "bias": ArrayLike(np.ones(P.shape[0]))}
    m = tensim.model([layer])
    x = np.random.default_rng(8).normal(size=(3, P.shape[1]))
    assert np.allclose(m.forward(ArrayLike(x)), x @ P.T + 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="left: expected a 2-D array"):
        tensim.bilinear_classifier(np.ones(3), R, P)


def test_state_dicts_round_trip_for_both_kinds():
    a = tensim.bilinear_classifier(*classifier(9))
    with tempfile.TemporaryDirectory() as d:
        run = os.path.join(d, "lm")
        subprocess.run([TENSIM_BIN or find_cli(), "experiment", "language", "--quick", "--out", run],
                       check=True, capture_output=True)
        # The last 2-layer checkpoint, whatever the quick schedule's steps are.
        names = sorted(n for n in os.listdir(os.path.join(run, "checkpoints")) if n.startswith("2-layer-"))
        lm = tensim.load(os.path.join(run, "checkpoints", names[-1]))
    for m in (a, lm):
        sd = {k: ArrayLike(v) for k, v in m.state_dict().items()}  # e.g. torch tensors
        rebuilt = tensim.from_state_dict(sd, architecture=m.architecture)
        assert rebuilt.kind == m.kind
        assert rebuilt.architecture == m.architecture
        assert tensim.similarity(rebuilt, m) == tensim.similarity(m, m)
    sd = lm.state_dict()
    assert sd["unembed.weight"].shape[0] == lm.output_dim
    missing = dict(sd)
    del missing["unembed.weight"]
    with pytest.raises(ValueError, match="`unembed.weight` is missing"):
        tensim.from_state_dict(missing, architecture=lm.architecture)
    with pytest.raises(ValueError, match="expected shape"):
        tensim.from_state_dict({**sd, "embed.weight": sd["embed.weight"].T}, architecture=lm.architecture)
    with pytest.raises(ValueError, match="`extra` is not a parameter"):
        tensim.from_state_dict({**sd, "extra": np.zeros(2)}, architecture=lm.architecture)


def published_state_dict(rng, vocab=11, d=8, layers=2):
    """A state dict in the layout of the paper's published language models."""
    sd = {"embed.weight": rng.normal(size=(vocab, d)), "unembed.weight": rng.normal(size=(vocab, d)),
          "final_norm.running_mean_energy": np.array([2.5])}
    for i in range(layers):
        for p in ("q1", "k1", "q2", "k2"):
            sd[f"layers.{i}.{p}.weight"] = rng.normal(size=(d, d)) / np.sqrt(d)
            sd[f"layers.{i}.{p}.bias"] = rng.normal(size=d) * 0.1
        for p in ("v", "o"):
            sd[f"layers.{i}.{p}.weight"] = rng.normal(size=(d, d)) / np.sqrt(d)
    return sd


def published_forward(sd, tokens, heads=2, scale=0.35, base=100.0):
    """The published model written out plainly: embedding rows, per-head
    rotate-half rotary on q1, k1, q2, k2, causal (q1·k1)(q2·k2)/d_head²,
    x + scale·O z per layer, the stream divided by sqrt(energy + 1e-6),
    then the unembedding."""
    x = sd["embed.weight"][tokens]
    n, d = x.shape
    dh = d // heads
    theta = base ** (-2.0 * np.arange(dh // 2) / dh)
    angle = np.arange(n)[:, None] * theta[None, :]
    cos, sin = np.cos(angle), np.sin(angle)

    def rotate(y):
        y = y.reshape(n, heads, dh)
        a, b = y[..., : dh // 2], y[..., dh // 2:]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)

    layers = len([k for k in sd if k.endswith(".o.weight")])
    for i in range(layers):
        proj = {p: x @ sd[f"layers.{i}.{p}.weight"].T + sd.get(f"layers.{i}.{p}.bias", 0.0)
                for p in ("q1", "k1", "q2", "k2", "v")}
        q1, k1, q2, k2 = (rotate(proj[p]) for p in ("q1", "k1", "q2", "k2"))
        v = proj["v"].reshape(n, heads, dh)
        pattern = np.einsum("she,the->hst", q1, k1) * np.einsum("she,the->hst", q2, k2) / dh ** 2
        pattern = pattern * np.tril(np.ones((n, n)))[None]
        z = np.einsum("hst,the->she", pattern, v).reshape(n, d)
        x = x + scale * z @ sd[f"layers.{i}.o.weight"].T
    x = x / np.sqrt(sd["final_norm.running_mean_energy"][0] + 1e-6)
    return x @ sd["unembed.weight"].T


PUBLISHED_SPEC = """
key = "model_state_dict"
[transformer]
heads = 2
context = 16
rotary_base = 100.0
embed = "embed.weight"
unembed = "unembed.weight"
final_norm = { energy = "final_norm.running_mean_energy", eps = 1e-6 }
[transformer.attention]
q1 = "layers.{i}.q1.weight"
k1 = "layers.{i}.k1.weight"
q2 = "layers.{i}.q2.weight"
k2 = "layers.{i}.k2.weight"
v = "layers.{i}.v.weight"
out = "layers.{i}.o.weight"
residual = "add"
scale = 0.35
"""


def test_published_state_dicts_load_from_a_config_or_a_spec():
    sd = published_state_dict(np.random.default_rng(11))
    config = {"model": {"vocab_size": 11, "n_ctx": 16, "d_model": 8, "n_head": 2, "n_layers": 2,
                        "attn_type": "bilinear", "attn_scale": 0.35, "rope_base": 100.0, "use_bias_qk": True}}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        from_config = tensim.from_state_dict({k: ArrayLike(v) for k, v in sd.items()}, config=path)
        with open(path, "w") as f:
            json.dump({"model": {**config["model"], "attn_type": "softmax"}}, f)
        with pytest.raises(ValueError, match="config.json"):
            tensim.from_state_dict(sd, config=path)
    from_spec = tensim.from_state_dict(sd, arch=PUBLISHED_SPEC)
    assert from_config.kind == "transformer"
    tokens = [3, 1, 4, 1, 5, 9]
    expected = published_forward(sd, tokens)
    for m in (from_config, from_spec):
        got = m.forward_tokens(tokens)
        assert np.max(np.abs(got - expected)) <= 1e-12 * np.max(np.abs(expected))
    assert tensim.similarity(from_config, from_spec, positions=4) == tensim.similarity(from_spec, from_spec, positions=4)
    with pytest.raises(ValueError, match="layers.1.v.weight"):
        tensim.from_state_dict({k: v for k, v in sd.items() if k != "layers.1.v.weight"}, arch=PUBLISHED_SPEC)
    with pytest.raises(ValueError, match="exactly one of"):
        tensim.from_state_dict(sd)
