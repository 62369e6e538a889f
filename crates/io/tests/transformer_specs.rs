//! Transformer architecture specs: the README's two worked specs load
//! fixtures written in `torch.save`'s layout into exactly the expected
//! parameters, and every way a spec and a file can disagree is a one-line
//! error naming the file, the tensor and what was expected.

mod common;

use std::path::{Path, PathBuf};

use common::assert_mentions;
use common::torch_files::{torch_save, Published, Py, Rng, State};
use tensim_core::transformer::{
    AttentionBias, AttentionShape, BlockShape, Mask, MlpShape, Transformer, TransformerShape,
};
use tensim_core::Residual;
use tensim_io::{load_models, ArchSpec};

/// The README's first worked spec: the paper's published layout written out.
const README_PUBLISHED_SPEC: &str = r#"
key = "model_state_dict"
[transformer]
heads = 8
context = 512
rotary_base = 10000.0
embed = "embed.weight"              # [vocab, d_model]: rows are token vectors
unembed = "unembed.weight"
final_norm = { energy = "final_norm.running_mean_energy", eps = 1e-6 }
[transformer.attention]
q1 = "layers.{i}.q1.weight"         # biases: layers.{i}.q1.bias … when present
k1 = "layers.{i}.k1.weight"
q2 = "layers.{i}.q2.weight"
k2 = "layers.{i}.k2.weight"
v = "layers.{i}.v.weight"
out = "layers.{i}.o.weight"
residual = "add"                    # x + 0.35·attention(x)
scale = 0.35
"#;

/// The README's second worked spec: fused projections, an `nn.Embedding`,
/// a bilinear MLP, a nested and prefixed state dict.
const README_FUSED_SPEC: &str = r#"
key = "state_dict"
prefix = "model."
[transformer]
heads = 2
context = 64
embed = "tok_embeddings.weight"     # nn.Embedding [vocab, d_model] (embed_rows = "tokens", the default)
unembed = "lm_head.weight"
ignore = ["rotary.inv_freq"]
[transformer.attention]
fused = [{ weight = "blocks.{i}.attn.qkv.weight", rows = ["q1", "k1", "q2", "k2", "v"] }]
out = "blocks.{i}.attn.proj.weight"
residual = "add"
[transformer.mlp]                   # in the blocks that have these tensors
fused = "blocks.{i}.mlp.w12.weight" # [left; right]
down = "blocks.{i}.mlp.w3.weight"
residual = "lerp"
scale = 0.5
"#;

fn spec(text: &str) -> ArchSpec {
    ArchSpec::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn one(path: &Path, spec: &ArchSpec) -> Transformer {
    let mut loaded = load_models(path, Some(spec)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.len(), 1);
    loaded.remove(0).network.into_transformer().unwrap()
}

fn error(path: &Path, spec: &ArchSpec) -> String {
    let err = load_models(path, Some(spec)).unwrap_err().to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(
        err.contains(&path.display().to_string()),
        "names the file: {err}"
    );
    err
}

/// `[cols, rows]` row-major of a `[rows, cols]` row-major matrix.
fn transpose(rows: usize, cols: usize, m: &[f64]) -> Vec<f64> {
    (0..cols * rows)
        .map(|k| m[(k % rows) * cols + k / rows])
        .collect()
}

/// A `{key: state dict}` checkpoint file.
fn save(path: &Path, key: &str, state: &State) -> PathBuf {
    let entries = state
        .0
        .iter()
        .map(|w| (w.name.clone(), Py::f32_tensor(&w.shape, &w.values)))
        .collect();
    torch_save(path, &Py::dict(vec![(key, Py::StateDict(entries))]));
    path.to_path_buf()
}

/// The paper's layout at a small size: 8 heads of 2 on d_model 16.
fn paper_layout(layers: usize) -> Published {
    Published {
        vocab: 11,
        d_model: 16,
        heads: 8,
        layers,
        context: 512,
        attn_scale: 0.35,
        rope_base: 1e4,
        bias_qk: true,
    }
}

#[test]
fn readme_published_spec_maps_every_tensor_of_the_published_layout() {
    let dir = tempfile::tempdir().unwrap();
    let config = paper_layout(2);
    let energy = 6.25;
    let state = config.state(7, energy);
    let path = save(
        &dir.path().join("step_01000.pt"),
        "model_state_dict",
        &state,
    );
    let t = one(&path, &spec(README_PUBLISHED_SPEC));

    let attention = BlockShape {
        attention: Some(AttentionShape {
            bias: AttentionBias {
                qk: true,
                v: false,
                out: false,
            },
            residual: Residual::Add(0.35),
        }),
        mlp: None,
    };
    let expected_shape = TransformerShape {
        vocab: 11,
        outputs: 11,
        d_model: 16,
        heads: 8,
        head_dim: 2,
        context: 512,
        mask: Mask::Causal,
        rotary_base: 1e4,
        blocks: vec![attention.clone(), attention],
    };
    assert_eq!(t.shape(), expected_shape);

    let factor = 1.0 / (energy + 1e-6f64).sqrt();
    let mut expected = vec![transpose(11, 16, state.get("embed.weight"))];
    for i in 0..2 {
        for p in ["q1", "k1", "q2", "k2"] {
            expected.push(state.get(&format!("layers.{i}.{p}.weight")).to_vec());
            expected.push(state.get(&format!("layers.{i}.{p}.bias")).to_vec());
        }
        for p in ["v", "o"] {
            expected.push(state.get(&format!("layers.{i}.{p}.weight")).to_vec());
        }
    }
    let unembed = state.get("unembed.weight").iter().map(|u| u * factor);
    expected.push(unembed.collect());
    assert_eq!(t.parameters(), expected, "bit-exact mapping and folding");

    // The spec tensim derives from the run's config.json is this one.
    std::fs::write(dir.path().join("config.json"), config.config().to_string()).unwrap();
    let from_config = load_models(&path, None).unwrap().remove(0).network;
    assert_eq!(from_config.into_transformer().unwrap(), t);
}

/// The fused layout's state dict: 2 blocks (the second without MLP), d_model
/// 6, attention width 4 (2 heads of 2), MLP 5, with an ignored buffer and a
/// tensor outside the prefix.
fn fused_state() -> State {
    let mut rng = Rng::new(3);
    let mut s = State::default();
    s.push("model.tok_embeddings.weight", &[7, 6], rng.values(42, 1.0));
    for i in 0..2 {
        let b = format!("model.blocks.{i}");
        s.push(
            &format!("{b}.attn.qkv.weight"),
            &[20, 6],
            rng.values(120, 1.0),
        );
        s.push(&format!("{b}.attn.qkv.bias"), &[20], rng.values(20, 1.0));
        s.push(
            &format!("{b}.attn.proj.weight"),
            &[6, 4],
            rng.values(24, 1.0),
        );
        s.push(&format!("{b}.attn.proj.bias"), &[6], rng.values(6, 1.0));
        if i == 0 {
            s.push(
                &format!("{b}.mlp.w12.weight"),
                &[10, 6],
                rng.values(60, 1.0),
            );
            s.push(&format!("{b}.mlp.w3.weight"), &[6, 5], rng.values(30, 1.0));
        }
    }
    s.push("model.lm_head.weight", &[7, 6], rng.values(42, 1.0));
    s.push("model.rotary.inv_freq", &[1], vec![1.0]);
    s.push("ema.lm_head.weight", &[7, 6], rng.values(42, 1.0));
    s
}

#[test]
fn readme_fused_spec_splits_rows_transposes_the_embedding_and_finds_the_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let state = fused_state();
    let path = save(&dir.path().join("ckpt_300.pt"), "state_dict", &state);
    let loaded = load_models(&path, Some(&spec(README_FUSED_SPEC)))
        .unwrap()
        .remove(0);
    assert_eq!(loaded.meta.step, Some(300));
    let t = loaded.network.into_transformer().unwrap();

    let attention = Some(AttentionShape {
        bias: AttentionBias::all(true),
        residual: Residual::Add(1.0),
    });
    let mlp = MlpShape {
        hidden: 5,
        bias: [false; 3],
        residual: Residual::Lerp(0.5),
    };
    let shape = t.shape();
    assert_eq!(
        (shape.vocab, shape.d_model, shape.heads, shape.head_dim),
        (7, 6, 2, 2)
    );
    assert_eq!(
        (shape.context, shape.mask, shape.rotary_base),
        (64, Mask::Causal, 1e4)
    );
    assert_eq!(
        shape.blocks,
        [
            BlockShape {
                attention,
                mlp: Some(mlp)
            },
            BlockShape {
                attention,
                mlp: None
            }
        ]
    );

    let rows = |name: &str, from: usize, to: usize, cols: usize| -> Vec<f64> {
        state.get(name)[from * cols..to * cols].to_vec()
    };
    let mut expected = vec![transpose(7, 6, state.get("model.tok_embeddings.weight"))];
    for i in 0..2 {
        let b = format!("model.blocks.{i}");
        for k in 0..5 {
            expected.push(rows(&format!("{b}.attn.qkv.weight"), 4 * k, 4 * k + 4, 6));
            expected.push(rows(&format!("{b}.attn.qkv.bias"), 4 * k, 4 * k + 4, 1));
        }
        expected.push(state.get(&format!("{b}.attn.proj.weight")).to_vec());
        expected.push(state.get(&format!("{b}.attn.proj.bias")).to_vec());
        if i == 0 {
            expected.push(rows(&format!("{b}.mlp.w12.weight"), 0, 5, 6));
            expected.push(rows(&format!("{b}.mlp.w12.weight"), 5, 10, 6));
            expected.push(state.get(&format!("{b}.mlp.w3.weight")).to_vec());
        }
    }
    expected.push(state.get("model.lm_head.weight").to_vec());
    assert_eq!(t.parameters(), expected);
}

#[test]
fn a_feature_major_embedding_and_a_full_mask_are_read_as_declared() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = fused_state();
    let embed = state
        .0
        .iter_mut()
        .find(|w| w.name == "model.tok_embeddings.weight")
        .unwrap();
    embed.values = transpose(7, 6, &embed.values);
    embed.shape = vec![6, 7];
    let stored = embed.values.clone();
    let path = save(&dir.path().join("ckpt.pt"), "state_dict", &state);
    let declared = README_FUSED_SPEC.replace(
        "context = 64",
        "context = 64\nmask = \"full\"\nembed_rows = \"features\"",
    );
    let t = one(&path, &spec(&declared));
    assert_eq!((t.vocab(), t.d_model(), t.mask()), (7, 6, Mask::Full));
    assert_eq!(t.parameters()[0], stored);

    // Read the other way, the embedding's width no longer fits the unembedding.
    let err = error(&path, &spec(README_FUSED_SPEC));
    assert!(
        err.contains("`model.lm_head.weight` is [7, 6]")
            && err.contains("expected [outputs, 7]")
            && err.contains("embed_rows = \"features\""),
        "{err}"
    );
}

#[test]
fn spec_text_errors_say_what_to_write() {
    let cases = [
        (
            "[[layers]]\nkind = \"linear\"\nweight = \"w\"\n[transformer]\nheads = 1\nembed = \"e\"\nunembed = \"u\"\n[transformer.attention]\nout = \"o{i}\"\n",
            "both [[layers]] and [transformer]",
        ),
        ("key = \"x\"\n", "no [[layers]] and no [transformer]"),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\n",
            "give [transformer.attention], [transformer.mlp] or both",
        ),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\n[transformer.attention]\nq1 = \"q{i}\"\nk1 = \"k{i}\"\nq2 = \"p{i}\"\nout = \"o{i}\"\nfused = [{ weight = \"f{i}\", rows = [\"k2\"] }]\n",
            "`v` is named nowhere",
        ),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\n[transformer.attention]\nq1 = \"q{i}\"\nout = \"o{i}\"\nfused = [{ weight = \"f{i}\", rows = [\"q1\", \"k1\", \"q2\", \"k2\", \"v\"] }]\n",
            "`q1` is named more than once",
        ),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\n[transformer.attention]\nout = \"o{i}\"\nfused = [{ weight = \"f{i}\", rows = [\"q1\", \"k1\", \"q\", \"k2\", \"v\"] }]\n",
            "row block `q`",
        ),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\n[transformer.mlp]\nleft = \"l\"\nright = \"r{i}\"\ndown = \"d{i}\"\n",
            "block tensor `l` has no `{i}`",
        ),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\n[transformer.mlp]\nleft = \"l{i}\"\ndown = \"d{i}\"\n",
            "either `left` and `right`, or `fused`",
        ),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\nresidual = \"add\"\n[transformer.mlp]\nfused = \"f{i}\"\ndown = \"d{i}\"\n",
            "unknown field `residual`",
        ),
        (
            "[transformer]\nheads = 2\nembed = \"e\"\nunembed = \"u\"\n[transformer.mlp]\nfused = \"f{i}\"\ndown = \"d{i}\"\nresidual = \"mix\"\n",
            "unknown variant `mix`",
        ),
    ];
    for (text, expected) in cases {
        let err = ArchSpec::parse(text).unwrap_err();
        assert!(err.contains(expected), "{expected:?} in: {err}");
    }
}

/// The published layout's spec with `replace` applied to its text.
fn published_variant(replace: (&str, &str)) -> ArchSpec {
    spec(&README_PUBLISHED_SPEC.replace(replace.0, replace.1))
}

#[test]
fn files_that_disagree_with_the_spec_are_refused_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let config = paper_layout(2);
    let state = config.state(1, 2.0);
    let file = |name: &str, s: &State| save(&dir.path().join(name), "model_state_dict", s);
    let good = file("good.pt", &state);
    let published = spec(README_PUBLISHED_SPEC);

    let missing = file("missing.pt", &state.without("layers.1.k2.weight"));
    let err = error(&missing, &published);
    assert!(
        err.contains("tensor `layers.1.k2.weight` (blocks.1.attn.k2.weight) is missing"),
        "{err}"
    );

    let mut narrow = state.clone();
    let k1 = narrow
        .0
        .iter_mut()
        .find(|w| w.name == "layers.0.k1.weight")
        .unwrap();
    k1.shape = vec![16, 8];
    k1.values.truncate(128);
    let err = error(&file("narrow.pt", &narrow), &published);
    assert!(
        err.contains("tensor `layers.0.k1.weight` is [16, 8]; expected [16, 16]"),
        "{err}"
    );

    let half_biased = file("half.pt", &state.without("layers.0.k2.bias"));
    let err = error(&half_biased, &published);
    assert!(
        err.contains("q/k biases must be all four or none")
            && err.contains("for q1, k1, q2 but not for k2"),
        "{err}"
    );

    let mut normed = state.clone();
    normed.push("final_norm.weight", &[16], vec![1.0; 16]);
    let err = error(&file("rms.pt", &normed), &published);
    assert!(
        err.contains("tensor `final_norm.weight` [16] is not part of the architecture")
            && err.contains("not a polynomial"),
        "{err}"
    );

    let mut extra = state.clone();
    extra.push("layers.0.gate.weight", &[16, 16], vec![0.0; 256]);
    let err = error(&file("extra.pt", &extra), &published);
    assert!(
        err.contains("`layers.0.gate.weight`") && err.contains("`ignore`"),
        "{err}"
    );

    // Specs that disagree with a good file: the replacement made in the
    // published spec, and what the error must name.
    let variants: [((&str, &str), &[&str]); 6] = [
        (
            ("heads = 8", "heads = 3"),
            &["attention width 16 of block 0", "heads = 3"],
        ),
        (
            ("heads = 8", "heads = 8\nblocks = 3"),
            &[
                "block 2 has none of its tensors (`layers.2.q1.weight`)",
                "blocks = 3",
            ],
        ),
        (
            ("heads = 8", "heads = 8\nblocks = 1"),
            &["the file has block 1 (`layers.1.q1.weight`)"],
        ),
        (
            ("scale = 0.35", "scale = 0.35\nbias_qk = false"),
            &["has a bias for `layers.0.q1.weight`", "bias_qk = false"],
        ),
        (
            ("heads = 8", "heads = 8\nvocab = 12"),
            &[
                "`embed.weight` is [11, 16], read as [vocab, d_model]",
                "vocab = 12",
            ],
        ),
        (
            (
                "q1 = \"layers.{i}.q1.weight\"",
                "q1 = \"layers.{i}.q.weight\"",
            ),
            &["`layers.0.q.weight`", "missing"],
        ),
    ];
    for (replace, needles) in variants {
        assert_mentions(&error(&good, &published_variant(replace)), needles);
    }

    let mut vector_energy = state.without("final_norm.running_mean_energy");
    vector_energy.push("final_norm.running_mean_energy", &[2], vec![1.0, 2.0]);
    let err = error(&file("energy.pt", &vector_energy), &published);
    assert!(err.contains("expected one number"), "{err}");
}
