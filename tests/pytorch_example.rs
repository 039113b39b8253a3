//! Network E, PyTorch's own MNIST example (examples/pytorch_mnist.rs): its recipe is
//! the example's, it learns, evaluation turns dropout off, and a run resumed from a
//! checkpoint (dropout masks, Adadelta's state and the StepLR decay included) is
//! bit-identical to an uninterrupted one. Cheap: a few thousand images; the accuracy
//! against PyTorch's after 14 epochs is in docs/networks.md.

use crate::common::{mnist, straight_and_resumed};
use autodiff::Tape;
use nn::{Init, Module, Network, Schedule, Trainer};

#[test]
fn network_e_is_the_pytorch_example_and_learns() {
    let recipe = Network::E.recipe();
    assert_eq!((recipe.lr, recipe.batch, recipe.epochs), (1.0, 64, 14));
    assert_eq!(
        recipe.schedule,
        Schedule::Step {
            step_size: 1,
            gamma: 0.7
        }
    );
    assert_eq!(recipe.init, Init::UniformFanIn);
    assert_eq!("pytorch".parse::<Network>(), Ok(Network::E));
    let mut trainer = Trainer::new(recipe, 1);
    // conv1 320, conv2 18 496, fc1 1 179 776, fc2 1 290: the example's 1 199 882.
    // One epoch of 2000 images gave 81.4% (seed 1); chance is 10%.
    assert_eq!(trainer.model.params().num_elements(), 1_199_882);
    let data = mnist();
    trainer
        .train_epoch(&data.train.take(2000), |_, _, _| {})
        .expect("training");
    assert_eq!(trainer.optimizer.state().kind, "adadelta");
    let (accuracy, _) = trainer.evaluate(&data.test.take(1000));
    assert!(
        accuracy >= 0.75,
        "network e after 2000 images: {:.2}%",
        accuracy * 100.0
    );
}

#[test]
fn evaluation_turns_dropout_off_and_training_draws_each_steps_masks() {
    let trainer = Trainer::new(Network::E.recipe(), 2);
    let images = mnist().test.slice(0, 8).images;
    let model = &trainer.model;
    // predict evaluates: deterministic.
    assert_eq!(model.predict(&images), model.predict(&images));
    let train_pass = |seed: u64| {
        let tape = Tape::new();
        let bound = model.params().bind(&tape).train(seed);
        model.forward(&bound, tape.constant(images.clone())).value()
    };
    assert_eq!(train_pass(3), train_pass(3), "a seed gives its masks");
    assert_ne!(train_pass(3), train_pass(4), "another seed, other masks");
    assert_ne!(train_pass(3), model.predict(&images), "training drops");
}

#[test]
fn network_e_resumed_is_bit_identical_to_an_uninterrupted_run() {
    autodiff::with_threads(1, || {
        let data = mnist().train.take(640);
        let mut recipe = Network::E.recipe();
        recipe.epochs = 2;
        let (straight, resumed) = straight_and_resumed(&recipe, 5, &data, 1);
        assert_eq!(resumed.model.params(), straight.model.params());
        assert_eq!(resumed.optimizer.state(), straight.optimizer.state());
        assert_eq!(
            resumed.optimizer.learning_rate(),
            0.7,
            "the second epoch's rate"
        );
    })
}
