//! `tensim changes`: where a checkpoint series changed and which output
//! (class or token) changed there, from the similarity's per-output slices
//! alone (core's [`tensim_core::changes`]): the backdoor experiment's
//! trigger-free detection for any series.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;
use tensim_core::changes::{find_changes, Change, Changes};
use tensim_core::metric::{Metric, MetricOptions};
use tensim_core::network::{Network, NetworkKind};
use tensim_core::{Centring, Mat};

use crate::load::{self, Loaded};
use crate::matrix::name_files;
use crate::options::Precision;
use crate::progress;
use crate::stdout::outln;

pub struct Options {
    pub checkpoints: Vec<PathBuf>,
    pub arch: Option<PathBuf>,
    /// `tensor` or `gaussian`; by default tensor for sequential networks,
    /// gaussian for transformers.
    pub metric: Option<String>,
    pub top: usize,
    pub min_block: usize,
    pub positions: Option<usize>,
    pub precision: Precision,
    pub json: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    let spec = load::spec(opts.arch.as_deref())?;
    let loaded = load::checkpoints(&opts.checkpoints, spec.as_ref())?;
    let n = loaded.len();
    let min_block = opts.min_block.max(1);
    if n < 2 * min_block {
        bail!(
            "changes needs at least {} checkpoints (two blocks of --min-block {min_block})",
            2 * min_block
        );
    }
    let kind = loaded[0].network().kind();
    let metric = match (opts.metric.as_deref(), kind) {
        (None, NetworkKind::Sequential) | (Some("tensor"), _) => Metric::Tensor,
        (None, NetworkKind::Transformer) | (Some("gaussian"), _) => {
            Metric::Gaussian(Centring::Uncentred)
        }
        (Some(other), _) => {
            bail!("changes reads per-output slices: --metric tensor or gaussian, not `{other}`")
        }
    };
    let networks: Vec<&Network> = loaded.iter().map(Loaded::network).collect();
    let options = MetricOptions {
        precision: opts.precision.into(),
        positions: opts.positions,
        ..MetricOptions::default()
    };
    let job = metric
        .job(&networks, options)
        .map_err(|e| name_files(e, &loaded))?;
    let bars = progress::JobBars::new(n);
    let gram = job.gram(&bars).map_err(|e| name_files(e, &loaded));
    bars.finish();
    let gram = gram?;
    let total = gram.cosine_total()?;
    let slices: Vec<Mat<f64>> = (0..gram.outputs())
        .map(|c| gram.cosine_output(c))
        .collect::<Result<_, _>>()?;
    let refs: Vec<_> = slices.iter().map(|m| m.as_ref()).collect();
    let found = find_changes(total.as_ref(), &refs, opts.top, min_block);
    let labels: Vec<String> = loaded.iter().map(Loaded::label).collect();
    let output = if kind == NetworkKind::Transformer {
        "token"
    } else {
        "class"
    };
    if opts.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&as_json(&found, &labels, metric, output))?
        );
    } else {
        outln!("{}", as_table(&found, &labels, metric, output).trim_end());
    }
    Ok(())
}

fn change_json(c: &Change, labels: &[String]) -> serde_json::Value {
    json!({
        "boundary": c.index,
        "first_after": labels[c.index],
        "last_before": labels[c.index - 1],
        "excess": c.excess,
        "output": c.output.0,
        "output_contrast": c.output.1,
        "strength_sd": if c.strength.is_finite() { json!(c.strength) } else { json!("inf") },
        "runner_up": c.runner_up.map(|r| json!({"output": r.0, "contrast": r.1})),
        "total_contrast": c.total_contrast,
    })
}

fn as_json(found: &Changes, labels: &[String], metric: Metric, output: &str) -> serde_json::Value {
    json!({
        "metric": metric.to_string(),
        "outputs_are": output,
        "checkpoints": labels,
        "phase": found.phase.map(|(i, c)| json!({"boundary": i, "first_after": labels[i], "contrast": c})),
        "changes": found.changes.iter().map(|c| change_json(c, labels)).collect::<Vec<_>>(),
    })
}

fn as_table(found: &Changes, labels: &[String], metric: Metric, output: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} checkpoints, {} similarity and its per-{output} slices",
        labels.len(),
        metric
    );
    if let Some((i, c)) = found.phase {
        let _ = writeln!(
            s,
            "phase boundary (total matrix): between {} and {} (contrast {c:.4})\n",
            labels[i - 1],
            labels[i]
        );
    }
    let _ = writeln!(
        s,
        "{:<4} {:<28} {:>8}  {:<12} {:>9}  {:<20}",
        "#", "first checkpoint after", "excess", "changed most", "strength", "runner-up"
    );
    for (k, c) in found.changes.iter().enumerate() {
        let runner = c
            .runner_up
            .map_or(String::new(), |(o, v)| format!("{output} {o} ({v:.4})"));
        let _ = writeln!(
            s,
            "{:<4} {:<28} {:>8.4}  {:<12} {:>7.1} SD  {:<20}",
            k + 1,
            labels[c.index],
            c.excess,
            format!("{output} {}", c.output.0),
            c.strength,
            runner
        );
    }
    let _ = writeln!(
        s,
        "\nexcess: the most-changed {output}'s contrast (mean within-block − across-block similarity of its slice) \
         minus the median one's; strength: its contrast in standard deviations above the mean of the others."
    );
    s
}
