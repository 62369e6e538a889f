//! Reading one set of tensors through a [`TransformerSpec`]: names expanded
//! per block, fused weights split, the embedding turned to `[d_model, vocab]`,
//! the final norm folded, every shape checked against the others and the
//! spec's expectations, then [`Transformer::from_parameters`]. Errors name
//! the file, the tensor and what was expected.

use std::path::Path;

use tensim_core::transformer::{
    AttentionBias, AttentionShape, BlockShape, MlpShape, Transformer, TransformerShape,
};

use super::{AttentionSpec, EmbedRows, FinalNormSpec, MlpSpec, TransformerSpec, PROJECTIONS};
use crate::arch_spec::Mapped;
use crate::checkpoint::CheckpointError;
use crate::foreign::{NamedTensor, TensorSet};

/// A weight `[rows, cols]` (row-major) and its optional bias.
struct Part {
    rows: usize,
    cols: usize,
    weight: Vec<f64>,
    bias: Option<Vec<f64>>,
    /// The file tensor it came from (and which rows), for messages.
    source: String,
}

/// Looks tensors up by their full names and records what each became.
struct Reader<'a> {
    set: &'a TensorSet,
    path: &'a Path,
    prefix: &'a str,
    roles: Vec<(String, String)>,
}

impl<'a> Reader<'a> {
    fn fail(&self, reason: String) -> CheckpointError {
        CheckpointError {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    /// The file's name of `pattern` in block `block`.
    fn full(&self, pattern: &str, block: usize) -> String {
        format!(
            "{}{}",
            self.prefix,
            pattern.replace("{i}", &block.to_string())
        )
    }

    fn has(&self, full: &str) -> bool {
        self.set.get(full).is_some()
    }

    /// Whether the file has any of the tensors `patterns` name in block `block`.
    fn has_any<'p>(&self, block: usize, patterns: impl IntoIterator<Item = &'p String>) -> bool {
        patterns.into_iter().any(|p| self.has(&self.full(p, block)))
    }

    /// Tensor `full`, a float, recorded as `role`.
    fn tensor(&mut self, full: &str, role: String) -> Result<&'a NamedTensor, CheckpointError> {
        let Some(t) = self.set.get(full) else {
            return Err(self.fail(format!(
                "tensor `{full}` ({role}) is missing; the file has: {}",
                self.similar_names(full)
            )));
        };
        if !t.is_float() {
            return Err(self.fail(format!(
                "tensor `{full}` ({role}) holds {} integers, not floating-point weights",
                t.dtype
            )));
        }
        self.roles.push((full.to_string(), role));
        Ok(t)
    }

    /// Up to 12 of the file's tensor names, those sharing the longest start
    /// with `full` first.
    fn similar_names(&self, full: &str) -> String {
        let shared = |name: &str| -> usize {
            let common = name.bytes().zip(full.bytes()).take_while(|(a, b)| a == b);
            common.count()
        };
        let mut names: Vec<&str> = self.set.tensors.iter().map(|t| t.name.as_str()).collect();
        names.sort_by_key(|n| std::cmp::Reverse(shared(n)));
        let more = names.len().saturating_sub(12);
        names.truncate(12);
        match more {
            0 => names.join(", "),
            n => format!("{}, … ({n} more)", names.join(", ")),
        }
    }

    /// A 2-D tensor as `(rows, cols, values)`.
    fn matrix(
        &mut self,
        full: &str,
        role: String,
    ) -> Result<(usize, usize, Vec<f64>), CheckpointError> {
        let t = self.tensor(full, role.clone())?;
        match t.shape[..] {
            [r, c] => Ok((r, c, t.values.clone())),
            _ => Err(self.fail(format!(
                "tensor `{full}` ({role}) has shape {:?}; expected a 2-D [out, in] matrix",
                t.shape
            ))),
        }
    }

    /// A 1-D tensor of `len` values.
    fn vector(
        &mut self,
        full: &str,
        len: usize,
        role: String,
    ) -> Result<Vec<f64>, CheckpointError> {
        let t = self.tensor(full, role.clone())?;
        if t.shape != [len] {
            return Err(self.fail(format!(
                "tensor `{full}` ({role}) has shape {:?}; expected [{len}]",
                t.shape
            )));
        }
        Ok(t.values.clone())
    }

    /// The bias of the weight named `weight` in block `block`: the tensor
    /// `explicit` names (required), else the weight's name ending in `bias`
    /// when the file has it.
    fn bias(
        &mut self,
        explicit: Option<&String>,
        weight: &str,
        block: usize,
        len: usize,
        role: String,
    ) -> Result<Option<Vec<f64>>, CheckpointError> {
        let name = match explicit {
            Some(name) => self.full(name, block),
            None => match weight.strip_suffix("weight") {
                Some(stem) if self.has(&self.full(&format!("{stem}bias"), block)) => {
                    self.full(&format!("{stem}bias"), block)
                }
                _ => return Ok(None),
            },
        };
        self.vector(&name, len, role).map(Some)
    }

    /// A weight named on its own, with its bias.
    fn part(
        &mut self,
        weight: &str,
        bias: Option<&String>,
        block: usize,
        role: &str,
    ) -> Result<Part, CheckpointError> {
        let full = self.full(weight, block);
        let (rows, cols, values) = self.matrix(&full, format!("{role}.weight"))?;
        let bias = self.bias(bias, weight, block, rows, format!("{role}.bias"))?;
        Ok(Part {
            rows,
            cols,
            weight: values,
            bias,
            source: format!("`{full}`"),
        })
    }

    /// A weight holding `roles.len()` parts stacked by rows, with its bias.
    fn fused(
        &mut self,
        weight: &str,
        bias: Option<&String>,
        block: usize,
        roles: &[String],
    ) -> Result<Vec<Part>, CheckpointError> {
        let full = self.full(weight, block);
        let k = roles.len();
        let what = format!("{} stacked by rows", roles.join(", "));
        let (rows, cols, values) = self.matrix(&full, format!("{what}, weights"))?;
        if rows % k != 0 {
            return Err(self.fail(format!(
                "tensor `{full}` ({what}) has {rows} rows, not a multiple of {k}"
            )));
        }
        let h = rows / k;
        let bias = self.bias(bias, weight, block, rows, format!("{what}, biases"))?;
        Ok((0..k)
            .map(|j| Part {
                rows: h,
                cols,
                weight: values[j * h * cols..(j + 1) * h * cols].to_vec(),
                bias: bias.as_ref().map(|b| b[j * h..(j + 1) * h].to_vec()),
                source: format!("`{full}` rows {}..{}", j * h, (j + 1) * h),
            })
            .collect())
    }

    /// Refuses `part` unless it is `[rows, cols]`.
    fn expect(
        &self,
        part: &Part,
        rows: usize,
        cols: usize,
        why: &str,
    ) -> Result<(), CheckpointError> {
        if (part.rows, part.cols) == (rows, cols) {
            return Ok(());
        }
        Err(self.fail(format!(
            "tensor {} is [{}, {}]; expected [{rows}, {cols}] ({why})",
            part.source, part.rows, part.cols
        )))
    }
}

/// Pushes a part's weight, then its bias, in parameter order.
fn push_part(values: &mut Vec<Vec<f64>>, part: Part) {
    values.push(part.weight);
    values.extend(part.bias);
}

/// `*` in `pattern` matches any text (also `{i}`).
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.replace("{i}", "*");
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    for (n, piece) in pieces.iter().enumerate() {
        if n + 1 == pieces.len() {
            return rest.ends_with(piece);
        }
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

impl AttentionSpec {
    /// Whether block `block` has any of this attention's weights.
    fn present(&self, r: &Reader<'_>, block: usize) -> bool {
        let named = PROJECTIONS.iter().filter_map(|p| self.named(p).0);
        let fused = self.fused.iter().map(|f| &f.weight);
        r.has_any(block, named.chain(fused).chain([&self.out]))
    }

    /// Block `block`'s attention: its shape, parameters in order and head width.
    fn read(
        &self,
        r: &mut Reader<'_>,
        block: usize,
        d: usize,
        heads: usize,
    ) -> Result<(AttentionShape, Vec<Vec<f64>>, usize), CheckpointError> {
        let prefix = format!("blocks.{block}.attn");
        let mut parts: [Option<Part>; 5] = Default::default();
        for f in &self.fused {
            let roles: Vec<String> = f.rows.iter().map(|p| format!("{prefix}.{p}")).collect();
            for (p, part) in
                f.rows
                    .iter()
                    .zip(r.fused(&f.weight, f.bias.as_ref(), block, &roles)?)
            {
                parts[PROJECTIONS.iter().position(|q| q == p).expect("checked")] = Some(part);
            }
        }
        for (k, p) in PROJECTIONS.iter().enumerate() {
            if let (Some(weight), bias) = self.named(p) {
                parts[k] = Some(r.part(weight, bias, block, &format!("{prefix}.{p}"))?);
            }
        }
        let parts = parts.map(|p| p.expect("every projection is named once (checked)"));
        let width = parts[0].rows;
        for p in &parts {
            r.expect(p, width, d, "[width, d_model] like every q/k/v projection")?;
        }
        let out = r.part(
            &self.out,
            self.out_bias.as_ref(),
            block,
            &format!("{prefix}.out"),
        )?;
        r.expect(&out, d, width, "[d_model, width]: the output projection")?;
        if width % heads != 0 {
            return Err(r.fail(format!(
                "attention width {width} of block {block} (rows of {}) is not divisible by heads = {heads}",
                parts[0].source
            )));
        }
        let bias = self.biases(r, block, &parts, &out)?;
        let mut values = Vec::new();
        parts
            .into_iter()
            .chain([out])
            .for_each(|p| push_part(&mut values, p));
        let shape = AttentionShape {
            bias,
            residual: self.residual.residual(self.scale),
        };
        Ok((shape, values, width / heads))
    }

    /// Which projection groups have biases; q/k all four or none, and as the
    /// spec expects.
    fn biases(
        &self,
        r: &Reader<'_>,
        block: usize,
        parts: &[Part; 5],
        out: &Part,
    ) -> Result<AttentionBias, CheckpointError> {
        let qk: Vec<bool> = parts[..4].iter().map(|p| p.bias.is_some()).collect();
        if qk.iter().any(|&b| b != qk[0]) {
            let list = |has: bool| {
                let names: Vec<&str> = PROJECTIONS[..4]
                    .iter()
                    .zip(&qk)
                    .filter(|(_, &b)| b == has)
                    .map(|(p, _)| *p)
                    .collect();
                names.join(", ")
            };
            return Err(r.fail(format!(
                "block {block}: q/k biases must be all four or none; the file has them for {} but not for {}",
                list(true),
                list(false)
            )));
        }
        let bias = AttentionBias {
            qk: qk[0],
            v: parts[4].bias.is_some(),
            out: out.bias.is_some(),
        };
        let checks = [
            ("bias_qk", self.bias_qk, bias.qk, &parts[0].source),
            ("bias_v", self.bias_v, bias.v, &parts[4].source),
            ("bias_out", self.bias_out, bias.out, &out.source),
        ];
        for (key, expected, found, weight) in checks {
            if let Some(expected) = expected.filter(|&e| e != found) {
                let has = if found { "has a" } else { "has no" };
                return Err(r.fail(format!(
                    "block {block}: the file {has} bias for {weight}, but the architecture says {key} = {expected}"
                )));
            }
        }
        Ok(bias)
    }
}

impl MlpSpec {
    /// Whether block `block` has any of this MLP's weights.
    fn present(&self, r: &Reader<'_>, block: usize) -> bool {
        let factors = [&self.left, &self.right, &self.fused].into_iter().flatten();
        r.has_any(block, factors.chain([&self.down]))
    }

    /// Block `block`'s MLP: its shape and parameters in order.
    fn read(
        &self,
        r: &mut Reader<'_>,
        block: usize,
        d: usize,
    ) -> Result<(MlpShape, Vec<Vec<f64>>), CheckpointError> {
        let prefix = format!("blocks.{block}.mlp");
        let (left, right) = match (&self.left, &self.right, &self.fused) {
            (Some(l), Some(rn), _) => (
                r.part(l, self.left_bias.as_ref(), block, &format!("{prefix}.left"))?,
                r.part(
                    rn,
                    self.right_bias.as_ref(),
                    block,
                    &format!("{prefix}.right"),
                )?,
            ),
            (_, _, Some(f)) => {
                let roles = [format!("{prefix}.left"), format!("{prefix}.right")];
                let mut halves = r.fused(f, self.fused_bias.as_ref(), block, &roles)?;
                let right = halves.pop().expect("two halves");
                (halves.pop().expect("two halves"), right)
            }
            _ => unreachable!("checked when parsing"),
        };
        let hidden = left.rows;
        r.expect(&left, hidden, d, "[hidden, d_model]: the MLP's left factor")?;
        r.expect(&right, hidden, d, "[hidden, d_model] like the left factor")?;
        let down = r.part(
            &self.down,
            self.down_bias.as_ref(),
            block,
            &format!("{prefix}.down"),
        )?;
        r.expect(
            &down,
            d,
            hidden,
            "[d_model, hidden]: the MLP's down projection",
        )?;
        let shape = MlpShape {
            hidden,
            bias: [&left, &right, &down].map(|p| p.bias.is_some()),
            residual: self.residual.residual(self.scale),
        };
        let mut values = Vec::new();
        [left, right, down]
            .into_iter()
            .for_each(|p| push_part(&mut values, p));
        Ok((shape, values))
    }
}

impl FinalNormSpec {
    /// `1/sqrt(energy + eps)` from the file's one-number energy.
    fn factor(&self, r: &mut Reader<'_>) -> Result<f64, CheckpointError> {
        let name = r.full(&self.energy, 0);
        let t = r.tensor(&name, "final norm energy".into())?;
        if t.values.len() != 1 {
            return Err(r.fail(format!(
                "tensor `{name}` (final norm energy) has shape {:?}; expected one number: a per-feature norm cannot be folded into the unembedding",
                t.shape
            )));
        }
        let denominator = t.values[0] + self.eps;
        if !(denominator.is_finite() && denominator > 0.0) {
            return Err(r.fail(format!(
                "tensor `{name}` (final norm energy) is {}: energy + eps = {denominator} must be positive",
                t.values[0]
            )));
        }
        let factor = 1.0 / denominator.sqrt();
        let role = r.roles.last_mut().expect("just read");
        role.1 = format!(
            "final norm 1/√(energy + {}) = {factor:.6}, folded into unembed.weight",
            self.eps
        );
        Ok(factor)
    }

    /// The folded factor, and a warning when the file's batch count says
    /// the norm never tracked a batch.
    fn notes(&self, r: &mut Reader<'_>, factor: f64) -> Vec<String> {
        let mut notes = vec![format!(
            "final norm ×{factor:.6} folded into unembed.weight"
        )];
        let count = self.count.as_ref().map(|c| r.full(c, 0));
        if let Some((name, t)) = count.and_then(|c| r.set.get(&c).map(|t| (c, t))) {
            r.roles
                .push((name.clone(), "final norm batch count".into()));
            if t.values == [0.0] {
                notes.push(format!(
                    "`{name}` is 0: PyTorch's inference would use each batch's statistics, tensim the stored energy"
                ));
            }
        }
        notes
    }
}

impl TransformerSpec {
    /// Builds the transformer one tensor set holds (names under `prefix`);
    /// its roles list every tensor used or ignored, in the file's order.
    pub fn build(
        &self,
        set: &TensorSet,
        path: &Path,
        prefix: &str,
    ) -> Result<Mapped, CheckpointError> {
        let mut r = Reader {
            set,
            path,
            prefix,
            roles: Vec::new(),
        };
        let (d, vocab, embed) = self.embedding(&mut r)?;
        let (outputs, unembed, notes) = self.unembedding(&mut r, d)?;
        let mut values = vec![embed];
        let mut blocks = Vec::new();
        let mut head_dim: Option<(usize, usize)> = None;
        for i in 0..self.block_count(&r)? {
            let attention = match &self.attention {
                Some(a) if a.present(&r, i) => {
                    let (shape, v, dh) = a.read(&mut r, i, d, self.heads)?;
                    self.check_head_dim(&r, i, dh, &mut head_dim)?;
                    values.extend(v);
                    Some(shape)
                }
                _ => None,
            };
            let mlp = match &self.mlp {
                Some(m) if m.present(&r, i) => {
                    let (shape, v) = m.read(&mut r, i, d)?;
                    values.extend(v);
                    Some(shape)
                }
                _ => None,
            };
            blocks.push(BlockShape { attention, mlp });
        }
        values.push(unembed);
        self.check_all_used(&mut r)?;
        let shape = TransformerShape {
            vocab,
            outputs,
            d_model: d,
            heads: self.heads,
            head_dim: head_dim.map_or(self.head_dim.unwrap_or(2), |(dh, _)| dh),
            context: self.context,
            mask: self.mask.mask(),
            rotary_base: self.rotary_base,
            blocks,
        };
        let transformer =
            Transformer::from_parameters(&shape, values).map_err(|e| r.fail(e.to_string()))?;
        let order = |name: &String| set.tensors.iter().position(|t| &t.name == name);
        r.roles.sort_by_key(|(name, _)| order(name));
        Ok(Mapped {
            network: transformer.into(),
            roles: r.roles,
            notes,
        })
    }

    /// `(d_model, vocab, E as [d_model, vocab] row-major)`, checked against
    /// the expected widths.
    fn embedding(&self, r: &mut Reader<'_>) -> Result<(usize, usize, Vec<f64>), CheckpointError> {
        let full = r.full(&self.embed, 0);
        let (role, layout) = match self.embed_rows {
            EmbedRows::Tokens => (
                "embed.weight, transposed",
                "[vocab, d_model] (embed_rows = \"tokens\")",
            ),
            EmbedRows::Features => (
                "embed.weight",
                "[d_model, vocab] (embed_rows = \"features\")",
            ),
        };
        let (rows, cols, values) = r.matrix(&full, role.to_string())?;
        let (d, vocab, e) = match self.embed_rows {
            EmbedRows::Tokens => {
                let e = (0..cols * rows)
                    .map(|k| values[(k % rows) * cols + k / rows])
                    .collect();
                (cols, rows, e)
            }
            EmbedRows::Features => (rows, cols, values),
        };
        for (what, expected, found) in [("vocab", self.vocab, vocab), ("d_model", self.d_model, d)]
        {
            if let Some(expected) = expected.filter(|&e| e != found) {
                return Err(r.fail(format!(
                    "tensor `{full}` is [{rows}, {cols}], read as {layout}: {what} {found}, but the architecture says {what} = {expected}"
                )));
            }
        }
        Ok((d, vocab, e))
    }

    /// `(outputs, U row-major with the final norm folded in, notes)`.
    fn unembedding(
        &self,
        r: &mut Reader<'_>,
        d: usize,
    ) -> Result<(usize, Vec<f64>, Vec<String>), CheckpointError> {
        let full = r.full(&self.unembed, 0);
        let (rows, cols, mut values) = r.matrix(&full, "unembed.weight".into())?;
        if cols != d {
            let hint = match self.embed_rows {
                EmbedRows::Tokens => "embed_rows = \"features\"",
                EmbedRows::Features => "embed_rows = \"tokens\"",
            };
            return Err(r.fail(format!(
                "tensor `{full}` is [{rows}, {cols}]; expected [outputs, {d}] (d_model {d} from `{}`; stored the other way? {hint})",
                r.full(&self.embed, 0)
            )));
        }
        let notes = match &self.final_norm {
            Some(norm) => {
                let factor = norm.factor(r)?;
                values.iter_mut().for_each(|v| *v *= factor);
                let role = r.roles.iter_mut().find(|(n, _)| n == &full).expect("read");
                role.1 = format!("unembed.weight × {factor:.6} (final norm)");
                norm.notes(r, factor)
            }
            None => Vec::new(),
        };
        Ok((rows, values, notes))
    }

    /// The number of blocks: as the spec says (checked against the file),
    /// else the blocks `0, 1, …` that have tensors.
    fn block_count(&self, r: &Reader<'_>) -> Result<usize, CheckpointError> {
        let present = |i: usize| {
            self.attention.as_ref().is_some_and(|a| a.present(r, i))
                || self.mlp.as_ref().is_some_and(|m| m.present(r, i))
        };
        let first_name = |i: usize| {
            let name = match (&self.attention, &self.mlp) {
                (Some(a), _) => a.q1.as_ref().or(a.fused.first().map(|f| &f.weight)),
                (None, Some(m)) => Some(&m.down),
                (None, None) => None,
            };
            r.full(name.expect("a component (checked)"), i)
        };
        let inferred = (0..).find(|&i| !present(i)).expect("finitely many tensors");
        match self.blocks {
            None if inferred == 0 => Err(r.fail(format!(
                "no transformer block found: `{}` (block 0) is missing",
                first_name(0)
            ))),
            None => Ok(inferred),
            Some(n) if inferred < n => Err(r.fail(format!(
                "block {inferred} has none of its tensors (`{}`), but the architecture says blocks = {n}",
                first_name(inferred)
            ))),
            Some(n) if present(n) => Err(r.fail(format!(
                "the file has block {n} (`{}`), but the architecture says blocks = {n}",
                first_name(n)
            ))),
            Some(n) => Ok(n),
        }
    }

    /// Every block's heads have one width, as the spec expects.
    fn check_head_dim(
        &self,
        r: &Reader<'_>,
        block: usize,
        dh: usize,
        first: &mut Option<(usize, usize)>,
    ) -> Result<(), CheckpointError> {
        if let Some(expected) = self.head_dim.filter(|&e| e != dh) {
            return Err(r.fail(format!(
                "block {block}: attention width {} over {} heads gives head_dim {dh}, but the architecture says head_dim = {expected}",
                dh * self.heads,
                self.heads
            )));
        }
        match *first {
            Some((first_dh, first_block)) if first_dh != dh => Err(r.fail(format!(
                "block {block} has heads of width {dh}, block {first_block} of width {first_dh}"
            ))),
            Some(_) => Ok(()),
            None => {
                *first = Some((dh, block));
                Ok(())
            }
        }
    }

    /// Refuses a file with float tensors (under the prefix) that the spec
    /// neither uses nor ignores; records the ignored ones.
    fn check_all_used(&self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        let mut unused = Vec::new();
        let set = r.set;
        for t in &set.tensors {
            if !t.name.starts_with(r.prefix) || r.roles.iter().any(|(n, _)| n == &t.name) {
                continue;
            }
            let ignored = self
                .ignore
                .iter()
                .any(|p| glob_match(&format!("{}{p}", r.prefix), &t.name));
            if ignored || !t.is_float() {
                r.roles
                    .push((t.name.clone(), "(not part of the network)".into()));
            } else {
                unused.push(t);
            }
        }
        let Some(first) = unused.first() else {
            return Ok(());
        };
        let others = match unused.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let why = match (first.name.to_lowercase().contains("norm"), first.values.len()) {
            (true, 1) => format!(
                "a norm's running statistic; fold it into the unembedding with final_norm = {{ energy = \"{}\" }}, or `ignore` it",
                first.name.strip_prefix(r.prefix).unwrap_or(&first.name)
            ),
            (true, _) => "a normalisation with weights or per-feature statistics (LayerNorm, RMSNorm) depends on the input, so the model is not a polynomial and tensim cannot map it".to_string(),
            (false, _) => "name it in the spec, or in `ignore` if it is not part of the network".to_string(),
        };
        Err(r.fail(format!(
            "tensor `{}` {:?}{others} is not part of the architecture: {why}",
            first.name, first.shape
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn ignore_patterns() {
        assert!(glob_match(
            "final_norm.num_batches_tracked",
            "final_norm.num_batches_tracked"
        ));
        assert!(glob_match("layers.{i}.rotary.*", "layers.12.rotary.cos"));
        assert!(glob_match(
            "*.num_batches_tracked",
            "a.b.num_batches_tracked"
        ));
        assert!(!glob_match("layers.{i}.rotary.*", "final.rotary.cos"));
        assert!(!glob_match("embed", "embed.weight"));
        assert!(glob_match("*", "anything"));
    }
}
