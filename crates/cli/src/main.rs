//! `tensim`: when are two tensor networks the same?

mod bench;
mod changes;
mod compare;
mod convert;
mod demo;
mod diff;
mod inspect;
mod load;
mod matrix;
mod matrix_parts;
mod memory;
mod options;
mod plot;
mod progress;
mod stdout;
mod transformer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use options::{MetricArgs, Precision};
use stdout::outln;
use tensim_core::network::NetworkKind;
use tensim_experiments::{backdoor, forgetting, grokking, language};

/// Compare bilinear networks by tensor similarity: from weights alone,
/// invariant to the symmetries that fool weight comparison.
#[derive(Parser)]
#[command(name = "tensim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every applicable metric between two checkpoints.
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// Architecture spec (TOML) mapping a foreign checkpoint's tensors (README: Loading other checkpoints).
        #[arg(long)]
        arch: Option<PathBuf>,
        #[command(flatten)]
        args: MetricArgs,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// N×N matrix of one metric over checkpoints.
    Matrix {
        #[command(flatten)]
        inputs: CheckpointArgs,
        /// tensor | gaussian | gaussian-centred | matrix-cosine | slice:<class> |
        /// gaussian-slice:<class> | output-cosine | cka | monte-carlo
        #[arg(long, default_value = "tensor")]
        metric: String,
        /// Output file (.csv or .npy), written atomically; stdout CSV if absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also draw the matrix as a heatmap PNG, steps on the axes.
        #[arg(long, value_name = "PNG")]
        plot: Option<PathBuf>,
        #[command(flatten)]
        args: MetricArgs,
        #[arg(long)]
        json: bool,
        /// Keep every finished pair in OUTPUT.progress and, when a killed run
        /// left one for the same inputs, continue from it (needs -o).
        #[arg(long)]
        resume: bool,
        /// Compute shard K of N (0 ≤ K < N) of the pairs into a pairs file
        /// (-o part-K.pairs); `tensim merge` builds the matrix from all N.
        #[arg(long, value_name = "K/N")]
        shard: Option<matrix_parts::Shard>,
    },
    /// Where a checkpoint series changed, and which class (or token) changed
    /// most there, from the similarity's per-output slices alone: no
    /// trigger, no data (the backdoor experiment's detection, for any series).
    Changes {
        #[command(flatten)]
        inputs: CheckpointArgs,
        /// tensor | gaussian (default: tensor for sequential networks,
        /// gaussian for transformers).
        #[arg(long)]
        metric: Option<String>,
        /// How many boundaries to report, most output-specific first.
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// Fewest checkpoints on either side of a boundary (and between two
        /// reported boundaries).
        #[arg(long, default_value_t = 2)]
        min_block: usize,
        /// Gaussian input positions for transformer checkpoints.
        #[arg(long)]
        positions: Option<usize>,
        #[arg(long, value_enum, default_value_t = Precision::F64)]
        precision: Precision,
        #[arg(long)]
        json: bool,
    },
    /// Build a matrix from the parts `matrix --shard` wrote, after checking
    /// that they come from one computation and cover every pair once.
    Merge {
        /// The parts (pairs files), in any order.
        #[arg(required = true)]
        parts: Vec<PathBuf>,
        /// Output file (.csv or .npy), written atomically.
        #[arg(short, long)]
        output: PathBuf,
        /// Also draw the matrix as a heatmap PNG.
        #[arg(long, value_name = "PNG")]
        plot: Option<PathBuf>,
    },
    /// Draw a matrix written by `matrix` (CSV with labels, or NPY) as a heatmap PNG.
    Plot {
        matrix: PathBuf,
        #[arg(short, long, value_name = "PNG")]
        output: PathBuf,
        /// Title above the heatmap (default: the matrix file's name).
        #[arg(long)]
        title: Option<String>,
    },
    /// Similarity of updates: consecutive checkpoint differences, or each
    /// update against a reference update (MATH.md §2, difference similarity).
    Diff {
        #[command(flatten)]
        inputs: CheckpointArgs,
        /// tensor | gaussian
        #[arg(long, default_value = "tensor")]
        metric: String,
        /// Reference update FROM TO (e.g. a fine-tune on one digit).
        #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
        reference: Option<Vec<PathBuf>>,
        /// One output class (slice) instead of all outputs.
        #[arg(long)]
        class: Option<usize>,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Precision::F64)]
        precision: Precision,
        #[arg(long)]
        json: bool,
    },
    /// List a checkpoint's tensors, shapes, dtypes and what the spec maps them to.
    Inspect {
        file: PathBuf,
        /// Architecture spec (TOML) mapping a foreign checkpoint's tensors (README: Loading other checkpoints).
        #[arg(long)]
        arch: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write any loadable checkpoint in tensim's self-describing safetensors format.
    Convert {
        input: PathBuf,
        /// Architecture spec (TOML) mapping a foreign checkpoint's tensors (README: Loading other checkpoints).
        #[arg(long)]
        arch: Option<PathBuf>,
        /// Output file (a directory when the input holds several checkpoints).
        #[arg(short, long)]
        output: PathBuf,
        /// Store f32 instead of f64.
        #[arg(long)]
        f32: bool,
    },
    /// Show, with no files, that tensor similarity sees through symmetries.
    Demo {
        #[arg(long, default_value_t = 1337)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Reproduce an experiment of the paper into a run directory.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Time the metrics at the sizes of the paper's experiments.
    Bench {
        /// Repetitions per case (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Models in the pairwise matrix case.
        #[arg(long, default_value_t = 41)]
        models: usize,
        /// Also time the exact Gaussian metric of bilinear-attention
        /// transformers (1 and 2 layers, `--transformer-size`): prepare,
        /// cold and warm pairs and a matrix, with the cost model's FLOPs and
        /// peak memory (slow: minutes).
        #[arg(long)]
        transformer: bool,
        /// Gaussian positions for the transformer cases.
        #[arg(long, default_value_t = 4)]
        positions: usize,
        /// Models in the transformer matrix case.
        #[arg(long, default_value_t = 20)]
        transformer_models: usize,
        /// Size of the transformer cases: `benchmark` (vocab 64, d_model 32)
        /// or `paper` (the paper's language models: vocab 4096, d_model 256,
        /// 8 heads of 32, attention-only blocks with biases; no matrix case).
        #[arg(long, default_value = "benchmark", value_parser = ["benchmark", "paper"])]
        transformer_size: String,
        #[arg(long)]
        json: bool,
    },
}

/// The checkpoints that `matrix` and `diff` read, and how to map them.
#[derive(clap::Args)]
struct CheckpointArgs {
    /// Checkpoint files, directories or quoted glob patterns.
    #[arg(required = true, num_args = 1..)]
    checkpoints: Vec<PathBuf>,
    /// Architecture spec (TOML) mapping a foreign checkpoint's tensors (README: Loading other checkpoints).
    #[arg(long)]
    arch: Option<PathBuf>,
}

/// Flags every experiment takes.
#[derive(clap::Args)]
struct RunArgs {
    /// Overwrite an existing run directory.
    #[arg(long)]
    force: bool,
    /// Continue the run that an interrupted (killed) earlier invocation left,
    /// from its last checkpoint, with the results of an uninterrupted run;
    /// starts one when there is none. Use the same flags as that run.
    #[arg(long)]
    resume: bool,
    /// Reduced run (seconds to a minute) for tests and a first look.
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Print the measured outcome as one JSON document.
    #[arg(long)]
    json: bool,
}

/// The image data of the vision experiments.
#[derive(clap::Args)]
struct DataArgs {
    /// mnist (bundled), digits (bundled) or svhn (the paper's data; needs --svhn-dir).
    #[arg(long, default_value = "mnist")]
    data: String,
    /// Folder with SVHN's train_32x32.mat and test_32x32.mat.
    #[arg(long)]
    svhn_dir: Option<PathBuf>,
}

impl RunArgs {
    /// The options of an experiment trained for `steps` into `out`.
    fn with_steps(&self, out: PathBuf, steps: Option<u64>) -> tensim_experiments::StepOptions {
        tensim_experiments::StepOptions {
            out,
            force: self.force,
            resume: self.resume,
            quick: self.quick,
            steps,
            seed: self.seed,
        }
    }
}

#[derive(Subcommand)]
enum ExperimentCommand {
    /// Backdoor insertion with the trigger unknown to the detector (EXPERIMENTS §1).
    Backdoor {
        /// Run directory (refused if it holds a run, unless --force).
        #[arg(long, default_value = "runs/backdoor")]
        out: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Class-incremental curriculum and forgetting, with update diffing (EXPERIMENTS §2).
    Forgetting {
        /// Run directory (refused if it holds a run, unless --force).
        #[arg(long, default_value = "runs/forgetting")]
        out: PathBuf,
        /// Epochs per stage (default 5 on mnist, 100 on digits, the paper's 20 on svhn).
        #[arg(long)]
        epochs: Option<f64>,
        /// AdamW weight decay (default: the paper's per-stage decay, 4× on the
        /// bundled data to match the paper's underfitting regime; EXPERIMENTS §2).
        #[arg(long)]
        weight_decay: Option<f64>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Bilinear-attention transformers on Shakespeare, exact similarity through
    /// attention and n-gram scores (EXPERIMENTS §4).
    Language {
        /// Run directory (refused if it holds a run, unless --force).
        #[arg(long, default_value = "runs/language")]
        out: PathBuf,
        /// Training steps per model (default 3,000; 60 with --quick; 10,000 with --paper).
        #[arg(long)]
        steps: Option<u64>,
        /// The paper's model size (vocabulary 4096, d_model 256, 8 heads of 32,
        /// context 256, 2 layers, 10,000 steps, 75 checkpoints): hours on a CPU.
        #[arg(long, conflicts_with = "quick")]
        paper: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Grokking modular addition, frequencies from weights (EXPERIMENTS §3).
    Grokking {
        /// Run directory (refused if it holds a run, unless --force).
        #[arg(long, default_value = "runs/grokking")]
        out: PathBuf,
        /// Training steps (default 100,000).
        #[arg(long)]
        steps: Option<u64>,
        #[command(flatten)]
        run: RunArgs,
    },
}

fn print_outcome<T: serde::Serialize>(
    json: bool,
    outcome: &T,
    summary: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        outln!("{}", summary());
    }
    Ok(())
}

/// Runs an experiment through the library and prints its outcome.
fn run_experiment(command: ExperimentCommand) -> anyhow::Result<()> {
    match command {
        ExperimentCommand::Backdoor { out, data, run } => {
            let o = backdoor::run(&backdoor::Options {
                out,
                force: run.force,
                resume: run.resume,
                quick: run.quick,
                data: data.data,
                svhn_dir: data.svhn_dir,
                seed: run.seed,
            })?;
            print_outcome(run.json, &o, || backdoor_summary(&o))
        }
        ExperimentCommand::Forgetting {
            out,
            epochs,
            weight_decay,
            data,
            run,
        } => {
            let o = forgetting::run(&forgetting::Options {
                out,
                force: run.force,
                resume: run.resume,
                quick: run.quick,
                epochs,
                weight_decay,
                data: data.data,
                svhn_dir: data.svhn_dir,
                seed: run.seed,
            })?;
            print_outcome(run.json, &o, || forgetting_summary(&o))
        }
        ExperimentCommand::Language {
            out,
            steps,
            paper,
            run,
        } => {
            let o = language::run(&language::Options {
                out,
                force: run.force,
                resume: run.resume,
                quick: run.quick,
                paper,
                steps,
                seed: run.seed,
            })?;
            print_outcome(run.json, &o, || language_summary(&o))
        }
        ExperimentCommand::Grokking { out, steps, run } => {
            let o = grokking::run(&run.with_steps(out, steps))?;
            print_outcome(run.json, &o, || grokking_summary(&o))
        }
    }
}

fn backdoor_summary(o: &backdoor::Outcome) -> String {
    format!(
        "backdoor run written to {}: test accuracy {:.1}%, attack success {:.1}% (end of phase A: {:.1}%); \
         detected change at step {} in class {} (report.md)",
        o.run_dir.display(),
        100.0 * o.final_test_accuracy,
        100.0 * o.attack_success_after,
        100.0 * o.attack_success_before,
        o.detected_boundary_step,
        o.detected_class
    )
}

fn forgetting_summary(o: &forgetting::Outcome) -> String {
    format!(
        "forgetting run written to {}: remove 9 vs add 8 {:.3} (vs add 9 {:.3}); re-add 9 vs add 9 {:.3}; \
         largest class change at remove 9: class {} (report.md)",
        o.run_dir.display(),
        o.remove9_vs_add8,
        o.remove9_vs_add9,
        o.readd9_vs_add9,
        o.remove9_class_change[0].0
    )
}

fn language_summary(o: &language::Outcome) -> String {
    let parts: Vec<String> = o
        .models
        .iter()
        .map(|m| {
            format!(
                "{} layer(s): held-out loss {:.3}, n-gram scores {:.2}/{:.2}/{:.2}",
                m.layers,
                m.final_heldout_loss,
                m.final_ngram_scores[0],
                m.final_ngram_scores[1],
                m.final_ngram_scores[2]
            )
        })
        .collect();
    format!(
        "language run written to {} in {:.0} s: {} (report.md)",
        o.run_dir.display(),
        o.seconds_total,
        parts.join("; ")
    )
}

fn grokking_summary(o: &grokking::Outcome) -> String {
    format!(
        "grokking run written to {}: validation accuracy {:.3} (≥0.5 at {:?}, ≥0.99 at {:?}); \
         similarity phase change at step {}; dominant frequencies {:?} (report.md)",
        o.run_dir.display(),
        o.final_validation_accuracy,
        o.validation_crosses_05,
        o.validation_crosses_099,
        o.detected_phase_change_step,
        o.dominant_frequencies
            .iter()
            .map(|f| f.0)
            .collect::<Vec<_>>()
    )
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Compare {
            a,
            b,
            arch,
            args,
            json,
        } => {
            let spec = load::spec(arch.as_deref())?;
            let (la, lb) = (
                load::checkpoint(&a, spec.as_ref())?,
                load::checkpoint(&b, spec.as_ref())?,
            );
            // Transformer checkpoints (kind: transformer) take the sequence metrics.
            if la.network().kind() == NetworkKind::Transformer {
                matrix::inputs_for(args.inputs.as_ref(), &la)?;
                return transformer::compare(&la, &lb, &args, json);
            }
            compare::run(&args, json, &la, &lb)
        }
        Command::Matrix {
            inputs: CheckpointArgs { checkpoints, arch },
            metric,
            output,
            plot,
            args,
            json,
            resume,
            shard,
        } => matrix::run(&matrix::Options {
            checkpoints,
            arch,
            metric,
            output,
            plot,
            args,
            json,
            resume,
            shard,
        }),
        Command::Changes {
            inputs: CheckpointArgs { checkpoints, arch },
            metric,
            top,
            min_block,
            positions,
            precision,
            json,
        } => changes::run(&changes::Options {
            checkpoints,
            arch,
            metric,
            top,
            min_block,
            positions,
            precision,
            json,
        }),
        Command::Merge {
            parts,
            output,
            plot,
        } => matrix_parts::run_merge(&parts, &output, plot.as_deref()),
        Command::Plot {
            matrix,
            output,
            title,
        } => plot::run(&matrix, &output, title.as_deref()),
        Command::Diff {
            inputs: CheckpointArgs { checkpoints, arch },
            metric,
            reference,
            class,
            output,
            precision,
            json,
        } => diff::run(&diff::Options {
            checkpoints,
            arch,
            metric,
            reference: reference.map(|v| (v[0].clone(), v[1].clone())),
            class,
            output,
            precision,
            json,
        }),
        Command::Inspect { file, arch, json } => inspect::run(&file, arch.as_deref(), json),
        Command::Convert {
            input,
            arch,
            output,
            f32,
        } => convert::run(&input, arch.as_deref(), &output, f32),
        Command::Demo { seed, json } => demo::run(seed, json),
        Command::Experiment(experiment) => run_experiment(experiment),
        Command::Bench {
            runs,
            models,
            transformer,
            positions,
            transformer_models,
            transformer_size,
            json,
        } => bench::run(
            runs.max(1),
            models.max(2),
            transformer.then_some(bench::TransformerBench {
                positions,
                models: transformer_models.max(2),
                paper: transformer_size == "paper",
            }),
            json,
        ),
    }
}

/// Keeps freed memory in glibc's heap instead of returning every large block
/// to the kernel: the exact sequence metric allocates and frees tensors of
/// many MiB per contraction step, and fresh pages cost a fault each (about
/// 12% of a paper-size pair, measured).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LIMIT: libc::c_int = 1 << 30;
        // SAFETY: mallopt only sets allocator parameters; it is called before
        // any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT);
            libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT);
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Experiment(ExperimentCommand::Language { .. })
    ) && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        // The language models are small: candle's thread pool costs more than
        // it gains (about 5x fewer steps/s on 2 cores). Set before any thread
        // starts; the user's own setting wins.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away: nothing is wrong, stop quietly.
        Err(e) if stdout::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tensim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
