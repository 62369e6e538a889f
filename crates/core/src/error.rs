//! Errors of the core crate. Each names the tensor or model it is about.

/// Everything the core can refuse to do, with the facts needed to fix it.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// A weight tensor has the wrong shape for the architecture it belongs to.
    #[error("tensor `{tensor}`: expected shape {expected:?}, found {found:?}")]
    Shape {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A weight is NaN or infinite.
    #[error("tensor `{tensor}`: non-finite value {value} at flat index {index}")]
    NonFinite {
        tensor: String,
        index: usize,
        value: f64,
    },
    /// Consecutive layers do not fit together.
    #[error("layer {layer}: takes {expected} inputs but the previous layer gives {found}")]
    Chain {
        layer: usize,
        expected: usize,
        found: usize,
    },
    /// A residual block must map a space to itself, and its scale must lie in [0, 1].
    #[error("layer {layer}: {reason}")]
    Residual { layer: usize, reason: String },
    /// A model with no layers computes nothing to compare.
    #[error("a model needs at least one layer")]
    Empty,
    /// Two models do not share the space a metric compares them in.
    #[error("models differ in {what}: {a} vs {b}")]
    Mismatch {
        what: &'static str,
        a: String,
        b: String,
    },
    /// The weight-space tensor of a network with several bilinear layers is not one bilinear form.
    #[error(
        "the `tensor` metric needs at most one bilinear layer, this model has {bilinear_layers}; use `gaussian` (moment propagation) instead"
    )]
    NotOneBilinearForm { bilinear_layers: usize },
    /// A cosine of a model whose tensor or output is identically zero is undefined.
    #[error("{what} has zero norm, its cosine is undefined")]
    ZeroNorm { what: String },
    /// A computed number came out NaN or infinite.
    #[error("{what} is not finite ({value})")]
    NotFinite { what: String, value: f64 },
    /// A network of one kind was given where another is needed.
    #[error("a {found} network was given where a {expected} network is needed")]
    WrongKind {
        expected: crate::network::NetworkKind,
        found: crate::network::NetworkKind,
    },
    /// An argument is out of its allowed range.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
