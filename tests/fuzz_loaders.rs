//! Fuzzing the loaders with proptest: random bytes and mutations of valid IDX files
//! (raw and gzip) and checkpoints must give an error naming the file, never a panic.
//! The normal suite runs a few thousand cases and the regression corpus in
//! `tests/corpus/`; the opt-in run tries 100,000 per loader:
//!
//!     cargo test --release --test integration fuzz_loaders:: -- --ignored

use autodiff::Tensor;
use flate2::write::GzEncoder;
use flate2::Compression;
use nn::idx::parse_idx;
use nn::{Checkpoint, ParamStore};
use proptest::prelude::*;
use proptest::sample::Index;
use std::io::Write;
use std::path::Path;

fn idx_bytes(rank: u8, dims: &[u32]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, rank];
    let mut n = 1usize;
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
        n *= *d as usize;
    }
    out.extend((0..n).map(|i| (i % 10) as u8));
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn checkpoint_bytes() -> Vec<u8> {
    let mut p = ParamStore::<f32>::new();
    p.insert(
        "layers.0.weight",
        Tensor::from_vec((0..12).map(|i| i as f32 * 0.1).collect(), [3, 4]),
    );
    p.insert("layers.0.bias", Tensor::zeros([4]));
    Checkpoint::new(p).to_bytes().expect("serialise")
}

/// The valid inputs mutations start from.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let images = idx_bytes(3, &[3, 4, 4]);
    let labels = idx_bytes(1, &[7]);
    vec![
        ("images", images.clone()),
        ("labels", labels.clone()),
        ("images.gz", gzip(&images)),
        ("labels.gz", gzip(&labels)),
        ("checkpoint", checkpoint_bytes()),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
    /// Overwrites four bytes with a big-endian u32: hits header fields and lengths.
    Word(Index, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
        (
            any::<Index>(),
            prop_oneof![Just(u32::MAX), Just(0u32), Just(1u32 << 31), any::<u32>()]
        )
            .prop_map(|(i, w)| Mutation::Word(i, w)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Set(ref i, b) if !bytes.is_empty() => bytes[i.index(len)] = b,
            Mutation::Insert(ref i, b) => bytes.insert(i.index(len + 1).min(bytes.len()), b),
            Mutation::Remove(ref i) if !bytes.is_empty() => {
                bytes.remove(i.index(len));
            }
            Mutation::Truncate(ref i) => bytes.truncate(i.index(len)),
            Mutation::Word(ref i, w) if bytes.len() >= 4 => {
                let at = i.index(bytes.len() - 3);
                bytes[at..at + 4].copy_from_slice(&w.to_be_bytes());
            }
            _ => {}
        }
    }
    bytes
}

/// Feeds `bytes` to the loader for `kind`; errors must name the file.
fn load(kind: &str, bytes: &[u8]) -> Result<(), String> {
    let path = Path::new("fuzzed-input.bin");
    let message = if kind == "checkpoint" {
        Checkpoint::<f32>::from_bytes(bytes, path)
            .err()
            .map(|e| e.to_string())
    } else {
        let rank = if kind.starts_with("images") { 3 } else { 1 };
        parse_idx(bytes, rank, path).err().map(|e| e.to_string())
    };
    match message {
        Some(m) if !m.contains("fuzzed-input.bin") => {
            Err(format!("error does not name the file: {m}"))
        }
        _ => Ok(()),
    }
}

fn fuzz_case(seed: &Index, mutations: &[Mutation], random: &[u8]) -> Result<(), TestCaseError> {
    let all = seeds();
    let (kind, base) = &all[seed.index(all.len())];
    load(kind, &apply(base.clone(), mutations)).map_err(TestCaseError::fail)?;
    load(kind, random).map_err(TestCaseError::fail)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    #[test]
    fn loaders_never_panic_on_mutated_or_random_input(seed in any::<Index>(), mutations in prop::collection::vec(mutation(), 1..6), random in prop::collection::vec(any::<u8>(), 0..64)) {
        fuzz_case(&seed, &mutations, &random)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100_000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    #[ignore = "opt-in fuzzing: 100,000 cases; run with --release -- --ignored"]
    fn fuzz_loaders_100k_cases(seed in any::<Index>(), mutations in prop::collection::vec(mutation(), 1..8), random in prop::collection::vec(any::<u8>(), 0..128)) {
        fuzz_case(&seed, &mutations, &random)?;
    }
}

#[test]
fn the_valid_seeds_load() {
    for (kind, bytes) in seeds() {
        let path = Path::new("seed.bin");
        if kind == "checkpoint" {
            assert!(Checkpoint::<f32>::from_bytes(&bytes, path).is_ok());
        } else {
            assert!(
                parse_idx(&bytes, if kind.starts_with("images") { 3 } else { 1 }, path).is_ok(),
                "{kind}"
            );
        }
    }
}

#[test]
fn regression_corpus_is_refused_without_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for sub in ["idx-images", "idx-labels", "checkpoint"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .expect("corpus folder")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).expect("read corpus file");
            let result = match sub {
                "checkpoint" => Checkpoint::<f32>::from_bytes(&bytes, &file)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                "idx-images" => parse_idx(&bytes, 3, &file)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                _ => parse_idx(&bytes, 1, &file)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            let err = result.expect_err(&format!("{} must be refused", file.display()));
            assert!(
                err.contains(&*file.file_name().expect("name").to_string_lossy()),
                "{err}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 10, "the corpus holds only {seen} files");
}
