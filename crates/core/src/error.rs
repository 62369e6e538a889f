//! Errors of the core crate. Each names the tensor or model it is about.

/// Everything the core can refuse to do, with the facts needed to fix it.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// A weight tensor has the wrong shape for the architecture it belongs to.
    #[error("tensor `{tensor}`: expected shape {expected:?}, found {found:?}")]
    Shape {
        /// The tensor's name (a parameter name such as `layers.0.w`).
        tensor: String,
        /// The shape the architecture requires.
        expected: Vec<usize>,
        /// The shape that was given.
        found: Vec<usize>,
    },
    /// A weight is NaN or infinite.
    #[error("tensor `{tensor}`: non-finite value {value} at flat index {index}")]
    NonFinite {
        /// The tensor's name.
        tensor: String,
        /// The row-major (flat) index of the first non-finite entry.
        index: usize,
        /// That entry (NaN or ±∞).
        value: f64,
    },
    /// Consecutive layers do not fit together.
    #[error("layer {layer}: takes {expected} inputs but the previous layer gives {found}")]
    Chain {
        /// Index of the layer that does not fit, counted from 0.
        layer: usize,
        /// The input width that layer takes.
        expected: usize,
        /// The output width of the layer before it.
        found: usize,
    },
    /// A residual block must map a space to itself, and its scale must lie in [0, 1].
    #[error("layer {layer}: {reason}")]
    Residual {
        /// Index of the offending layer, counted from 0.
        layer: usize,
        /// What is wrong with it (widths differ, scale out of range, ...).
        reason: String,
    },
    /// A model with no layers computes nothing to compare.
    #[error("a model needs at least one layer")]
    Empty,
    /// Two models do not share the space a metric compares them in.
    #[error("models differ in {what}: {a} vs {b}")]
    Mismatch {
        /// The property that differs (input width, output width, ...).
        what: &'static str,
        /// Its value for the first model.
        a: String,
        /// Its value for the second model.
        b: String,
    },
    /// The weight-space tensor of a network with several bilinear layers is not one bilinear form.
    #[error(
        "the `tensor` metric needs at most one bilinear layer, this model has {bilinear_layers}; use `gaussian` (moment propagation) instead"
    )]
    NotOneBilinearForm {
        /// How many bilinear layers the model has (two or more).
        bilinear_layers: usize,
    },
    /// A cosine of a model whose tensor or output is identically zero is undefined.
    #[error("{what} has zero norm, its cosine is undefined")]
    ZeroNorm {
        /// The quantity whose norm is zero (which model, which tensor).
        what: String,
    },
    /// A computed number came out NaN or infinite.
    #[error("{what} is not finite ({value})")]
    NotFinite {
        /// The quantity that was computed.
        what: String,
        /// Its value (NaN or ±∞).
        value: f64,
    },
    /// A network of one kind was given where another is needed.
    #[error("a {found} network was given where a {expected} network is needed")]
    WrongKind {
        /// The kind the operation needs.
        expected: crate::network::NetworkKind,
        /// The kind it was given.
        found: crate::network::NetworkKind,
    },
    /// An argument is out of its allowed range.
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
