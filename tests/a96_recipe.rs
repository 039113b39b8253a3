//! Network A96 (784-16-16-10 trained for accuracy, docs/networks.md): its recipe learns,
//! its one-cycle schedule runs to the end, and a run resumed from a checkpoint (schedule,
//! augmentation and overrides included) is bit-identical to an uninterrupted one. Cheap:
//! a few thousand images, a few epochs; the 96% figure itself is in docs/networks.md.

use crate::common::{mnist, straight_and_resumed};
use nn::{Activation, Network, Schedule, Trainer};

#[test]
fn a96_learns_and_its_schedule_ends_at_the_floor() {
    let data = mnist();
    let train = data.train.take(6000);
    let mut recipe = Network::A96.recipe();
    assert_eq!(recipe.sizes, [784, 16, 16, 10]);
    recipe.epochs = 4;
    let mut trainer = Trainer::new(recipe, 1);
    assert_eq!(trainer.model.params().num_elements(), 13_002);
    for _ in 0..4 {
        trainer.train_epoch(&train, |_, _, _| {}).expect("training");
    }
    let test = data.test.take(2000);
    let (accuracy, _) = trainer.evaluate(&test);
    assert!(
        accuracy >= 0.80,
        "a96 after 4 epochs of 6000 images: {:.2}%",
        accuracy * 100.0
    );
    // The last step ran at the one-cycle's final rate, lr / (25 * 1e4).
    let last = trainer.optimizer.learning_rate();
    assert!(
        (last - trainer.recipe.lr / 25e4).abs() < 1e-12,
        "last learning rate {last}"
    );
}

#[test]
fn a96_resumed_mid_schedule_is_bit_identical_to_an_uninterrupted_run() {
    // A schedule over the run's steps, and a decay once an epoch (PyTorch's StepLR).
    for schedule in [
        Schedule::Cosine,
        Schedule::Step {
            step_size: 1,
            gamma: 0.7,
        },
    ] {
        resumed_mid_schedule_is_bit_identical(schedule);
    }
}

fn resumed_mid_schedule_is_bit_identical(schedule: Schedule) {
    autodiff::with_threads(1, || {
        let data = mnist().train.take(4000);
        let mut recipe = Network::A96.recipe();
        recipe.epochs = 3;
        // Overrides the checkpoint must carry: the sigmoid variant, a decay, 2-pixel shifts.
        recipe.hidden = Activation::Sigmoid;
        recipe.weight_decay = 0.01;
        recipe.shift = 2;
        recipe.schedule = schedule;
        let (straight, resumed) = straight_and_resumed(&recipe, 7, &data, 1);
        assert_eq!(resumed.recipe, recipe);
        assert_eq!(resumed.model.params(), straight.model.params());
        assert_eq!(resumed.optimizer.state(), straight.optimizer.state());
        let per_epoch = data.num_batches(recipe.batch);
        let last = recipe.lr * schedule.factor(3 * per_epoch - 1, per_epoch, 3);
        assert_eq!(
            resumed.optimizer.learning_rate(),
            last,
            "{schedule}: the last step's rate"
        );
    })
}

#[test]
fn a96_is_named_by_both_its_names() {
    assert_eq!("a96".parse::<Network>(), Ok(Network::A96));
    assert_eq!("3b1b-96".parse::<Network>(), Ok(Network::A96));
    assert_eq!(Network::A96.to_string(), "a96");
}
