//! Helpers shared by the integration tests that write IDX files of their own.

/// An IDX file of unsigned bytes: the magic number (type 0x08, `rank` dimensions), each
/// dimension as a big-endian u32, then `data`.
pub fn idx_bytes(rank: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, rank];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
