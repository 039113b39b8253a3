//! The nn crate through its public API: checkpoints and their errors, optimizers,
//! initialisers, costs and metrics.

use autodiff::{Float, Tape, Tensor};
use nn::write_atomically;
use nn::{
    accuracy, Activation, Adadelta, Adagrad, Adam, Checkpoint, ConfusionMatrix, Cost, CrossEntropy,
    Grads, Init, MeanSquaredError, Model, Module, NnError, Optimizer, ParamStore, Quadratic,
    RmsProp, Sgd,
};
use nn::{one_hot, quadratic};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::io::Write;

fn small_model(seed: u64) -> Model<f32> {
    Model::new(
        &[6, 4, 3],
        Activation::Tanh,
        Activation::Identity,
        Init::Xavier,
        seed,
    )
}

fn one_step(model: &mut Model<f32>, opt: &mut dyn Optimizer<f32>) {
    let tape = Tape::new();
    let bound = model.params().bind(&tape);
    let x = Tensor::from_vec((0..12).map(|i| i as f32 / 12.0).collect(), [2, 6]);
    let cost = CrossEntropy.cost(model.forward(&bound, tape.constant(x)), &[2, 0]);
    let grads = bound.grads(cost.backward()).expect("grads");
    opt.step(model.params_mut(), &grads).expect("step");
}

#[test]
fn parameters_are_named_in_creation_order() {
    let m = small_model(1);
    let names: Vec<&str> = m.params().iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias"
        ]
    );
    assert_eq!(
        m.params()
            .get("layers.0.weight")
            .map(|t| t.shape().to_vec()),
        Some(vec![6, 4])
    );
    assert_eq!(m.params().num_elements(), 6 * 4 + 4 + 4 * 3 + 3);
}

#[test]
fn a_parameter_without_gradient_is_reported_by_name() {
    let m = small_model(1);
    let tape = Tape::new();
    let bound = m.params().bind(&tape);
    // Uses only the first layer's weight: the others get no gradient.
    let cost = tape
        .constant(Tensor::ones([1, 6]))
        .matmul(bound.get("layers.0.weight"))
        .sum();
    match bound.grads(cost.backward()) {
        Err(NnError::MissingGradient(names)) => {
            assert_eq!(names, ["layers.0.bias", "layers.1.weight", "layers.1.bias"])
        }
        other => panic!(
            "expected a missing-gradient error, got {:?}",
            other.map(|_| ())
        ),
    }
}

/// A store holding `w = [1, -2]` and the gradient of `sum(w²)`, which is `2w`.
fn w_and_gradient_of_its_square<T: Float>() -> (ParamStore<T>, Grads<T>) {
    let mut store = ParamStore::<T>::new();
    store.insert(
        "w",
        Tensor::from_vec(vec![T::one(), -T::from_f64(2.0)], [2]),
    );
    let tape = Tape::new();
    let bound = store.bind(&tape);
    let grads = bound
        .grads(bound.get("w").square().sum().backward())
        .expect("grads");
    (store, grads)
}

#[test]
fn sgd_and_adam_follow_their_update_rules() {
    let (store, grads) = w_and_gradient_of_its_square::<f64>(); // gradient 2w = [2, -4]

    let mut sgd_store = store.clone();
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    sgd.step(&mut sgd_store, &grads).expect("step");
    sgd.step(&mut sgd_store, &grads).expect("step");
    // v1 = g, v2 = 0.9 g + g = 1.9 g; w = w - 0.1 (g + 1.9 g) = w - 0.29 g
    let w = sgd_store.get("w").expect("w").data().to_vec();
    assert!(
        (w[0] - (1.0 - 0.29 * 2.0)).abs() < 1e-12 && (w[1] - (-2.0 + 0.29 * 4.0)).abs() < 1e-12,
        "{w:?}"
    );

    let mut adam_store = store.clone();
    let mut adam = Adam::new(0.01);
    adam.step(&mut adam_store, &grads).expect("step");
    // Adam's first step moves every weight by lr * sign(g) (up to eps).
    let w = adam_store.get("w").expect("w").data().to_vec();
    assert!(
        (w[0] - 0.99).abs() < 1e-7 && (w[1] - -1.99).abs() < 1e-7,
        "{w:?}"
    );

    let mut adamw_store = store.clone();
    let mut adamw = Adam::adamw(0.01, 0.5);
    adamw.step(&mut adamw_store, &grads).expect("step");
    let w = adamw_store.get("w").expect("w").data().to_vec();
    assert!((w[0] - (1.0 - 0.01 * 0.5 - 0.01)).abs() < 1e-7, "{w:?}");
}

#[test]
fn optimizer_state_survives_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.safetensors");
    let mut model = small_model(2);
    let mut opt = Adam::new(1e-2);
    one_step(&mut model, &mut opt);
    let mut ckpt = Checkpoint::new(model.params().clone());
    ckpt.optimizer = Some(opt.state());
    ckpt.info.insert("note".into(), "hello".into());
    ckpt.save(&path).expect("save");
    let loaded = Checkpoint::<f32>::load(&path).expect("load");
    assert_eq!(loaded, ckpt);
    // Continuing from the loaded state matches continuing the original.
    let mut restored = small_model(99);
    loaded
        .restore_params(restored.params_mut())
        .expect("restore");
    let mut opt2 = Adam::new(0.5);
    opt2.load_state(loaded.optimizer.clone().expect("state"))
        .expect("load state");
    one_step(&mut model, &mut opt);
    one_step(&mut restored, &mut opt2);
    assert_eq!(model.params(), restored.params());
}

#[test]
fn loading_into_the_wrong_model_lists_every_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.safetensors");
    Checkpoint::new(small_model(1).params().clone())
        .save(&path)
        .expect("save");
    let mut other = Model::<f32>::new(
        &[6, 5, 3, 2],
        Activation::Tanh,
        Activation::Identity,
        Init::Xavier,
        1,
    );
    let err = Checkpoint::<f32>::load(&path)
        .expect("load")
        .restore_params(other.params_mut())
        .expect_err("mismatch");
    let text = err.to_string();
    for part in [
        "\"layers.0.weight\" has shape [6, 4], the model expects [6, 5]",
        "missing tensor \"layers.2.weight\"",
        "m.safetensors",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
    // Asking for f64 tensors from an f32 checkpoint names both dtypes.
    let err = Checkpoint::<f64>::load(&path).expect_err("dtype");
    assert!(
        err.to_string().contains("f32") && err.to_string().contains("f64"),
        "{err}"
    );
}

#[test]
fn corrupt_checkpoints_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.safetensors");
    Checkpoint::new(small_model(1).params().clone())
        .save(&path)
        .expect("save");
    let good = std::fs::read(&path).expect("read");
    // A flipped bit in the last tensor's data.
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x10;
    std::fs::write(&path, &flipped).expect("write");
    let err = Checkpoint::<f32>::load(&path).expect_err("bit flip");
    assert!(err.to_string().contains("corrupt: checksum"), "{err}");
    // Truncated.
    std::fs::write(&path, &good[..good.len() / 2]).expect("write");
    let err = Checkpoint::<f32>::load(&path).expect_err("truncated");
    assert!(err.to_string().contains("m.safetensors"), "{err}");
    // Not a checkpoint at all.
    std::fs::write(&path, b"hello").expect("write");
    assert!(Checkpoint::<f32>::load(&path).is_err());
    // Missing file.
    let err = Checkpoint::<f32>::load(dir.path().join("nope.safetensors")).expect_err("missing");
    assert!(err.to_string().contains("nope.safetensors"), "{err}");
}

#[test]
fn an_interrupted_save_leaves_the_previous_checkpoint_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.safetensors");
    let first = Checkpoint::new(small_model(1).params().clone());
    first.save(&path).expect("save");
    let bytes = Checkpoint::new(small_model(2).params().clone())
        .to_bytes()
        .expect("bytes");
    // A writer that fails after half the bytes, like a full disk.
    let result = write_atomically(&path, |f| {
        f.write_all(&bytes[..bytes.len() / 2])?;
        Err(std::io::Error::other("disk full"))
    });
    assert!(result.is_err());
    assert_eq!(
        Checkpoint::<f32>::load(&path).expect("previous checkpoint"),
        first
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "temporary file left behind: {leftovers:?}"
    );
}

#[test]
fn initialisers_are_seeded_and_scaled() {
    let mut rng = StdRng::seed_from_u64(3);
    let std_of = |t: &Tensor<f64>| {
        let n = t.numel() as f64;
        let mean = t.data().iter().sum::<f64>() / n;
        (t.data().iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    let scaled: Tensor<f64> = Init::ScaledNormal.weight(400, 300, &mut rng);
    assert!(
        (std_of(&scaled) - 0.05).abs() < 0.002,
        "N(0, 1/400) std {}",
        std_of(&scaled)
    );
    let he: Tensor<f64> = Init::He.weight(200, 300, &mut rng);
    assert!((std_of(&he) - 0.1).abs() < 0.003, "He std {}", std_of(&he));
    let xavier: Tensor<f64> = Init::Xavier.weight(100, 200, &mut rng);
    let bound = (6.0f64 / 300.0).sqrt();
    assert!(xavier.data().iter().all(|x| x.abs() <= bound));
    let uniform: Tensor<f64> = Init::UniformFanIn.weight(100, 50, &mut rng);
    assert!(
        uniform.data().iter().all(|x| x.abs() <= 0.1)
            && uniform.data().iter().any(|x| x.abs() > 0.09)
    );
    let bias: Tensor<f64> = Init::UniformFanIn.bias(100, 50, &mut rng);
    assert!(bias.data().iter().all(|x| x.abs() <= 0.1) && bias.data().iter().any(|&x| x != 0.0));
    let normal: Tensor<f64> = Init::StandardNormal.weight(300, 300, &mut rng);
    assert!((std_of(&normal) - 1.0).abs() < 0.02);
    let a: Tensor<f32> = Init::He.weight(5, 5, &mut StdRng::seed_from_u64(9));
    let b: Tensor<f32> = Init::He.weight(5, 5, &mut StdRng::seed_from_u64(9));
    assert_eq!(a, b);
}

#[test]
fn costs_match_their_formulas() {
    let tape = Tape::<f64>::new();
    let a = tape.constant(Tensor::from_vec(vec![0.2, 0.9, 0.6, 0.1], [2, 2]));
    // one-hot of labels [1, 0]: rows (0, 1), (1, 0)
    let q = Quadratic.cost(a, &[1, 0]).item();
    let squares = (0.2f64.powi(2) + 0.1f64.powi(2)) + (0.4f64.powi(2) + 0.1f64.powi(2));
    let expected = squares / (2.0 * 2.0); // 1/(2n) with n = 2 examples
    assert!((q - expected).abs() < 1e-15);
    assert!((quadratic(a, tape.constant(one_hot(&[1, 0], 2))).item() - expected).abs() < 1e-15);
    assert!((MeanSquaredError.cost(a, &[1, 0]).item() - squares / 4.0).abs() < 1e-15);
    // mean over 4 entries
}

#[test]
fn accuracy_and_confusion_matrix_count_argmax() {
    let out = Tensor::<f32>::from_vec(vec![0.1, 0.8, 0.1, 0.9, 0.05, 0.05, 0.2, 0.3, 0.5], [3, 3]);
    let labels = [1, 0, 1];
    assert!((accuracy(&out, &labels) - 2.0 / 3.0).abs() < 1e-12);
    let mut c = ConfusionMatrix::new(3);
    c.add(&out, &labels);
    assert_eq!(
        (c.get(1, 1), c.get(0, 0), c.get(1, 2), c.total()),
        (1, 1, 1, 3)
    );
    assert!(c.to_string().contains("true\\pred"));
}

/// Large tensors are updated in chunks on several threads, small ones whole, all in one
/// job; the result is the same, bit for bit, as on one thread (every element updated
/// once), with tensors split into different numbers of parts (4 and 2 of 4 threads).
#[test]
fn optimizer_steps_do_not_depend_on_the_thread_count() {
    let n = 100_003; // several chunks and a ragged last one
    let mut store = ParamStore::<f32>::new();
    store.insert(
        "w",
        Tensor::from_vec(
            (0..n)
                .map(|i| ((i * 7919) % 2003) as f32 / 1000.0 - 1.0)
                .collect(),
            [n],
        ),
    );
    store.insert("b", Tensor::from_vec(vec![0.5, -0.25], [2]));
    store.insert(
        "w2",
        Tensor::from_vec(
            (0..9000).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect(),
            [9000],
        ),
    );
    let run = |threads: usize, opt: &mut dyn Optimizer<f32>| {
        let mut params = store.clone();
        autodiff::with_threads(threads, || {
            assert_eq!(autodiff::threads(), threads);
            for _ in 0..3 {
                let tape = Tape::new();
                let bound = params.bind(&tape);
                let cost = bound.get("w").square().sum()
                    + bound.get("b").square().sum()
                    + bound.get("w2").square().sum();
                let grads = bound.grads(cost.backward()).expect("grads");
                opt.step(&mut params, &grads).expect("step");
            }
        });
        params
    };
    let bits = |p: &ParamStore<f32>| {
        ["w", "b", "w2"]
            .iter()
            .flat_map(|name| p.get(name).expect("stored").data().to_vec())
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    type MakeOptimizer = fn() -> Box<dyn Optimizer<f32>>;
    let makers: [MakeOptimizer; 9] = [
        || Box::new(Adam::new(1e-2)),
        || Box::new(Adam::adamw(1e-2, 0.1)),
        || Box::new(Sgd::new(0.1).with_momentum(0.9)),
        || Box::new(Sgd::new(0.1)),
        || Box::new(RmsProp::new(1e-2)),
        || Box::new(RmsProp::new(1e-2).with_momentum(0.9).centered()),
        || Box::new(Adagrad::new(0.1).with_lr_decay(0.01)),
        || Box::new(Adadelta::new(1.0)),
        || Box::new(Adadelta::new(1.0).with_weight_decay(0.01)),
    ];
    for make in makers {
        let (one, two) = (run(1, make().as_mut()), run(2, make().as_mut()));
        assert_eq!(bits(&one), bits(&two));
        assert_eq!(bits(&one), bits(&run(4, make().as_mut())));
        assert_ne!(bits(&one), bits(&store), "the steps moved the weights");
    }
}

/// Optimizer state of the wrong shape (a checkpoint of another network, say) is an error
/// at the first step, not a panic or a silently shortened update.
#[test]
fn optimizer_state_of_the_wrong_shape_is_an_error() {
    let (mut store, grads) = w_and_gradient_of_its_square::<f32>();

    let mut adam = Adam::new(0.01);
    let mut state = adam.state();
    state.tensors.insert("m.w".into(), Tensor::zeros([3]));
    state.tensors.insert("v.w".into(), Tensor::zeros([3]));
    adam.load_state(state).expect("names and kind are right");
    let err = adam.step(&mut store, &grads).expect_err("shape mismatch");
    assert!(err.to_string().contains("first moment of \"w\""), "{err}");

    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    let mut state = sgd.state();
    state
        .tensors
        .insert("velocity.w".into(), Tensor::zeros([1]));
    sgd.load_state(state).expect("names and kind are right");
    let err = sgd.step(&mut store, &grads).expect_err("shape mismatch");
    assert!(err.to_string().contains("velocity of \"w\""), "{err}");
    assert_eq!(
        store.get("w").expect("w").data(),
        &[1.0, -2.0],
        "nothing changed"
    );
}

/// A `Linear` layer with an activation gives what the layer followed by the activation
/// gives: fused on a batch of rows, unfused (product, broadcast bias, activation) on a
/// batch of sequences.
#[test]
fn linear_layers_with_an_activation_match_the_layer_then_the_activation() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut store = ParamStore::<f64>::new();
    let plain = nn::Linear::new(&mut store, "fc", 5, 4, Init::Xavier, &mut rng);
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        let layer = plain.clone().with_activation(act);
        assert_eq!(layer.activation(), act);
        for shape in [vec![3, 5], vec![2, 3, 5]] {
            let x = Tensor::randn(&shape, &mut rng);
            let tape = Tape::new();
            let bound = store.bind_constants(&tape);
            let fused = layer.forward(&bound, tape.constant(x.clone())).value();
            let h = plain.forward(&bound, tape.constant(x));
            let want = act.forward(&bound, h).value();
            assert_eq!(fused.shape(), want.shape());
            for (got, want) in fused.data().iter().zip(want.data()) {
                assert!(
                    (got - want).abs() < 1e-12,
                    "{act} {shape:?}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn checkpoints_record_which_data_the_model_was_trained_on() {
    use nn::data_identity;
    use nn::{Dataset, Network, Trainer};
    let pixels: Vec<u8> = (0..20 * 784).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<usize> = (0..20).map(|i| i % 10).collect();
    let data = Dataset::from_bytes(pixels.clone(), 784, labels.clone());
    let mut trainer = Trainer::new(Network::A.recipe(), 1);
    assert_eq!(trainer.trained_on, None);
    assert!(!trainer.checkpoint().info.contains_key("data"));
    let identity = data_identity(&data);
    trainer.trained_on = Some(identity.clone());
    trainer.train_epoch(&data, |_, _, _| {}).expect("training");
    assert!(
        identity.starts_with("sha256:") && identity.len() == 7 + 64,
        "{identity}"
    );
    assert_eq!(trainer.trained_on.as_deref(), Some(identity.as_str()));
    let checkpoint = trainer.checkpoint();
    assert_eq!(checkpoint.info.get("data"), Some(&identity));
    let resumed = Trainer::from_checkpoint(checkpoint).expect("resume");
    assert_eq!(resumed.trained_on, Some(identity.clone()));
    // The same pixels with other labels, or one pixel changed, are other data.
    let mut relabelled = labels.clone();
    relabelled.swap(0, 1);
    let mut repainted = pixels.clone();
    repainted[100] ^= 1;
    for other in [
        Dataset::from_bytes(pixels, 784, relabelled),
        Dataset::from_bytes(repainted, 784, labels),
    ] {
        assert_ne!(data_identity(&other), identity);
    }
}

/// The same checkpoint written twice is the same bytes (the safetensors header's keys in
/// order, whatever order its metadata map gave them), and it reads back.
#[test]
fn equal_checkpoints_are_equal_files() {
    let mut model = small_model(3);
    let mut adam = Adam::<f32>::new(1e-3);
    one_step(&mut model, &mut adam);
    let checkpoint = || {
        let mut c = Checkpoint::new(model.params().clone());
        c.optimizer = Some(adam.state());
        for k in 0..20 {
            c.info.insert(format!("key{k}"), format!("value {k}"));
        }
        c
    };
    let bytes = checkpoint().to_bytes().expect("bytes");
    for _ in 0..5 {
        assert_eq!(checkpoint().to_bytes().expect("bytes"), bytes);
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).expect("utf-8 header");
    assert!(
        header.starts_with("{\"__metadata__\":{\"crc32."),
        "{header}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.safetensors");
    std::fs::write(&path, &bytes).expect("write");
    assert_eq!(Checkpoint::<f32>::load(&path).expect("load"), checkpoint());
}
