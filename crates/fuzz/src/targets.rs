//! The fuzz targets: every way tensim reads a file someone else wrote, each
//! with its seed corpus (the repository's real fixtures, files written by
//! torch and scipy, and tensim's own checkpoints) and the call that loads it.

use std::path::{Path, PathBuf};

use tensim_core::network::NetworkShape;
use tensim_core::transformer::TransformerShape;
use tensim_core::{Architecture, LayerShape, Residual};
use tensim_io::{
    load_checkpoint, read_tensor_sets_with, save_checkpoint, ArchSpec, CheckpointMeta, Limits,
    StoredDtype,
};

/// How a target's inputs are mutated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Any byte may change.
    Bytes,
    /// A zip archive: mostly one entry is mutated and the archive rebuilt
    /// (so its checksums hold and the entry's reader sees the mutant),
    /// sometimes the archive's own bytes.
    Zip,
    /// A text format: lines and values as well as bytes.
    Text,
}

/// Loads one input file: `Err` is a refusal, whose message must name the file.
pub type Load = Box<dyn Fn(&Path) -> Result<(), String> + Send + Sync>;

/// One loader under test.
pub struct Target {
    pub name: &'static str,
    /// The mutant's file extension, which the loaders dispatch on.
    pub extension: &'static str,
    pub form: Form,
    pub seeds: Vec<Vec<u8>>,
    pub load: Load,
}

/// Every target, in a fixed order.
pub fn all() -> Vec<Target> {
    vec![
        tensim_safetensors(),
        plain_safetensors(),
        pytorch_zip(),
        pytorch_legacy(),
        npz(),
        spec(),
        mat(),
    ]
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Target> {
    all().into_iter().find(|t| t.name == name)
}

/// Where the targets' seed files are.
fn corpus(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(relative)
}

/// The io crate's test fixtures, written by torch and numpy.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../io/tests/fixtures")
        .join(name)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()))
}

/// Loader budgets small enough that no mutant can claim much memory.
fn limits() -> Limits {
    Limits {
        max_tensor_bytes: 64 << 20,
        ..Limits::default()
    }
}

/// Reads every tensor set of a foreign file and, with a spec, builds its models.
fn load_foreign(path: &Path, spec: Option<&ArchSpec>) -> Result<(), String> {
    let key = spec.and_then(|s| s.key.as_deref());
    let sets = read_tensor_sets_with(path, key, &limits()).map_err(|e| e.to_string())?;
    if let Some(spec) = spec {
        for set in &sets {
            spec.build(set, path).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// tensim's own checkpoints of both kinds, in each stored precision.
fn tensim_seeds() -> Vec<Vec<u8>> {
    let sequential = NetworkShape::Sequential(Architecture {
        layers: vec![
            LayerShape::Linear {
                input: 6,
                output: 5,
                bias: true,
            },
            LayerShape::Bilinear {
                input: 5,
                hidden: 4,
                output: 5,
                left_bias: true,
                right_bias: false,
                down_bias: true,
                residual: Residual::Lerp(0.35),
            },
            LayerShape::bilinear(5, 3, 3),
        ],
    });
    let transformer = NetworkShape::Transformer(TransformerShape::benchmark(1));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut seeds = Vec::new();
    for (i, shape) in [sequential, transformer].iter().enumerate() {
        let network = shape.random(i as u64).expect("a valid shape");
        for dtype in [StoredDtype::F32, StoredDtype::F64] {
            let path = dir.path().join("seed.safetensors");
            let meta = CheckpointMeta {
                step: Some(100),
                phase: Some("A".into()),
                label: Some("seed".into()),
            };
            save_checkpoint(&path, &network, &meta, dtype).expect("saving a seed");
            seeds.push(read(&path));
        }
    }
    seeds
}

fn tensim_safetensors() -> Target {
    Target {
        name: "tensim-safetensors",
        extension: "safetensors",
        form: Form::Bytes,
        seeds: tensim_seeds(),
        load: Box::new(|path| load_checkpoint(path).map(drop).map_err(|e| e.to_string())),
    }
}

fn classifier_spec() -> ArchSpec {
    let text = std::fs::read_to_string(corpus("spec/classifier.toml")).expect("classifier.toml");
    ArchSpec::parse(&text).expect("the classifier spec parses")
}

fn plain_safetensors() -> Target {
    let spec = classifier_spec();
    Target {
        name: "safetensors",
        extension: "safetensors",
        form: Form::Bytes,
        seeds: vec![read(&fixture("classifier.safetensors"))],
        load: Box::new(move |path| load_foreign(path, Some(&spec))),
    }
}

fn pytorch_zip() -> Target {
    let names = [
        "strided.pt",
        "classifier_f32.pt",
        "classifier_bf16.pt",
        "steps.pt",
        "nested.pt",
        "deep.pt",
        "deflated.pt",
    ];
    let mut seeds: Vec<Vec<u8>> = names.iter().map(|n| read(&fixture(n))).collect();
    seeds.push(read(&corpus("pt/published.pt")));
    foreign("pt", "pt", Form::Zip, seeds)
}

fn pytorch_legacy() -> Target {
    foreign(
        "pt-legacy",
        "pt",
        Form::Bytes,
        vec![read(&fixture("legacy.pt"))],
    )
}

fn npz() -> Target {
    let seeds = ["classifier.npz", "compressed.npz"].map(|n| read(&fixture(n)));
    foreign("npz", "npz", Form::Zip, seeds.to_vec())
}

/// A target that reads a foreign file's tensors (no spec).
fn foreign(name: &'static str, extension: &'static str, form: Form, seeds: Vec<Vec<u8>>) -> Target {
    Target {
        name,
        extension,
        form,
        seeds,
        load: Box::new(|path| load_foreign(path, None)),
    }
}

/// Mutated specs applied to every checkpoint of the corpus: parsing,
/// checking and building a model from a file. A spec loads when it parses
/// and each checkpoint either builds or is refused naming itself or the spec.
fn spec() -> Target {
    let checkpoints = [
        fixture("classifier_f32.pt"),
        fixture("deep.pt"),
        corpus("pt/published.pt"),
    ];
    let seeds = ["classifier", "deep", "published", "fused"]
        .iter()
        .map(|n| read(&corpus(&format!("spec/{n}.toml"))))
        .collect();
    Target {
        name: "spec",
        extension: "toml",
        form: Form::Text,
        seeds,
        load: Box::new(move |path| {
            let spec = ArchSpec::from_file(path).map_err(|e| e.to_string())?;
            for checkpoint in &checkpoints {
                if let Err(e) = load_foreign(checkpoint, Some(&spec)) {
                    let names = |p: &Path| e.contains(&p.display().to_string());
                    if !names(checkpoint) && !names(path) {
                        return Err(format!("refusal names neither file: {e}"));
                    }
                }
            }
            Ok(())
        }),
    }
}

fn mat() -> Target {
    let seeds = [
        "plain_uint8",
        "compressed_uint8",
        "plain_double",
        "compressed_double",
    ]
    .iter()
    .map(|n| read(&corpus(&format!("mat/{n}.mat"))))
    .collect();
    Target {
        name: "mat",
        extension: "mat",
        form: Form::Bytes,
        seeds,
        load: Box::new(|path| {
            tensim_data::svhn::load_svhn_file(path)
                .map(drop)
                .map_err(|e| e.to_string())
        }),
    }
}
