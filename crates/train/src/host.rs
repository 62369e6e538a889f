//! The training step on the CPU with a hand-written backward pass and a
//! fused AdamW, instead of candle's autograd.
//!
//! Why: on the backdoor classifier (784 → 64 → 10, batch 512) candle's
//! autograd spends a third of its GEMM work on the gradient of the input
//! batch, which nothing needs (its matmul backward always forms both
//! operands' gradients), allocates a fresh tensor for every elementwise op of
//! the step, and its AdamW runs about a dozen tensor ops per parameter. Here
//! the parameters, gradients and moments are flat host vectors, every buffer
//! is reused across steps, the left and right maps of a bilinear layer are
//! one GEMM when they lie next to each other, and the input gradient of the
//! first layer is never formed.
//!
//! The maths is the network's ([`crate::network`], MATH.md §1) and candle's
//! AdamW (decoupled weight decay on every parameter, bias-corrected moments);
//! the unit test at the end checks parameters against candle's autograd
//! after several steps. Results differ from candle's only in float summation
//! order.

use std::ops::Range;

use candle_core::{Device, Tensor, Var};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use tensim_core::{LayerShape, Residual};

use crate::network::{bilinear_maps, Affine, Network};
use crate::snapshot::AdamState;
use crate::trainer::StepStats;
use crate::{Result, TrainError};

/// Where one layer's tensors lie in the flat parameter vector, and its sizes.
#[derive(Clone, Debug)]
enum Plan {
    Linear {
        input: usize,
        output: usize,
        map: Affine<Range<usize>>,
    },
    Bilinear(BilinearPlan),
}

/// Where a bilinear block's left, right and down maps lie in the flat
/// parameter vector, its sizes and its residual join.
#[derive(Clone, Debug)]
struct BilinearPlan {
    input: usize,
    hidden: usize,
    output: usize,
    left: Affine<Range<usize>>,
    right: Affine<Range<usize>>,
    down: Affine<Range<usize>>,
    /// `(keep, mix)` of the residual join, `None` without one.
    residual: Option<(f32, f32)>,
}

impl BilinearPlan {
    /// The range of the stacked `[L̂; R̂]` when the left and right weights lie
    /// next to each other (no left bias between them): one GEMM for both.
    fn stacked_weights(&self) -> Option<Range<usize>> {
        let (l, r) = (&self.left.weight, &self.right.weight);
        (l.end == r.start).then_some(l.start..r.end)
    }
}

/// AdamW's constants (candle's [`candle_nn::ParamsAdamW`] defaults but for
/// the weight decay, which the run sets).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Parameters, AdamW state and reusable activations of a network trained on
/// the CPU.
pub(crate) struct HostStep {
    plans: Vec<Plan>,
    /// Each variable's range in the flat vectors, in the network's order.
    ranges: Vec<Range<usize>>,
    shapes: Vec<Vec<usize>>,
    theta: Vec<f32>,
    grad: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    adam: AdamW,
    /// AdamW's step count (its bias correction).
    t: i32,
    /// `acts[k]`: the input of layer `k` (`acts[0]` the batch), `n × width`;
    /// the last one holds the logits.
    acts: Vec<Vec<f32>>,
    /// Per layer: a bilinear layer's `[x L̂ᵀ | x R̂ᵀ]` (`n × 2h`) and their
    /// product (`n × h`); empty for a linear layer.
    pre: Vec<Vec<f32>>,
    prod: Vec<Vec<f32>>,
    /// Gradient scratch: with respect to a layer's output, its input, and a
    /// bilinear layer's hidden units (`n × 2h`).
    g_out: Vec<f32>,
    g_in: Vec<f32>,
    g_hidden: Vec<f32>,
    par: Par,
}

/// `y (n×o) ← x (n×k) · w (o×k)ᵀ`, all row-major (`y` accumulates when `add`).
fn product_t(y: MatMut<'_, f32>, x: MatRef<'_, f32>, w: MatRef<'_, f32>, add: bool, par: Par) {
    let accum = if add { Accum::Add } else { Accum::Replace };
    matmul(y, accum, x, w.transpose(), 1.0, par);
}

fn rows<'a>(data: &'a [f32], n: usize, cols: usize) -> MatRef<'a, f32> {
    MatRef::from_row_major_slice(&data[..n * cols], n, cols)
}

fn rows_mut<'a>(data: &'a mut [f32], n: usize, cols: usize) -> MatMut<'a, f32> {
    MatMut::from_row_major_slice_mut(&mut data[..n * cols], n, cols)
}

/// Adds the bias `b` to every row of the row-major `y` (`b.len()` wide, or a
/// column block of a wider matrix when `stride > b.len()`).
fn add_bias(y: &mut [f32], stride: usize, offset: usize, b: &[f32]) {
    for row in y.chunks_exact_mut(stride) {
        for (v, &bias) in row[offset..offset + b.len()].iter_mut().zip(b) {
            *v += bias;
        }
    }
}

/// Column sums of a block of the row-major `g` into `out` (a bias gradient).
fn column_sums(g: &[f32], stride: usize, offset: usize, out: &mut [f32]) {
    out.fill(0.0);
    let width = out.len();
    for row in g.chunks_exact(stride) {
        for (o, &v) in out.iter_mut().zip(&row[offset..offset + width]) {
            *o += v;
        }
    }
}

impl HostStep {
    /// The step for `net`'s parameters (copied out of its variables).
    pub(crate) fn new(net: &Network, adam: AdamW, par: Par) -> Result<Self> {
        let vars = net.vars();
        let mut ranges = Vec::with_capacity(vars.len());
        let mut shapes = Vec::with_capacity(vars.len());
        let mut theta = Vec::new();
        for var in &vars {
            let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            ranges.push(theta.len()..theta.len() + values.len());
            shapes.push(var.dims().to_vec());
            theta.extend(values);
        }
        let mut next = ranges.iter().cloned();
        let mut take = || next.next().expect("one variable per parameter spec");
        let mut plans = Vec::new();
        for layer in &net.architecture().layers {
            plans.push(match *layer {
                LayerShape::Linear {
                    input,
                    output,
                    bias,
                } => Plan::Linear {
                    input,
                    output,
                    map: Affine::take(&mut take, bias),
                },
                LayerShape::Bilinear {
                    input,
                    hidden,
                    output,
                    left_bias,
                    right_bias,
                    down_bias,
                    residual,
                } => {
                    let [left, right, down] =
                        bilinear_maps(&mut take, [left_bias, right_bias, down_bias]);
                    let residual = match residual {
                        Residual::None => None,
                        _ => {
                            let (keep, mix) = residual.coefficients();
                            Some((keep as f32, mix as f32))
                        }
                    };
                    Plan::Bilinear(BilinearPlan {
                        input,
                        hidden,
                        output,
                        left,
                        right,
                        down,
                        residual,
                    })
                }
            });
        }
        let size = theta.len();
        let layers = plans.len();
        Ok(HostStep {
            plans,
            ranges,
            shapes,
            theta,
            grad: vec![0.0; size],
            m: vec![0.0; size],
            v: vec![0.0; size],
            adam,
            t: 0,
            acts: vec![Vec::new(); layers + 1],
            pre: vec![Vec::new(); layers],
            prod: vec![Vec::new(); layers],
            g_out: Vec::new(),
            g_in: Vec::new(),
            g_hidden: Vec::new(),
            par,
        })
    }

    /// The batch buffer (`n × input`) to fill before [`HostStep::step`].
    pub(crate) fn input_mut(&mut self, n: usize, dim: usize) -> &mut Vec<f32> {
        let x = &mut self.acts[0];
        x.clear();
        x.reserve(n * dim);
        x
    }

    /// Sizes every buffer for a batch of `n` rows (a no-op after the first
    /// batch of that size).
    fn size_buffers(&mut self, n: usize) {
        let mut widest = 0;
        for (k, plan) in self.plans.iter().enumerate() {
            let (input, output) = match *plan {
                Plan::Linear { input, output, .. } => (input, output),
                Plan::Bilinear(ref p) => {
                    let hidden = p.hidden;
                    self.pre[k].resize(n * 2 * hidden, 0.0);
                    self.prod[k].resize(n * hidden, 0.0);
                    self.g_hidden
                        .resize(self.g_hidden.len().max(n * 2 * hidden), 0.0);
                    (p.input, p.output)
                }
            };
            self.acts[k + 1].resize(n * output, 0.0);
            widest = widest.max(input).max(output);
        }
        self.g_out.resize(n * widest, 0.0);
        self.g_in.resize(n * widest, 0.0);
    }

    /// One AdamW step at learning rate `lr` on the batch in the input buffer
    /// (`n` rows) with labels `labels`; the batch's loss and accuracy are
    /// those of the logits before the update.
    pub(crate) fn step(&mut self, labels: &[u32], lr: f64) -> Result<StepStats> {
        let n = labels.len();
        self.size_buffers(n);
        self.forward(n);
        let stats = self.loss_gradient(labels);
        self.backward(n);
        self.adamw(lr);
        Ok(stats)
    }

    fn forward(&mut self, n: usize) {
        let par = self.par;
        for (k, plan) in self.plans.iter().enumerate() {
            let (done, rest) = self.acts.split_at_mut(k + 1);
            let (x, y) = (&done[k], &mut rest[0]);
            match plan {
                Plan::Linear { input, output, map } => {
                    let w = rows(&self.theta[map.weight.clone()], *output, *input);
                    product_t(rows_mut(y, n, *output), rows(x, n, *input), w, false, par);
                    if let Some(b) = &map.bias {
                        add_bias(y, *output, 0, &self.theta[b.clone()]);
                    }
                }
                Plan::Bilinear(p) => {
                    let (h, pre, prod) = (p.hidden, &mut self.pre[k], &mut self.prod[k]);
                    let (input, output) = (p.input, p.output);
                    let x_rows = rows(x, n, input);
                    if let Some(lr) = p.stacked_weights() {
                        // L̂ and R̂ adjacent: one GEMM against the stacked [L̂; R̂].
                        let lr = rows(&self.theta[lr], 2 * h, input);
                        product_t(rows_mut(pre, n, 2 * h), x_rows, lr, false, par);
                    } else {
                        let out = rows_mut(pre, n, 2 * h);
                        let (left, right) = out.split_at_col_mut(h);
                        let l = rows(&self.theta[p.left.weight.clone()], h, input);
                        product_t(left, x_rows, l, false, par);
                        let r = rows(&self.theta[p.right.weight.clone()], h, input);
                        product_t(right, x_rows, r, false, par);
                    }
                    if let Some(b) = &p.left.bias {
                        add_bias(pre, 2 * h, 0, &self.theta[b.clone()]);
                    }
                    if let Some(b) = &p.right.bias {
                        add_bias(pre, 2 * h, h, &self.theta[b.clone()]);
                    }
                    for (p, ac) in prod.chunks_exact_mut(h).zip(pre.chunks_exact(2 * h)) {
                        let (a, c) = ac.split_at(h);
                        for ((p, a), c) in p.iter_mut().zip(a).zip(c) {
                            *p = a * c;
                        }
                    }
                    let d = rows(&self.theta[p.down.weight.clone()], output, h);
                    product_t(rows_mut(y, n, output), rows(prod, n, h), d, false, par);
                    if let Some(b) = &p.down.bias {
                        add_bias(y, output, 0, &self.theta[b.clone()]);
                    }
                    if let Some((keep, mix)) = p.residual {
                        for (y, x) in y.iter_mut().zip(x) {
                            *y = keep * x + mix * *y;
                        }
                    }
                }
            }
        }
    }

    /// Mean cross-entropy of the logits against `labels`, their accuracy,
    /// and the loss's gradient with respect to the logits into `g_out`.
    fn loss_gradient(&mut self, labels: &[u32]) -> StepStats {
        let n = labels.len();
        let logits = self.acts.last().expect("a layer");
        let classes = logits.len() / n.max(1);
        let scale = 1.0 / n as f32;
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for ((row, g), &label) in logits
            .chunks_exact(classes)
            .zip(self.g_out.chunks_exact_mut(classes))
            .zip(labels)
        {
            let label = label as usize;
            // The first maximum, as candle's argmax picks it.
            let (mut best, mut max) = (0, row[0]);
            for (j, &v) in row.iter().enumerate().skip(1) {
                if v > max {
                    (best, max) = (j, v);
                }
            }
            correct += usize::from(best == label);
            let mut sum = 0.0f32;
            for (g, &v) in g.iter_mut().zip(row) {
                *g = (v - max).exp();
                sum += *g;
            }
            loss += f64::from(sum.ln() - (row[label] - max));
            for g in g.iter_mut() {
                *g *= scale / sum;
            }
            g[label] -= scale;
        }
        StepStats {
            loss: (loss / n as f64) as f32,
            accuracy: correct as f32 / n as f32,
        }
    }

    /// Gradients of every parameter from the logits' gradient in `g_out`;
    /// the first layer's input gradient is never formed.
    fn backward(&mut self, n: usize) {
        let par = self.par;
        for (k, plan) in self.plans.iter().enumerate().rev() {
            let x = &self.acts[k];
            let needs_input_grad = k > 0;
            match plan {
                Plan::Linear { input, output, map } => {
                    let g = rows(&self.g_out, n, *output);
                    let dw = rows_mut(&mut self.grad[map.weight.clone()], *output, *input);
                    matmul(
                        dw,
                        Accum::Replace,
                        g.transpose(),
                        rows(x, n, *input),
                        1.0,
                        par,
                    );
                    if let Some(b) = &map.bias {
                        column_sums(&self.g_out, *output, 0, &mut self.grad[b.clone()]);
                    }
                    if needs_input_grad {
                        let w = rows(&self.theta[map.weight.clone()], *output, *input);
                        matmul(
                            rows_mut(&mut self.g_in, n, *input),
                            Accum::Replace,
                            g,
                            w,
                            1.0,
                            par,
                        );
                    }
                }
                Plan::Bilinear(p) => {
                    let (h, input, output) = (p.hidden, p.input, p.output);
                    // y = keep·x + mix·z: the down projection's output z has
                    // gradient mix·g, folded into the products' scale.
                    let mix = p.residual.map_or(1.0, |(_, mix)| mix);
                    let g = rows(&self.g_out, n, output);
                    let dd = rows_mut(&mut self.grad[p.down.weight.clone()], output, h);
                    matmul(
                        dd,
                        Accum::Replace,
                        g.transpose(),
                        rows(&self.prod[k], n, h),
                        mix,
                        par,
                    );
                    if let Some(b) = &p.down.bias {
                        let db = &mut self.grad[b.clone()];
                        column_sums(&self.g_out, output, 0, db);
                        db.iter_mut().for_each(|v| *v *= mix);
                    }
                    // dh = mix·g D̂, then [da | dc] = [dh ⊙ c | dh ⊙ a].
                    let d = rows(&self.theta[p.down.weight.clone()], output, h);
                    let gh = &mut self.g_hidden[..n * 2 * h];
                    {
                        let gh_rows = rows_mut(gh, n, 2 * h);
                        let (dh, _) = gh_rows.split_at_col_mut(h);
                        matmul(dh, Accum::Replace, g, d, mix, par);
                    }
                    for (g, ac) in gh
                        .chunks_exact_mut(2 * h)
                        .zip(self.pre[k].chunks_exact(2 * h))
                    {
                        let (da, dc) = g.split_at_mut(h);
                        let (a, c) = ac.split_at(h);
                        for (((da, dc), a), c) in da.iter_mut().zip(dc).zip(a).zip(c) {
                            *dc = *da * a;
                            *da *= c;
                        }
                    }
                    let gh = rows(&self.g_hidden, n, 2 * h);
                    let x_rows = rows(x, n, input);
                    if let Some(lr) = p.stacked_weights() {
                        let dlr = rows_mut(&mut self.grad[lr], 2 * h, input);
                        matmul(dlr, Accum::Replace, gh.transpose(), x_rows, 1.0, par);
                    } else {
                        let (gl, gr) = gh.split_at_col(h);
                        let dl = rows_mut(&mut self.grad[p.left.weight.clone()], h, input);
                        matmul(dl, Accum::Replace, gl.transpose(), x_rows, 1.0, par);
                        let dr = rows_mut(&mut self.grad[p.right.weight.clone()], h, input);
                        matmul(dr, Accum::Replace, gr.transpose(), x_rows, 1.0, par);
                    }
                    if let Some(b) = &p.left.bias {
                        column_sums(&self.g_hidden, 2 * h, 0, &mut self.grad[b.clone()]);
                    }
                    if let Some(b) = &p.right.bias {
                        column_sums(&self.g_hidden, 2 * h, h, &mut self.grad[b.clone()]);
                    }
                    if needs_input_grad {
                        let (gl, gr) = gh.split_at_col(h);
                        let l = rows(&self.theta[p.left.weight.clone()], h, input);
                        let r = rows(&self.theta[p.right.weight.clone()], h, input);
                        let mut gx = rows_mut(&mut self.g_in, n, input);
                        matmul(gx.as_mut(), Accum::Replace, gl, l, 1.0, par);
                        matmul(gx.as_mut(), Accum::Add, gr, r, 1.0, par);
                        if let Some((keep, _)) = p.residual {
                            // The carried input's share of the gradient.
                            for (gx, g) in self.g_in[..n * input].iter_mut().zip(&self.g_out) {
                                *gx += keep * g;
                            }
                        }
                    }
                }
            }
            if needs_input_grad {
                std::mem::swap(&mut self.g_in, &mut self.g_out);
            }
        }
    }

    /// AdamW over the flat parameters: candle's update (decoupled decay
    /// `θ·(1 − lr·λ)`, bias-corrected moments), fused into one pass.
    fn adamw(&mut self, lr: f64) {
        self.t += 1;
        let AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.adam;
        let scale_m = (1.0 / (1.0 - beta1.powi(self.t))) as f32;
        let scale_v = (1.0 / (1.0 - beta2.powi(self.t))) as f32;
        let decay = (1.0 - lr * weight_decay) as f32;
        let (b1, b2, eps, lr) = (beta1 as f32, beta2 as f32, eps as f32, lr as f32);
        let (c1, c2) = ((1.0 - beta1) as f32, (1.0 - beta2) as f32);
        for (((theta, g), m), v) in self
            .theta
            .iter_mut()
            .zip(&self.grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = b1 * *m + c1 * g;
            *v = b2 * *v + c2 * (g * g);
            let update = (*m * scale_m) / ((*v * scale_v).sqrt() + eps);
            *theta = *theta * decay - lr * update;
        }
    }

    /// AdamW's step count and moments, per variable in the network's order.
    pub(crate) fn adam_state(&self) -> AdamState {
        let split = |flat: &[f32]| {
            self.ranges
                .iter()
                .map(|r| flat[r.clone()].to_vec())
                .collect()
        };
        AdamState {
            t: self.t as u64,
            first: split(&self.m),
            second: split(&self.v),
        }
    }

    /// Continues AdamW from `state` (taken from a step of the same network).
    pub(crate) fn restore_adam(&mut self, state: &AdamState) -> Result<()> {
        let sizes: Vec<usize> = self.ranges.iter().map(|r| r.len()).collect();
        state.check(&sizes)?;
        for (k, range) in self.ranges.iter().enumerate() {
            self.m[range.clone()].copy_from_slice(&state.first[k]);
            self.v[range.clone()].copy_from_slice(&state.second[k]);
        }
        self.t = i32::try_from(state.t)
            .map_err(|_| TrainError::Invalid(format!("AdamW step {} is too large", state.t)))?;
        Ok(())
    }

    /// Copies the parameters into the network's variables.
    pub(crate) fn write_to(&self, vars: &[Var]) -> Result<()> {
        for ((var, range), shape) in vars.iter().zip(&self.ranges).zip(&self.shapes) {
            let t = Tensor::from_slice(&self.theta[range.clone()], shape.as_slice(), &Device::Cpu)?;
            var.set(&t)?;
        }
        Ok(())
    }
}
