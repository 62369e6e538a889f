//! `report.md` of the backdoor experiment: measured numbers beside the paper's.

use std::fmt::Write;

use tensim_core::blocks::{ClassSpecificSplit, PhaseSplit};

use super::Outcome;
use crate::markdown::{figure_links, ranked_classes, three_column_table};

/// What the report needs beyond the outcome.
pub(super) struct ReportInput<'a> {
    pub settings_json: String,
    pub quick: bool,
    pub dataset: String,
    pub outcome: &'a Outcome,
    /// (file key, display name) of every matrix.
    pub named: Vec<(String, String)>,
    pub splits: &'a [PhaseSplit],
    pub class_splits: &'a [ClassSpecificSplit],
    pub ranked: &'a [(usize, f64)],
    pub n_a: usize,
    pub n_b: usize,
    pub wall_seconds: f64,
    pub steps_clean: u64,
    pub every: u64,
    pub record_steps: Vec<u64>,
}

/// The paper's Δ on SVHN (EXPERIMENTS §1), where it reports one.
fn paper_delta(key: &str) -> Option<f64> {
    match key {
        "matrix-cosine" => Some(0.15),
        "tensor" => Some(0.24),
        "tensor-class9" => Some(0.43),
        "output-triggered" => Some(0.62),
        "output-class9" => Some(0.09),
        _ => None,
    }
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// The whole `report.md`.
pub(super) fn render(r: &ReportInput) -> String {
    let mut md = String::new();
    header(&mut md, r);
    accuracy(&mut md, r.outcome);
    deltas(&mut md, r);
    detection(&mut md, r);
    figures_and_timing(&mut md, r);
    md
}

/// Title and what was run.
fn header(md: &mut String, r: &ReportInput) {
    let o = r.outcome;
    let _ = writeln!(md, "# Backdoor insertion: what tensor similarity sees\n");
    let _ = writeln!(
        md,
        "Dataset **{}**{}; single-layer bilinear classifier `y = P((Lx) ⊙ (Rx))`, trained here \
         (candle, CPU). Phase A: {} clean steps; phase B: {} poisoned steps (10% of each batch \
         gets the diamond trigger and label 9). {} checkpoints ({} in A including step 0, {} in B), \
         every {} steps. Wall time {:.0} s on {} threads.\n",
        r.dataset,
        if r.quick { " (**--quick**: reduced run, numbers are not comparable to the paper)" } else { "" },
        r.steps_clean,
        r.record_steps.last().copied().unwrap_or(0) - r.steps_clean,
        o.checkpoints,
        r.n_a,
        r.n_b,
        r.every,
        r.wall_seconds,
        rayon::current_num_threads(),
    );
}

/// Accuracy and attack success beside the paper's.
fn accuracy(md: &mut String, o: &Outcome) {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let _ = writeln!(md, "## Accuracy and attack success\n");
    let rows = [
        (
            "train accuracy (clean, final)",
            pct(o.final_train_accuracy),
            "85%",
        ),
        (
            "test accuracy (clean, final)",
            pct(o.final_test_accuracy),
            "81%",
        ),
        (
            "attack success, end of phase A",
            pct(o.attack_success_before),
            "—",
        ),
        ("attack success, final", pct(o.attack_success_after), "96%"),
    ];
    three_column_table(md, "| | this run | paper (SVHN) |", &rows);
    let _ = writeln!(
        md,
        "Attack success = share of triggered test images whose true label is not 9 that the model classifies as 9.\n"
    );
}

/// Δ of each matrix beside the paper's.
fn deltas(md: &mut String, r: &ReportInput) {
    let o = r.outcome;
    let _ = writeln!(md, "## Δ of each similarity matrix\n");
    let _ = writeln!(
        md,
        "Δ = mean similarity over pairs inside phase B (off-diagonal) − mean over pairs with one \
         checkpoint in A and one in B. `tensor` is the weight-space form (cosine of centred \
         Gaussian outputs, MATH.md §3).\n"
    );
    let rows: Vec<_> = r
        .named
        .iter()
        .map(|(key, name)| {
            let d = o
                .deltas
                .iter()
                .find(|d| &d.0 == key)
                .map_or(f64::NAN, |d| d.1);
            let paper = paper_delta(key).map_or_else(|| "—".to_string(), |p| format!("{p:.2}"));
            (
                format!("{name} (`matrices/{key}.csv`)"),
                format!("{d:.3}"),
                paper,
            )
        })
        .collect();
    three_column_table(md, "| matrix | Δ this run | Δ paper (SVHN) |", &rows);
}

/// The boundary and class found from the tensor class slices.
fn detection(md: &mut String, r: &ReportInput) {
    let o = r.outcome;
    let _ = writeln!(md, "## Detection without the trigger\n");
    let best = r.class_splits[0];
    let second = r.class_splits.get(1);
    let _ = writeln!(
        md,
        "Only the tensor-similarity class slices are used: no trigger, no data. For every split of \
         the checkpoint sequence into two blocks, each class slice gets a contrast (mean \
         within-block − mean across-block similarity). Early training changes every class alike; a \
         backdoor changes the class it relabels to. The boundary is the split where the most-changed \
         class exceeds the median class by most: checkpoint {} (**step {}**, class {} exceeds the \
         median class by {:.4}{}). Poisoning actually started after step {} (first poisoned \
         checkpoint: step {}). For comparison, the best split of the *total* tensor matrix is at \
         step {} (contrast {:.3}): it is dominated by the change every class undergoes.\n",
        best.index,
        o.detected_boundary_step,
        best.class,
        best.excess,
        second.map_or(String::new(), |s| format!(
            "; runner-up boundary at step {} with excess {:.4}",
            r.record_steps[s.index], s.excess
        )),
        r.steps_clean,
        o.true_boundary_step,
        o.total_matrix_split_step,
        r.splits[0].contrast,
    );
    classes(md, r);
}

/// Classes ranked by their change, and how clearly the top one stands out.
fn classes(md: &mut String, r: &ReportInput) {
    let o = r.outcome;
    let _ = writeln!(
        md,
        "Classes ranked by how much their slice similarity changed across that boundary (the same \
         contrast computed on each class slice):\n"
    );
    ranked_classes(md, r.ranked);
    let others: Vec<f64> = r.ranked[1..].iter().map(|x| x.1).collect();
    let (mean, std) = mean_std(&others);
    let z = (r.ranked[0].1 - mean) / std.max(1e-12);
    let verdict = if z > 3.0 {
        "clear: the top class stands more than 3 standard deviations above the other classes"
    } else if z > 2.0 {
        "moderate: the top class stands 2–3 standard deviations above the other classes"
    } else {
        "weak: the top class does not stand out from the others; do not trust it alone"
    };
    let _ = writeln!(
        md,
        "**Largest change: class {}, at step {}.** Margin to the runner-up (class {}): {:.4}; \
         the top class is {:.1} standard deviations above the mean of the other nine classes. \
         Reliability: {verdict}. The backdoor's target class is 9.\n",
        o.detected_class, o.detected_boundary_step, o.runner_up_class, o.class_margin, z
    );
}

/// Figures, timing and settings.
fn figures_and_timing(md: &mut String, r: &ReportInput) {
    let o = r.outcome;
    let _ = writeln!(md, "## Figures\n");
    let _ = writeln!(
        md,
        "![backdoor figure](figures/backdoor.png)\n\nRow 1: clean sample with prediction; accuracy and attack \
         success; matrix cosine; tensor similarity. Row 2: triggered sample with prediction; output \
         cosine on triggered inputs; output cosine on class 9; tensor similarity, class-9 slice. \
         Each heatmap's colour bar gives its scale: white to dark blue from its smallest to its \
         largest value when none is negative, else red (negative) through white (0) to blue, \
         symmetric about 0; the ten class slices share one scale. The black line marks the start \
         of phase B.\n"
    );
    figure_links(
        md,
        &[
            (
                "All ten class slices",
                "slices",
                "figures/tensor-slices.png",
            ),
            (
                "Output-cosine baselines and CKA",
                "baselines",
                "figures/baselines.png",
            ),
        ],
    );
    let _ = writeln!(md, "## Timing\n");
    let _ = writeln!(
        md,
        "| stage | seconds |\n|---|---|\n| training ({:.1} steps/s, incl. checkpoint evaluation) | {:.1} |\n| matrices | {:.1} |\n| figures | {:.2} |\n| total | {:.1} |\n",
        o.steps_per_second, o.seconds_training, o.seconds_matrices, o.seconds_figures, r.wall_seconds
    );
    let _ = writeln!(md, "## Settings\n\n```json\n{}\n```", r.settings_json);
}
