//! `compare`, `matrix` and `inspect` on a run directory of the paper's
//! published layout (`config.json`, `checkpoints/step_NNNNN.pt`) with no
//! spec, and one-line errors naming the file for inputs that do not fit.

mod common;
#[path = "../../io/tests/common/torch_files.rs"]
mod torch_files;

use std::path::Path;

use common::{assert_mentions, json_of, stderr, tensim};
use tensim_core::sequence::sequence_similarity;
use tensim_core::transformer::Transformer;
use torch_files::{checkpoint_object, torch_save, write_published_run, Published};

/// A 2-layer run (vocab 11, d_model 8, 2 heads) with checkpoints at steps
/// 0, 1000 and 2000.
fn run(dir: &Path) -> Vec<String> {
    let checkpoints = [(2000, 3, 9.0), (0, 1, 1.0), (1000, 2, 4.0)];
    let written = write_published_run(dir, &Published::small(2), &checkpoints);
    written
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect()
}

fn transformer(path: &str) -> Transformer {
    let mut loaded = tensim_io::load_models(Path::new(path), None).unwrap();
    loaded.remove(0).network.into_transformer().unwrap()
}

#[test]
fn compare_matrix_and_inspect_read_a_published_run_without_a_spec() {
    let dir = tempfile::tempdir().unwrap();
    let files = run(dir.path());
    let (step_0, step_1000) = (&files[1], &files[2]);

    let doc = json_of(&tensim(&[
        "compare",
        step_0,
        step_1000,
        "--positions",
        "4",
        "--samples",
        "0",
        "--json",
    ]));
    assert_eq!(doc["kind"], "transformer");
    let expected = sequence_similarity(&transformer(step_0), &transformer(step_1000), 4)
        .unwrap()
        .0
        .total;
    let got = doc["values"]["gaussian"].as_f64().unwrap();
    assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");

    let npy = dir.path().join("m.npy");
    let checkpoints = dir.path().join("checkpoints");
    let doc = json_of(&tensim(&[
        "matrix",
        checkpoints.to_str().unwrap(),
        "--metric",
        "gaussian",
        "--positions",
        "4",
        "-o",
        npy.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        doc["labels"],
        serde_json::json!(["step 0", "step 1000", "step 2000"])
    );
    let shown: Vec<Vec<f64>> = serde_json::from_value(doc["matrix"].clone()).unwrap();
    let (_, stored) = tensim_io::read_matrix(&npy).unwrap();
    for i in 0..3 {
        assert!((stored[(i, i)] - 1.0).abs() < 1e-12);
        for j in 0..3 {
            assert_eq!(stored[(i, j)].to_bits(), shown[i][j].to_bits());
            assert_eq!(stored[(i, j)].to_bits(), stored[(j, i)].to_bits());
        }
    }
    assert_eq!(stored[(0, 1)].to_bits(), got.to_bits());

    let out = tensim(&["inspect", step_1000]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let config = dir.path().join("config.json");
    for expected in [
        format!("architecture from {}", config.display()),
        "blocks.1.attn.q1.weight".into(),
        "embed.weight, transposed".into(),
        "unembed.weight × 0.500000 (final norm)".into(),
        "final norm 1/√(energy + 0.000001) = 0.500000, folded into unembed.weight".into(),
        "final_norm.num_batches_tracked               []    i64  final norm batch count".into(),
        "model: transformer: vocab 11 → 11 logits, d_model 8, 2×4 heads, context 16, 2 × [attention (bias q/k; additive residual x + 0.35·f(x))] [step 1000]".into(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in:\n{text}");
    }
    let doc = json_of(&tensim(&["inspect", step_1000, "--json"]));
    assert_eq!(doc["architecture_from"], config.display().to_string());
}

/// Runs `args` (with `{file}` standing for `file`), expects a failure and
/// returns its one-line message.
fn failure(args: &[&str], file: &str) -> String {
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "{file}" { file } else { a })
        .collect();
    let out = tensim(&args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn inputs_that_do_not_fit_fail_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = run(dir.path());
    let config = dir.path().join("config.json");
    let original = std::fs::read_to_string(&config).unwrap();
    let edit = |key: &str, value: serde_json::Value| {
        let mut json: serde_json::Value = serde_json::from_str(&original).unwrap();
        json["model"][key] = value;
        std::fs::write(&config, json.to_string()).unwrap();
    };

    edit("attn_type", "softmax".into());
    let err = failure(&["compare", "{file}", &files[2]], &files[1]);
    assert!(
        err.contains(&format!(
            "{}: model.attn_type is \"softmax\"",
            config.display()
        )),
        "{err}"
    );
    let err = failure(&["inspect", "{file}"], &files[1]);
    assert!(err.contains("softmax"), "{err}");

    edit("d_model", 16.into());
    let checkpoints = dir.path().join("checkpoints");
    let err = failure(&["matrix", "{file}"], checkpoints.to_str().unwrap());
    // Checkpoints load in parallel: any of them may be the one named.
    let named = format!("tensim: error: {}/step_0", checkpoints.display());
    assert!(
        err.starts_with(&named)
            && err.contains(".pt: tensor `embed.weight` is [11, 8]")
            && err.contains("d_model = 16")
            && err.contains(&format!("(architecture from {})", config.display())),
        "{err}"
    );

    let mut json: serde_json::Value = serde_json::from_str(&original).unwrap();
    json["model"]["norm_type"] = "layernorm".into();
    json["model"]["norm_places"] = serde_json::json!(["pre_unembed"]);
    std::fs::write(&config, json.to_string()).unwrap();
    let err = failure(&["compare", "{file}", &files[2]], &files[1]);
    assert_mentions(&err, &["\"layernorm\"", "not a polynomial"]);

    std::fs::write(&config, &original).unwrap();
    let bare = dir.path().join("checkpoints/step_03000.pt");
    let state = Published::small(2).state(4, 1.0);
    let object = checkpoint_object(&state, 3000);
    let torch_files::Py::Dict(entries) = object else {
        unreachable!()
    };
    let without_model: Vec<_> = entries
        .into_iter()
        .filter(|(k, _)| !matches!(k, torch_files::Py::Str(s) if s == "model_state_dict"))
        .collect();
    torch_save(&bare, &torch_files::Py::Dict(without_model));
    let bare = bare.display().to_string();
    let err = failure(&["compare", &files[1], "{file}"], &bare);
    assert!(
        err.contains(&format!("{bare}: no entry `model_state_dict`")),
        "{err}"
    );
}
