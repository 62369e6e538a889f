//! `tensim`: when are two tensor networks the same?

mod bench;
mod compare;
mod demo;
mod load;
mod matrix;
mod metric;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Compare bilinear networks by tensor similarity: from weights alone,
/// invariant to the symmetries that fool weight comparison.
#[derive(Parser)]
#[command(name = "tensim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Floating-point type the metrics run in.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Precision {
    /// Reference path.
    F64,
    /// Fast path (normalised, never overflows).
    F32,
}

#[derive(Subcommand)]
enum Command {
    /// Every applicable metric between two checkpoints.
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// Inputs (n×d f64 .npy) for output cosine and CKA on data.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Monte-Carlo samples for the sampled Gaussian estimate (0 to skip).
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Precision::F64)]
        precision: Precision,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// N×N matrix of one metric over checkpoints.
    Matrix {
        #[arg(required = true, num_args = 1..)]
        checkpoints: Vec<PathBuf>,
        /// tensor | gaussian | gaussian-centred | matrix-cosine | slice:<class> |
        /// gaussian-slice:<class> | output-cosine | cka | monte-carlo
        #[arg(long, default_value = "tensor")]
        metric: String,
        /// Output file (.csv or .npy), written atomically; stdout CSV if absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Inputs (n×d f64 .npy) for output-cosine and cka.
        #[arg(long)]
        inputs: Option<PathBuf>,
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = Precision::F64)]
        precision: Precision,
        #[arg(long)]
        json: bool,
    },
    /// Show, with no files, that tensor similarity sees through symmetries.
    Demo {
        #[arg(long, default_value_t = 1337)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Time the metrics at the sizes of the paper's experiments.
    Bench {
        /// Repetitions per case (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Models in the pairwise matrix case.
        #[arg(long, default_value_t = 41)]
        models: usize,
        #[arg(long)]
        json: bool,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Compare {
            a,
            b,
            inputs,
            samples,
            seed,
            precision,
            json,
        } => compare::run(&compare::Options {
            a,
            b,
            inputs,
            samples,
            seed,
            precision,
            json,
        }),
        Command::Matrix {
            checkpoints,
            metric,
            output,
            inputs,
            samples,
            seed,
            precision,
            json,
        } => matrix::run(&matrix::Options {
            checkpoints,
            metric,
            output,
            inputs,
            samples,
            seed,
            precision,
            json,
        }),
        Command::Demo { seed, json } => demo::run(seed, json),
        Command::Bench { runs, models, json } => bench::run(runs.max(1), models.max(2), json),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tensim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
