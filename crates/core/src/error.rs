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
    /// A layer with no inputs, hidden units or outputs computes nothing.
    #[error("layer {layer}: its {what} width is 0; every width must be at least 1")]
    ZeroWidth {
        /// Index of the offending layer, counted from 0.
        layer: usize,
        /// Which width is zero: `input`, `hidden` or `output`.
        what: &'static str,
    },
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
    /// A metric name tensim does not know.
    #[error(
        "unknown metric `{name}`; choose one of {}",
        crate::metric::METRIC_NAMES
    )]
    UnknownMetric {
        /// The name given.
        name: String,
    },
    /// A slice metric whose class is not a non-negative integer.
    #[error("`{name}`: the class after `:` must be a non-negative integer")]
    BadSliceClass {
        /// The metric name given.
        name: String,
    },
    /// A metric that is not defined for networks of this kind.
    #[error("metric `{metric}` is not available for {kind} networks")]
    NotApplicable {
        /// The metric's name.
        metric: String,
        /// The networks' kind.
        kind: crate::network::NetworkKind,
    },
    /// A class (or token) slice beyond the networks' outputs.
    #[error("{}", no_such_output(*index, *outputs, *kind))]
    NoSuchOutput {
        /// The class or token asked for.
        index: usize,
        /// The networks' number of outputs.
        outputs: usize,
        /// The networks' kind (classes or tokens).
        kind: crate::network::NetworkKind,
    },
    /// A metric on data given no data.
    #[error("metric `{metric}` needs --inputs FILE.npy (n×d inputs, f64)")]
    MissingInputs {
        /// The metric's name.
        metric: String,
    },
    /// A Monte-Carlo estimate of fewer than two samples has no standard error.
    #[error("Monte-Carlo needs at least 2 samples (--samples), not {samples}")]
    TooFewSamples {
        /// The samples asked for.
        samples: usize,
    },
    /// More Monte-Carlo samples than an estimate may hold (each keeps 24
    /// bytes of moments until the end).
    #[error(
        "{samples} Monte-Carlo samples (--samples) are more than the {max} one estimate may use \
         (24 bytes each are kept for the standard error)"
    )]
    TooManySamples {
        /// The samples asked for.
        samples: usize,
        /// [`crate::monte_carlo::MAX_SAMPLES`].
        max: usize,
    },
    /// A metric asked for its inner products (update similarity) has none.
    #[error("metric `{metric}` is not an inner product (use tensor or gaussian)")]
    NotInnerProduct {
        /// The metric's name.
        metric: String,
    },
    /// A listener of a matrix job's pairs failed (a progress file could not
    /// be written, say).
    #[error("recording the pair failed: {reason}")]
    Record {
        /// What the listener reported.
        reason: String,
    },
    /// A pair given twice (overlapping shards).
    #[error("pair ({i}, {j}) is given twice")]
    PairTwice {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
    },
    /// A pair missing from a set that should be complete.
    #[error("pair ({i}, {j}) is missing")]
    PairMissing {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
    },
    /// A pair outside the matrix or with a different number of values.
    #[error(
        "pair ({i}, {j}) does not fit the matrix (outside it, or with another number of values)"
    )]
    PairMismatch {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
    },
    /// A job with no networks.
    #[error("no models to compare")]
    NoModels,
    /// Transformers of different shapes in one job.
    #[error(
        "different transformer architectures (vocab, width, heads, context, mask or blocks); the metrics compare models of one architecture"
    )]
    DifferentArchitectures,
    /// A transformer's q/k biases are on some of the four rotary projections only.
    #[error("block {block}: q/k biases must be on all of q1, k1, q2, k2 or on none (`{differs}` differs from `q1`)")]
    AttentionBiases {
        /// The block.
        block: usize,
        /// The first projection whose bias presence differs from `q1`'s.
        differs: &'static str,
    },
    /// A transformer block with neither attention nor MLP.
    #[error("block {block} has neither an attention nor an MLP")]
    EmptyBlock {
        /// The block.
        block: usize,
    },
    /// A transformer MLP without hidden units.
    #[error("block {block}: an MLP needs at least one hidden unit")]
    EmptyMlp {
        /// The block.
        block: usize,
    },
    /// A sequence longer than the context (or empty).
    #[error("a sequence of {positions} positions does not fit the context of {context}")]
    SequenceLength {
        /// The sequence's positions.
        positions: usize,
        /// The model's context.
        context: usize,
    },
    /// A token id beyond the vocabulary.
    #[error("token id {token} is outside the vocabulary of {vocab}")]
    TokenOutOfVocabulary {
        /// The token id.
        token: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// An attention mask name tensim does not know.
    #[error("unknown attention mask `{name}` (expected `causal` or `full`)")]
    UnknownMask {
        /// The name given.
        name: String,
    },
    /// More Gaussian positions than the transformer's context.
    #[error("{positions} Gaussian positions do not fit the context of {context}")]
    PositionsBeyondContext {
        /// The positions asked for.
        positions: usize,
        /// The model's context.
        context: usize,
    },
    /// A parameter list of the wrong length for its architecture.
    #[error("architecture has {expected} parameter tensors, {given} given")]
    ParameterCount {
        /// Tensors the architecture declares.
        expected: usize,
        /// Tensors given.
        given: usize,
    },
    /// A metric on data given too few input rows.
    #[error("{what} needs at least {needed} input(s), {given} given")]
    TooFewInputs {
        /// The metric.
        what: &'static str,
        /// Rows it needs.
        needed: usize,
        /// Rows given.
        given: usize,
    },
    /// Centred and uncentred Gaussian moments in one inner product.
    #[error("cannot mix centred and uncentred Gaussian moments")]
    MixedCentring,
    /// Blocks of one transformer with different head layouts.
    #[error("block {block}: {heads}×{head_dim} heads differ from block 0's {first_heads}×{first_head_dim}")]
    HeadsDiffer {
        /// The block that differs.
        block: usize,
        /// Its heads.
        heads: usize,
        /// Its head width.
        head_dim: usize,
        /// Block 0's heads.
        first_heads: usize,
        /// Block 0's head width.
        first_head_dim: usize,
    },
    /// Rows that do not stack whole sequences.
    #[error("{rows} rows do not stack sequences of {positions} positions")]
    UnstackedRows {
        /// Rows given.
        rows: usize,
        /// Positions per sequence.
        positions: usize,
    },
    /// A transformer shape with a zero width.
    #[error("a transformer needs vocab, outputs, d_model, heads and context ≥ 1")]
    EmptyTransformer,
    /// A rotary base that is not a positive number.
    #[error("rotary_base must be a positive number, not {base}")]
    RotaryBase {
        /// The base given.
        base: f64,
    },
    /// A head width rotary embedding cannot split in halves.
    #[error("rotary embedding needs an even head width, not {head_dim}")]
    OddHeadWidth {
        /// The head width given.
        head_dim: usize,
    },
    /// A symmetry transform aimed at a layer that is not bilinear.
    #[error("layer {layer} is not a bilinear layer")]
    NotBilinear {
        /// The layer.
        layer: usize,
    },
    /// A hidden-unit permutation that is not one.
    #[error("not a permutation of {hidden} hidden units")]
    NotAPermutation {
        /// Hidden units of the layer.
        hidden: usize,
    },
    /// Hidden-unit scales that are not one finite, non-zero value per unit.
    #[error("one finite, non-zero scale per hidden unit is required")]
    BadScales,
    /// Frequencies asked for a period longer than the input.
    #[error("the model has {inputs} inputs, fewer than the period {period}")]
    PeriodTooLong {
        /// Inputs of the model.
        inputs: usize,
        /// The period asked for.
        period: usize,
    },
    /// An eigendecomposition that failed.
    #[error("eigendecomposition of class {class}: {reason}")]
    Eigendecomposition {
        /// The class whose form failed.
        class: usize,
        /// faer's reason.
        reason: String,
    },
    /// An internal invariant of the contraction engine was broken (a bug).
    #[error("{0}")]
    Invalid(String),
}

/// The message of [`Error::NoSuchOutput`]: classes for sequential
/// networks, tokens for transformers.
fn no_such_output(index: usize, outputs: usize, kind: crate::network::NetworkKind) -> String {
    match kind {
        crate::network::NetworkKind::Sequential => format!(
            "class {index} does not exist: the models have {outputs} outputs (classes 0..{})",
            outputs.saturating_sub(1)
        ),
        crate::network::NetworkKind::Transformer => {
            format!("token {index} is outside the vocabulary of {outputs}")
        }
    }
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
