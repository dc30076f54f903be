//! kombu's body compression, undone on receipt.
//!
//! A Celery producer with `compression=` (or `task_compression`) compresses the serialized
//! body, base64-encodes it as usual and names the method in the `compression` header, with
//! kombu's content type for it (`kombu/compression.py`). The header may also hold one of
//! kombu's aliases, which kombu's decoder accepts too:
//!
//! | content type | aliases | format | here |
//! |---|---|---|---|
//! | `application/x-gzip` | `gzip`, `zlib` | a zlib stream (`zlib.compress`, not a gzip file) | yes |
//! | `application/x-bz2` | `bzip2`, `bzip` | `bz2.compress` | yes |
//! | `application/x-lzma` | `lzma`, `xz` | `lzma.compress`: an `.xz` stream | yes |
//! | `application/x-brotli` | `brotli` | needs Python's `brotli` package | refused |
//! | `application/zstd` | `zstd`, `zstandard` | needs `backports.zstd` before Python 3.14 | refused |
//!
//! The three supported ones are in Python's standard library, so any Celery producer can use
//! them. Decompression stops one byte past the limit it is given, so a small message that
//! inflates to gigabytes (a decompression bomb) costs no more memory than the limit.

use std::io::{self, Write};

use super::{DecodeError, DecodeErrorKind};

/// The compression methods taskq decodes, named by kombu's content types.
const SUPPORTED: &str = "application/x-gzip (zlib), application/x-bz2, application/x-lzma";

/// Decompresses `data`, compressed with kombu's `method` (a content type or an alias), to at
/// most `limit` bytes.
///
/// # Errors
///
/// A [`DecodeErrorKind::Undecodable`] refusal for an unknown method or corrupt data, a
/// [`DecodeErrorKind::TooLarge`] one when the result would exceed `limit`.
pub(crate) fn decompress(method: &str, data: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut sink = CappedSink::new(limit);
    let outcome = match method {
        "application/x-gzip" | "gzip" | "zlib" => {
            io::copy(&mut flate2::read::ZlibDecoder::new(data), &mut sink).map(drop)
        }
        "application/x-bz2" | "bzip2" | "bzip" => {
            io::copy(&mut bzip2::read::BzDecoder::new(data), &mut sink).map(drop)
        }
        "application/x-lzma" | "lzma" | "xz" => lzma_rs::xz_decompress(&mut &data[..], &mut sink)
            .map_err(|e| io::Error::other(e.to_string())),
        other => {
            return Err(DecodeError::undecodable(format!(
                "compression {other:?} is not supported (taskq decodes {SUPPORTED})"
            )))
        }
    };
    match outcome {
        _ if sink.overflowed => Err(DecodeError::new(
            DecodeErrorKind::TooLarge,
            format!(
                "body decompresses ({method}) to more than the limit of {limit} bytes \
                 (TASKQ_MAX_MESSAGE_SIZE)"
            ),
        )),
        Ok(()) => Ok(sink.bytes),
        Err(e) => Err(DecodeError::undecodable(format!(
            "body is not valid {method} data: {e}"
        ))),
    }
}

/// A writer that keeps at most `limit` bytes and fails on the first byte past it.
struct CappedSink {
    bytes: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl CappedSink {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            limit,
            overflowed: false,
        }
    }
}

impl Write for CappedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("decompressed size limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compresses `data` as kombu's `application/x-gzip` does (`zlib.compress`), for tests.
#[cfg(test)]
pub(crate) fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

/// Reads all of `reader`, for tests.
#[cfg(test)]
fn read_all(mut reader: impl io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("in memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bz2(data: &[u8]) -> Vec<u8> {
        read_all(bzip2::read::BzEncoder::new(
            data,
            bzip2::Compression::default(),
        ))
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut &data[..], &mut out).expect("in memory");
        out
    }

    #[test]
    fn each_supported_method_and_alias_round_trips() {
        let text = b"[[2, 3], {}, null]".repeat(100);
        for (method, packed) in [
            ("application/x-gzip", zlib(&text)),
            ("zlib", zlib(&text)),
            ("gzip", zlib(&text)),
            ("application/x-bz2", bz2(&text)),
            ("bzip2", bz2(&text)),
            ("application/x-lzma", xz(&text)),
            ("xz", xz(&text)),
        ] {
            assert_eq!(
                decompress(method, &packed, 1 << 20).unwrap(),
                text,
                "{method}"
            );
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = zlib(&vec![b' '; 50 << 20]);
        assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
        let refusal = decompress("application/x-gzip", &bomb, 1 << 20).unwrap_err();
        assert_eq!(refusal.kind(), DecodeErrorKind::TooLarge);
        assert!(refusal.reason().contains("1048576"), "{refusal}");
        // Exactly at the limit is still fine.
        let exact = zlib(&[b'x'; 1000]);
        assert_eq!(decompress("zlib", &exact, 1000).unwrap().len(), 1000);
    }

    #[test]
    fn unknown_methods_and_corrupt_data_say_why() {
        let refusal = decompress("application/x-brotli", b"x", 100).unwrap_err();
        assert_eq!(refusal.kind(), DecodeErrorKind::Undecodable);
        assert!(refusal.reason().contains("not supported"), "{refusal}");
        let refusal = decompress("application/x-bz2", b"not bzip2", 100).unwrap_err();
        assert_eq!(refusal.kind(), DecodeErrorKind::Undecodable);
        assert!(
            refusal.reason().contains("not valid application/x-bz2"),
            "{refusal}"
        );
    }
}
