//! Exact resume across processes: train, checkpoint, and let a *new process* load the
//! checkpoint and finish; its parameters must be bit-identical to an uninterrupted run
//! (single-threaded, so no reduction order can differ). The child is this same test
//! binary, re-run on the ignored helper test below.

use nn::{Checkpoint, Mnist, Network, Trainer};
use std::path::Path;
use std::process::Command;

const CHILD_ENV: &str = "BACKPROP_RESUME_CHILD";

fn load_data() -> Mnist {
    match Mnist::load(None) {
        Ok(m) => m,
        Err(e) => panic!("MNIST is needed for this test: {e}"),
    }
}

/// The child: resumes `<checkpoint>` to `<epochs>` epochs and saves to `<out>`.
#[test]
#[ignore = "helper run as a child process by resume_in_a_new_process_is_bit_identical"]
fn child_resumes_training() {
    autodiff::with_threads(1, child_resumes_training_on_one_thread);
}

fn child_resumes_training_on_one_thread() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let checkpoint = Path::new(parts[0]);
    let epochs: usize = parts[1].parse().expect("epochs");
    let out = Path::new(parts[2]);
    let data = load_data();
    let mut trainer =
        Trainer::from_checkpoint(Checkpoint::load(checkpoint).expect("load")).expect("resume");
    while trainer.epoch < epochs {
        trainer
            .train_epoch(&data.train, |_, _, _| {})
            .expect("training");
    }
    trainer.checkpoint().save(out).expect("save");
}

#[test]
fn resume_in_a_new_process_is_bit_identical_to_an_uninterrupted_run() {
    autodiff::with_threads(1, resume_in_a_new_process_on_one_thread);
}

fn resume_in_a_new_process_on_one_thread() {
    let data = load_data();
    let dir = tempfile::tempdir().expect("tempdir");
    for network in [Network::A, Network::B] {
        // 3 epochs, a checkpoint, then 2 more: the uninterrupted 5-epoch run.
        let mut trainer = Trainer::new(network.recipe(), 21);
        for _ in 0..3 {
            trainer
                .train_epoch(&data.train, |_, _, _| {})
                .expect("training");
        }
        let checkpoint = dir.path().join(format!("{network}-3.safetensors"));
        trainer.checkpoint().save(&checkpoint).expect("save");
        for _ in 0..2 {
            trainer
                .train_epoch(&data.train, |_, _, _| {})
                .expect("training");
        }
        // A new process resumes from epoch 3 to epoch 5.
        let out = dir.path().join(format!("{network}-5.safetensors"));
        let status = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "child_resumes_training",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{}|5|{}", checkpoint.display(), out.display()),
            )
            .status()
            .expect("spawn the child process");
        assert!(status.success(), "the child process failed: {status}");
        let resumed = Checkpoint::<f32>::load(&out).expect("child's checkpoint");
        assert_eq!(
            &resumed.params,
            trainer.model.params(),
            "network {network}: parameters differ after resuming"
        );
        assert_eq!(
            resumed.optimizer.as_ref(),
            Some(&trainer.optimizer.state()),
            "network {network}: optimizer state differs"
        );
        assert_eq!(resumed.info.get("epoch").map(String::as_str), Some("5"));
    }
}
