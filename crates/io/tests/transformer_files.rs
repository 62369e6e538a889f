//! Transformer checkpoints: exact round trips, every tensor checked against
//! the declared architecture, and the sequential files still loading.

mod common;

use std::path::Path;

use common::{
    assert_mentions, assert_no_temporary_files, assert_refused_when_cut_to,
    assert_rounded_once_to_f32, file_len, load_error, save_and_load, write_f64_file,
};
use tensim_core::network::{Network, NetworkKind, NetworkShape};
use tensim_core::transformer::{
    Attention, AttentionBias, Block, BlockShape, Mask, Transformer, TransformerShape,
};
use tensim_core::Residual;
use tensim_core::{Architecture, LayerShape};
use tensim_io::shape_json::{transformer_shape_from_json, transformer_shape_to_json};
use tensim_io::{load_checkpoint, save_checkpoint, CheckpointMeta, StoredDtype};

fn shape(mask: Mask) -> TransformerShape {
    let blocks = vec![
        BlockShape::attention_only(AttentionBias::all(true), Residual::Lerp(0.35)).with_mlp(
            9,
            [true; 3],
            Residual::Lerp(0.4),
        ),
        BlockShape::attention_only(AttentionBias::all(false), Residual::None),
    ];
    TransformerShape {
        mask,
        ..TransformerShape::causal(7, 6, (2, 4), 5, blocks)
    }
}

fn model() -> Transformer {
    shape(Mask::Causal).random_model(11).unwrap()
}

fn meta() -> CheckpointMeta {
    CheckpointMeta {
        step: Some(1200),
        phase: Some("train".into()),
        label: Some("step 1200".into()),
    }
}

/// Writes a transformer file with hand-made f64 tensors (in the given order).
fn write_raw(path: &Path, shape: &TransformerShape, tensors: &[(String, Vec<usize>, Vec<f64>)]) {
    write_raw_as(path, shape, tensors, "f64");
}

/// [`write_raw`] with the metadata declaring `dtype`.
fn write_raw_as(
    path: &Path,
    shape: &TransformerShape,
    tensors: &[(String, Vec<usize>, Vec<f64>)],
    dtype: &str,
) {
    let architecture = transformer_shape_to_json(shape);
    let metadata = [
        ("kind", "transformer"),
        ("architecture", architecture.as_str()),
        ("dtype", dtype),
    ];
    write_f64_file(path, &metadata, tensors);
}

/// The model's tensors as (name, shape, values), in spec order.
fn tensors_of(m: &Transformer) -> Vec<(String, Vec<usize>, Vec<f64>)> {
    m.shape()
        .parameter_specs()
        .into_iter()
        .zip(m.parameters())
        .map(|(s, v)| (s.name, s.shape, v))
        .collect()
}

/// The tensor called `name` among `tensors`, to spoil it.
fn tensor_named<'a>(
    tensors: &'a mut [(String, Vec<usize>, Vec<f64>)],
    name: &str,
) -> &'a mut (String, Vec<usize>, Vec<f64>) {
    tensors.iter_mut().find(|t| t.0 == name).unwrap()
}

#[test]
fn transformer_round_trip_is_bit_exact_in_f64_and_rounds_once_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lm.safetensors");
    for mask in [Mask::Causal, Mask::Full] {
        let m = shape(mask).random_model(3).unwrap();
        let loaded = save_and_load(&path, m.clone().into(), &meta(), StoredDtype::F64);
        assert_eq!(loaded.network.as_transformer().unwrap(), &m);
        assert_eq!(loaded.network.fingerprint(), m.fingerprint());
        assert_eq!(loaded.meta, meta());
        assert_eq!(loaded.dtype, StoredDtype::F64);
        assert!(loaded.source.contains("transformer"), "{}", loaded.source);

        let loaded = save_and_load(
            &path,
            m.clone().into(),
            &CheckpointMeta::default(),
            StoredDtype::F32,
        );
        assert_eq!(loaded.dtype, StoredDtype::F32);
        assert_eq!(loaded.meta, CheckpointMeta::default());
        assert_eq!(loaded.network.shape(), NetworkShape::Transformer(m.shape()));
        assert_rounded_once_to_f32(&loaded.network, &m.parameters());
    }
    assert_no_temporary_files(dir.path());
}

#[test]
fn architecture_json_round_trips_and_rejects_bad_shapes() {
    for mask in [Mask::Causal, Mask::Full] {
        let s = shape(mask);
        let json = transformer_shape_to_json(&s);
        assert_eq!(transformer_shape_from_json(&json, 2).unwrap(), s, "{json}");
    }
    let json = transformer_shape_to_json(&shape(Mask::Causal));
    for (from, to, needle) in [
        ("\"causal\"", "\"sliding\"", "sliding"),
        ("\"head_dim\":4", "\"head_dim\":3", "even head width"),
        (
            "\"kind\":\"lerp\",\"scale\":0.35",
            "\"kind\":\"lerp\",\"scale\":1.5",
            "outside [0, 1]",
        ),
        (
            "\"rotary_base\":10000.0",
            "\"rotary_base\":-1.0",
            "rotary_base",
        ),
        ("\"vocab\":7", "\"vocab\":7,\"extra\":1", "extra"),
    ] {
        let bad = json.replace(from, to);
        assert_ne!(bad, json, "{from} not in {json}");
        let err = transformer_shape_from_json(&bad, 2).unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn wrong_shape_names_file_tensor_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let m = model();
    let mut tensors = tensors_of(&m);
    tensor_named(&mut tensors, "blocks.1.attn.q2.weight").1 = vec![6, 8];
    write_raw(&path, &m.shape(), &tensors);
    let err = load_error(&path);
    assert_mentions(
        &err,
        &[
            "bad.safetensors",
            "blocks.1.attn.q2.weight",
            "[8, 6]",
            "[6, 8]",
        ],
    );
}

#[test]
fn missing_extra_and_wrong_dtype_tensors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let m = model();
    let mut tensors = tensors_of(&m);
    tensors.retain(|t| t.0 != "blocks.0.mlp.right.bias");
    write_raw(&path, &m.shape(), &tensors);
    let err = load_error(&path);
    assert_mentions(
        &err,
        &["m.safetensors", "`blocks.0.mlp.right.bias` is missing"],
    );

    let mut tensors = tensors_of(&m);
    tensors.push(("blocks.1.mlp.left.weight".into(), vec![9, 6], vec![0.0; 54]));
    write_raw(&path, &m.shape(), &tensors);
    let err = load_error(&path);
    assert_mentions(&err, &["blocks.1.mlp.left.weight", "not part of"]);

    // Tensors stored in f64 while the metadata says f32.
    write_raw_as(&path, &m.shape(), &tensors_of(&m), "f32");
    let err = load_error(&path);
    assert_mentions(&err, &["embed.weight", "expected dtype f32"]);
}

#[test]
fn nan_and_inf_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.safetensors");
    let m = model();
    for (bad, needle) in [(f64::NAN, "NaN"), (f64::NEG_INFINITY, "inf")] {
        let mut tensors = tensors_of(&m);
        tensor_named(&mut tensors, "blocks.0.attn.k1.bias").2[3] = bad;
        write_raw(&path, &m.shape(), &tensors);
        let err = load_error(&path);
        assert_mentions(
            &err,
            &[
                "nan.safetensors",
                "blocks.0.attn.k1.bias",
                needle,
                "index 3",
            ],
        );
    }
}

#[test]
fn truncated_transformer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    save_checkpoint(&path, &model().into(), &meta(), StoredDtype::F32).unwrap();
    assert_refused_when_cut_to(&path, &[file_len(&path) - 5, 40, 4]);
}

#[test]
fn sequential_files_still_load_and_kinds_are_not_confused() {
    let dir = tempfile::tempdir().unwrap();
    let seq_path = dir.path().join("seq.safetensors");
    let seq = Architecture {
        layers: vec![
            LayerShape::Linear {
                input: 5,
                output: 4,
                bias: true,
            },
            LayerShape::Bilinear {
                input: 4,
                hidden: 6,
                output: 3,
                left_bias: false,
                right_bias: true,
                down_bias: false,
                residual: Residual::None,
            },
        ],
    }
    .random_model(2)
    .unwrap();
    save_checkpoint(&seq_path, &seq.clone().into(), &meta(), StoredDtype::F64).unwrap();
    // The sequential writer still leaves `kind` out, as older files do.
    let bytes = std::fs::read(&seq_path).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("\"kind\""));
    let any = load_checkpoint(&seq_path).unwrap();
    assert_eq!(any.meta, meta());
    assert_eq!(any.network.kind(), NetworkKind::Sequential);
    assert!(matches!(any.network, Network::Sequential(ref m) if *m == seq));

    let lm_path = dir.path().join("lm.safetensors");
    let m = model();
    save_checkpoint(&lm_path, &m.clone().into(), &meta(), StoredDtype::F64).unwrap();
    let any = load_checkpoint(&lm_path).unwrap();
    assert_eq!(any.network.kind(), NetworkKind::Transformer);
    assert!(matches!(any.network, Network::Transformer(ref t) if *t == m));

    // Asking a checkpoint for the other kind names the file and both kinds.
    let err = any.sequential(&lm_path).unwrap_err().to_string();
    assert_mentions(
        &err,
        &[
            "lm.safetensors",
            "transformer network",
            "sequential network is needed",
        ],
    );
}

#[test]
fn a_model_whose_biases_disagree_with_its_shape_cannot_be_built_to_be_written() {
    // Before the core's fields were private, a caller could drop one bias and
    // hand the writer a model whose parameters no longer matched its shape's
    // specs. Now the only way to such a model is a constructor, which refuses.
    let m = model();
    let blocks = m
        .blocks()
        .iter()
        .map(|b| {
            let a = b.attention().expect("attention in every block");
            let [q1, mut k1, q2, k2, v] = a.projections().map(Clone::clone);
            k1.bias = None;
            let attention = Attention::new(
                a.heads(),
                a.head_dim(),
                [q1, k1, q2, k2, v],
                a.out().clone(),
                a.residual(),
            );
            Block::new(Some(attention), b.mlp().cloned())
        })
        .collect();
    let err = Transformer::new(
        m.embedding().to_owned(),
        blocks,
        m.unembedding().to_owned(),
        m.context(),
        m.mask(),
        m.rotary_base(),
    )
    .unwrap_err()
    .to_string();
    assert_mentions(&err, &["q/k biases", "`k1`"]);
}

#[test]
fn format_1_transformer_files_still_load() {
    // Written before format 2: biases all-or-none, residuals as a lerp scale
    // (1 = none) with an optional `_kind`, no `outputs`.
    let v1 = r#"{"vocab":7,"d_model":6,"heads":2,"head_dim":4,"context":5,"mask":"causal","rotary_base":10000.0,"blocks":[{"attention_bias":true,"attention_residual":0.35,"mlp":{"hidden":9,"bias":true,"residual_scale":0.4}},{"attention_bias":false,"attention_residual":1.0,"mlp":null}]}"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.safetensors");
    let m = model();
    let metadata = [
        ("format", tensim_io::checkpoint::FORMAT_V1),
        ("kind", "transformer"),
        ("architecture", v1),
        ("dtype", "f64"),
    ];
    write_f64_file(&path, &metadata, &tensors_of(&m));
    let loaded = load_checkpoint(&path).unwrap();
    assert_eq!(loaded.network.as_transformer().unwrap(), &m);
    assert_eq!(loaded.network.fingerprint(), m.fingerprint());

    // An additive residual of format 1, and format 2 JSON refused under format 1.
    let additive = v1.replace(
        "\"attention_residual\":0.35,",
        "\"attention_residual\":0.35,\"attention_residual_kind\":\"add\",",
    );
    let shape = transformer_shape_from_json(&additive, 1).unwrap();
    let attention = shape.blocks[0].attention.unwrap();
    assert_eq!(attention.residual, Residual::Add(0.35));
    assert_eq!(attention.bias, AttentionBias::all(true));
    let v2 = transformer_shape_to_json(&shape);
    assert!(transformer_shape_from_json(&v2, 1).is_err());
    assert_eq!(transformer_shape_from_json(&v2, 2).unwrap(), shape);
}

#[test]
fn the_published_family_round_trips_in_format_2() {
    // q/k-only biases and an additive residual, an MLP-only block with a
    // down bias only, 3 logits from a vocabulary of 7.
    let s = TransformerShape {
        outputs: 3,
        blocks: vec![
            BlockShape::attention_only(AttentionBias::QK, Residual::Add(0.35)),
            BlockShape::mlp_only(5, [false, false, true], Residual::Add(0.5)),
        ],
        ..shape(Mask::Causal)
    };
    let json = transformer_shape_to_json(&s);
    assert!(json.contains(r#""attention":null"#), "{json}");
    assert_eq!(transformer_shape_from_json(&json, 2).unwrap(), s);
    let m = s.random_model(5).unwrap();
    let names: Vec<String> = s.parameter_specs().into_iter().map(|p| p.name).collect();
    assert!(names.contains(&"blocks.0.attn.k2.bias".to_string()));
    assert!(!names.contains(&"blocks.0.attn.v.bias".to_string()));
    assert!(!names.iter().any(|n| n.starts_with("blocks.1.attn")));
    assert!(names.contains(&"blocks.1.mlp.down.bias".to_string()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("family.safetensors");
    save_checkpoint(&path, &m.clone().into(), &meta(), StoredDtype::F64).unwrap();
    let loaded = load_checkpoint(&path).unwrap();
    assert_eq!(loaded.network.as_transformer().unwrap(), &m);
    assert_eq!(loaded.network.output_dim(), 3);
}
