//! `tensim compare A B`: every applicable metric for one pair.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tensim_core::cka::linear_cka;
use tensim_core::monte_carlo::monte_carlo_similarity;
use tensim_core::output_cosine::output_cosine;
use tensim_core::{
    similarity, weight_cosine, Centring, GaussianPrepared, Model, Par, Scalar, Similarity,
    TensorPrepared,
};

use crate::load::{self, Loaded};
use crate::options::{MetricArgs, Precision};

use crate::stdout::outln;

/// One row of the comparison: a value, or why the metric does not apply.
struct Row {
    key: &'static str,
    name: String,
    value: Result<f64, String>,
    note: String,
}

impl Row {
    /// A row of `value`, or of the reason (an error) it does not apply.
    fn new(
        key: &'static str,
        name: impl Into<String>,
        value: Result<f64, impl ToString>,
        note: impl Into<String>,
    ) -> Self {
        Row {
            key,
            name: name.into(),
            value: value.map_err(|e| e.to_string()),
            note: note.into(),
        }
    }
}

fn tensor<T: Scalar>(a: &Model, b: &Model) -> tensim_core::Result<Similarity> {
    similarity(
        &TensorPrepared::<T>::new(a)?,
        &TensorPrepared::<T>::new(b)?,
        Par::rayon(0),
    )
}

fn gaussian<T: Scalar>(
    a: &Model,
    b: &Model,
    centring: Centring,
) -> tensim_core::Result<(Similarity, String)> {
    let (pa, pb) = (
        GaussianPrepared::<T>::with_centring(a, centring)?,
        GaussianPrepared::<T>::with_centring(b, centring)?,
    );
    let exactness = pa.exactness().combine(pb.exactness()).describe();
    Ok((similarity(&pa, &pb, Par::rayon(0))?, exactness))
}

fn by_precision<R>(p: Precision, f64_path: impl FnOnce() -> R, f32_path: impl FnOnce() -> R) -> R {
    match p {
        Precision::F64 => f64_path(),
        Precision::F32 => f32_path(),
    }
}

/// Refuses two models that do not share their input and output spaces.
fn check_spaces(la: &Loaded, a: &Model, lb: &Loaded, b: &Model) -> Result<()> {
    let (pa, pb) = (la.path.display(), lb.path.display());
    // (verb, what is counted, in a, in b, why it must agree), outputs first.
    for (verb, what, in_a, in_b, why) in [
        (
            "has",
            "outputs",
            a.output_dim(),
            b.output_dim(),
            "similarity compares models with the same output space",
        ),
        (
            "takes",
            "inputs",
            a.input_dim(),
            b.input_dim(),
            "the models must share their input space",
        ),
    ] {
        if in_a != in_b {
            bail!("{pa} {verb} {in_a} {what} but {pb} {verb} {in_b}: {why}");
        }
    }
    Ok(())
}

/// The weight-space and moment metrics of one pair, each a value or the
/// reason it does not apply.
struct WeightSpace {
    tensor: Result<Similarity, tensim_core::Error>,
    gaussian: Result<(Similarity, String), tensim_core::Error>,
    gaussian_centred: Result<(Similarity, String), tensim_core::Error>,
    weights: Result<tensim_core::WeightCosine, tensim_core::Error>,
}

impl WeightSpace {
    fn compute(a: &Model, b: &Model, p: Precision) -> Self {
        let gaussian_of = |centring| {
            by_precision(
                p,
                || gaussian::<f64>(a, b, centring),
                || gaussian::<f32>(a, b, centring),
            )
        };
        WeightSpace {
            tensor: by_precision(p, || tensor::<f64>(a, b), || tensor::<f32>(a, b)),
            gaussian: gaussian_of(Centring::Uncentred),
            gaussian_centred: gaussian_of(Centring::Centred),
            weights: weight_cosine(a, b),
        }
    }

    fn rows(&self) -> Vec<Row> {
        let moments = |key, name, r: &Result<(Similarity, String), tensim_core::Error>| {
            let note = r.as_ref().map_or_else(|_| String::new(), |s| s.1.clone());
            Row::new(key, name, r.as_ref().map(|s| s.0.total), note)
        };
        let mut rows = vec![
            Row::new(
                "tensor",
                "tensor (weight space, centred form)",
                self.tensor.as_ref().map(|s| s.total),
                "MATH.md §2, exact",
            ),
            moments(
                "gaussian",
                "gaussian (functional, uncentred)",
                &self.gaussian,
            ),
            moments(
                "gaussian_centred",
                "gaussian (functional, centred)",
                &self.gaussian_centred,
            ),
            Row::new(
                "matrix_cosine",
                "matrix cosine (all weights)",
                self.weights.as_ref().map(|w| w.all),
                "not invariant to any symmetry",
            ),
        ];
        if let Ok(w) = &self.weights {
            for (i, v) in w.per_layer.iter().enumerate() {
                rows.push(Row {
                    key: "matrix_cosine_layer",
                    name: format!("  matrix cosine, layer {i}"),
                    value: Ok(*v),
                    note: String::new(),
                });
            }
        }
        rows
    }

    /// Per-class tensor and gaussian values (`None` where not applicable).
    fn per_class(&self, classes: usize) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
        let values = |r: Option<&Similarity>| -> Vec<Option<f64>> {
            match r {
                Some(s) => s.per_output.iter().map(|v| Some(*v)).collect(),
                None => vec![None; classes],
            }
        };
        (
            values(self.tensor.as_ref().ok()),
            values(self.gaussian.as_ref().ok().map(|s| &s.0)),
        )
    }
}

/// Output cosine and linear CKA of the logits on the `--inputs` data.
fn data_rows(a: &Model, b: &Model, path: &Path) -> Result<Vec<Row>> {
    let x = load::inputs(path, a.input_dim())?;
    let note = format!("{} inputs from {}", x.nrows(), path.display());
    let cka = a
        .forward(x.as_ref())
        .and_then(|ya| linear_cka(ya.as_ref(), b.forward(x.as_ref())?.as_ref()));
    Ok(vec![
        Row::new(
            "output_cosine",
            "output cosine on data",
            output_cosine(a, b, x.as_ref()),
            note.clone(),
        ),
        Row::new("cka", "linear CKA of logits", cka, note),
    ])
}

/// Compares two loaded sequential checkpoints.
pub fn run(opts: &MetricArgs, json_out: bool, la: &Loaded, lb: &Loaded) -> Result<()> {
    let (a, b) = (la.model()?, lb.model()?);
    check_spaces(la, a, lb, b)?;
    if opts.samples >= 2 {
        tensim_core::monte_carlo::check_samples(opts.samples)?;
    }
    let weight_space = WeightSpace::compute(a, b, opts.precision);
    let mut rows = weight_space.rows();
    let mut monte_carlo = None;
    if opts.samples >= 2 {
        let est = monte_carlo_similarity(a, b, opts.samples, opts.seed, Centring::Uncentred);
        rows.push(Row {
            key: "monte_carlo",
            name: "monte-carlo gaussian (uncentred)".into(),
            value: est.as_ref().map(|e| e.value).map_err(ToString::to_string),
            note: est.as_ref().map_or_else(
                |_| String::new(),
                |e| format!("± {:.4} (1 s.e., {} samples)", e.std_error, e.samples),
            ),
        });
        monte_carlo = est.ok();
    }
    if let Some(path) = &opts.inputs {
        rows.extend(data_rows(a, b, path)?);
    }
    let per_class = weight_space.per_class(a.output_dim());
    if json_out {
        let metrics: Vec<Value> = rows
            .iter()
            .map(|r| match &r.value {
                Ok(v) => json!({"metric": r.key, "name": r.name.trim(), "value": v, "note": r.note}),
                Err(e) => json!({"metric": r.key, "name": r.name.trim(), "value": null, "not_applicable": e}),
            })
            .collect();
        let doc = json!({
            "a": {"file": la.path, "label": la.label(), "architecture": la.describe()},
            "b": {"file": lb.path, "label": lb.label(), "architecture": lb.describe()},
            "precision": format!("{:?}", opts.precision).to_lowercase(),
            "metrics": metrics,
            "monte_carlo_std_error": monte_carlo.map(|e| e.std_error),
            "per_class": {"tensor": per_class.0, "gaussian": per_class.1},
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    print_table(la, lb, &rows, &per_class);
    Ok(())
}

fn print_table(
    la: &Loaded,
    lb: &Loaded,
    rows: &[Row],
    per_class: &(Vec<Option<f64>>, Vec<Option<f64>>),
) {
    outln!("A: {}  {}", la.path.display(), la.describe());
    outln!("B: {}  {}", lb.path.display(), lb.describe());
    outln!("");
    outln!("{:<38} {:>9}  note", "metric", "value");
    for r in rows {
        match &r.value {
            Ok(v) => outln!("{:<38} {:>9.6}  {}", r.name, v, r.note),
            Err(e) => outln!("{:<38} {:>9}  {}", r.name, "n/a", e),
        }
    }
    outln!("");
    outln!("{:<8} {:>12} {:>12}", "class", "tensor", "gaussian");
    let show = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.6}"));
    for (c, (t, g)) in per_class.0.iter().zip(&per_class.1).enumerate() {
        outln!("{:<8} {:>12} {:>12}", c, show(*t), show(*g));
    }
}
