//! # tensim-core
//!
//! Bilinear networks as tensor networks, and the metrics that say when two of
//! them are the same (the project's `docs/MATH.md`, restated in each module):
//!
//! * [`tensor`]: tensor similarity in weight space (MATH.md §2), four GEMMs;
//! * [`gaussian`]: exact Gaussian functional similarity by moment propagation (§3);
//! * [`similarity`](mod@similarity): slices, difference (update) similarity, cosines;
//! * baselines [`weight_cosine`](mod@weight_cosine), [`output_cosine`], [`cka`], [`monte_carlo`] (§4);
//! * [`pairwise`]: N×N matrices over many checkpoints;
//! * [`symmetry`]: the function-preserving transforms the metrics ignore (§5).
//!
//! Pure functions, no I/O. Reference path f64; every metric also runs in f32.

#![warn(missing_docs)]

pub mod blocks;
pub mod changes;
pub mod cka;
pub(crate) mod contraction;
pub mod error;
pub mod folded;
pub mod frequencies;
pub mod gaussian;
mod gemm;
mod layout;
pub mod metric;
pub mod model;
pub mod monte_carlo;
pub mod network;
pub mod output_cosine;
mod padded;
pub mod pair_plan;
pub mod pairwise;
pub mod residual;
pub mod scalar;
pub mod sequence;
pub mod similarity;
pub mod symmetry;
pub mod tensor;
pub mod transformer;
pub mod weight_cosine;
pub(crate) mod wick;

pub use error::{Error, Result};
pub use faer::{Mat, MatRef, Par};
pub use folded::BilinearForm;
pub use gaussian::{gaussian_similarity, Centring, Exactness, GaussianPrepared};
pub use model::{
    matrix_from_row_major, Architecture, Bilinear, Layer, LayerShape, Linear, Model, ParameterSpec,
};
pub use residual::Residual;
pub use scalar::Scalar;
pub use similarity::{
    difference_similarity, inner_products, similarity, InnerProductSpace, Similarity,
};
pub use tensor::{tensor_similarity, TensorPrepared};
pub use weight_cosine::{weight_cosine, WeightCosine};
