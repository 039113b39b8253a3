//! The IDX format of the MNIST files: a big-endian header (two zero bytes, a type code,
//! the rank, one u32 per dimension) followed by the data. Raw and gzip files are both
//! read; every dimension and the length are validated before anything large is
//! allocated, and every error names the file and the problem.

use flate2::read::GzDecoder;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The type code for unsigned bytes, the only one MNIST uses.
const UBYTE: u8 = 0x08;
/// Largest payload accepted (1 GiB): a corrupt header cannot make us allocate more.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// What is wrong with an IDX file.
#[derive(Debug)]
pub enum IdxProblem {
    /// Could not open or read it.
    Io(std::io::Error),
    /// Zero bytes long.
    Empty,
    /// Ends inside the header.
    TruncatedHeader {
        /// Bytes present.
        len: usize,
    },
    /// The magic number is not what this kind of file needs.
    BadMagic {
        /// Found.
        found: u32,
        /// Expected.
        expected: u32,
    },
    /// The header claims more data than any MNIST-like file holds.
    TooLarge {
        /// Bytes claimed.
        claimed: u128,
    },
    /// The data is shorter or longer than the header says.
    LengthMismatch {
        /// Bytes the header implies.
        expected: usize,
        /// Bytes present (or read before giving up, for too-long files).
        found: usize,
    },
    /// A label is not a digit 0-9.
    LabelOutOfRange {
        /// Position of the label.
        index: usize,
        /// Its value.
        label: u8,
    },
    /// The gzip stream is corrupt.
    Gzip(std::io::Error),
}

impl fmt::Display for IdxProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdxProblem::Io(e) => write!(f, "cannot read: {e}"),
            IdxProblem::Empty => write!(f, "the file is empty"),
            IdxProblem::TruncatedHeader { len } => {
                write!(f, "truncated header: the file ends after {len} bytes")
            }
            IdxProblem::BadMagic { found, expected } => {
                write!(f, "wrong magic number 0x{found:08x} (expected 0x{expected:08x}); is this the right IDX file?")
            }
            IdxProblem::TooLarge { claimed } => {
                write!(f, "the header claims {claimed} bytes of data, more than the {MAX_PAYLOAD}-byte limit")
            }
            IdxProblem::LengthMismatch { expected, found } => write!(
                f,
                "the header implies {expected} bytes of data but the file holds {}{found}",
                if found > expected { "at least " } else { "" }
            ),
            IdxProblem::LabelOutOfRange { index, label } => {
                write!(f, "label {index} is {label}, not a digit 0-9")
            }
            IdxProblem::Gzip(e) => write!(f, "corrupt gzip stream: {e}"),
        }
    }
}

/// A malformed IDX file: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct IdxError {
    /// The file.
    pub path: PathBuf,
    /// The problem.
    pub problem: IdxProblem,
}

/// A parsed IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header.
    pub dims: Vec<usize>,
    /// The data, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes with the given rank (raw, or gzip by its magic).
pub fn read_idx(path: &Path, rank: u8) -> Result<IdxArray, IdxError> {
    let fail = |problem| IdxError {
        path: path.to_path_buf(),
        problem,
    };
    let file = File::open(path).map_err(|e| fail(IdxProblem::Io(e)))?;
    let file_len = file.metadata().map(|m| m.len()).ok();
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 2];
    let got = read_up_to(&mut reader, &mut magic).map_err(|e| fail(IdxProblem::Io(e)))?;
    let chained = (&magic[..got]).chain(reader);
    if got == 2 && magic == [0x1f, 0x8b] {
        parse(GzDecoder::new(chained), rank, None, true).map_err(fail)
    } else {
        parse(chained, rank, file_len, false).map_err(fail)
    }
}

/// Parses IDX bytes already in memory (raw, or gzip by its magic); `path` labels errors.
pub fn parse_idx(bytes: &[u8], rank: u8, path: &Path) -> Result<IdxArray, IdxError> {
    let fail = |problem| IdxError {
        path: path.to_path_buf(),
        problem,
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse(GzDecoder::new(bytes), rank, None, true).map_err(fail)
    } else {
        parse(bytes, rank, Some(bytes.len() as u64), false).map_err(fail)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn parse(
    mut r: impl Read,
    rank: u8,
    total_len: Option<u64>,
    gzip: bool,
) -> Result<IdxArray, IdxProblem> {
    let io = |e: std::io::Error| {
        if gzip {
            IdxProblem::Gzip(e)
        } else {
            IdxProblem::Io(e)
        }
    };
    let header_len = 4 + 4 * rank as usize;
    let mut header = vec![0u8; header_len];
    let got = read_up_to(&mut r, &mut header).map_err(io)?;
    if got == 0 {
        return Err(IdxProblem::Empty);
    }
    if got >= 4 {
        let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let expected = (u32::from(UBYTE) << 8) | u32::from(rank);
        if magic != expected {
            return Err(IdxProblem::BadMagic {
                found: magic,
                expected,
            });
        }
    }
    if got < header_len {
        return Err(IdxProblem::TruncatedHeader { len: got });
    }
    let dims: Vec<usize> = header[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let claimed: u128 = dims.iter().map(|&d| d as u128).product();
    if claimed > MAX_PAYLOAD as u128 {
        return Err(IdxProblem::TooLarge { claimed });
    }
    let expected = claimed as usize;
    if let Some(total) = total_len {
        let found = total.saturating_sub(header_len as u64) as usize;
        if found != expected {
            return Err(IdxProblem::LengthMismatch { expected, found });
        }
    }
    // Read at most one byte more than claimed: enough to detect extra data, and never
    // more memory than the header (already bounded) allows.
    let mut data = Vec::with_capacity(if total_len.is_some() {
        expected
    } else {
        expected.min(1 << 20)
    });
    r.take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() != expected {
        return Err(IdxProblem::LengthMismatch {
            expected,
            found: data.len(),
        });
    }
    Ok(IdxArray { dims, data })
}

/// Reads an images file: rank 3 (`count x rows x cols`).
pub fn read_images(path: &Path) -> Result<IdxArray, IdxError> {
    read_idx(path, 3)
}

/// Reads a labels file: rank 1, every label a digit 0-9.
pub fn read_labels(path: &Path) -> Result<IdxArray, IdxError> {
    let labels = read_idx(path, 1)?;
    check_labels(&labels.data).map_err(|problem| IdxError {
        path: path.to_path_buf(),
        problem,
    })?;
    Ok(labels)
}

pub(crate) fn check_labels(labels: &[u8]) -> Result<(), IdxProblem> {
    match labels.iter().position(|&l| l > 9) {
        Some(index) => Err(IdxProblem::LabelOutOfRange {
            index,
            label: labels[index],
        }),
        None => Ok(()),
    }
}
