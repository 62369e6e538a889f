//! `tensim experiment language --quick`: every file exists, matrices are
//! symmetric with unit diagonal and reload to the same numbers, checkpoints
//! load as transformers, and n-gram scores are computed from real losses.

use std::process::Command;

use serde_json::Value;
use tensim_core::network::Network;
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
    for m in models {
        let loss = m["final_heldout_loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0 && loss < 4.2, "{loss}");
        let ngram: Vec<f64> = serde_json::from_value(m["ngram_losses"].clone()).unwrap();
        assert!(ngram[0] > ngram[1] && ngram[1] > ngram[2], "{ngram:?}");
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
            "checkpoints/{layers}-layer-step-000040.safetensors"
        )))
        .unwrap();
        match ckpt.network {
            Network::Transformer(t) => assert_eq!(t.blocks().len(), layers),
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
