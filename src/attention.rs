//! What a GPT's attention looks at: every head's attention pattern in every layer for a
//! prompt, and for one head the gradient of a prediction's cost with respect to its
//! attention weights ("which earlier characters would lower this cost"), as SVG.
//!
//! ```
//! use backprop::attention::{Attention, CostGradient};
//! use nn::{Gpt, GptConfig};
//!
//! let config = GptConfig { context: 8, layers: 2, heads: 2, embed: 8, ..GptConfig::new(5) };
//! let model = Gpt::<f64>::new(config, 1);
//! let ids = [1, 4, 2, 0, 3];
//! let attention = Attention::of(&model, &ids).unwrap();
//! let row = &attention.head(1, 0)[2 * 5..3 * 5]; // layer 1, head 0, position 2
//! assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
//! assert_eq!(&row[3..], &[0.0, 0.0]); // it never reads the future
//! // Position 3 predicts ids[4]: d cost / d attention of layer 0, head 1.
//! let gradient = CostGradient::of(&model, &ids, 0, 1, None).unwrap();
//! assert_eq!((gradient.position, gradient.target), (3, 3));
//! ```
//!
//! The pictures are written by hand as SVG (one `<rect>` per attention weight, with its
//! value in `data-v`), so that a reader, or a test, can find every number in the file.

use crate::pictures::{diverging, max_abs, PictureError};
use autodiff::{Float, Tape, Tensor};
use nn::Gpt;
use std::fmt::Write as _;
use std::path::Path;

/// A prompt or a choice of head that the attention pictures cannot be made for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttentionError {
    /// No characters at all.
    #[error("the prompt is empty: give at least one character")]
    EmptyPrompt,
    /// More characters than the model's context.
    #[error(
        "the prompt is {length} characters long, longer than the model's context of {context}"
    )]
    TooLong {
        /// The prompt's length.
        length: usize,
        /// The model's context.
        context: usize,
    },
    /// An id the model has no embedding for.
    #[error("id {id} at position {position} is outside the vocabulary of {vocab}")]
    UnknownId {
        /// The id.
        id: usize,
        /// Where it is in the prompt.
        position: usize,
        /// The vocabulary's size.
        vocab: usize,
    },
    /// A layer the model does not have.
    #[error("there is no layer {layer}: the model has {layers} (0 to {})", layers - 1)]
    NoLayer {
        /// The layer asked for.
        layer: usize,
        /// The model's layers.
        layers: usize,
    },
    /// A head the model does not have.
    #[error("there is no head {head}: each layer has {heads} (0 to {})", heads - 1)]
    NoHead {
        /// The head asked for.
        head: usize,
        /// Heads per layer.
        heads: usize,
    },
    /// A position whose next character the prompt does not hold.
    #[error(
        "position {position} has no next character in a prompt of {length}: the gradient \
         needs a position from 0 to {} (a prompt of at least 2 characters)",
        length.saturating_sub(2)
    )]
    NoNextCharacter {
        /// The position asked for.
        position: usize,
        /// The prompt's length.
        length: usize,
    },
}

/// Every head's attention in every layer for one prompt: `weights[layer][head][q][k]`
/// (row-major, flattened) is how much position `q` reads position `k`; zero for `k > q`.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    /// Transformer blocks.
    pub layers: usize,
    /// Heads per block.
    pub heads: usize,
    /// The prompt's length.
    pub time: usize,
    /// `[layers, heads, time, time]`, row-major.
    pub weights: Vec<f64>,
}

impl Attention {
    /// The attention of `model` reading `ids` (one prompt, at most the model's context),
    /// in evaluation mode.
    pub fn of<T: Float>(model: &Gpt<T>, ids: &[usize]) -> Result<Attention, AttentionError> {
        check_prompt(model, ids)?;
        let tape = Tape::new();
        let bound = model.params().bind_constants(&tape);
        let (_, attention) = model.forward_with_attention(&bound, tape.constant(as_input(ids)));
        let weights = attention
            .iter()
            .flat_map(|a| a.value().data().to_vec())
            .map(Float::as_f64)
            .collect();
        let c = model.config();
        Ok(Attention {
            layers: c.layers,
            heads: c.heads,
            time: ids.len(),
            weights,
        })
    }

    /// One head's `[time, time]` pattern, row-major. Panics when `layer` or `head` is
    /// out of range.
    #[track_caller]
    pub fn head(&self, layer: usize, head: usize) -> &[f64] {
        assert!(
            layer < self.layers && head < self.heads,
            "Attention: no layer {layer}, head {head} in {} x {}",
            self.layers,
            self.heads
        );
        let n = self.time * self.time;
        let at = (layer * self.heads + head) * n;
        &self.weights[at..at + n]
    }
}

/// The gradient of one prediction's cost with respect to one head's attention weights:
/// a negative entry `(q, k)` says that position `q` reading position `k` a little more
/// would lower the cost of predicting the character after `position`.
#[derive(Clone, Debug, PartialEq)]
pub struct CostGradient {
    /// The layer of the head.
    pub layer: usize,
    /// The head.
    pub head: usize,
    /// The position whose prediction is scored.
    pub position: usize,
    /// The id it should predict: the prompt's next one.
    pub target: usize,
    /// The cross-entropy of that prediction (natural log).
    pub cost: f64,
    /// The prompt's length.
    pub time: usize,
    /// The head's attention `[time, time]`, row-major.
    pub attention: Vec<f64>,
    /// d cost / d attention, `[time, time]`, row-major; zero above the diagonal, where
    /// the causal mask pins the weights at 0.
    pub gradient: Vec<f64>,
}

impl CostGradient {
    /// The gradient for `layer`'s `head` of the cost of predicting `ids[position + 1]`
    /// at `position` (default: the last position with a known next id, `len - 2`), from
    /// the tape: the forward pass keeps the attention weights' gradient
    /// ([`autodiff::Var::retain_grad`]), and `backward` from the cost fills it.
    pub fn of<T: Float>(
        model: &Gpt<T>,
        ids: &[usize],
        layer: usize,
        head: usize,
        position: Option<usize>,
    ) -> Result<CostGradient, AttentionError> {
        check_prompt(model, ids)?;
        let c = model.config();
        if layer >= c.layers {
            return Err(AttentionError::NoLayer {
                layer,
                layers: c.layers,
            });
        }
        if head >= c.heads {
            return Err(AttentionError::NoHead {
                head,
                heads: c.heads,
            });
        }
        let time = ids.len();
        let position = position.unwrap_or(time.saturating_sub(2));
        if position + 1 >= time {
            return Err(AttentionError::NoNextCharacter {
                position,
                length: time,
            });
        }
        let target = ids[position + 1];
        let tape = Tape::new();
        // Parameters (not constants), so that the attention depends on something that
        // wants a gradient and the tape records the vjps; evaluation mode, no dropout.
        let bound = model.params().bind(&tape).eval();
        let (logits, attention) =
            model.forward_with_attention(&bound, tape.constant(as_input(ids)));
        let probs = attention[layer];
        probs.retain_grad();
        let cost = logits
            .reshape([time, c.vocab])
            .index_select(0, &[position])
            .cross_entropy(&[target]);
        let grads = cost.backward();
        let n = time * time;
        let head_of = |t: &Tensor<T>| -> Vec<f64> {
            t.data()[head * n..(head + 1) * n]
                .iter()
                .map(|v| v.as_f64())
                .collect()
        };
        let attention = head_of(&probs.value());
        let mut gradient = grads.get(probs).map_or(vec![0.0; n], head_of);
        // Above the diagonal the tape holds dy_q · v_k, the gradient of a weight that the
        // causal mask pins at 0: nothing the model could change moves it, so it is 0.
        for (i, g) in gradient.iter_mut().enumerate() {
            if i % time > i / time {
                *g = 0.0;
            }
        }
        Ok(CostGradient {
            layer,
            head,
            position,
            target,
            cost: cost.item().as_f64(),
            time,
            attention,
            gradient,
        })
    }
}

fn check_prompt<T: Float>(model: &Gpt<T>, ids: &[usize]) -> Result<(), AttentionError> {
    let c = model.config();
    if ids.is_empty() {
        return Err(AttentionError::EmptyPrompt);
    }
    if ids.len() > c.context {
        return Err(AttentionError::TooLong {
            length: ids.len(),
            context: c.context,
        });
    }
    match ids.iter().position(|&id| id >= c.vocab) {
        Some(position) => Err(AttentionError::UnknownId {
            id: ids[position],
            position,
            vocab: c.vocab,
        }),
        None => Ok(()),
    }
}

fn as_input<T: Float>(ids: &[usize]) -> Tensor<T> {
    Tensor::from_vec(
        ids.iter().map(|&i| T::from_usize(i)).collect(),
        [1, ids.len()],
    )
}

/// A character as a tick label: visible stand-ins for a space and the control
/// characters (`␣`, `⏎`, `⇥`, `·`), XML-escaped.
fn tick(c: char) -> String {
    let shown = match c {
        ' ' => '␣',
        '\n' => '⏎',
        '\t' => '⇥',
        c if c.is_control() => '·',
        c => c,
    };
    escape(&shown.to_string())
}

/// `text` safe inside an SVG element or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Attention's colour: white at 0 to dark blue at 1 (matplotlib's "Blues").
fn blues(v: f64) -> [u8; 3] {
    let t = v.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    [mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0)]
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The pixels a matrix entry gets: a matrix is about 240 pixels wide, its entries at
/// least 8 (legible tick labels) and at most 24.
fn entry_size(time: usize) -> usize {
    (240 / time.max(1)).clamp(8, 24)
}

const FONT: &str = "font-family=\"sans-serif\"";
const TITLE_H: usize = 22;
const LABEL_W: usize = 16;
const GAP: usize = 26;
const LEGEND_H: usize = 44;

/// An SVG document being written: its body, then its size when finished.
struct Svg {
    body: String,
}

impl Svg {
    fn text(&mut self, (x, y): (usize, usize), size: usize, anchor: &str, text: &str) {
        let _ = writeln!(
            self.body,
            "<text x=\"{x}\" y=\"{y}\" {FONT} font-size=\"{size}\" text-anchor=\"{anchor}\">{text}</text>"
        );
    }

    /// A `time x time` matrix of `values` at (`x`, `y`) in a group naming `layer` and
    /// `head`, its title above, the prompt's characters along both axes, each entry on
    /// or below the diagonal a `<rect>` coloured by `color`; those above it are left
    /// out (the future, which no position reads), inside the frame.
    #[allow(clippy::too_many_arguments)]
    fn matrix(
        &mut self,
        (x, y): (usize, usize),
        (layer, head): (usize, usize),
        title: &str,
        labels: &[String],
        values: &[f64],
        color: impl Fn(f64) -> [u8; 3],
        ringed_row: Option<usize>,
    ) {
        let time = labels.len();
        let px = entry_size(time);
        let font = px.min(14);
        let side = time * px;
        let _ = writeln!(
            self.body,
            "<g class=\"cell\" data-layer=\"{layer}\" data-head=\"{head}\">"
        );
        self.text((x, y + 14), 14, "start", &escape(title));
        let (mx, my) = (x + LABEL_W, y + TITLE_H + font + 4);
        for (i, label) in labels.iter().enumerate() {
            self.text((mx + i * px + px / 2, my - 4), font, "middle", label);
            self.text(
                (mx - 3, my + i * px + px / 2 + font / 3),
                font,
                "end",
                label,
            );
        }
        for q in 0..time {
            for k in 0..=q {
                let v = values[q * time + k];
                let _ = writeln!(
                    self.body,
                    "<rect class=\"w\" data-q=\"{q}\" data-k=\"{k}\" data-v=\"{v:e}\" x=\"{}\" y=\"{}\" width=\"{px}\" height=\"{px}\" fill=\"{}\"/>",
                    mx + k * px,
                    my + q * px,
                    hex(color(v))
                );
            }
        }
        // The staircase of the diagonal, so that the empty future reads as empty.
        let mut stairs = format!("M{mx},{my}");
        for q in 0..time {
            let _ = write!(
                stairs,
                " L{},{} L{},{}",
                mx + (q + 1) * px,
                my + q * px,
                mx + (q + 1) * px,
                my + (q + 1) * px
            );
        }
        let _ = writeln!(
            self.body,
            "<path d=\"{stairs}\" fill=\"none\" stroke=\"#999999\" stroke-width=\"1\"/>\n\
             <rect x=\"{mx}\" y=\"{my}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#bbbbbb\"/>"
        );
        if let Some(q) = ringed_row {
            let _ = writeln!(
                self.body,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#000000\" stroke-width=\"2\"/>",
                mx - 1,
                my + q * px - 1,
                side + 2,
                px + 2
            );
        }
        self.body.push_str("</g>\n");
    }

    /// A colour bar `width` wide at (`x`, `y`) from `lo` to `hi`, with what it means
    /// above and its ends and middle below.
    fn legend(
        &mut self,
        (x, y): (usize, usize),
        width: usize,
        meaning: &str,
        (lo, hi): (f64, f64),
        color: impl Fn(f64) -> [u8; 3],
    ) {
        self.text((x, y + 12), 12, "start", &escape(meaning));
        let steps = 40;
        let bar_y = y + 16;
        for i in 0..steps {
            let v = lo + (hi - lo) * (i as f64 + 0.5) / steps as f64;
            let _ = writeln!(
                self.body,
                "<rect x=\"{}\" y=\"{bar_y}\" width=\"{}\" height=\"10\" fill=\"{}\"/>",
                x + i * width / steps,
                (i + 1) * width / steps - i * width / steps,
                hex(color(v))
            );
        }
        let number = |v: f64| escape(&crate::pictures::readable(v));
        self.text((x, bar_y + 24), 12, "start", &number(lo));
        self.text(
            (x + width / 2, bar_y + 24),
            12,
            "middle",
            &number((lo + hi) / 2.0),
        );
        self.text((x + width, bar_y + 24), 12, "end", &number(hi));
    }

    fn save(self, path: &Path, (width, height): (usize, usize)) -> Result<(), PictureError> {
        let document = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\n\
             <rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n{}</svg>\n",
            self.body
        );
        std::fs::write(path, document).map_err(|e| PictureError {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

fn labels_of(path: &Path, prompt: &str, time: usize) -> Result<Vec<String>, PictureError> {
    let labels: Vec<String> = prompt.chars().map(tick).collect();
    if labels.len() != time {
        return Err(PictureError {
            path: path.to_path_buf(),
            message: format!(
                "the prompt has {} characters, the attention {time} positions",
                labels.len()
            ),
        });
    }
    Ok(labels)
}

/// The size of one matrix's block: title, tick labels, entries and the gap after it.
fn block_size(time: usize) -> (usize, usize) {
    let px = entry_size(time);
    let side = time * px;
    (LABEL_W + side + GAP, TITLE_H + px.min(14) + 4 + side + GAP)
}

/// Every head's pattern (columns) in every layer (rows) for `prompt` (its characters
/// are the tick labels: rows the position predicting, columns the position read), each
/// cell titled with its layer and head, with a colour scale from 0 to 1, as SVG.
pub fn draw_attention(
    path: &Path,
    attention: &Attention,
    prompt: &str,
) -> Result<(), PictureError> {
    let labels = labels_of(path, prompt, attention.time)?;
    let (block_w, block_h) = block_size(attention.time);
    let top = 50;
    let width = (10 + attention.heads * block_w).max(760);
    let height = top + attention.layers * block_h + LEGEND_H;
    let mut svg = Svg {
        body: String::new(),
    };
    svg.text(
        (10, 20),
        16,
        "start",
        &escape(&format!("attention of {prompt:?}")),
    );
    svg.text(
        (10, 38),
        12,
        "start",
        "rows: the position predicting the next character; columns: the position it reads (above the diagonal: the future, never read)",
    );
    for layer in 0..attention.layers {
        for head in 0..attention.heads {
            svg.matrix(
                (10 + head * block_w, top + layer * block_h),
                (layer, head),
                &format!("layer {layer}, head {head}"),
                &labels,
                attention.head(layer, head),
                blues,
                None,
            );
        }
    }
    svg.legend(
        (10 + LABEL_W, top + attention.layers * block_h - GAP / 2),
        200,
        "attention weight",
        (0.0, 1.0),
        blues,
    );
    svg.save(path, (width, height))
}

/// One head's pattern beside the gradient of a prediction's cost with respect to it
/// (blue: reading that position more would lower the cost; red: raise it), the row of
/// the scored position ringed in both, as SVG.
pub fn draw_cost_gradient(
    path: &Path,
    gradient: &CostGradient,
    prompt: &str,
) -> Result<(), PictureError> {
    let labels = labels_of(path, prompt, gradient.time)?;
    let (block_w, block_h) = block_size(gradient.time);
    let top = 66;
    let width = (10 + 2 * block_w).max(660);
    let height = top + block_h + LEGEND_H;
    let chars: Vec<char> = prompt.chars().collect();
    let (p, next) = (gradient.position, gradient.position + 1);
    let mut svg = Svg {
        body: String::new(),
    };
    let (layer, head) = (gradient.layer, gradient.head);
    svg.text(
        (10, 20),
        16,
        "start",
        &format!(
            "layer {layer}, head {head}: which earlier characters would lower the cost at position {p}"
        ),
    );
    svg.text(
        (10, 40),
        12,
        "start",
        &format!(
            "position {p} ({}) predicting {}: cost {} (natural log); d cost / d attention, blue: reading there more lowers it",
            tick(chars[p]),
            tick(chars[next]),
            escape(&crate::pictures::readable(gradient.cost))
        ),
    );
    svg.text(
        (10, 56),
        12,
        "start",
        "rows: the position predicting; columns: the position it reads; the scored row is ringed; a row sums to 1, so compare entries within it",
    );
    let limit = max_abs(
        &gradient
            .gradient
            .iter()
            .map(|&g| g as f32)
            .collect::<Vec<_>>(),
    ) as f64;
    let signed = |v: f64| diverging(v as f32, limit as f32);
    svg.matrix(
        (10, top),
        (layer, head),
        &format!("attention, layer {layer}, head {head}"),
        &labels,
        &gradient.attention,
        blues,
        Some(p),
    );
    svg.matrix(
        (10 + block_w, top),
        (layer, head),
        &format!("d cost / d attention, layer {layer}, head {head}"),
        &labels,
        &gradient.gradient,
        signed,
        Some(p),
    );
    let legend_y = top + block_h - GAP / 2;
    svg.legend(
        (10 + LABEL_W, legend_y),
        200,
        "attention weight",
        (0.0, 1.0),
        blues,
    );
    svg.legend(
        (10 + block_w + LABEL_W, legend_y),
        200,
        "blue: attend more here to lower the cost",
        (-limit, limit),
        signed,
    );
    svg.save(path, (width, height))
}
