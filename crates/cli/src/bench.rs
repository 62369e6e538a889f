//! `tensim bench`: median timings of the metrics at the paper's sizes.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use tensim_core::pairwise::GramMatrices;
use tensim_core::{
    similarity, Architecture, GaussianPrepared, InnerProductSpace, LayerShape, Model, Par, Scalar,
    TensorPrepared,
};

use crate::stdout::outln;

struct Case {
    name: String,
    precision: &'static str,
    size: String,
    median_s: f64,
    min_s: f64,
    /// GEMM flop count; `None` where not counted (the transformer cases:
    /// many small contractions of varying shapes).
    flops: Option<f64>,
}

fn median_and_min(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        0.5 * (times[n / 2 - 1] + times[n / 2])
    };
    (median, times[0])
}

fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up
    median_and_min(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn models(arch: &Architecture, n: usize) -> Result<Vec<Model>> {
    (0..n).map(|s| Ok(arch.random_model(s as u64)?)).collect()
}

/// How a metric appears in the table: the start of its case names, the
/// model size it is timed at, and whether preparing one model is a case of
/// its own.
struct Metric {
    name: &'static str,
    size: &'static str,
    times_prepare: bool,
}

const TENSOR: Metric = Metric {
    name: "tensor",
    size: "784→64→10",
    times_prepare: false,
};

const GAUSSIAN: Metric = Metric {
    name: "gaussian",
    size: "784→128, bilinear 256, →10",
    times_prepare: true,
};

/// A prepared metric that the bench times.
trait Timed: InnerProductSpace + Sized {
    fn prepare(model: &Model) -> tensim_core::Result<Self>;
    /// GEMM flop count of the pair `(self, other)`.
    fn flops(&self, other: &Self) -> f64;
}

impl<T: Scalar> Timed for TensorPrepared<T> {
    fn prepare(model: &Model) -> tensim_core::Result<Self> {
        Self::new(model)
    }
    fn flops(&self, other: &Self) -> f64 {
        self.pair_flops(other)
    }
}

impl<T: Scalar> Timed for GaussianPrepared<T> {
    fn prepare(model: &Model) -> tensim_core::Result<Self> {
        Self::new(model)
    }
    fn flops(&self, other: &Self) -> f64 {
        self.pair_flops(other)
    }
}

/// The cases of the prepared metric `P` (at `precision`) on the models `ms`:
/// a prepared pair, preparing one model (if the metric times it) and the
/// N×N matrix including preparation.
fn metric_cases<P: Timed>(
    metric: &Metric,
    precision: &'static str,
    runs: usize,
    ms: &[Model],
    out: &mut Vec<Case>,
) -> Result<()> {
    let mut case = |name: String, (median_s, min_s): (f64, f64), flops: f64| {
        out.push(Case {
            name: format!("{}, {name}", metric.name),
            precision,
            size: metric.size.into(),
            median_s,
            min_s,
            flops: Some(flops),
        });
    };
    let (a, b) = (P::prepare(&ms[0])?, P::prepare(&ms[1])?);
    let flops = a.flops(&b);
    let pair = time(runs, || {
        similarity(&a, &b, Par::rayon(0)).expect("pair");
    });
    case("one pair (prepared)".into(), pair, flops);
    if metric.times_prepare {
        let one = time(runs, || {
            P::prepare(&ms[0]).expect("prepare");
        });
        case("prepare one model".into(), one, a.flops(&a));
    }
    let n = ms.len();
    let pairs = (n * (n + 1) / 2) as f64;
    let matrix = time(runs, || {
        let prepared: Vec<P> = ms.iter().map(|m| P::prepare(m).expect("prepare")).collect();
        GramMatrices::compute(&prepared, &|| {})
            .expect("gram")
            .cosine_total()
            .expect("cosine");
    });
    case(
        format!("{n}×{n} matrix (incl. prepare)"),
        matrix,
        flops * pairs,
    );
    Ok(())
}

/// Training throughput: AdamW steps of batch 512 on the 784→64→10 classifier (candle, f32).
fn training_case(runs: usize, arch: &Architecture, out: &mut Vec<Case>) -> Result<()> {
    use tensim_train::{Batch, Network, TrainConfig, Trainer};
    let device = tensim_train::default_device();
    let config = TrainConfig {
        learning_rate: 1e-3,
        weight_decay: 1e-3,
        batch_size: 512,
        input_noise: 0.05,
        cosine_decay: false,
        seed: 0,
    };
    let mut trainer = Trainer::new(Network::init(arch, 0, &device)?, config)?;
    let batch = Batch {
        inputs: (0..512usize * 784)
            .map(|i| ((i * 7919) % 256) as f32 / 255.0)
            .collect(),
        labels: (0..512).map(|i| (i % 10) as u32).collect(),
        dim: 784,
    };
    const STEPS: usize = 20;
    let (median_s, min_s) = time(runs, || {
        for _ in 0..STEPS {
            trainer.step(&batch, 1e-3).expect("training step");
        }
    });
    // Forward and backward: about 3× the forward GEMMs (2·b·d·2h + 2·b·h·o).
    let forward = 2.0 * 512.0 * 784.0 * 128.0 + 2.0 * 512.0 * 64.0 * 10.0;
    out.push(Case {
        name: format!("training, {STEPS} AdamW steps (batch 512)"),
        precision: "f32",
        size: "784→64→10".into(),
        median_s,
        min_s,
        flops: Some(3.0 * forward * STEPS as f64),
    });
    Ok(())
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What `tensim bench --transformer` times.
pub struct TransformerBench {
    pub positions: usize,
    /// Models in the matrix case (benchmark size only).
    pub models: usize,
    /// The paper's language-model size instead of the benchmark size.
    pub paper: bool,
}

/// Exact Gaussian similarity of transformers (MATH.md §3, sequences):
/// preparing one model, a cold pair (plans built), a warm pair (plans
/// reused) and, at the benchmark size, an N×N matrix sharing one geometry;
/// FLOPs from the geometry's cost model (the plans the engine executes).
/// One run each: these take seconds to minutes.
fn transformer_cases(layers: usize, opts: &TransformerBench, out: &mut Vec<Case>) -> Result<()> {
    use std::sync::Arc;
    use tensim_core::sequence::{SequenceGeometry, SequencePrepared};
    use tensim_core::transformer::TransformerShape;
    let (positions, n) = (opts.positions, opts.models);
    let shape = if opts.paper {
        TransformerShape::paper(layers)
    } else {
        TransformerShape::benchmark(layers)
    };
    let size = format!(
        "{layers}L d{} v{}, {positions} pos",
        shape.d_model, shape.vocab
    );
    let count = if opts.paper { 2 } else { n };
    let models: Vec<_> = (0..count)
        .map(|s| shape.random_model(s as u64))
        .collect::<Result<_, _>>()?;
    let mut case = |name: String, seconds: f64, flops: Option<f64>| {
        out.push(Case {
            name,
            precision: "f64",
            size: size.clone(),
            median_s: seconds,
            min_s: seconds,
            flops,
        });
    };
    let t = Instant::now();
    let geometry = Arc::new(SequenceGeometry::new(&shape, positions)?);
    let (pair_cost, prepare_cost) = (geometry.pair_cost(), geometry.prepare_cost());
    let plans = t.elapsed().as_secs_f64();
    case(
        format!("transformer, geometry + plans ({})", geometry.plans_built()),
        plans,
        None,
    );
    let t = Instant::now();
    let a = SequencePrepared::new(&models[0], geometry.clone())?;
    case(
        "transformer, prepare one model".into(),
        t.elapsed().as_secs_f64(),
        Some(prepare_cost.flops()),
    );
    let b = SequencePrepared::new(&models[1], geometry.clone())?;
    // The first pair builds the plans, the second reuses them.
    for run in ["first", "again"] {
        let t = Instant::now();
        similarity(&a, &b, Par::Seq)?;
        case(
            format!("transformer, pair ({run})"),
            t.elapsed().as_secs_f64(),
            Some(pair_cost.flops()),
        );
    }
    eprintln!(
        "transformer {layers} layer(s), {positions} positions: cost model {:.1} GFLOP per pair ({:.1} in {} networks), {:.1} per prepared model; largest intermediate {} entries; estimated peak {:.0} MiB for a pair",
        pair_cost.flops() / 1e9,
        pair_cost.contraction_flops / 1e9,
        pair_cost.networks,
        prepare_cost.flops() / 1e9,
        pair_cost.largest_intermediate.max(prepare_cost.largest_intermediate),
        geometry.peak_bytes(2) / 1048576.0,
    );
    if !opts.paper {
        let t = Instant::now();
        let prepared: Vec<SequencePrepared> = {
            use rayon::prelude::*;
            models
                .par_iter()
                .map(|m| SequencePrepared::new(m, geometry.clone()))
                .collect::<Result<_, _>>()?
        };
        GramMatrices::compute(&prepared, &|| {})
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .cosine_total()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let flops = n as f64 * prepare_cost.flops() + (n * (n - 1) / 2) as f64 * pair_cost.flops();
        case(
            format!("transformer, {n}×{n} matrix"),
            t.elapsed().as_secs_f64(),
            Some(flops),
        );
    }
    if let Some(mib) = peak_memory_mib() {
        eprintln!("transformer {layers} layer(s): peak resident memory so far {mib:.0} MiB");
    }
    Ok(())
}

pub fn run(
    runs: usize,
    n: usize,
    transformer: Option<TransformerBench>,
    json_out: bool,
) -> Result<()> {
    let classifier = Architecture {
        layers: vec![LayerShape::bilinear(784, 64, 10)],
    };
    let deep = Architecture {
        layers: vec![
            LayerShape::Linear {
                input: 784,
                output: 128,
                bias: false,
            },
            LayerShape::bilinear(128, 256, 128),
            LayerShape::Linear {
                input: 128,
                output: 10,
                bias: false,
            },
        ],
    };
    eprintln!(
        "building {n} models of each architecture; {runs} timed runs per case (median reported)…"
    );
    let small = models(&classifier, n)?;
    let deep_models = models(&deep, n)?;
    let mut cases = Vec::new();
    metric_cases::<TensorPrepared<f64>>(&TENSOR, f64::NAME, runs, &small, &mut cases)?;
    metric_cases::<TensorPrepared<f32>>(&TENSOR, f32::NAME, runs, &small, &mut cases)?;
    metric_cases::<GaussianPrepared<f64>>(&GAUSSIAN, f64::NAME, runs, &deep_models, &mut cases)?;
    metric_cases::<GaussianPrepared<f32>>(&GAUSSIAN, f32::NAME, runs, &deep_models, &mut cases)?;
    training_case(runs, &classifier, &mut cases)?;
    if let Some(opts) = &transformer {
        for layers in [1, 2] {
            transformer_cases(layers, opts, &mut cases)?;
        }
    }
    let threads = rayon::current_num_threads();
    if json_out {
        let doc = json!({
            "threads": threads,
            "runs": runs,
            "cases": cases.iter().map(|c| json!({
                "case": c.name, "precision": c.precision, "size": c.size,
                "median_seconds": c.median_s, "min_seconds": c.min_s,
                "gflop": c.flops.map(|f| f / 1e9),
                "gflops_per_second": c.flops.map(|f| f / c.median_s / 1e9),
            })).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    outln!("tensim bench: {threads} threads, median of {runs} runs (GFLOP/s from the GEMM flop count)\n");
    if let Some(c) = cases.iter().find(|c| c.name.starts_with("training")) {
        outln!("training throughput: {:.1} steps/s\n", 20.0 / c.median_s);
    }
    outln!(
        "{:<40} {:>5} {:>28} {:>12} {:>10} {:>9}",
        "case",
        "prec",
        "model",
        "median",
        "GFLOP",
        "GFLOP/s"
    );
    outln!("{}", "-".repeat(110));
    for c in &cases {
        let t = if c.median_s < 1e-2 {
            format!("{:.3} ms", c.median_s * 1e3)
        } else {
            format!("{:.3} s", c.median_s)
        };
        // Uncounted flops print as "-" rather than 0.
        let (gflop, rate) = match c.flops {
            Some(f) => (
                format!("{:.3}", f / 1e9),
                format!("{:.2}", f / c.median_s / 1e9),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        outln!(
            "{:<40} {:>5} {:>28} {:>12} {:>10} {:>9}",
            c.name,
            c.precision,
            c.size,
            t,
            gflop,
            rate
        );
    }
    if let Some(mib) = peak_memory_mib() {
        outln!("\npeak resident memory: {mib:.0} MiB");
    }
    Ok(())
}
