//! Which bytes of a vectored write went out: the guards watch what they pass on, and a
//! vectored write reports only a total.

use std::io::IoSlice;

/// The first `n` bytes of `bufs`, slice by slice.
pub(crate) fn written<'a>(bufs: &'a [IoSlice<'a>], n: usize) -> impl Iterator<Item = &'a [u8]> {
    let mut left = n;
    bufs.iter().map_while(move |b| {
        if left == 0 {
            return None;
        }
        let take = left.min(b.len());
        left -= take;
        Some(&b[..take])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_vectored_write_is_cut_at_its_count() {
        let (a, b, c) = (b"abc".as_slice(), b"".as_slice(), b"defg".as_slice());
        let bufs = [IoSlice::new(a), IoSlice::new(b), IoSlice::new(c)];
        let got: Vec<&[u8]> = written(&bufs, 5).collect();
        assert_eq!(got, [&b"abc"[..], b"", b"de"]);
        assert_eq!(written(&bufs, 0).count(), 0);
        assert_eq!(written(&bufs, 7).map(<[u8]>::len).sum::<usize>(), 7);
    }
}
