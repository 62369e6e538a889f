//! `tensim experiment language --quick`: every file exists, matrices are
//! symmetric with unit diagonal and reload to the same numbers, checkpoints
//! load as transformers, and n-gram scores are computed from real losses.

use std::process::Command;

use serde_json::Value;
use tensim_core::network::Network;
use tensim_core::transformer::{AttentionBias, BlockShape};
use tensim_core::Residual;
use tensim_io::{load_checkpoint, read_matrix};

#[test]
fn quick_language_run_writes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args([
            "experiment",
            "language",
            "--quick",
            "--json",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .expect("run tensim");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let models = doc["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("settings.json")).unwrap()).unwrap();
    let vocab = settings["vocab"].as_u64().unwrap();
    assert!((200..=256).contains(&vocab), "BPE vocabulary {vocab}");
    for m in models {
        // Below the uniform distribution's loss after the quick run's steps.
        let loss = m["final_heldout_loss"].as_f64().unwrap();
        assert!(
            loss.is_finite() && loss > 0.0 && loss < (vocab as f64).ln(),
            "{loss}"
        );
        let ngram: Vec<f64> = serde_json::from_value(m["ngram_losses"].clone()).unwrap();
        assert!(ngram[0] > ngram[1] && ngram[1] > ngram[2], "{ngram:?}");
        // The paper's n-gram scores: ratios of two losses of one model, near 1 early on.
        let scores: Vec<f64> = serde_json::from_value(m["final_ngram_scores"].clone()).unwrap();
        assert!(
            scores.iter().all(|s| s.is_finite() && *s > 0.5 && *s < 3.0),
            "{scores:?}"
        );
        // Every Monte-Carlo check carries a standard error.
        for c in m["monte_carlo_checks"].as_array().unwrap() {
            let se = c["std_error"].as_f64().unwrap();
            assert!(se.is_finite() && se >= 0.0, "{c}");
        }
    }
    for file in [
        "report.md",
        "metrics.jsonl",
        "settings.json",
        "tokenizer.json",
        "figures/1-layer.png",
        "figures/2-layer.png",
        "figures/1-layer-loss.png",
        "figures/2-layer-residual.png",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    for layers in [1, 2] {
        for metric in [
            "gaussian",
            "output-cosine-text",
            "output-cosine-gaussian",
            "output-cosine-residual",
            "matrix-cosine",
        ] {
            let csv =
                read_matrix(&out.join(format!("matrices/{layers}-layer-{metric}.csv"))).unwrap();
            let npy =
                read_matrix(&out.join(format!("matrices/{layers}-layer-{metric}.npy"))).unwrap();
            let n = csv.1.nrows();
            assert_eq!(n, 5);
            for i in 0..n {
                assert!((csv.1[(i, i)] - 1.0).abs() < 1e-9, "{metric}");
                for j in 0..n {
                    assert_eq!(csv.1[(i, j)], csv.1[(j, i)], "{metric}");
                    assert_eq!(csv.1[(i, j)], npy.1[(i, j)], "{metric}");
                }
            }
        }
        let ckpt = load_checkpoint(&out.join(format!(
            "checkpoints/{layers}-layer-step-000060.safetensors"
        )))
        .unwrap();
        match ckpt.network {
            Network::Transformer(t) => {
                // The paper's family: attention-only blocks, q/k biases, x + 0.35·attention(x).
                let paper = BlockShape::attention_only(AttentionBias::QK, Residual::Add(0.35));
                assert_eq!(t.shape().blocks, vec![paper; layers]);
            }
            Network::Sequential(_) => panic!("expected a transformer"),
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("n-gram score") && report.contains("## 2 layer(s)"));
    // Refuses to overwrite without --force.
    let again = Command::new(env!("CARGO_BIN_EXE_tensim"))
        .args([
            "experiment",
            "language",
            "--quick",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
}
