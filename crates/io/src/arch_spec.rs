//! Architecture specs: how a foreign checkpoint's tensors map onto a tensim
//! network. A small TOML file, e.g. for the paper's classifier (fused `[L; R]`
//! weight `w` of shape `[2h, d]`, head `p`):
//!
//! ```toml
//! [[layers]]
//! kind = "bilinear"
//! fused = "w"        # rows 0..h are L, rows h..2h are R
//! [[layers]]
//! kind = "linear"
//! weight = "p"
//! ```
//!
//! One spec describes either a sequential model (`[[layers]]`) or a
//! transformer (a `[transformer]` table, [`crate::transformer_spec`]).
//! Top-level keys for both: `key` (a nested state dict in a pickle, e.g.
//! `"state_dict"`) and `prefix` (prepended to every tensor name). Linear
//! layers: `weight`, optional `bias`. Bilinear layers: `left` + `right` or
//! `fused`, optional `left_bias`/`right_bias` or `fused_bias`, optional
//! `down` (identity when absent, so the layer outputs `(Lx) ⊙ (Rx)`),
//! optional `down_bias`, and `residual_scale` (default 1: no residual).
//! Weights are in PyTorch layout `[out, in]`.
//!
//! Without a spec, [`load_models`] reads a tensim checkpoint, or a
//! checkpoint of the paper's published language models through the spec
//! their `config.json` describes ([`crate::published`]).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tensim_core::network::Network;
use tensim_core::{matrix_from_row_major, Bilinear, Layer, Linear, Mat, Model, Residual};

use crate::checkpoint::{
    is_tensim_checkpoint, load_checkpoint, Checkpoint, CheckpointError, CheckpointMeta, StoredDtype,
};
use crate::foreign::{read_tensor_sets, NamedTensor, TensorSet};
use crate::transformer_spec::TransformerSpec;

/// A parsed architecture spec: a sequential model's `layers`, or a
/// `transformer`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchSpec {
    /// Nested state dict to read in a pickle (`state_dict`, `model`, …).
    #[serde(default)]
    pub key: Option<String>,
    /// Prepended to every tensor name of the spec.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The layers of a sequential model (empty for a transformer).
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    /// A transformer's layout.
    #[serde(default)]
    pub transformer: Option<TransformerSpec>,
    /// The file tensim derived the spec from (a `config.json`), named in
    /// errors; `None` for a spec file.
    #[serde(skip)]
    pub origin: Option<PathBuf>,
}

/// A network read from a set of tensors through a spec, and how.
#[derive(Clone, Debug)]
pub struct Mapped {
    pub network: Network,
    /// `(file tensor, what it became)`.
    pub roles: Vec<(String, String)>,
    /// What was changed on the way (a folded norm), for the source line.
    pub notes: Vec<String>,
}

/// One layer of a spec.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Linear {
        weight: String,
        #[serde(default)]
        bias: Option<String>,
    },
    Bilinear(BilinearSpec),
}

/// The tensors of a bilinear layer of a spec: `left` + `right` or `fused`,
/// each bias optional, `down` the identity when absent.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BilinearSpec {
    #[serde(default)]
    pub left: Option<String>,
    #[serde(default)]
    pub right: Option<String>,
    #[serde(default)]
    pub fused: Option<String>,
    #[serde(default)]
    pub left_bias: Option<String>,
    #[serde(default)]
    pub right_bias: Option<String>,
    #[serde(default)]
    pub fused_bias: Option<String>,
    #[serde(default)]
    pub down: Option<String>,
    #[serde(default)]
    pub down_bias: Option<String>,
    #[serde(default = "no_residual")]
    pub residual_scale: f64,
}

fn no_residual() -> f64 {
    1.0
}

/// A spec that cannot be read, or does not fit a file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SpecError {
    pub path: PathBuf,
    pub reason: String,
}

impl ArchSpec {
    /// Reads a TOML spec file.
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text).map_err(|reason| SpecError {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses TOML text and checks what can be checked without a file: one
    /// kind of model, every bilinear layer naming its factors once, the
    /// transformer's projections named once.
    pub fn parse(text: &str) -> Result<Self, String> {
        let spec: ArchSpec =
            toml::from_str(text).map_err(|e| format!("invalid architecture spec: {e}"))?;
        match (&spec.transformer, spec.layers.is_empty()) {
            (Some(_), false) => {
                return Err(
                    "the spec has both [[layers]] and [transformer]; describe one model".into(),
                )
            }
            (Some(t), true) => t.check()?,
            (None, true) => return Err("the spec has no [[layers]] and no [transformer]".into()),
            (None, false) => {}
        }
        for (i, layer) in spec.layers.iter().enumerate() {
            if let LayerSpec::Bilinear(b) = layer {
                match (&b.left, &b.right, &b.fused) {
                    (Some(_), Some(_), None) | (None, None, Some(_)) => {}
                    _ => {
                        return Err(format!(
                            "layer {i}: give either `left` and `right`, or `fused`"
                        ))
                    }
                }
                if b.fused_bias.is_some()
                    && (b.left_bias.is_some() || b.right_bias.is_some() || b.fused.is_none())
                {
                    return Err(format!("layer {i}: `fused_bias` goes with `fused`, not with `left_bias`/`right_bias`"));
                }
            }
        }
        Ok(spec)
    }

    fn full(&self, name: &str) -> String {
        format!("{}{name}", self.prefix.as_deref().unwrap_or(""))
    }

    /// What each tensor of `set` becomes, by full name (for `tensim
    /// inspect`); a transformer's roles depend on the file (its blocks), and
    /// are empty when the file does not fit.
    pub fn roles(&self, set: &TensorSet, path: &Path) -> Vec<(String, String)> {
        match &self.transformer {
            Some(_) => self.build(set, path).map(|m| m.roles).unwrap_or_default(),
            None => self.layer_roles(),
        }
    }

    /// What each tensor named by `[[layers]]` becomes.
    fn layer_roles(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut add = |name: &Option<String>, role: &str| {
                if let Some(n) = name {
                    out.push((self.full(n), format!("layer {i}: {role}")));
                }
            };
            match layer {
                LayerSpec::Linear { weight, bias } => {
                    add(&Some(weight.clone()), "linear weight W");
                    add(bias, "linear bias b");
                }
                LayerSpec::Bilinear(b) => {
                    add(&b.left, "bilinear L");
                    add(&b.right, "bilinear R");
                    add(&b.fused, "bilinear [L; R] (fused, split in halves)");
                    add(&b.left_bias, "bilinear b_L");
                    add(&b.right_bias, "bilinear b_R");
                    add(&b.fused_bias, "bilinear [b_L; b_R] (fused)");
                    add(&b.down, "bilinear D");
                    add(&b.down_bias, "bilinear b_D");
                }
            }
        }
        out
    }

    /// Builds the network one set of tensors holds, checking every name
    /// and shape; errors name the spec's origin when tensim derived it.
    pub fn build(&self, set: &TensorSet, path: &Path) -> Result<Mapped, CheckpointError> {
        let mapped = match &self.transformer {
            Some(t) => t.build(set, path, self.prefix.as_deref().unwrap_or("")),
            None => self.build_layers(set, path).map(|model| Mapped {
                network: model.into(),
                roles: self.layer_roles(),
                notes: Vec::new(),
            }),
        };
        mapped.map_err(|mut e| {
            if let Some(origin) = &self.origin {
                e.reason = format!("{} (architecture from {})", e.reason, origin.display());
            }
            e
        })
    }

    /// Builds a sequential model from `[[layers]]`.
    fn build_layers(&self, set: &TensorSet, path: &Path) -> Result<Model, CheckpointError> {
        let b = Builder {
            spec: self,
            set,
            path,
        };
        let mut layers = Vec::with_capacity(self.layers.len());
        // Output width of the previous layer and the tensor that set it.
        let mut width: Option<(usize, String)> = None;
        for (i, layer) in self.layers.iter().enumerate() {
            let (built, out) = match layer {
                LayerSpec::Linear { weight, bias } => b.linear(i, weight, bias, &width)?,
                LayerSpec::Bilinear(spec) => b.bilinear(i, spec, &width)?,
            };
            width = Some(out);
            layers.push(built);
        }
        Model::new(layers).map_err(|e| b.fail(e.to_string()))
    }
}

/// Reads one tensor set through a spec, naming the file and tensor in errors.
struct Builder<'a> {
    spec: &'a ArchSpec,
    set: &'a TensorSet,
    path: &'a Path,
}

/// A built layer and its output width with the tensor that sets it.
type Built = (Layer, (usize, String));

impl Builder<'_> {
    fn fail(&self, reason: String) -> CheckpointError {
        CheckpointError {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn get(&self, name: &str, role: &str) -> Result<&NamedTensor, CheckpointError> {
        let full = self.spec.full(name);
        let t = self.set.get(&full).ok_or_else(|| {
            let mut names: Vec<&str> = self.set.tensors.iter().map(|t| t.name.as_str()).collect();
            names.truncate(12);
            self.fail(format!(
                "tensor `{full}` ({role} in the spec) is missing; the file has: {}",
                names.join(", ")
            ))
        })?;
        if !t.is_float() {
            return Err(self.fail(format!(
                "tensor `{full}` ({role} in the spec) holds {} integers, not floating-point weights",
                t.dtype
            )));
        }
        Ok(t)
    }

    fn matrix(&self, name: &str, role: &str) -> Result<Mat<f64>, CheckpointError> {
        let t = self.get(name, role)?;
        match t.shape[..] {
            [r, c] => Ok(matrix_from_row_major(r, c, &t.values)),
            _ => Err(self.fail(format!(
                "tensor `{}` ({role}): expected a 2-D [out, in] matrix, found shape {:?}",
                t.name, t.shape
            ))),
        }
    }

    fn vector(
        &self,
        name: &Option<String>,
        role: &str,
        len: usize,
    ) -> Result<Option<Vec<f64>>, CheckpointError> {
        let Some(name) = name else { return Ok(None) };
        let t = self.get(name, role)?;
        if t.shape != [len] {
            return Err(self.fail(format!(
                "tensor `{}` ({role}): expected shape [{len}], found {:?}",
                t.name, t.shape
            )));
        }
        Ok(Some(t.values.clone()))
    }

    /// Refuses layer `i` when its tensor `name` does not take the previous
    /// layer's output width.
    fn check_input(
        &self,
        i: usize,
        input: usize,
        name: &str,
        width: &Option<(usize, String)>,
    ) -> Result<(), CheckpointError> {
        match width {
            Some((w, prev)) if *w != input => Err(self.fail(format!(
                "layer {i}: tensor `{}` takes {input} inputs but `{prev}` gives {w}",
                self.spec.full(name)
            ))),
            _ => Ok(()),
        }
    }

    fn linear(
        &self,
        i: usize,
        weight: &str,
        bias: &Option<String>,
        width: &Option<(usize, String)>,
    ) -> Result<Built, CheckpointError> {
        let w = self.matrix(weight, &format!("layer {i} weight"))?;
        self.check_input(i, w.ncols(), weight, width)?;
        let b = self.vector(bias, &format!("layer {i} bias"), w.nrows())?;
        let out = (w.nrows(), self.spec.full(weight));
        Ok((Layer::Linear(Linear { weight: w, bias: b }), out))
    }

    /// `L` and `R` from two tensors or from one fused `[L; R]`, with the
    /// name of the tensor that gives their input width.
    fn left_right(
        &self,
        i: usize,
        left: &Option<String>,
        right: &Option<String>,
        fused: &Option<String>,
    ) -> Result<(Mat<f64>, Mat<f64>, String), CheckpointError> {
        match (left, right, fused) {
            (Some(ln), Some(rn), _) => {
                let l = self.matrix(ln, &format!("layer {i} L"))?;
                let r = self.matrix(rn, &format!("layer {i} R"))?;
                if l.shape() != r.shape() {
                    return Err(self.fail(format!(
                        "layer {i}: L `{}` is {:?} but R `{}` is {:?}; they must match",
                        self.spec.full(ln),
                        l.shape(),
                        self.spec.full(rn),
                        r.shape()
                    )));
                }
                Ok((l, r, ln.clone()))
            }
            (_, _, Some(f)) => {
                let m = self.matrix(f, &format!("layer {i} fused [L; R]"))?;
                if m.nrows() % 2 != 0 {
                    return Err(self.fail(format!(
                        "tensor `{}` (layer {i} fused [L; R]) has {} rows; a fused weight has an even number",
                        self.spec.full(f),
                        m.nrows()
                    )));
                }
                let h = m.nrows() / 2;
                let l = Mat::from_fn(h, m.ncols(), |a, b| m[(a, b)]);
                let r = Mat::from_fn(h, m.ncols(), |a, b| m[(h + a, b)]);
                Ok((l, r, f.clone()))
            }
            _ => unreachable!("checked when parsing"),
        }
    }

    /// `D` (the identity when the spec names none), checked against `h`.
    fn down(&self, i: usize, down: &Option<String>, h: usize) -> Result<Mat<f64>, CheckpointError> {
        let Some(dn) = down else {
            return Ok(Mat::identity(h, h));
        };
        let d = self.matrix(dn, &format!("layer {i} D"))?;
        if d.ncols() != h {
            return Err(self.fail(format!(
                "layer {i}: D `{}` has {} columns but the layer has {h} hidden units",
                self.spec.full(dn),
                d.ncols()
            )));
        }
        Ok(d)
    }

    fn bilinear(
        &self,
        i: usize,
        spec: &BilinearSpec,
        width: &Option<(usize, String)>,
    ) -> Result<Built, CheckpointError> {
        let (l, r, first_name) = self.left_right(i, &spec.left, &spec.right, &spec.fused)?;
        self.check_input(i, l.ncols(), &first_name, width)?;
        let h = l.nrows();
        let (lb, rb) = match spec.fused_bias {
            Some(_) => {
                let both = self
                    .vector(&spec.fused_bias, &format!("layer {i} fused bias"), 2 * h)?
                    .expect("named");
                (Some(both[..h].to_vec()), Some(both[h..].to_vec()))
            }
            None => (
                self.vector(&spec.left_bias, &format!("layer {i} b_L"), h)?,
                self.vector(&spec.right_bias, &format!("layer {i} b_R"), h)?,
            ),
        };
        let d = self.down(i, &spec.down, h)?;
        let db = self.vector(&spec.down_bias, &format!("layer {i} b_D"), d.nrows())?;
        let out = (
            d.nrows(),
            self.spec.full(spec.down.as_ref().unwrap_or(&first_name)),
        );
        let layer = Layer::Bilinear(Bilinear {
            left: l,
            right: r,
            down: d,
            left_bias: lb,
            right_bias: rb,
            down_bias: db,
            residual: Residual::from_lerp_scale(spec.residual_scale),
        });
        Ok((layer, out))
    }
}

/// The step in a file name: the digits that end its stem, when they stand
/// alone or after a separator (`step-000250`, `ckpt_1000`, `250`), not when
/// they are part of a word (`classifier_f16`).
pub fn step_from_name(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_string_lossy().into_owned();
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let before = stem[..stem.len() - digits].chars().last();
    match before {
        None => stem.parse().ok(),
        Some(c) if !c.is_alphanumeric() => stem[stem.len() - digits..].parse().ok(),
        Some(_) => None,
    }
}

/// The spec to read `path` with: `explicit` when given; none for a tensim
/// checkpoint; else the one derived from a published run's `config.json`
/// beside the file or one directory up ([`crate::published`]), if any.
pub fn spec_for<'a>(
    path: &Path,
    explicit: Option<&'a ArchSpec>,
) -> Result<Option<Cow<'a, ArchSpec>>, CheckpointError> {
    if let Some(spec) = explicit {
        return Ok(Some(Cow::Borrowed(spec)));
    }
    if is_tensim_checkpoint(path) {
        return Ok(None);
    }
    match crate::published::find_config(path) {
        Some(config) => Ok(Some(Cow::Owned(crate::published::spec_from_config(
            &config,
        )?))),
        None => Ok(None),
    }
}

/// Loads every model a file holds: a tensim checkpoint directly; any other
/// file (PyTorch, npz, safetensors without tensim metadata) through a spec,
/// `spec` or the one [`spec_for`] finds.
pub fn load_models(
    path: &Path,
    spec: Option<&ArchSpec>,
) -> Result<Vec<Checkpoint>, CheckpointError> {
    if let Some(spec) = spec_for(path, spec)? {
        let sets = read_tensor_sets(path, spec.key.as_deref())?;
        let many = sets.len() > 1;
        return sets
            .iter()
            .map(|set| {
                let mapped = spec.build(set, path)?;
                let step = set.step.or_else(|| step_from_name(path));
                Ok(Checkpoint {
                    network: mapped.network,
                    meta: CheckpointMeta {
                        step,
                        phase: None,
                        label: many.then(|| format!("step {}", step.unwrap_or(0))),
                    },
                    dtype: stored_dtype(set),
                    source: source_line(set, &mapped.notes),
                })
            })
            .collect();
    }
    if !is_tensim_checkpoint(path) {
        // Say what it is and what to do.
        let what = match read_tensor_sets(path, None) {
            Ok(sets) => Some(format!(
                "a {} file without tensim architecture metadata ({} tensors)",
                sets[0].format,
                sets.iter().map(|s| s.tensors.len()).sum::<usize>()
            )),
            Err(_) => crate::foreign::zip_format(path)
                .ok()
                .flatten()
                .map(|f| format!("a {f} file without tensim architecture metadata")),
        };
        if let Some(what) = what {
            return Err(CheckpointError {
                path: path.to_path_buf(),
                reason: format!("{what}; pass --arch SPEC.toml to map its tensors, or keep a published run's config.json beside it or one directory up (README: Loading other checkpoints)"),
            });
        }
    }
    Ok(vec![load_checkpoint(path)?])
}

/// f64 when every weight was stored in f64, else f32.
fn stored_dtype(set: &TensorSet) -> StoredDtype {
    if set.dtypes().iter().all(|d| d == "f64") {
        StoredDtype::F64
    } else {
        StoredDtype::F32
    }
}

/// "PyTorch .pt (f32, converted to f64; final norm ×0.5 folded into unembed.weight)".
fn source_line(set: &TensorSet, notes: &[String]) -> String {
    let dtypes = set.dtypes();
    let mut details = vec![dtypes.join("/")];
    if dtypes.iter().any(|d| d != "f64") {
        details[0].push_str(", converted to f64");
    }
    details.extend(notes.iter().cloned());
    format!("{} ({})", set.format, details.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_from_file_names() {
        for (name, step) in [
            ("step-000250.pt", Some(250)),
            ("ckpt_1000.safetensors", Some(1000)),
            ("250.npz", Some(250)),
            ("model.v2.300.pt", Some(300)),
            ("classifier_f16.pt", None),
            ("final.pt", None),
        ] {
            assert_eq!(step_from_name(Path::new(name)), step, "{name}");
        }
    }
}
