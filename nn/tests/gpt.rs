//! nanoGPT's model through nn's public API: gradients and second derivatives of one
//! block (causal mask, layer norm, GELU) and of the whole model's loss against finite
//! differences in f64; causality (no position reads a later one, in values and in
//! gradients); the untrained loss near ln(vocab); a tiny model memorising a text;
//! shapes, refusals, and the parameter count.

use autodiff::{func, gradcheck, gradgradcheck, GradcheckOptions, Tape, Tensor, Var};
use nn::rand::rngs::StdRng;
use nn::rand::{Rng, SeedableRng};
use nn::{Adam, Bound, Gpt, GptConfig, Optimizer, ParamStore};
use std::time::Instant;

/// vocab 5, context 4, 2 heads of width 2.
fn tiny(layers: usize) -> GptConfig {
    GptConfig {
        context: 4,
        layers,
        heads: 2,
        embed: 4,
        ..GptConfig::new(5)
    }
}

/// The model of `config` with every parameter redrawn from U(-1, 1): nanoGPT's init is
/// so small that attention is nearly uniform and the layer norms are ones and zeros,
/// which would let a wrong derivative pass.
fn scrambled(config: GptConfig, seed: u64) -> Gpt<f64> {
    let mut gpt = Gpt::new(config, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa5a5);
    for (_, value) in gpt.params_mut().iter_mut() {
        *value = Tensor::rand_uniform(value.shape(), -1.0, 1.0, &mut rng);
    }
    gpt
}

/// `[batch, time]` ids as whole-number values.
fn ids_tensor(ids: &[usize], batch: usize) -> Tensor<f64> {
    let data = ids.iter().map(|&i| i as f64).collect();
    Tensor::from_vec(data, [batch, ids.len() / batch])
}

/// The store bound with the parameters `names` as the tape values `p` (in that order)
/// and every other parameter as a constant.
fn bind_some<'t>(
    store: &ParamStore<f64>,
    tape: &'t Tape<f64>,
    names: &[&str],
    p: &[Var<'t, f64>],
) -> Bound<'t, f64> {
    let vars: Vec<Var<'t, f64>> = store
        .iter()
        .map(
            |(name, value)| match names.iter().position(|n| *n == name) {
                Some(k) => p[k],
                None => tape.constant(value),
            },
        )
        .collect();
    store.bind_vars(&vars).eval()
}

/// The values of the parameters `names`, in that order.
fn values(store: &ParamStore<f64>, names: &[&str]) -> Vec<Tensor<f64>> {
    names
        .iter()
        .map(|n| store.get(n).expect("a parameter").clone())
        .collect()
}

/// Every parameter of block 0, plus its input first.
const BLOCK: [&str; 12] = [
    "h.0.ln_1.weight",
    "h.0.ln_1.bias",
    "h.0.attn.c_attn.weight",
    "h.0.attn.c_attn.bias",
    "h.0.attn.c_proj.weight",
    "h.0.attn.c_proj.bias",
    "h.0.ln_2.weight",
    "h.0.ln_2.bias",
    "h.0.mlp.c_fc.weight",
    "h.0.mlp.c_fc.bias",
    "h.0.mlp.c_proj.weight",
    "h.0.mlp.c_proj.bias",
];

#[test]
fn one_block_passes_gradcheck_and_gradgradcheck_through_the_mask_layer_norm_and_gelu() {
    let gpt = scrambled(tiny(1), 1);
    let mut rng = StdRng::seed_from_u64(2);
    let x = Tensor::<f64>::rand_uniform([2, 4, 4], -1.0, 1.0, &mut rng);
    let mut inputs = vec![x];
    inputs.extend(values(gpt.params(), &BLOCK));
    // The block's output and its attention probabilities, both checked.
    let f = func::function(|tape, p| {
        let bound = bind_some(gpt.params(), tape, &BLOCK, &p[1..]);
        let (y, probs) = gpt.block(&bound, 0, p[0]);
        Var::concat(&[y.reshape([2, 16]), probs.reshape([2, 32])], 1)
    });
    let report = gradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
    assert_eq!(
        report.checks,
        inputs.iter().map(Tensor::numel).sum::<usize>()
    );
    gradgradcheck(f, &inputs, GradcheckOptions::default()).unwrap();
}

#[test]
fn the_whole_models_loss_passes_gradcheck_and_gradgradcheck() {
    let gpt = scrambled(tiny(2), 3);
    let ids = ids_tensor(&[0, 3, 1, 4, 2, 2, 0, 1], 2);
    let targets = [3, 1, 4, 0, 2, 0, 1, 3];
    // Every parameter to first order.
    let all: Vec<String> = gpt.params().iter().map(|(n, _)| n.to_string()).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let f_all = func::function(|tape, p| {
        let bound = bind_some(gpt.params(), tape, &all, p);
        gpt.loss(&bound, tape.constant(&ids), &targets)
    });
    gradcheck(
        f_all,
        &values(gpt.params(), &all),
        GradcheckOptions::default(),
    )
    .unwrap();
    // A few to second order: the tied token table (input and output layer), the
    // positions, a query-key-value product and a later block's norm.
    let few = [
        "wte.weight",
        "wpe.weight",
        "h.0.attn.c_attn.weight",
        "h.1.ln_2.weight",
        "ln_f.bias",
    ];
    let f_few = func::function(|tape, p| {
        let bound = bind_some(gpt.params(), tape, &few, p);
        gpt.loss(&bound, tape.constant(&ids), &targets)
    });
    let inputs = values(gpt.params(), &few);
    gradcheck(f_few, &inputs, GradcheckOptions::default()).unwrap();
    gradgradcheck(f_few, &inputs, GradcheckOptions::default()).unwrap();
}

/// The logits at position `t` and before, with ids after `t` changed or not, are the
/// same to the bit.
#[test]
fn no_position_reads_a_later_one() {
    let config = GptConfig {
        context: 6,
        layers: 2,
        heads: 2,
        embed: 8,
        ..GptConfig::new(7)
    };
    let gpt = scrambled(config, 4);
    let ids = [1, 5, 2, 6, 0, 3, 4, 4, 1, 2, 6, 5];
    let logits = |ids: &[usize]| {
        let tape = Tape::new();
        let bound = gpt.params().bind_constants(&tape);
        gpt.forward(&bound, tape.constant(ids_tensor(ids, 2)))
            .value()
    };
    let before = logits(&ids);
    for t in 0..5 {
        let mut changed = ids;
        for (k, id) in changed.iter_mut().enumerate() {
            if k % 6 > t {
                *id = (*id + 3) % 7;
            }
        }
        let after = logits(&changed);
        for b in 0..2 {
            let rows = (b * 6) * 7..(b * 6 + t + 1) * 7;
            assert_eq!(before.data()[rows.clone()], after.data()[rows], "t {t}");
            // And the change reaches the next position.
            let next = (b * 6 + t + 1) * 7..(b * 6 + t + 2) * 7;
            assert_ne!(before.data()[next.clone()], after.data()[next], "t {t}");
        }
    }
}

/// The gradient of position `t`'s logits with respect to later positions' inputs (the
/// block's input rows, and the position table's rows) and to later attention rows is
/// exactly zero; with respect to earlier ones it is not.
#[test]
fn no_gradient_flows_from_a_position_to_later_ones() {
    let config = GptConfig {
        context: 6,
        layers: 2,
        heads: 2,
        embed: 8,
        ..GptConfig::new(7)
    };
    let gpt = scrambled(config, 5);
    let mut rng = StdRng::seed_from_u64(6);
    let x = Tensor::<f64>::rand_uniform([2, 6, 8], -1.0, 1.0, &mut rng);
    let ids = ids_tensor(&[1, 5, 2, 6, 0, 3, 4, 4, 1, 2, 6, 5], 2);
    for t in 0..6 {
        // One block, input rows.
        let tape = Tape::new();
        let bound = gpt.params().bind(&tape).eval();
        let input = tape.param(&x);
        let (y, _) = gpt.block(&bound, 0, input);
        let g = y.index_select(1, &[t]).sum().backward()[input].clone();
        for (k, row) in g.data().chunks(8).enumerate() {
            let zero = row.iter().all(|&v| v == 0.0);
            assert_eq!(zero, k % 6 > t, "block: position {} for t {t}", k % 6);
        }
        // The whole model, position table rows and attention probabilities.
        let tape = Tape::new();
        let bound = gpt.params().bind(&tape).eval();
        let (logits, attention) = gpt.forward_with_attention(&bound, tape.constant(&ids));
        let weights = Tensor::<f64>::rand_uniform([2, 1, 7], -1.0, 1.0, &mut rng);
        let cost = (logits.index_select(1, &[t]) * tape.constant(weights)).sum();
        let mut wrt = vec![bound.get("wpe.weight")];
        wrt.extend(&attention);
        let grads = cost.grad(&wrt);
        let wpe = grads[0].value();
        for (k, row) in wpe.data().chunks(8).enumerate() {
            let zero = row.iter().all(|&v| v == 0.0);
            assert_eq!(zero, k > t, "wpe row {k} for t {t}");
        }
        for (layer, g) in grads[1..].iter().enumerate() {
            let g = g.value();
            assert_eq!(g.shape(), &[2, 2, 6, 6]);
            for (r, row) in g.data().chunks(6).enumerate() {
                let i = r % 6;
                // Row i: how position i reads the others. Only rows i <= t matter, and
                // in the last block only row t.
                let read = if layer == 1 { i == t } else { i <= t };
                for (j, &v) in row.iter().enumerate() {
                    if !read {
                        assert_eq!(v, 0.0, "layer {layer} row {i} col {j} for t {t}");
                    }
                }
                if read {
                    assert!(row.iter().any(|&v| v != 0.0), "layer {layer} row {i} t {t}");
                }
            }
        }
    }
}

#[test]
fn attention_probabilities_are_causal_rows_that_sum_to_one() {
    let gpt = scrambled(tiny(2), 7);
    let tape = Tape::new();
    let bound = gpt.params().bind_constants(&tape);
    let ids = ids_tensor(&[0, 3, 1, 4, 2, 2, 0, 1], 2);
    let (_, attention) = gpt.forward_with_attention(&bound, tape.constant(ids));
    assert_eq!(attention.len(), 2);
    for probs in attention {
        let p = probs.value();
        assert_eq!(p.shape(), &[2, 2, 4, 4]);
        for (r, row) in p.data().chunks(4).enumerate() {
            let i = r % 4;
            assert!(row[i + 1..].iter().all(|&v| v == 0.0), "row {r}");
            assert!(row[..=i].iter().all(|&v| v > 0.0), "row {r}");
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12, "row {r}");
        }
    }
}

#[test]
fn the_untrained_loss_is_about_ln_vocab() {
    let gpt = Gpt::<f32>::new(GptConfig::new(65), 8);
    let mut rng = StdRng::seed_from_u64(9);
    let ids: Vec<usize> = (0..4 * 64).map(|_| rng.random_range(0..65)).collect();
    let targets: Vec<usize> = (0..4 * 64).map(|_| rng.random_range(0..65)).collect();
    let tape = Tape::new();
    let bound = gpt.params().bind_constants(&tape);
    let data = ids.iter().map(|&i| i as f32).collect();
    let loss = gpt.loss(
        &bound,
        tape.constant(Tensor::from_vec(data, [4, 64])),
        &targets,
    );
    let expected = 65f32.ln();
    assert!(
        (loss.item() - expected).abs() < 0.1,
        "loss {} against ln 65 = {expected}",
        loss.item()
    );
}

const TEXT: &str = "It was the best of times, it was the worst of times, it was the age \
of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch \
of incredulity, it was the season of Light...";

#[test]
fn a_tiny_model_memorises_a_short_text() {
    let chars: Vec<char> = TEXT.chars().collect();
    assert_eq!(chars.len(), 200);
    let mut vocab = chars.clone();
    vocab.sort_unstable();
    vocab.dedup();
    let ids: Vec<usize> = chars
        .iter()
        .map(|c| vocab.binary_search(c).unwrap())
        .collect();
    // The whole text as one sequence: each position predicts the next character from
    // everything before it, which decides it.
    let config = GptConfig {
        context: 199,
        layers: 2,
        heads: 2,
        embed: 32,
        ..GptConfig::new(vocab.len())
    };
    let mut gpt = Gpt::<f32>::new(config, 10);
    let inputs: Vec<f32> = ids[..199].iter().map(|&i| i as f32).collect();
    let inputs = Tensor::from_vec(inputs, [1, 199]);
    let targets = &ids[1..];
    let mut opt = Adam::adamw(1e-2, 0.01);
    let start = Instant::now();
    let mut losses = Vec::new();
    // Until the loss is near zero, within a few hundred steps.
    while losses.len() < 300 && losses.last().is_none_or(|&l| l > 0.01) {
        let tape = Tape::new();
        let bound = gpt.params().bind(&tape);
        let loss = gpt.loss(&bound, tape.constant(&inputs), targets);
        losses.push(loss.item());
        let grads = bound.grads(loss.backward()).unwrap();
        opt.step(gpt.params_mut(), &grads).unwrap();
    }
    let elapsed = start.elapsed();
    eprintln!(
        "memorising 200 characters: {} steps in {elapsed:.2?}, loss {:.3} -> {:.4}",
        losses.len(),
        losses[0],
        losses[losses.len() - 1]
    );
    assert!(
        (losses[0] - (vocab.len() as f32).ln()).abs() < 0.1,
        "{}",
        losses[0]
    );
    assert!(losses[losses.len() - 1] <= 0.01, "{losses:?}");
}

#[test]
fn shapes_follow_the_ids() {
    let gpt = Gpt::<f32>::new(tiny(2), 11);
    let tape = Tape::new();
    let bound = gpt.params().bind_constants(&tape);
    for time in 1..=4 {
        let ids = tape.constant(Tensor::zeros([3, time]));
        let (logits, attention) = gpt.forward_with_attention(&bound, ids);
        assert_eq!(logits.shape().as_slice(), &[3, time, 5]);
        assert_eq!(attention.len(), 2);
        for probs in attention {
            assert_eq!(probs.shape().as_slice(), &[3, 2, time, time]);
        }
    }
}

#[test]
#[should_panic(
    expected = "Gpt (vocab 5, context 4, 2 layers, 2 heads, embed 4): ids [1, 5] are 5 long, longer than the context of 4"
)]
fn a_sequence_longer_than_the_context_is_refused_naming_the_model() {
    let gpt = Gpt::<f32>::new(tiny(2), 12);
    let tape = Tape::new();
    let bound = gpt.params().bind_constants(&tape);
    gpt.forward(&bound, tape.constant(Tensor::zeros([1, 5])));
}

#[test]
#[should_panic(expected = "GptConfig: embed (6) must be a multiple of heads (4)")]
fn an_embedding_heads_do_not_divide_is_refused() {
    GptConfig {
        embed: 6,
        ..GptConfig::new(5)
    }
    .validate();
}

#[test]
#[should_panic(expected = "GptConfig: layers must be positive")]
fn zero_layers_are_refused() {
    Gpt::<f32>::new(
        GptConfig {
            layers: 0,
            ..tiny(1)
        },
        1,
    );
}

#[test]
#[should_panic(expected = "GptConfig: dropout must be in [0, 1), got 1")]
fn a_dropout_of_one_is_refused() {
    Gpt::<f32>::new(
        GptConfig {
            dropout: 1.0,
            ..tiny(1)
        },
        1,
    );
}

/// nanoGPT's count: the tied output layer adds nothing; per block 12 E² + 13 E.
#[test]
fn the_parameter_count_follows_the_formula() {
    for config in [tiny(1), tiny(2), GptConfig::new(65)] {
        let GptConfig {
            vocab: v,
            context: c,
            layers: l,
            embed: e,
            ..
        } = config;
        let gpt = Gpt::<f32>::new(config, 13);
        let expected = v * e + c * e + l * (12 * e * e + 13 * e) + 2 * e;
        assert_eq!(gpt.params().num_elements(), expected);
        assert_eq!(gpt.params().len(), 2 + 12 * l + 2);
    }
    // nanoGPT's Shakespeare-character model on the CPU: 0.80M without the positions.
    let gpt = Gpt::<f32>::new(GptConfig::new(65), 13);
    assert_eq!(gpt.params().num_elements(), 809_856);
    let gpt = Gpt::<f32>::new(tiny(1), 1);
    let names: Vec<&str> = gpt.params().iter().map(|(n, _)| n).collect();
    let mut expected = vec!["wte.weight", "wpe.weight"];
    expected.extend(BLOCK);
    expected.extend(["ln_f.weight", "ln_f.bias"]);
    assert_eq!(names, expected);
}

/// nanoGPT's init: embeddings and weights N(0, 0.02), residual projections N(0, 0.02 /
/// √(2 layers)), biases zero, norms ones and zeros.
#[test]
fn initialisation_follows_nanogpt() {
    let gpt = Gpt::<f64>::new(GptConfig::new(65), 14);
    let std = |name: &str| {
        let t = gpt.params().get(name).unwrap();
        let n = t.numel() as f64;
        let mean = t.data().iter().sum::<f64>() / n;
        (t.data().iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    for name in [
        "wte.weight",
        "wpe.weight",
        "h.0.attn.c_attn.weight",
        "h.3.mlp.c_fc.weight",
    ] {
        assert!((std(name) - 0.02).abs() < 0.001, "{name}: {}", std(name));
    }
    let residual = 0.02 / 8f64.sqrt();
    for name in ["h.0.attn.c_proj.weight", "h.2.mlp.c_proj.weight"] {
        assert!(
            (std(name) - residual).abs() < 0.0005,
            "{name}: {}",
            std(name)
        );
    }
    for (name, value) in gpt.params().iter() {
        if name.ends_with(".bias") {
            assert!(value.data().iter().all(|&v| v == 0.0), "{name}");
        }
        if name.contains("ln") && name.ends_with(".weight") {
            assert!(value.data().iter().all(|&v| v == 1.0), "{name}");
        }
    }
}

/// With dropout the model needs a mode; evaluating is the model without dropout (the
/// same parameters: dropout draws nothing at initialisation), training is not.
#[test]
fn dropout_trains_and_evaluation_is_the_model_without_it() {
    let with = Gpt::<f64>::new(
        GptConfig {
            dropout: 0.2,
            ..tiny(2)
        },
        15,
    );
    let without = Gpt::<f64>::new(tiny(2), 15);
    assert_eq!(with.params(), without.params());
    let ids = ids_tensor(&[0, 3, 1, 4, 2, 2, 0, 1], 2);
    let run = |gpt: &Gpt<f64>, mode: Option<u64>| {
        let tape = Tape::new();
        let bound = gpt.params().bind(&tape);
        let bound = match mode {
            Some(seed) => bound.train(seed),
            None => bound.eval(),
        };
        gpt.forward(&bound, tape.constant(&ids)).value()
    };
    assert_eq!(run(&with, None), run(&without, None));
    assert_ne!(run(&with, Some(1)), run(&without, None));
    assert_eq!(run(&with, Some(1)), run(&with, Some(1)));
    assert_ne!(run(&with, Some(1)), run(&with, Some(2)));
}
