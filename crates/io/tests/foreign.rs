//! Foreign checkpoints (PyTorch .pt, .npz, plain safetensors) through an
//! architecture spec. Fixtures: `tests/fixtures/make_fixtures.py` (a faithful
//! writer of torch's zip + pickle layout, no torch needed).

mod common;

use std::path::{Path, PathBuf};

use common::torch_files::{torch_save, Py, Storage};
use tensim_core::{tensor_similarity, Model};
use tensim_io::{load_models, read_tensor_sets, ArchSpec};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixtures' weight formula (exact in f16, bf16, f32 and f64).
fn value(name: &str, i: usize) -> f64 {
    (((i * 37 + name.len() * 11) % 101) as f64 - 50.0) / 64.0
}

const PAPER_SPEC: &str = r#"
[[layers]]
kind = "bilinear"
fused = "w"
[[layers]]
kind = "linear"
weight = "p"
"#;

fn spec(text: &str) -> ArchSpec {
    ArchSpec::parse(text).unwrap()
}

fn one(path: &Path, spec: &ArchSpec) -> Model {
    let mut models = load_models(path, Some(spec)).unwrap();
    assert_eq!(models.len(), 1);
    models.remove(0).network.into_sequential().unwrap()
}

/// Parameters of the expected model: L, R (halves of `w`), identity D, head `p`.
fn expected_parameters(w: &str, p: &str) -> Vec<Vec<f64>> {
    let fused: Vec<f64> = (0..24).map(|i| value(w, i)).collect();
    let identity: Vec<f64> = (0..9).map(|k| if k % 4 == 0 { 1.0 } else { 0.0 }).collect();
    vec![
        fused[..12].to_vec(),
        fused[12..].to_vec(),
        identity,
        (0..6).map(|i| value(p, i)).collect(),
    ]
}

#[test]
fn pytorch_files_load_bit_exactly_in_every_float_dtype() {
    let s = spec(PAPER_SPEC);
    for (file, dtype) in [
        ("classifier_f32.pt", "f32"),
        ("classifier_f16.pt", "f16"),
        ("classifier_bf16.pt", "bf16"),
        ("classifier_f64.pt", "f64"),
    ] {
        let loaded = load_models(&fixture(file), Some(&s)).unwrap().remove(0);
        assert_eq!(
            loaded.network.parameters(),
            expected_parameters("w", "p"),
            "{file}"
        );
        assert!(
            loaded.source.contains("PyTorch") && loaded.source.contains(dtype),
            "{}",
            loaded.source
        );
        if dtype != "f64" {
            assert!(loaded.source.contains("converted"), "{}", loaded.source);
        }
    }
}

#[test]
fn the_same_weights_from_pt_npz_and_safetensors_give_identical_similarities() {
    let s = spec(PAPER_SPEC);
    let other = load_models(&fixture("steps.pt"), Some(&s))
        .unwrap()
        .remove(1)
        .network
        .into_sequential()
        .unwrap();
    let reference = tensor_similarity(&one(&fixture("classifier_f32.pt"), &s), &other).unwrap();
    for file in [
        "classifier.npz",
        "classifier.safetensors",
        "classifier_f64.pt",
    ] {
        let m = one(&fixture(file), &s);
        assert_eq!(m.parameters(), expected_parameters("w", "p"), "{file}");
        let sim = tensor_similarity(&m, &other).unwrap();
        assert_eq!(sim.total.to_bits(), reference.total.to_bits(), "{file}");
    }
}

#[test]
fn nested_state_dicts_and_step_dictionaries() {
    let nested = spec(&format!("key = \"state_dict\"\n{PAPER_SPEC}"));
    assert_eq!(
        one(&fixture("nested.pt"), &nested).parameters(),
        expected_parameters("w", "p")
    );
    let err = load_models(&fixture("nested.pt"), Some(&spec(PAPER_SPEC)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nested.pt") && err.contains("tensor `w`") && err.contains("state_dict.w"),
        "{err}"
    );
    let prefixed = spec(&format!("prefix = \"state_dict.\"\n{PAPER_SPEC}"));
    assert_eq!(
        one(&fixture("nested.pt"), &prefixed).parameters(),
        expected_parameters("w", "p")
    );

    let steps = load_models(&fixture("steps.pt"), Some(&spec(PAPER_SPEC))).unwrap();
    assert_eq!(
        steps.iter().map(|c| c.meta.step).collect::<Vec<_>>(),
        vec![Some(0), Some(250)]
    );
    assert_eq!(
        steps[1].network.parameters(),
        expected_parameters("w2", "p2")
    );
    let err = load_models(
        &fixture("nested.pt"),
        Some(&spec(&format!("key = \"model\"\n{PAPER_SPEC}"))),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no entry `model`") && err.contains("state_dict"),
        "{err}"
    );
}

#[test]
fn foreign_pickle_objects_are_refused_never_run() {
    let err = read_tensor_sets(&fixture("evil.pt"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("evil.pt") && err.contains("os.system") && err.contains("never executes"),
        "{err}"
    );
}

#[test]
fn spec_errors_name_the_file_tensor_and_expectation() {
    let err = ArchSpec::parse("[[layers]]\nkind = \"bilinear\"\nleft = \"a\"\n").unwrap_err();
    assert!(
        err.contains("either `left` and `right`, or `fused`"),
        "{err}"
    );
    assert!(ArchSpec::parse("[[layers]]\nkind = \"conv\"\n").is_err());

    // Loading the classifier fixture with `spec` fails with this message.
    let refusal = |spec: Option<&ArchSpec>| {
        load_models(&fixture("classifier_f32.pt"), spec)
            .unwrap_err()
            .to_string()
    };
    let wrong_name = spec("[[layers]]\nkind = \"bilinear\"\nfused = \"weights\"\n");
    let err = refusal(Some(&wrong_name));
    assert!(
        err.contains("classifier_f32.pt")
            && err.contains("`weights`")
            && err.contains("missing")
            && err.contains("the file has: p, w"),
        "{err}"
    );

    // L and R of different shapes.
    let mismatch = spec("[[layers]]\nkind = \"bilinear\"\nleft = \"w\"\nright = \"p\"\n");
    let err = refusal(Some(&mismatch));
    assert!(
        err.contains("(6, 4)") && err.contains("(2, 3)") && err.contains("must match"),
        "{err}"
    );

    // A head that does not fit the bilinear layer's output.
    let chain = spec("[[layers]]\nkind = \"bilinear\"\nfused = \"w\"\ndown = \"p\"\n[[layers]]\nkind = \"linear\"\nweight = \"p\"\n");
    let err = refusal(Some(&chain));
    assert!(
        err.contains("takes 3 inputs") && err.contains("gives 2"),
        "{err}"
    );

    // Without a spec, a foreign file says what it is and what to pass.
    let err = refusal(None);
    assert!(err.contains("PyTorch") && err.contains("--arch"), "{err}");
}

/// The README's second worked spec, verbatim.
const README_DEEP_SPEC: &str = r#"
key = "state_dict"          # the nested state dict to read
prefix = "model."           # prepended to every name below
[[layers]]
kind = "linear"
weight = "embed.weight"
[[layers]]
kind = "bilinear"
left = "mlp.left.weight"
right = "mlp.right.weight"
down = "mlp.down.weight"    # absent: identity, the layer outputs (Lx) ⊙ (Rx)
down_bias = "mlp.down.bias" # also left_bias, right_bias, fused_bias
residual_scale = 0.35       # y = (1 − s)·x + s·f(x); default 1 (no residual)
[[layers]]
kind = "linear"
weight = "head.weight"
bias = "head.bias"
"#;

#[test]
fn readme_deep_spec_loads_an_embed_mlp_head_model() {
    let m = one(&fixture("deep.pt"), &spec(README_DEEP_SPEC));
    let arch = m.architecture();
    assert_eq!(
        (arch.input_dim(), arch.output_dim(), arch.bilinear_layers()),
        (5, 3, 1)
    );
    match &arch.layers[1] {
        tensim_core::LayerShape::Bilinear {
            hidden,
            residual,
            down_bias,
            ..
        } => {
            assert_eq!(
                (*hidden, *residual, *down_bias),
                (6, tensim_core::Residual::Lerp(0.35), true)
            );
        }
        other => panic!("{other:?}"),
    }
    let params = m.parameters();
    assert_eq!(
        params[0],
        (0..20).map(|i| value("embed", i)).collect::<Vec<_>>()
    );
    assert_eq!(
        params.last().unwrap(),
        &(0..3).map(|i| value("hbias", i)).collect::<Vec<_>>()
    );
}

/// A training loop's `torch.save({...})`: the model's state dict (with an
/// integer buffer) beside entries tensim never reads.
fn training_checkpoint(path: &Path, inside: Option<Py>) {
    let tensor = |name: &str, shape: &[usize]| {
        let n = shape.iter().product();
        Py::f32_tensor(shape, &(0..n).map(|i| value(name, i)).collect::<Vec<_>>())
    };
    let mut state = vec![
        ("w".to_string(), tensor("w", &[6, 4])),
        ("p".to_string(), tensor("p", &[2, 3])),
        (
            "count".to_string(),
            Py::Tensor {
                shape: vec![],
                storage: Storage::I64(vec![7]),
            },
        ),
    ];
    state.extend(inside.map(|obj| ("extra".to_string(), obj)));
    let numpy_scalar = Py::Foreign {
        module: "numpy.core.multiarray".into(),
        name: "scalar".into(),
    };
    torch_save(
        path,
        &Py::dict(vec![
            ("model_state_dict", Py::StateDict(state)),
            ("val_loss", numpy_scalar),
            ("step", Py::Int(1000)),
        ]),
    );
}

#[test]
fn a_selected_state_dict_loads_beside_entries_tensim_never_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.pt");
    training_checkpoint(&path, None);
    let sets = read_tensor_sets(&path, Some("model_state_dict")).unwrap();
    let names: Vec<(&str, &str)> = sets[0]
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype.as_str()))
        .collect();
    assert_eq!(names, [("count", "i64"), ("p", "f32"), ("w", "f32")]);
    assert_eq!(sets[0].get("count").unwrap().values, [7.0]);
    assert_eq!(sets[0].dtypes(), ["f32"], "integer buffers are no weights");

    let keyed = spec(&format!("key = \"model_state_dict\"\n{PAPER_SPEC}"));
    let loaded = load_models(&path, Some(&keyed)).unwrap().remove(0);
    assert_eq!(loaded.network.parameters(), expected_parameters("w", "p"));
    assert!(!loaded.source.contains("i64"), "{}", loaded.source);

    // The whole pickle is checked when no entry is selected…
    let err = read_tensor_sets(&path, None).unwrap_err().to_string();
    assert!(err.contains("numpy.core.multiarray.scalar"), "{err}");
    // …and the selected entry always.
    let inside = dir.path().join("inside.pt");
    let os_system = Py::Foreign {
        module: "os".into(),
        name: "system".into(),
    };
    training_checkpoint(&inside, Some(os_system.clone()));
    let err = load_models(&inside, Some(&keyed)).unwrap_err().to_string();
    assert!(
        err.contains("inside.pt") && err.contains("os.system") && err.contains("never executes"),
        "{err}"
    );
    // …and a callable that is not plain data refuses the file wherever it is.
    let outside = dir.path().join("outside.pt");
    torch_save(
        &outside,
        &Py::dict(vec![
            ("model_state_dict", Py::StateDict(vec![])),
            ("hook", os_system),
        ]),
    );
    let err = load_models(&outside, Some(&keyed)).unwrap_err().to_string();
    assert!(
        err.contains("outside.pt") && err.contains("os.system"),
        "{err}"
    );

    // An integer buffer is never a weight.
    let counted =
        spec("key = \"model_state_dict\"\n[[layers]]\nkind = \"linear\"\nweight = \"count\"\n");
    let err = load_models(&path, Some(&counted)).unwrap_err().to_string();
    assert!(
        err.contains("ckpt.pt") && err.contains("`count`") && err.contains("i64 integers"),
        "{err}"
    );
}
