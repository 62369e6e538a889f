//! The paper's published language models load with no spec: a run directory
//! (`config.json`, `checkpoints/step_NNNNN.pt` in `torch.save`'s layout,
//! generated here with random weights) becomes transformers whose forward
//! pass is the published definition, and every inconsistent input is a
//! one-line error naming the file.

mod common;

use std::path::Path;

use common::torch_files::{
    checkpoint_object, torch_save, write_published_run, Published, Py, Rng, State,
};
use tensim_core::transformer::{Mask, Transformer};
use tensim_core::Residual;
use tensim_io::{load_models, spec_for};

/// The published forward pass, written from its definition and nothing of
/// tensim's: embedding rows, per layer `x + attn_scale · O z` with per-head
/// rotate-half rotary (`θ_j = base^(−2j/d_head)`) on q1, k1, q2, k2, the
/// causal pattern `(q1·k1)(q2·k2)/d_head²`, then `x / sqrt(E + 1e-6)` and
/// the unembedding. Logits per position.
fn published_forward(c: &Published, s: &State, tokens: &[usize]) -> Vec<Vec<f64>> {
    let d = c.d_model;
    let dh = d / c.heads;
    let apply = |w: &[f64], b: Option<&[f64]>, x: &[f64]| -> Vec<f64> {
        (0..w.len() / x.len())
            .map(|o| {
                let dot: f64 = x
                    .iter()
                    .enumerate()
                    .map(|(i, xi)| w[o * x.len() + i] * xi)
                    .sum();
                dot + b.map_or(0.0, |b| b[o])
            })
            .collect()
    };
    let rotate = |y: &mut [f64], position: usize| {
        for head in y.chunks_mut(dh) {
            let half = dh / 2;
            for j in 0..half {
                let theta = c.rope_base.powf(-2.0 * j as f64 / dh as f64);
                let (sin, cos) = (position as f64 * theta).sin_cos();
                let (a, b) = (head[j], head[j + half]);
                head[j] = a * cos - b * sin;
                head[j + half] = b * cos + a * sin;
            }
        }
    };
    let embed = s.get("embed.weight");
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| embed[t * d..(t + 1) * d].to_vec())
        .collect();
    for l in 0..c.layers {
        let project = |name: &str, rotary: bool| -> Vec<Vec<f64>> {
            let w = s.get(&format!("layers.{l}.{name}.weight"));
            let b = rotary.then(|| s.get(&format!("layers.{l}.{name}.bias")));
            x.iter()
                .enumerate()
                .map(|(p, xp)| {
                    let mut y = apply(w, b, xp);
                    if rotary {
                        rotate(&mut y, p);
                    }
                    y
                })
                .collect()
        };
        let [q1, k1, q2, k2] = ["q1", "k1", "q2", "k2"].map(|n| project(n, true));
        let v = project("v", false);
        let head_dot = |a: &[f64], b: &[f64], h: usize| -> f64 {
            (h * dh..(h + 1) * dh).map(|e| a[e] * b[e]).sum()
        };
        let mut next = x.clone();
        for q in 0..x.len() {
            let mut z = vec![0.0; d];
            for k in 0..=q {
                for h in 0..c.heads {
                    let pattern = head_dot(&q1[q], &k1[k], h) * head_dot(&q2[q], &k2[k], h)
                        / (dh * dh) as f64;
                    for e in h * dh..(h + 1) * dh {
                        z[e] += pattern * v[k][e];
                    }
                }
            }
            let o = apply(s.get(&format!("layers.{l}.o.weight")), None, &z);
            for e in 0..d {
                next[q][e] += c.attn_scale * o[e];
            }
        }
        x = next;
    }
    let norm = 1.0 / (s.get("final_norm.running_mean_energy")[0] + 1e-6).sqrt();
    x.iter()
        .map(|xp| {
            let scaled: Vec<f64> = xp.iter().map(|v| v * norm).collect();
            apply(s.get("unembed.weight"), None, &scaled)
        })
        .collect()
}

/// Largest `|tensim − published|` over the sequence, relative to the
/// largest published logit.
fn relative_error(t: &Transformer, c: &Published, s: &State, tokens: &[usize]) -> f64 {
    let ids: Vec<u32> = tokens.iter().map(|&t| t as u32).collect();
    let got = t.forward_tokens(&ids).unwrap();
    let want = published_forward(c, s, tokens);
    let scale = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst = 0.0f64;
    for (p, row) in want.iter().enumerate() {
        for (j, w) in row.iter().enumerate() {
            worst = worst.max((got[(p, j)] - w).abs() / scale);
        }
    }
    worst
}

/// Tensim's core transformer (attention.rs: rotate-half rotary with
/// `θ_i = base^(−2i/d_head)` per head, causal mask with the diagonal, pattern
/// `(q1·k1)(q2·k2)/d_head²`, `Residual::Add`) is exactly the published
/// model: the network loaded with no spec reproduces the published forward
/// pass to 1e-12 relative on random token sequences, for 1 and 2 layers.
#[test]
fn published_checkpoints_load_as_the_published_forward_pass() {
    let mut worst = 0.0f64;
    for layers in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let config = Published::small(layers);
        let run = write_published_run(dir.path(), &config, &[(0, 10, 1.0), (1000, 11, 37.5)]);
        let mut rng = Rng::new(99);
        for (path, state) in &run {
            let mut loaded = load_models(path, None).unwrap_or_else(|e| panic!("{e}"));
            let c = loaded.remove(0);
            assert!(c.source.contains("final norm ×"), "{}", c.source);
            // The step-0 checkpoint's norm has tracked no batch yet.
            let untracked = c.source.contains("`final_norm.num_batches_tracked` is 0");
            assert_eq!(untracked, c.meta.step == Some(0), "{}", c.source);
            let t = c.network.into_transformer().unwrap();
            assert_eq!(
                (t.context(), t.mask(), t.rotary_base()),
                (16, Mask::Causal, 100.0)
            );
            let residual = t.blocks()[0].attention().unwrap().residual();
            assert_eq!(residual, Residual::Add(0.35));
            for length in [1, 2, 5, 9] {
                let tokens: Vec<usize> = (0..length)
                    .map(|_| ((rng.next() + 1.0) * 5.5) as usize % config.vocab)
                    .collect();
                worst = worst.max(relative_error(&t, &config, state, &tokens));
            }
        }
    }
    eprintln!("largest relative forward error: {worst:.2e}");
    assert!(worst < 1e-12, "{worst}");
}

#[test]
fn steps_come_from_file_names_and_the_config_may_sit_beside_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = Published::small(1);
    let run = write_published_run(dir.path(), &config, &[(2500, 1, 4.0)]);
    let from_run = load_models(&run[0].0, None).unwrap().remove(0);
    assert_eq!(from_run.meta.step, Some(2500));

    // A checkpoint copied next to the config loads the same network.
    let beside = dir.path().join("step_02500.pt");
    std::fs::copy(&run[0].0, &beside).unwrap();
    let same = load_models(&beside, None).unwrap().remove(0);
    assert_eq!(same.network.parameters(), from_run.network.parameters());
    let spec = spec_for(&beside, None).unwrap().unwrap();
    assert_eq!(
        spec.origin.as_deref(),
        Some(dir.path().join("config.json").as_path())
    );

    // Without a config.json anywhere near, the file needs a spec.
    let alone = tempfile::tempdir().unwrap();
    let lone = alone.path().join("step_02500.pt");
    std::fs::copy(&run[0].0, &lone).unwrap();
    let err = load_models(&lone, None).unwrap_err().to_string();
    assert!(
        err.contains("--arch") && err.contains("config.json"),
        "{err}"
    );
}

/// Writes a run whose `config.json` `model` block has `edit` applied, with
/// one checkpoint of `state` (the small 1-layer model's unless given), and
/// returns the error loading it.
fn load_error(edit: impl Fn(&mut serde_json::Value), state: Option<State>) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = Published::small(1);
    write_published_run(dir.path(), &config, &[]);
    let mut json = config.config();
    edit(&mut json["model"]);
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let state = state.unwrap_or_else(|| config.state(5, 2.0));
    let path = dir.path().join("checkpoints/step_00100.pt");
    torch_save(&path, &checkpoint_object(&state, 100));
    let err = load_models(&path, None).unwrap_err().to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    (err, dir.path().display().to_string())
}

/// [`load_error`] for a `model` block whose `key` is set to `value`.
fn error_with(key: &str, value: serde_json::Value) -> (String, String) {
    load_error(|m| m[key] = value.clone(), None)
}

#[test]
fn configs_that_disagree_with_the_tensors_are_refused() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "d_model",
            10.into(),
            "d_model 8, but the architecture says d_model = 10",
        ),
        (
            "vocab_size",
            12.into(),
            "vocab 11, but the architecture says vocab = 12",
        ),
        (
            "n_layers",
            2.into(),
            "block 1 has none of its tensors (`layers.1.q1.weight`)",
        ),
        (
            "use_bias_qk",
            false.into(),
            "has a bias for `layers.0.q1.weight`, but the architecture says bias_qk = false",
        ),
        (
            "norm_places",
            serde_json::json!([]),
            "tensor `final_norm.running_mean_energy` [1] is not part of the architecture",
        ),
    ];
    for (key, value, expected) in cases {
        let (err, dir) = error_with(key, value);
        assert!(
            err.starts_with(&format!("{dir}/checkpoints/step_00100.pt: "))
                && err.contains(expected)
                && err.ends_with(&format!("(architecture from {dir}/config.json)")),
            "{key}: {err}"
        );
    }
}

#[test]
fn what_is_not_a_polynomial_is_refused_naming_the_config() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "attn_type",
            "softmax".into(),
            "model.attn_type is \"softmax\"",
        ),
        (
            "attn_type",
            "quadratic".into(),
            "q1 = q2 = q and k1 = k2 = k",
        ),
        (
            "use_rmsnorm_qk",
            true.into(),
            "RMSNorm on q and k depends on the input",
        ),
        (
            "n_head",
            3.into(),
            "model.d_model 8 is not divisible by model.n_head 3",
        ),
        (
            "vocab_size",
            "many".into(),
            "expected a `model` block with vocab_size",
        ),
    ];
    for (key, value, expected) in cases {
        let (err, dir) = error_with(key, value);
        assert!(
            err.starts_with(&format!("{dir}/config.json: ")) && err.contains(expected),
            "{key}: {err}"
        );
    }
    let rms = |m: &mut serde_json::Value| {
        m["norm_type"] = "rmsnorm".into();
        m["norm_places"] = serde_json::json!(["pre_unembed"]);
    };
    let (err, dir) = load_error(rms, None);
    assert!(
        err.starts_with(&format!("{dir}/config.json: "))
            && err.contains("\"rmsnorm\"")
            && err.contains("not a polynomial"),
        "{err}"
    );
    let batch_stats = |m: &mut serde_json::Value| {
        m["norm_type"] = "tok0_batch".into();
        m["norm_places"] = serde_json::json!(["pre_unembed"]);
        m["norm_kwargs"] = serde_json::json!({"use_running_stats": false});
    };
    let (err, _) = load_error(batch_stats, None);
    assert!(err.contains("use_running_stats is false"), "{err}");

    // A norm with weights in the file, whatever the config says.
    let mut state = Published::small(1).state(5, 2.0);
    state.push("final_norm.weight", &[8], vec![1.0; 8]);
    let (err, dir) = load_error(|_| {}, Some(state));
    assert!(
        err.starts_with(&format!("{dir}/checkpoints/step_00100.pt: "))
            && err.contains("`final_norm.weight`")
            && err.contains("not a polynomial"),
        "{err}"
    );
}

#[test]
fn checkpoints_without_model_state_dict_or_a_tensor_are_refused() {
    let config = Published::small(1);
    let dir = tempfile::tempdir().unwrap();
    write_published_run(dir.path(), &config, &[]);
    let state = config.state(5, 2.0);
    let bare = dir.path().join("checkpoints/step_00001.pt");
    let entries = state
        .0
        .iter()
        .map(|w| (w.name.clone(), Py::f32_tensor(&w.shape, &w.values)))
        .collect();
    torch_save(
        &bare,
        &Py::dict(vec![("state_dict", Py::StateDict(entries))]),
    );
    let err = load_models(&bare, None).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: ", bare.display()))
            && err.contains("no entry `model_state_dict`")
            && err.contains("state_dict"),
        "{err}"
    );

    let (err, dir) = load_error(|_| {}, Some(state.without("layers.0.v.weight")));
    assert!(
        err.starts_with(&format!("{dir}/checkpoints/step_00100.pt: "))
            && err.contains("tensor `layers.0.v.weight` (blocks.0.attn.v.weight) is missing"),
        "{err}"
    );
}

#[test]
fn the_context_defaults_to_512_and_the_norm_eps_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = Published::small(1);
    let run = write_published_run(dir.path(), &config, &[(0, 1, 3.0)]);
    let mut json = config.config();
    let model = json["model"].as_object_mut().unwrap();
    model.remove("n_ctx");
    model.insert("norm_type".into(), "tok0_batch".into());
    model.insert("norm_places".into(), serde_json::json!(["pre_unembed"]));
    model.insert("norm_kwargs".into(), serde_json::json!({"eps": 1.0}));
    std::fs::write(dir.path().join("config.json"), json.to_string()).unwrap();
    let t = load_models(&run[0].0, None)
        .unwrap()
        .remove(0)
        .network
        .into_transformer()
        .unwrap();
    assert_eq!(t.context(), 512);
    let unembed = run[0].1.get("unembed.weight");
    let folded = t.parameters().pop().unwrap();
    assert_eq!(folded[3], unembed[3] * (1.0 / (3.0f64 + 1.0).sqrt()));
}

#[test]
fn the_config_is_looked_for_beside_the_checkpoint_and_one_directory_up() {
    let dir = tempfile::tempdir().unwrap();
    write_published_run(dir.path(), &Published::small(1), &[(7, 1, 1.0)]);
    let found = tensim_io::published::find_config(&dir.path().join("checkpoints/step_00007.pt"));
    assert_eq!(found, Some(dir.path().join("config.json")));
    assert_eq!(
        tensim_io::published::find_config(Path::new("step_00007.pt")),
        None
    );
}
