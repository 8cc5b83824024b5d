//! A `bytes::BufMut` that streams into a file through a fixed buffer, so prost can encode a model
//! of any size without first building it in memory. Large slices (tensor payloads) bypass the
//! buffer and go straight from the source mapping to the file.

use bytes::buf::UninitSlice;
use bytes::BufMut;
use std::io::{self, Write};

const BUF: usize = 1 << 20;

pub(crate) struct FileSink<W: Write> {
    out: W,
    buf: Vec<u8>,
    error: Option<io::Error>,
    written: u64,
}

impl<W: Write> FileSink<W> {
    pub fn new(out: W) -> Self {
        FileSink { out, buf: Vec::with_capacity(BUF), error: None, written: 0 }
    }

    fn flush_buf(&mut self) {
        if self.error.is_none() && !self.buf.is_empty() {
            if let Err(e) = self.out.write_all(&self.buf) {
                self.error = Some(e);
            }
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Flushes and returns the writer and the byte count, or the first I/O error.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.flush_buf();
        match self.error.take() {
            Some(e) => Err(e),
            None => {
                self.out.flush()?;
                Ok((self.out, self.written))
            }
        }
    }
}

// SAFETY: `chunk_mut` hands out only the spare capacity of `buf`, and `advance_mut` is called by
// the contract of `BufMut` with at most that many initialised bytes.
unsafe impl<W: Write> BufMut for FileSink<W> {
    fn remaining_mut(&self) -> usize {
        isize::MAX as usize
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        let len = self.buf.len() + cnt;
        assert!(len <= self.buf.capacity());
        self.buf.set_len(len);
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        if self.buf.len() == self.buf.capacity() {
            self.flush_buf();
        }
        UninitSlice::uninit(self.buf.spare_capacity_mut())
    }

    fn put<T: bytes::Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        while src.has_remaining() {
            let n = src.chunk().len();
            self.put_slice(src.chunk());
            src.advance(n);
        }
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= BUF / 4 {
            self.flush_buf();
            if self.error.is_none() {
                if let Err(e) = self.out.write_all(src) {
                    self.error = Some(e);
                }
            }
            self.written += src.len() as u64;
            return;
        }
        if self.buf.capacity() - self.buf.len() < src.len() {
            self.flush_buf();
        }
        self.buf.extend_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn streams_the_same_bytes_as_encode_to_vec() {
        let t = crate::proto::TensorProto {
            dims: vec![3, 1 << 18],
            raw_data: Some(vec![7u8; 3 << 18].into()),
            name: Some("w".into()),
            ..Default::default()
        };
        let m =
            crate::proto::GraphProto { initializer: vec![t.clone(), t], name: Some("g".into()), ..Default::default() };
        let mut sink = FileSink::new(Vec::new());
        m.encode(&mut sink).unwrap();
        let (out, n) = sink.finish().unwrap();
        assert_eq!(out, m.encode_to_vec());
        assert_eq!(n as usize, out.len());
    }
}
