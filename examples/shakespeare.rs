//! A character-level GPT on Shakespeare (nanoGPT's model and its CPU recipe) trained on
//! the same tape as the digits: train with a progress bar, evaluate every
//! `--eval-interval` iterations (drawing the losses so far beside the checkpoint),
//! checkpoint, `--resume`, `--sample` from a checkpoint, and `--attention`: what each
//! head reads of a prompt, and which earlier characters would lower one prediction's
//! cost.
//!
//! cargo run --release --example shakespeare -- --help

use autodiff::{Flops, Profile, Tape, Tensor};
use backprop::attention::{draw_attention, draw_cost_gradient, Attention, CostGradient};
use backprop::pictures;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nn::rand::rngs::StdRng;
use nn::rand::{Rng, SeedableRng};
use nn::{
    clip_grad_norm, step_seed, window_starts, Adam, CharVocab, Checkpoint, Gpt, GptConfig,
    Optimizer, Shakespeare, Split, TextBatch,
};
use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/cli.rs"]
mod cli;
use cli::{
    at_least_one, measure_peak, non_negative, peak_rss_mib, positive, print_profile, probability,
    roofline,
};

#[derive(Parser, Debug)]
#[command(about = "Train a character-level GPT on Shakespeare with backprop's autodiff tape")]
struct Args {
    /// Training iterations (total, counting those of a resumed checkpoint). A fresh run's
    /// cosine decay ends here; a resumed run keeps its checkpoint's span (past it, the
    /// rate stays at --min-lr).
    #[arg(long, default_value_t = 2000, value_parser = at_least_one)]
    iters: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    layers: usize,
    /// Attention heads per block (they divide --embed).
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    heads: usize,
    /// Width of the residual stream.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    embed: usize,
    /// Characters of context.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    context: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 12, value_parser = at_least_one)]
    batch: usize,
    /// Peak learning rate (after the warmup), a finite number above 0.
    #[arg(long, default_value_t = 1e-3, value_parser = positive)]
    lr: f64,
    /// Learning rate at the end of the cosine decay.
    #[arg(long, default_value_t = 1e-4, value_parser = non_negative)]
    min_lr: f64,
    /// Warmup iterations.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// AdamW's decoupled weight decay (on every parameter).
    #[arg(long, default_value_t = 0.1, value_parser = non_negative)]
    weight_decay: f64,
    /// Dropout probability, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    dropout: f64,
    /// Seed of the initial weights, the batches and the dropout masks.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time every op of the training steps (forward and vjp, by op name), the optimizer
    /// and the rest, and print the table at the end. Timing each op costs a little:
    /// leave it off for speed figures.
    #[arg(long)]
    profile: bool,
    /// Evaluate (and checkpoint) every this many iterations.
    #[arg(long, default_value_t = 250, value_parser = at_least_one)]
    eval_interval: usize,
    /// Batches of each split an evaluation scores (the same ones every time).
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    eval_iters: usize,
    /// Train on this UTF-8 text instead of Shakespeare (its last tenth is validation).
    #[arg(long)]
    text: Option<PathBuf>,
    /// Directory holding the Shakespeare texts; default $SHAKESPEARE_DIR or the cache.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Threads for the kernels, at least 1 (default: all cores).
    #[arg(long, value_parser = at_least_one)]
    threads: Option<usize>,
    /// Where to write the checkpoint (the file there is kept as <path>.prev).
    #[arg(long, default_value = "checkpoints/shakespeare.safetensors")]
    save: PathBuf,
    /// Stop after this many iterations (checkpointed), as an interrupted run; --resume
    /// continues it on the same plan.
    #[arg(long, value_parser = at_least_one)]
    pause_at: Option<usize>,
    /// Also write the untrained model here before the first step (the starting weights
    /// `bench/reference/torch_gpt.py --init` reads).
    #[arg(long, conflicts_with = "resume")]
    save_init: Option<PathBuf>,
    /// Continue training from a checkpoint; its model and recipe are the checkpoint's
    /// (give the --text it trained on, if any).
    #[arg(long, conflicts_with_all = ["layers", "heads", "embed", "context", "batch", "lr", "min_lr", "warmup", "weight_decay", "dropout", "seed"])]
    resume: Option<PathBuf>,
    /// Sample this many characters from a checkpoint (--load, default --save's path)
    /// instead of training.
    #[arg(long)]
    sample: Option<usize>,
    /// The checkpoint to sample from.
    #[arg(long)]
    load: Option<PathBuf>,
    /// The text sampling continues (default: a newline).
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// Sampling temperature, above 0 (1 samples the model's distribution).
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    temperature: f64,
    /// Instead of training, draw the attention of a checkpoint (--load, default --save's
    /// path) on --prompt: every head of every layer (<checkpoint>-attention.svg), and
    /// for --layer and --head the gradient of the cost at --position with respect to
    /// that head's attention (<checkpoint>-attention-grad.svg).
    #[arg(long, conflicts_with = "sample")]
    attention: bool,
    /// The layer of the gradient picture (0-based).
    #[arg(long, default_value_t = 0, requires = "attention")]
    layer: usize,
    /// The head of the gradient picture (0-based).
    #[arg(long, default_value_t = 0, requires = "attention")]
    head: usize,
    /// The position whose prediction (the prompt's next character) the gradient
    /// picture scores; default the last one with a next character.
    #[arg(long, requires = "attention")]
    position: Option<usize>,
}

/// The recipe beside the model's shape: what a checkpoint records and `--resume` reads.
#[derive(Clone, Debug, PartialEq)]
struct Recipe {
    config: GptConfig,
    iters: usize,
    batch: usize,
    lr: f64,
    min_lr: f64,
    warmup: usize,
    weight_decay: f64,
    seed: u64,
    eval_interval: usize,
    eval_iters: usize,
}

impl Recipe {
    /// nanoGPT's `get_lr`: linear warmup, then a cosine from `lr` to `min_lr` at the last
    /// iteration.
    fn lr_at(&self, iter: usize) -> f64 {
        if iter < self.warmup {
            return self.lr * (iter + 1) as f64 / (self.warmup + 1) as f64;
        }
        if iter > self.iters || self.iters <= self.warmup {
            return self.min_lr;
        }
        let ratio = (iter - self.warmup) as f64 / (self.iters - self.warmup) as f64;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.lr - self.min_lr)
    }

    fn optimizer(&self) -> Adam<f32> {
        let mut adamw = Adam::adamw(self.lr, self.weight_decay);
        adamw.beta2 = 0.99;
        adamw
    }

    fn to_info(&self, info: &mut BTreeMap<String, String>) {
        let c = &self.config;
        for (k, v) in [
            ("model", "gpt".to_string()),
            ("layers", c.layers.to_string()),
            ("heads", c.heads.to_string()),
            ("embed", c.embed.to_string()),
            ("context", c.context.to_string()),
            ("dropout", format!("{:?}", c.dropout)),
            ("iters", self.iters.to_string()),
            ("batch", self.batch.to_string()),
            ("lr", format!("{:?}", self.lr)),
            ("min_lr", format!("{:?}", self.min_lr)),
            ("warmup", self.warmup.to_string()),
            ("weight_decay", format!("{:?}", self.weight_decay)),
            ("seed", self.seed.to_string()),
            ("eval_interval", self.eval_interval.to_string()),
            ("eval_iters", self.eval_iters.to_string()),
        ] {
            info.insert(k.to_string(), v);
        }
    }

    fn from_info(info: &BTreeMap<String, String>, vocab: usize) -> Result<Self, String> {
        fn get<T: FromStr>(info: &BTreeMap<String, String>, key: &str) -> Result<T, String> {
            let v = info
                .get(key)
                .ok_or_else(|| format!("info.{key} is missing"))?;
            v.parse()
                .map_err(|_| format!("info.{key} = {v:?} is not a valid value"))
        }
        if info.get("model").map(String::as_str) != Some("gpt") {
            return Err(
                "not a checkpoint of the Shakespeare GPT (info.model is not \"gpt\")".into(),
            );
        }
        let config = GptConfig {
            vocab,
            context: get(info, "context")?,
            layers: get(info, "layers")?,
            heads: get(info, "heads")?,
            embed: get(info, "embed")?,
            dropout: get(info, "dropout")?,
        };
        Ok(Recipe {
            config,
            iters: get(info, "iters")?,
            batch: get(info, "batch")?,
            lr: get(info, "lr")?,
            min_lr: get(info, "min_lr")?,
            warmup: get(info, "warmup")?,
            weight_decay: get(info, "weight_decay")?,
            seed: get(info, "seed")?,
            eval_interval: get(info, "eval_interval")?,
            eval_iters: get(info, "eval_iters")?,
        })
    }
}

/// A model, its optimizer, its vocabulary and how far it has trained.
struct Run {
    recipe: Recipe,
    vocab: CharVocab,
    model: Gpt<f32>,
    optimizer: Adam<f32>,
    iter: usize,
    /// `(iteration, train loss, validation loss)` of every evaluation so far, kept in
    /// the checkpoint so that a resumed run's loss curve starts at the beginning.
    losses: Vec<(usize, f64, f64)>,
}

impl Run {
    fn checkpoint(&self) -> Checkpoint<f32> {
        let mut c = Checkpoint::new(self.model.params().clone());
        c.optimizer = Some(self.optimizer.state());
        self.recipe.to_info(&mut c.info);
        c.info.insert("iter".into(), self.iter.to_string());
        c.info.insert("vocab".into(), self.vocab.to_string());
        let losses: Vec<String> = self
            .losses
            .iter()
            .map(|(i, t, v)| format!("{i} {t:?} {v:?}"))
            .collect();
        c.info.insert("losses".into(), losses.join(","));
        c
    }

    fn from_checkpoint(path: &Path) -> Result<Run, Box<dyn Error>> {
        let c = Checkpoint::<f32>::load(path)?;
        let bad = |m: String| format!("{}: {m}", path.display());
        let vocab_text = c
            .info
            .get("vocab")
            .ok_or_else(|| bad("info.vocab is missing".into()))?;
        let vocab = CharVocab::from_string(vocab_text)?;
        let recipe = Recipe::from_info(&c.info, vocab.len()).map_err(bad)?;
        let iter = c
            .info
            .get("iter")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("info.iter is missing or not a number".into()))?;
        // Older checkpoints have no loss history; an unreadable one is dropped, not fatal.
        let losses = c
            .info
            .get("losses")
            .map(|s| parse_losses(s).unwrap_or_default())
            .unwrap_or_default();
        let mut model = Gpt::new(recipe.config, recipe.seed);
        c.restore_params(model.params_mut())?;
        let mut optimizer = recipe.optimizer();
        if let Some(state) = c.optimizer.clone() {
            optimizer.load_state(state)?;
        }
        Ok(Run {
            recipe,
            vocab,
            model,
            optimizer,
            iter,
            losses,
        })
    }

    /// The mean loss over `batches`, in evaluation mode.
    fn evaluate(&self, batches: &[TextBatch]) -> f64 {
        let total: f64 = batches
            .iter()
            .map(|b| {
                let tape = Tape::new();
                let bound = self.model.params().bind_constants(&tape);
                let ids = tape.constant(b.inputs.clone());
                self.model.loss(&bound, ids, &b.targets).item() as f64
            })
            .sum();
        total / batches.len().max(1) as f64
    }

    /// One training step on iteration `iter`'s batch; returns the loss and the step's
    /// arithmetic (its products' flops). With `profile`, its ops and optimizer are timed
    /// into it.
    fn step(
        &mut self,
        data: &Shakespeare,
        profile: Option<&mut StepProfile>,
    ) -> Result<(f64, Flops), Box<dyn Error>> {
        let r = &self.recipe;
        let windows = data.train.len() - r.config.context;
        let starts = window_starts(r.seed, self.iter as u64, r.batch, windows);
        let batch = data.batch_at(Split::Train, &starts, r.config.context);
        self.optimizer.set_learning_rate(r.lr_at(self.iter));
        let (loss, flops, mut grads, ops) = {
            let tape = Tape::new();
            tape.set_profiling(profile.is_some());
            let bound = self
                .model
                .params()
                .bind(&tape)
                .train(step_seed(r.seed, self.iter));
            let loss = self
                .model
                .loss(&bound, tape.constant(batch.inputs), &batch.targets);
            let value = loss.item() as f64;
            if !value.is_finite() {
                return Err(format!("the loss is {value} at iteration {}", self.iter).into());
            }
            let grads = bound.grads(loss.backward())?;
            (value, tape.flops(), grads, tape.profile())
        };
        let start = Instant::now();
        clip_grad_norm(&mut grads, 1.0);
        self.optimizer.step(self.model.params_mut(), &grads)?;
        if let Some(p) = profile {
            p.ops.merge(&ops);
            p.optimizer_s += start.elapsed().as_secs_f64();
        }
        self.iter += 1;
        Ok((loss, flops))
    }
}

/// `--profile`'s sums over the training steps: the ops' times and the optimizer's
/// (gradient clipping included).
#[derive(Default)]
struct StepProfile {
    ops: Profile,
    optimizer_s: f64,
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let result = autodiff::with_threads(threads, || match args.sample {
        Some(n) => sample(&args, n),
        None if args.attention => attention(&args),
        None => train(&args, threads),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_data(args: &Args) -> Result<Shakespeare, Box<dyn Error>> {
    let data = match &args.text {
        Some(path) => Shakespeare::from_file(path)?,
        None => Shakespeare::load(args.data_dir.as_deref())?,
    };
    println!(
        "{}: {} training and {} validation characters, {} distinct",
        match (&args.text, &data.dir) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(d)) => format!("Shakespeare from {}", d.display()),
            (None, None) => "text".into(),
        },
        data.train.len(),
        data.validation.len(),
        data.vocab.len()
    );
    Ok(data)
}

fn train(args: &Args, threads: usize) -> Result<(), Box<dyn Error>> {
    let data = load_data(args)?;
    let mut run = match &args.resume {
        Some(path) => {
            let run = Run::from_checkpoint(path)?;
            if run.vocab != data.vocab {
                return Err(format!(
                    "{} was trained on a text with other characters than this one",
                    path.display()
                )
                .into());
            }
            println!("resuming {} at iteration {}", path.display(), run.iter);
            run
        }
        None => {
            let config = GptConfig {
                vocab: data.vocab.len(),
                context: args.context,
                layers: args.layers,
                heads: args.heads,
                embed: args.embed,
                dropout: args.dropout,
            };
            if !args.embed.is_multiple_of(args.heads) {
                return Err(format!(
                    "--embed {} does not split into --heads {}",
                    args.embed, args.heads
                )
                .into());
            }
            let recipe = Recipe {
                config,
                iters: args.iters,
                batch: args.batch,
                lr: args.lr,
                min_lr: args.min_lr,
                warmup: args.warmup,
                weight_decay: args.weight_decay,
                seed: args.seed,
                eval_interval: args.eval_interval,
                eval_iters: args.eval_iters,
            };
            Run {
                optimizer: recipe.optimizer(),
                model: Gpt::new(config, args.seed),
                vocab: data.vocab.clone(),
                recipe,
                iter: 0,
                losses: Vec::new(),
            }
        }
    };
    let r = run.recipe.clone();
    let iters = args.iters.min(args.pause_at.unwrap_or(usize::MAX));
    if data.max_context() <= r.config.context {
        return Err(format!(
            "a context of {} needs a validation part longer than that; this text's holds {}",
            r.config.context,
            data.validation.len()
        )
        .into());
    }
    if run.iter >= iters {
        return Err(format!(
            "the checkpoint has trained {} iterations already: pass a larger --iters",
            run.iter
        )
        .into());
    }
    println!(
        "GPT: {} layers, {} heads, embed {}, context {}, {} parameters; batch {}, AdamW lr {} (warmup {}, cosine to {}), {} iterations",
        r.config.layers,
        r.config.heads,
        r.config.embed,
        r.config.context,
        run.model.params().num_elements(),
        r.batch,
        r.lr,
        r.warmup,
        r.min_lr,
        iters
    );
    let fixed = |split| data.fixed_batches(split, r.eval_iters, r.batch, r.config.context, r.seed);
    let (train_eval, val_eval) = (fixed(Split::Train), fixed(Split::Validation));
    for path in std::iter::once(&args.save).chain(&args.save_init) {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
    }
    if let Some(path) = &args.save_init {
        run.checkpoint().save(path)?;
    }
    let loss_picture = beside(&args.save, "loss");
    let bar = ProgressBar::new(iters as u64).with_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} iterations, loss {msg} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_position(run.iter as u64);
    let (mut train_time, mut steps) = (0.0, 0usize);
    let mut step_flops = Flops::default();
    let mut profile = StepProfile::default();
    let mut last = (f64::NAN, f64::NAN);
    loop {
        if run.iter % r.eval_interval == 0 || run.iter == iters {
            last = (run.evaluate(&train_eval), run.evaluate(&val_eval));
            // A resumed run evaluates its checkpoint's iteration again.
            run.losses.retain(|e| e.0 < run.iter);
            run.losses.push((run.iter, last.0, last.1));
            pictures::loss_curve(&loss_picture, &run.losses)?;
            // Printed beside the bar, and also where stdout is not a terminal.
            bar.suspend(|| {
                println!(
                    "iter {}: train loss {:.4}, val loss {:.4}",
                    run.iter, last.0, last.1
                )
            });
            run.checkpoint().save_keeping_previous(&args.save)?;
        }
        if run.iter == iters {
            break;
        }
        let start = Instant::now();
        let loss;
        (loss, step_flops) = run.step(&data, args.profile.then_some(&mut profile))?;
        train_time += start.elapsed().as_secs_f64();
        steps += 1;
        bar.set_message(format!("{loss:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("checkpoint written to {}", args.save.display());
    println!("loss curve written to {}", loss_picture.display());
    if args.profile {
        print_profile(
            &profile.ops,
            Some(profile.optimizer_s),
            train_time,
            (steps, "step"),
        );
    }
    let iters_per_s = steps as f64 / train_time.max(1e-9);
    let peak = measure_peak(threads);
    println!(
        "RESULT impl=backprop net=gpt threads={threads} iters={steps} iters_per_s={iters_per_s:.3} peak_rss_mib={:.1} val_loss={:.4} train_loss={:.4} {}",
        peak_rss_mib().unwrap_or(f64::NAN),
        last.1,
        last.0,
        roofline(step_flops, iters_per_s, peak)
    );
    Ok(())
}

fn sample(args: &Args, n: usize) -> Result<(), Box<dyn Error>> {
    let path = args.load.as_deref().unwrap_or(&args.save);
    let run = Run::from_checkpoint(path)?;
    let mut ids = run.vocab.encode(&args.prompt)?;
    if ids.is_empty() {
        return Err("--prompt is empty: give at least one character".into());
    }
    let context = run.recipe.config.context;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut out = args.prompt.clone();
    for _ in 0..n {
        let window = &ids[ids.len().saturating_sub(context)..];
        let tape = Tape::new();
        let bound = run.model.params().bind_constants(&tape);
        let input = Tensor::from_vec(
            window.iter().map(|&i| i as f32).collect(),
            [1, window.len()],
        );
        let logits = run.model.forward(&bound, tape.constant(input)).value();
        let vocab = run.recipe.config.vocab;
        let last = &logits.data()[(window.len() - 1) * vocab..];
        let next = draw(last, args.temperature, &mut rng);
        ids.push(next);
        out.push_str(&run.vocab.decode(&[next]));
    }
    println!("{out}");
    Ok(())
}

/// A draw from `softmax(logits / temperature)`.
fn draw(logits: &[f32], temperature: f64, rng: &mut StdRng) -> usize {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / temperature).exp())
        .collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// `(iteration, train, validation)` triples written as `"i t v,i t v"`.
fn parse_losses(s: &str) -> Option<Vec<(usize, f64, f64)>> {
    s.split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut parts = e.split(' ');
            let (i, t, v) = (parts.next()?, parts.next()?, parts.next()?);
            Some((i.parse().ok()?, t.parse().ok()?, v.parse().ok()?))
        })
        .collect()
}

/// `<dir>/<checkpoint's stem>-<what>.svg`: a picture beside the checkpoint `path`.
fn beside(path: &Path, what: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or("shakespeare".into(), |s| s.to_string_lossy());
    path.with_file_name(format!("{stem}-{what}.svg"))
}

/// Draws what a checkpoint's attention heads read of --prompt, and the gradient of one
/// prediction's cost with respect to --layer's --head, beside the checkpoint.
fn attention(args: &Args) -> Result<(), Box<dyn Error>> {
    let path = args.load.as_deref().unwrap_or(&args.save);
    let run = Run::from_checkpoint(path)?;
    let ids = run.vocab.encode(&args.prompt)?;
    let c = run.recipe.config;
    if ids.len() < 2 {
        return Err(format!(
            "--prompt {:?} is too short: the gradient picture scores a prediction of the prompt's next character, so give at least 2 characters (at most {})",
            args.prompt, c.context
        )
        .into());
    }
    let pattern = Attention::of(&run.model, &ids).map_err(|e| format!("--prompt: {e}"))?;
    let gradient = CostGradient::of(&run.model, &ids, args.layer, args.head, args.position)
        .map_err(|e| {
            let flag = match e {
                backprop::attention::AttentionError::NoLayer { .. } => "--layer",
                backprop::attention::AttentionError::NoHead { .. } => "--head",
                backprop::attention::AttentionError::NoNextCharacter { .. } => "--position",
                _ => "--prompt",
            };
            format!("{flag}: {e}")
        })?;
    let (grid, grad) = (beside(path, "attention"), beside(path, "attention-grad"));
    draw_attention(&grid, &pattern, &args.prompt)?;
    draw_cost_gradient(&grad, &gradient, &args.prompt)?;
    println!(
        "attention of {} layers x {} heads on {:?} written to {}",
        c.layers,
        c.heads,
        args.prompt,
        grid.display()
    );
    println!(
        "d cost / d attention of layer {}, head {} at position {} (cost {:.4}) written to {}",
        args.layer,
        args.head,
        gradient.position,
        gradient.cost,
        grad.display()
    );
    Ok(())
}
