//! One type for every network tensim compares (MATH.md §1): a sequential
//! stack of linear and bilinear layers, or a transformer with bilinear
//! attention. Loading, saving, training and the metric vocabulary all take a
//! [`Network`]; code that needs one kind asks for it with
//! [`Network::as_sequential`] or [`Network::as_transformer`], which refuse
//! the other kind with a typed error.
//!
//! ```
//! use tensim_core::network::{Network, NetworkKind, NetworkShape};
//! use tensim_core::transformer::TransformerShape;
//!
//! let shape = NetworkShape::Transformer(TransformerShape::benchmark(1));
//! let net: Network = shape.random(7).unwrap();
//! assert_eq!(net.kind(), NetworkKind::Transformer);
//! assert_eq!(net.shape(), shape);
//! // Parameters round-trip through the shape's one layout.
//! let again = shape.from_parameters(net.parameters()).unwrap();
//! assert_eq!(again.fingerprint(), net.fingerprint());
//! assert!(net.as_sequential().is_err());
//! ```

use crate::error::{Error, Result};
use crate::model::{Architecture, Model, ParameterSpec};
use crate::transformer::{Transformer, TransformerShape};

/// Which family a network belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Linear and bilinear layers applied in sequence to one input vector.
    Sequential,
    /// Embedding, bilinear-attention blocks and unembedding over a sequence.
    Transformer,
}

impl NetworkKind {
    /// `sequential` or `transformer`, as files and messages name the kind.
    pub fn name(self) -> &'static str {
        match self {
            NetworkKind::Sequential => "sequential",
            NetworkKind::Transformer => "transformer",
        }
    }
}

impl std::fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A checked network of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Network {
    /// A stack of linear and bilinear layers (MATH.md §1.4).
    Sequential(Model),
    /// A transformer with bilinear attention (MATH.md §1.8).
    Transformer(Transformer),
}

/// What a checkpoint declares about a network: its kind and shape.
#[derive(Clone, Debug, PartialEq)]
pub enum NetworkShape {
    /// The layer shapes of a sequential model.
    Sequential(Architecture),
    /// The declared shape of a transformer.
    Transformer(TransformerShape),
}

impl From<Model> for Network {
    fn from(m: Model) -> Self {
        Network::Sequential(m)
    }
}

impl From<Transformer> for Network {
    fn from(t: Transformer) -> Self {
        Network::Transformer(t)
    }
}

impl Network {
    /// The network's family.
    pub fn kind(&self) -> NetworkKind {
        match self {
            Network::Sequential(_) => NetworkKind::Sequential,
            Network::Transformer(_) => NetworkKind::Transformer,
        }
    }

    /// The shape this network instantiates.
    pub fn shape(&self) -> NetworkShape {
        match self {
            Network::Sequential(m) => NetworkShape::Sequential(m.architecture().clone()),
            Network::Transformer(t) => NetworkShape::Transformer(t.shape()),
        }
    }

    /// Every parameter tensor, row-major, in the shape's
    /// [`NetworkShape::parameter_specs`] order.
    pub fn parameters(&self) -> Vec<Vec<f64>> {
        match self {
            Network::Sequential(m) => m.parameters(),
            Network::Transformer(t) => t.parameters(),
        }
    }

    /// The 64-bit hash pair metrics order their arguments by (computed once
    /// when the network was built).
    pub fn fingerprint(&self) -> u64 {
        match self {
            Network::Sequential(m) => m.fingerprint(),
            Network::Transformer(t) => t.fingerprint(),
        }
    }

    /// Number of outputs (classes, or a transformer's logits): what slices index.
    pub fn output_dim(&self) -> usize {
        match self {
            Network::Sequential(m) => m.output_dim(),
            Network::Transformer(t) => t.outputs(),
        }
    }

    /// The sequential model, or [`Error::WrongKind`].
    pub fn as_sequential(&self) -> Result<&Model> {
        match self {
            Network::Sequential(m) => Ok(m),
            other => Err(other.wrong_kind(NetworkKind::Sequential)),
        }
    }

    /// The transformer, or [`Error::WrongKind`].
    pub fn as_transformer(&self) -> Result<&Transformer> {
        match self {
            Network::Transformer(t) => Ok(t),
            other => Err(other.wrong_kind(NetworkKind::Transformer)),
        }
    }

    /// The sequential model by value, or [`Error::WrongKind`].
    pub fn into_sequential(self) -> Result<Model> {
        match self {
            Network::Sequential(m) => Ok(m),
            other => Err(other.wrong_kind(NetworkKind::Sequential)),
        }
    }

    /// The transformer by value, or [`Error::WrongKind`].
    pub fn into_transformer(self) -> Result<Transformer> {
        match self {
            Network::Transformer(t) => Ok(t),
            other => Err(other.wrong_kind(NetworkKind::Transformer)),
        }
    }

    fn wrong_kind(&self, expected: NetworkKind) -> Error {
        Error::WrongKind {
            expected,
            found: self.kind(),
        }
    }
}

impl NetworkShape {
    /// The family of networks of this shape.
    pub fn kind(&self) -> NetworkKind {
        match self {
            NetworkShape::Sequential(_) => NetworkKind::Sequential,
            NetworkShape::Transformer(_) => NetworkKind::Transformer,
        }
    }

    /// Checks the shape on its own (widths chain, residuals fit, heads split).
    pub fn validate(&self) -> Result<()> {
        match self {
            NetworkShape::Sequential(a) => a.validate(),
            NetworkShape::Transformer(s) => s.validate(),
        }
    }

    /// Name and shape of every parameter tensor, in the one order that
    /// checkpoints, the trainer and [`NetworkShape::from_parameters`] share.
    pub fn parameter_specs(&self) -> Vec<ParameterSpec> {
        match self {
            NetworkShape::Sequential(a) => a.parameter_specs(),
            NetworkShape::Transformer(s) => s.parameter_specs(),
        }
    }

    /// A network of this shape from its parameters (row-major, in
    /// [`NetworkShape::parameter_specs`] order), every value checked.
    pub fn from_parameters(&self, values: Vec<Vec<f64>>) -> Result<Network> {
        Ok(match self {
            NetworkShape::Sequential(a) => Network::Sequential(Model::from_parameters(a, values)?),
            NetworkShape::Transformer(s) => {
                Network::Transformer(Transformer::from_parameters(s, values)?)
            }
        })
    }

    /// A network with PyTorch's default initialisation, deterministic in `seed`.
    pub fn random(&self, seed: u64) -> Result<Network> {
        Ok(match self {
            NetworkShape::Sequential(a) => Network::Sequential(a.random_model(seed)?),
            NetworkShape::Transformer(s) => Network::Transformer(s.random_model(seed)?),
        })
    }
}
