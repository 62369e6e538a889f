//! `report.md` of the forgetting experiment: which stages resemble each
//! other, which class changed, how the updates relate.

use std::fmt::Write as _;

use super::{Outcome, Settings};
use crate::markdown::{figure_links, ranked_classes, three_column_table};

/// The paper's numbers, recomputed with this report's definitions (block
/// means over off-diagonal pairs; slice change = 1 − block mean between
/// "repeat", this run's "control", and "remove 9") from the 80 × 80 heatmaps
/// its script saved (`scripts/vision/data/forgetting_svhn.npz` of
/// `tdooms/tensor-similarity`: SVHN, 20 epochs per stage).
mod paper {
    pub const REMOVE9_VS_ADD8: f64 = 0.9434;
    pub const REMOVE9_VS_ADD9: f64 = 0.8281;
    pub const READD9_VS_ADD9: f64 = 0.9731;
    pub const READD9_VS_ADD8: f64 = 0.7405;
    pub const ADD9_VS_CONTROL: f64 = 0.9724;
    /// Class-9 slice change at "remove 9", and the runner-up (class 6).
    pub const CLASS9_CHANGE: f64 = 0.8712;
    pub const RUNNER_UP: (usize, f64) = (6, 0.0382);
}

/// The whole `report.md`.
pub(super) fn render(o: &Outcome, s: &Settings, quick: bool, stage_steps: &[u64]) -> String {
    let mut md = String::new();
    header(&mut md, o, s, quick, stage_steps.iter().sum());
    stages(&mut md, o);
    class_change(&mut md, o);
    updates(&mut md, o, stage_steps);
    accuracy_figures_timing(&mut md, o);
    md
}

/// Title, model, curriculum and metric.
fn header(md: &mut String, o: &Outcome, s: &Settings, quick: bool, total: u64) {
    let _ = writeln!(
        md,
        "# Class-incremental forgetting: which digit did the model forget?\n"
    );
    let _ = writeln!(
        md,
        "DeepMLP (embed {}→{}, bilinear MLP with {} hidden units, head →10; no bias, no residual) \
         trained on {} through nine stages, each continuing from the last stage's weights \
         with a fresh AdamW and cosine schedule (as the paper's script does): {}. Each stage trains on \
         every training image of its digits. {} epochs per stage (the paper used 20; fewer to fit the \
         CPU budget){}; AdamW lr {}, weight decay {:.3}, batch {}, no input noise. {} steps, {} checkpoints \
         (every {} batches and at each stage end; the paper's heatmaps used 80). Wall time {:.0} s.\n\n\
         {}\n\n\
         The paper trained on SVHN (grayscale 32×32); its numbers are quoted beside this \
         run's below.\n",
        s.inputs,
        s.embed,
        s.hidden,
        dataset_name(&s.dataset),
        o.stage_names.join(" → "),
        s.epochs_per_stage,
        if quick { " (**--quick**: reduced run on 12,000 training images)" } else { "" },
        s.learning_rate,
        s.weight_decay,
        s.batch_size,
        total,
        o.checkpoints,
        o.checkpoint_every,
        o.seconds_total,
        decay_note(s)
    );
    let _ = writeln!(
        md,
        "Similarity is the **Gaussian functional similarity** (`gaussian`: uncentred outputs on \
         N(0, I) pixel input, exact second-moment propagation; exact here since the model has one \
         bilinear layer, MATH.md §3).\n"
    );
}

/// Mean similarity between stages, and what remove 9 and re-add 9 resemble.
fn stages(md: &mut String, o: &Outcome) {
    let _ = writeln!(md, "## Which stages resemble each other\n");
    let _ = writeln!(md, "Mean `gaussian` similarity between the checkpoints of two stages (diagonal: within a stage, off-diagonal pairs only):\n");
    let _ = write!(md, "| stage |");
    for name in &o.stage_names {
        let _ = write!(md, " {name} |");
    }
    let _ = writeln!(md, "\n|---|{}", "---|".repeat(o.stage_names.len()));
    for (a, row) in o.stage_similarity.iter().enumerate() {
        let _ = write!(md, "| {} |", o.stage_names[a]);
        for v in row {
            if v.is_finite() {
                let _ = write!(md, " {v:.3} |");
            } else {
                let _ = write!(md, " — |");
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "\n* \"remove 9\" vs \"add 8\" (before 9 existed): **{:.3}**; vs \"add 9\": {:.3} → remove 9 looks {} like add 8.\n\
         * \"re-add 9\" vs \"add 9\": **{:.3}**; vs \"add 8\": {:.3} → re-add 9 looks {} like add 9.\n",
        o.remove9_vs_add8,
        o.remove9_vs_add9,
        if o.remove9_vs_add8 > o.remove9_vs_add9 { "more" } else { "less" },
        o.readd9_vs_add9,
        o.readd9_vs_add8,
        if o.readd9_vs_add9 > o.readd9_vs_add8 { "more" } else { "less" },
    );
    let f = |v: f64| format!("{v:.3}");
    let rows = [
        (
            "remove 9 vs add 8",
            o.remove9_vs_add8,
            paper::REMOVE9_VS_ADD8,
        ),
        (
            "remove 9 vs add 9",
            o.remove9_vs_add9,
            paper::REMOVE9_VS_ADD9,
        ),
        ("re-add 9 vs add 9", o.readd9_vs_add9, paper::READD9_VS_ADD9),
        ("re-add 9 vs add 8", o.readd9_vs_add8, paper::READD9_VS_ADD8),
        (
            "add 9 vs control (paper: repeat)",
            o.add9_vs_control,
            paper::ADD9_VS_CONTROL,
        ),
    ]
    .map(|(name, ours, theirs)| (name, f(ours), f(theirs)));
    three_column_table(
        md,
        "| stage block mean | this run | paper (SVHN, 20 epochs) |",
        &rows,
    );
}

/// Classes ranked by how much their slice changed at "remove 9".
fn class_change(md: &mut String, o: &Outcome) {
    let _ = writeln!(md, "## Which class slice changes most at \"remove 9\"\n");
    let _ = writeln!(md, "Change = 1 − mean class-slice similarity between the \"control\" and \"remove 9\" checkpoints:\n");
    ranked_classes(md, &o.remove9_class_change);
    let (top, second) = (o.remove9_class_change[0], o.remove9_class_change[1]);
    let _ = writeln!(
        md,
        "**Largest change: class {}** ({:.4}); runner-up class {} ({:.4}, ratio {:.1}×).\n",
        top.0,
        top.1,
        second.0,
        second.1,
        top.1 / second.1.max(1e-12)
    );
    let class9 = o
        .remove9_class_change
        .iter()
        .find(|c| c.0 == 9)
        .map_or(f64::NAN, |c| c.1);
    let other = o
        .remove9_class_change
        .iter()
        .find(|c| c.0 != 9)
        .copied()
        .unwrap_or((0, f64::NAN));
    let (p_class, p_other) = paper::RUNNER_UP;
    let rows = [
        (
            "class 9".to_string(),
            format!("{class9:.3}"),
            format!("{:.3}", paper::CLASS9_CHANGE),
        ),
        (
            "largest other class".to_string(),
            format!("{:.3} (class {})", other.1, other.0),
            format!("{p_other:.3} (class {p_class})"),
        ),
        (
            "ratio".to_string(),
            format!("{:.1}×", class9 / other.1.max(1e-12)),
            format!("{:.1}×", paper::CLASS9_CHANGE / p_other),
        ),
    ];
    three_column_table(
        md,
        "| slice change at remove 9 | this run | paper (SVHN, 20 epochs) |",
        &rows,
    );
}

/// Each stage's update against the "add 9" update.
fn updates(md: &mut String, o: &Outcome, stage_steps: &[u64]) {
    let _ = writeln!(md, "## Updates compared with the \"add 9\" update\n");
    let _ = writeln!(
        md,
        "Similarity of each stage's update (weights at its end minus at its start) to the \"add 9\" \
         update, from the four pairwise inner products (`tensim diff`, MATH.md §2):\n"
    );
    let rows: Vec<_> = o
        .update_similarity_to_add9
        .iter()
        .zip(stage_steps)
        .map(|((name, v), steps)| (name, steps, format!("{v:.3}")))
        .collect();
    three_column_table(md, "| stage | steps | update similarity to add 9 |", &rows);
    let sim_of = |name: &str| {
        o.update_similarity_to_add9
            .iter()
            .find(|u| u.0 == name)
            .map_or(f64::NAN, |u| u.1)
    };
    let direction = |v: f64| {
        if v < -0.1 {
            "against"
        } else if v > 0.1 {
            "along"
        } else {
            "roughly orthogonal to"
        }
    };
    let (remove, readd) = (sim_of("remove 9"), sim_of("re-add 9"));
    let _ = writeln!(
        md,
        "The \"remove 9\" update points {} the \"add 9\" update ({remove:.3}); the \"re-add 9\" update points {} it ({readd:.3}).",
        direction(remove),
        direction(readd)
    );
}

/// Final per-digit accuracy, figures and timing.
fn accuracy_figures_timing(md: &mut String, o: &Outcome) {
    let _ = writeln!(md, "\n## Final per-digit test accuracy\n");
    let _ = writeln!(
        md,
        "| digit | {} |\n|---|{}",
        (0..10)
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(10)
    );
    let _ = writeln!(
        md,
        "| accuracy | {} |\n",
        o.final_per_digit_accuracy
            .iter()
            .map(|a| format!("{:.3}", a))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "## Figures\n");
    figure_links(
        md,
        &[
            ("All panels", "forgetting", "figures/forgetting.png"),
            (
                "Global metrics (stage boundaries as grid lines)",
                "global",
                "figures/global-metrics.png",
            ),
            ("Class slices", "slices", "figures/class-slices.png"),
            (
                "Per-digit accuracy",
                "accuracy",
                "figures/per-digit-accuracy.png",
            ),
        ],
    );
    let _ = writeln!(
        md,
        "## Timing\n\n| stage | seconds |\n|---|---|\n| training | {:.1} |\n| matrices | {:.1} |\n| figures | {:.2} |\n| total | {:.1} |",
        o.seconds_training, o.seconds_matrices, o.seconds_figures, o.seconds_total
    );
}

/// How the report names the dataset.
fn dataset_name(name: &str) -> &str {
    match name {
        "mnist" => "bundled MNIST",
        "digits" => "the bundled 8×8 digits (UCI)",
        "svhn" => "SVHN (grayscale 32×32, the paper's data)",
        other => other,
    }
}

/// Where the weight decay comes from.
fn decay_note(s: &Settings) -> String {
    let factor = super::regime_factor(&s.dataset);
    let source =
        if !s.default_decay {
            "set with --weight-decay".to_string()
        } else {
            let capped = (s.weight_decay - factor * s.paper_matched_decay).abs() > 1e-12;
            format!(
            "the default, the paper's 0.5 scaled to this run's stages ({:.3}: the same per-stage \
             shrinking exp(−wd·Σlr) of a weight no gradient supports) times {factor} for {}{}",
            s.paper_matched_decay,
            s.dataset,
            if capped { ", capped at 2 % per step" } else { "" }
        )
        };
    format!(
        "Weight decay {:.3}: {source}. The paper's SVHN model underfits (85 % training accuracy at the \
         end), so its data pin the solution of every stage; at the paper's per-stage decay an MNIST \
         model fits its training data and its class slices drift from stage to stage, which hides \
         \"remove 9 looks like add 8\". Four times the decay puts the bundled data in the paper's \
         regime (docs/EXPERIMENTS.md §2 has the measurements).",
        s.weight_decay
    )
}
