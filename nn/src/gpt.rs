//! `Gpt`: nanoGPT's model (GPT-2's architecture) as expressions on the tape: token and
//! position embeddings, pre-norm blocks of causal self-attention and a GELU MLP, a
//! final layer norm, and logits through the token embedding (tied, as nanoGPT does).

use crate::activation::Gelu;
use crate::dropout::Dropout;
use crate::embedding::Embedding;
use crate::init::Init;
use crate::layer_norm::LayerNorm;
use crate::linear::Linear;
use crate::module::Module;
use crate::params::{Bound, ParamStore};
use autodiff::{Float, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The sizes of a [`Gpt`], as nanoGPT's `GPTConfig`. [`GptConfig::new`] gives
/// nanoGPT's small CPU settings for everything but the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GptConfig {
    /// Number of token ids (characters, for nanoGPT's Shakespeare).
    pub vocab: usize,
    /// The longest sequence the model reads (`block_size`): the position table's rows.
    pub context: usize,
    /// Number of transformer blocks (`n_layer`).
    pub layers: usize,
    /// Attention heads per block (`n_head`); `embed` must be a multiple of it.
    pub heads: usize,
    /// Width of the residual stream (`n_embd`).
    pub embed: usize,
    /// Drop probability of every dropout layer, in `[0, 1)`; 0 leaves them out.
    pub dropout: f64,
}

impl GptConfig {
    /// nanoGPT's CPU settings for a vocabulary of `vocab` ids: 4 layers, 4 heads, 128
    /// wide, a context of 64, no dropout.
    pub fn new(vocab: usize) -> Self {
        GptConfig {
            vocab,
            context: 64,
            layers: 4,
            heads: 4,
            embed: 128,
            dropout: 0.0,
        }
    }

    /// The width of one head: `embed / heads`.
    pub fn head_dim(&self) -> usize {
        self.embed / self.heads
    }

    /// Panics, naming the field, unless every size is positive, `embed` is a multiple
    /// of `heads`, and `dropout` is in `[0, 1)`.
    #[track_caller]
    pub fn validate(&self) {
        let sizes = [
            ("vocab", self.vocab),
            ("context", self.context),
            ("layers", self.layers),
            ("heads", self.heads),
            ("embed", self.embed),
        ];
        for (field, value) in sizes {
            assert!(value > 0, "GptConfig: {field} must be positive, got 0");
        }
        assert!(
            self.embed.is_multiple_of(self.heads),
            "GptConfig: embed ({}) must be a multiple of heads ({})",
            self.embed,
            self.heads
        );
        assert!(
            (0.0..1.0).contains(&self.dropout),
            "GptConfig: dropout must be in [0, 1), got {}",
            self.dropout
        );
    }
}

/// One transformer block, `x + attn(ln_1(x))` then `x + mlp(ln_2(x))`, by its layers'
/// parameter names.
#[derive(Clone, Debug)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    attn_dropout: Option<Dropout>,
    resid_dropout: Option<Dropout>,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
    mlp_dropout: Option<Dropout>,
}

/// nanoGPT's model: a decoder-only transformer over token ids, owning its parameters.
///
/// Parameters carry nanoGPT's names without its `transformer.` prefix: `wte.weight`
/// `[vocab, embed]`, `wpe.weight` `[context, embed]`, per block `h.{i}.ln_1`,
/// `h.{i}.attn.c_attn`, `h.{i}.attn.c_proj`, `h.{i}.ln_2`, `h.{i}.mlp.c_fc`,
/// `h.{i}.mlp.c_proj` (`.weight`, `[in, out]` as every [`Linear`] here, and `.bias`),
/// then `ln_f`. The output layer is tied to the token embedding, as nanoGPT's
/// `lm_head.weight = wte.weight`: logits are `x wteᵀ`, and there is no `lm_head`
/// parameter. Initialised as nanoGPT: embeddings and linear weights N(0, 0.02), the
/// residual projections (`c_proj`) N(0, 0.02 / √(2 layers)), biases zero, layer norms
/// ones and zeros.
///
/// ```
/// use autodiff::{Tape, Tensor};
/// use nn::{Gpt, GptConfig};
///
/// let config = GptConfig { context: 8, layers: 1, heads: 2, embed: 16, ..GptConfig::new(10) };
/// let gpt = Gpt::<f32>::new(config, 1);
/// let tape = Tape::new();
/// let bound = gpt.params().bind(&tape);
/// let ids = tape.constant(Tensor::from_vec(vec![1.0, 4.0, 2.0, 9.0, 0.0, 3.0], [2, 3]));
/// assert_eq!(gpt.forward(&bound, ids).shape().as_slice(), &[2, 3, 10]);
/// let loss = gpt.loss(&bound, ids, &[4, 2, 9, 0, 3, 3]);
/// assert!((loss.item() - 10f32.ln()).abs() < 0.1); // untrained: about ln(vocab)
/// ```
pub struct Gpt<T: Float = f32> {
    config: GptConfig,
    params: ParamStore<T>,
    wte: Embedding,
    wpe: Embedding,
    drop: Option<Dropout>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl<T: Float> Gpt<T> {
    /// The model of `config` with its parameters drawn from a `StdRng` seeded with
    /// `seed`, initialised as nanoGPT's `_init_weights`. Panics as
    /// [`GptConfig::validate`] does.
    #[track_caller]
    pub fn new(config: GptConfig, seed: u64) -> Self {
        config.validate();
        let GptConfig {
            vocab,
            context,
            layers,
            embed,
            ..
        } = config;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = ParamStore::new();
        let std = 0.02;
        let residual_std = std / (2.0 * layers as f64).sqrt();

        let wte = Embedding::new(&mut params, "wte", vocab, embed, &mut rng);
        redraw(&mut params, wte.weight_name(), std, &mut rng);
        let wpe = Embedding::new(&mut params, "wpe", context, embed, &mut rng);
        redraw(&mut params, wpe.weight_name(), std, &mut rng);
        let dropout =
            |name: &str| (config.dropout > 0.0).then(|| Dropout::new(name, config.dropout));
        let mut linear = |params: &mut ParamStore<T>, prefix: &str, inputs, outputs, std| {
            // Init::Xavier's biases are zeros; its weights are redrawn as nanoGPT's.
            let layer = Linear::new(params, prefix, inputs, outputs, Init::Xavier, &mut rng);
            redraw(params, layer.weight_name(), std, &mut rng);
            layer
        };
        let blocks = (0..layers)
            .map(|i| Block {
                ln_1: LayerNorm::new(&mut params, &format!("h.{i}.ln_1"), &[embed]),
                c_attn: linear(
                    &mut params,
                    &format!("h.{i}.attn.c_attn"),
                    embed,
                    3 * embed,
                    std,
                ),
                attn_proj: linear(
                    &mut params,
                    &format!("h.{i}.attn.c_proj"),
                    embed,
                    embed,
                    residual_std,
                ),
                attn_dropout: dropout(&format!("h.{i}.attn.attn_dropout")),
                resid_dropout: dropout(&format!("h.{i}.attn.resid_dropout")),
                ln_2: LayerNorm::new(&mut params, &format!("h.{i}.ln_2"), &[embed]),
                c_fc: linear(
                    &mut params,
                    &format!("h.{i}.mlp.c_fc"),
                    embed,
                    4 * embed,
                    std,
                ),
                mlp_proj: linear(
                    &mut params,
                    &format!("h.{i}.mlp.c_proj"),
                    4 * embed,
                    embed,
                    residual_std,
                ),
                mlp_dropout: dropout(&format!("h.{i}.mlp.dropout")),
            })
            .collect();
        let ln_f = LayerNorm::new(&mut params, "ln_f", &[embed]);
        Gpt {
            config,
            params,
            wte,
            wpe,
            drop: dropout("drop"),
            blocks,
            ln_f,
        }
    }

    /// The model's sizes.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The parameters, by name.
    pub fn params(&self) -> &ParamStore<T> {
        &self.params
    }

    /// The parameters, mutably (for an optimizer's step).
    pub fn params_mut(&mut self) -> &mut ParamStore<T> {
        &mut self.params
    }

    /// The logits `[batch, time, vocab]` of the next id after each position of `ids`,
    /// a `[batch, time]` tensor of whole-number ids with `time <= context`. Position `t`
    /// reads positions `0..=t` only.
    ///
    /// Panics at the caller's line, naming the model, when `ids` is not `[batch, time]`
    /// or `time` exceeds the context; and, with dropout, in a pass bound without a mode
    /// ([`Bound::train`], [`Bound::eval`]).
    #[track_caller]
    pub fn forward<'t>(&self, bound: &Bound<'t, T>, ids: Var<'t, T>) -> Var<'t, T> {
        self.forward_with_attention(bound, ids).0
    }

    /// [`Gpt::forward`]'s logits and every block's attention probabilities, one
    /// `[batch, heads, time, time]` tape value per block (row `t` of a head: how much
    /// position `t` reads each position, before attention dropout), to draw them or to
    /// differentiate a cost with respect to them.
    #[track_caller]
    pub fn forward_with_attention<'t>(
        &self,
        bound: &Bound<'t, T>,
        ids: Var<'t, T>,
    ) -> (Var<'t, T>, Vec<Var<'t, T>>) {
        let (batch, time) = self.check_ids(&ids.shape());
        let mut attention = Vec::with_capacity(self.blocks.len());
        let mut x = self.embed(bound, ids, time);
        for block in &self.blocks {
            let (y, probs) = self.block_rows(bound, block, x, batch, time);
            attention.push(probs);
            x = y;
        }
        let logits = self.logits(bound, x);
        (logits.reshape([batch, time, self.config.vocab]), attention)
    }

    /// The mean cross-entropy of the next-id predictions at every position of `ids`
    /// against `targets` (`batch * time` ids, row-major): nanoGPT's training loss.
    ///
    /// Panics as [`Gpt::forward`] does, and when `targets` has the wrong length or an id
    /// out of the vocabulary.
    #[track_caller]
    pub fn loss<'t>(&self, bound: &Bound<'t, T>, ids: Var<'t, T>, targets: &[usize]) -> Var<'t, T> {
        let (batch, time) = self.check_ids(&ids.shape());
        assert!(
            targets.len() == batch * time,
            "Gpt: {} targets for {batch} x {time} ids",
            targets.len()
        );
        let logits = self.forward(bound, ids);
        logits
            .reshape([batch * time, self.config.vocab])
            .cross_entropy(targets)
    }

    /// Block `layer` alone (0-based) on a residual stream `x` `[batch, time, embed]`,
    /// `time <= context`: `x + attn(ln_1(x))`, then that plus `mlp(ln_2(·))`, same
    /// shape, with the block's attention probabilities `[batch, heads, time, time]`.
    /// [`Gpt::forward`] runs the blocks in turn on the embeddings; this is one of them,
    /// to check or study on an input of one's own.
    ///
    /// Panics at the caller's line, naming the model, when `layer` is out of range or
    /// `x` has another shape.
    #[track_caller]
    pub fn block<'t>(
        &self,
        bound: &Bound<'t, T>,
        layer: usize,
        x: Var<'t, T>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let shape = x.shape();
        let embed = self.config.embed;
        let Some(block) = self.blocks.get(layer) else {
            panic!(
                "{}: no block {layer} in {} layers",
                self.name(),
                self.blocks.len()
            );
        };
        let (batch, time) = match *shape {
            [batch, time, e] if e == embed => self.check_ids(&[batch, time]),
            _ => panic!(
                "{}: a block's input {:?} must be [batch, time, {embed}]",
                self.name(),
                shape.as_slice()
            ),
        };
        let rows = x.reshape([batch * time, embed]);
        let (y, probs) = self.block_rows(bound, block, rows, batch, time);
        (y.reshape([batch, time, embed]), probs)
    }

    /// One block on rows `[batch * time, embed]`: its output rows and its attention.
    fn block_rows<'t>(
        &self,
        bound: &Bound<'t, T>,
        block: &Block,
        x: Var<'t, T>,
        batch: usize,
        time: usize,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let (a, probs) = self.attend(bound, block, block.ln_1.forward(bound, x), batch, time);
        let x = x + a;
        let x = x + self.mlp(bound, block, block.ln_2.forward(bound, x));
        (x, probs)
    }

    /// The model as panics name it: `Gpt (vocab 65, context 64, 4 layers, 4 heads,
    /// embed 128)`.
    fn name(&self) -> String {
        let GptConfig {
            vocab,
            context,
            layers,
            heads,
            embed,
            ..
        } = self.config;
        format!(
            "Gpt (vocab {vocab}, context {context}, {layers} layers, {heads} heads, embed {embed})"
        )
    }

    /// `(batch, time)` of an ids shape, or a panic at the caller's line naming the model.
    #[track_caller]
    fn check_ids(&self, shape: &[usize]) -> (usize, usize) {
        let (name, context) = (self.name(), self.config.context);
        match *shape {
            [batch, time] if time >= 1 && time <= context && batch >= 1 => (batch, time),
            [_, time] if time > context => panic!(
                "{name}: ids {shape:?} are {time} long, longer than the context of {context}"
            ),
            _ => panic!("{name}: ids {shape:?} must be [batch, time] with batch, time >= 1"),
        }
    }

    /// Token plus position embeddings, after dropout, as rows `[batch * time, embed]`.
    fn embed<'t>(&self, bound: &Bound<'t, T>, ids: Var<'t, T>, time: usize) -> Var<'t, T> {
        let positions: Vec<usize> = (0..time).collect();
        let tokens = self.wte.forward(bound, ids); // [batch, time, embed]
        let x = tokens + self.wpe.lookup(bound, &positions); // [time, embed] broadcast
        let x = maybe(&self.drop, bound, x);
        let rows = x.shape()[0] * time;
        x.reshape([rows, self.config.embed])
    }

    /// Causal self-attention on rows `h` `[batch * time, embed]`: the block's output
    /// (same shape) and its probabilities `[batch, heads, time, time]`.
    fn attend<'t>(
        &self,
        bound: &Bound<'t, T>,
        block: &Block,
        h: Var<'t, T>,
        batch: usize,
        time: usize,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let (heads, embed) = (self.config.heads, self.config.embed);
        let head_dim = self.config.head_dim();
        // q, k and v are c_attn's three bands of columns: each its own product (the
        // weight's band taken, not the product's output split), brought to
        // [batch * heads, time, head_dim] so that one batched product covers every head
        // of every example.
        let (w, b) = (
            bound.get(block.c_attn.weight_name()),
            bound.get(block.c_attn.bias_name()),
        );
        let part = |i: usize| {
            let band: Vec<usize> = (i * embed..(i + 1) * embed).collect();
            h.linear(w.index_select(1, &band), b.index_select(0, &band))
                .reshape([batch, time, heads, head_dim])
                .permute(&[0, 2, 1, 3])
                .reshape([batch * heads, time, head_dim])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scale = T::from_f64(1.0 / (head_dim as f64).sqrt());
        // Scores [batch * heads, time, time]; position i reads j <= i: the rest has
        // probability 0 and no gradient.
        let scores = q.matmul(k.t()) * scale;
        let probs = scores.masked_softmax(&causal_mask(time));
        // The values returned are the ones the rest of the pass reads, so that a cost's
        // gradient with respect to them is the real one.
        let attention = probs.reshape([batch, heads, time, time]);
        let probs = attention.reshape([batch * heads, time, time]);
        let y = maybe(&block.attn_dropout, bound, probs)
            .matmul(v) // [batch * heads, time, head_dim]
            .reshape([batch, heads, time, head_dim])
            .permute(&[0, 2, 1, 3])
            .reshape([batch * time, embed]);
        let out = block.attn_proj.forward(bound, y);
        (maybe(&block.resid_dropout, bound, out), attention)
    }

    /// The block's MLP on rows: `c_fc`, exact GELU, `c_proj`, dropout.
    fn mlp<'t>(&self, bound: &Bound<'t, T>, block: &Block, h: Var<'t, T>) -> Var<'t, T> {
        let h = Gelu::default().forward(bound, block.c_fc.forward(bound, h));
        let out = block.mlp_proj.forward(bound, h);
        maybe(&block.mlp_dropout, bound, out)
    }

    /// The final layer norm, then the tied output layer: `x wteᵀ`, `[rows, vocab]`.
    fn logits<'t>(&self, bound: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let x = self.ln_f.forward(bound, x);
        x.matmul(bound.get(self.wte.weight_name()).t())
    }
}

impl<T: Float> Module<T> for Gpt<T> {
    /// [`Gpt::forward`]: logits `[batch, time, vocab]` of ids `[batch, time]`.
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        Gpt::forward(self, params, x)
    }
}

/// The `[time, time]` mask of what position `i` (a row) may not read: the later
/// positions `j > i`, above the diagonal.
fn causal_mask(time: usize) -> Vec<bool> {
    (0..time * time).map(|k| k % time > k / time).collect()
}

/// `x` through `dropout` if the model has one (a drop probability above 0).
fn maybe<'t, T: Float>(
    dropout: &Option<Dropout>,
    bound: &Bound<'t, T>,
    x: Var<'t, T>,
) -> Var<'t, T> {
    match dropout {
        Some(d) => d.forward(bound, x),
        None => x,
    }
}

/// Replaces the parameter `name` with draws from N(0, std²) of its shape.
fn redraw<T: Float, R: Rng + ?Sized>(
    params: &mut ParamStore<T>,
    name: &str,
    std: f64,
    rng: &mut R,
) {
    let value = params.get_mut(name).expect("the layer registered it");
    let normal = Normal::new(0.0, std).expect("a finite standard deviation");
    let data = (0..value.numel())
        .map(|_| T::from_f64(normal.sample(rng)))
        .collect();
    *value = Tensor::from_vec(data, value.shape());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_causal_mask_hides_what_is_above_the_diagonal() {
        let mask = causal_mask(3);
        #[rustfmt::skip]
        let expected = [
            false, true,  true,
            false, false, true,
            false, false, false,
        ];
        assert_eq!(mask, expected);
        assert_eq!(causal_mask(1), [false]);
    }

    #[test]
    fn the_cpu_defaults_are_nanogpts() {
        let config = GptConfig::new(65);
        let expected = (65, 64, 4, 4, 128, 0.0);
        let got = (
            config.vocab,
            config.context,
            config.layers,
            config.heads,
            config.embed,
            config.dropout,
        );
        assert_eq!(got, expected);
        assert_eq!(config.head_dim(), 32);
        config.validate();
    }
}
