//! The `Range` request header (RFC 9110 §14), as far as blob pulls need it.
//!
//! Clients resume interrupted layer downloads with `Range: bytes=<start>-`. One range is
//! honoured (206 with `Content-Range`); a range that starts past the end is unsatisfiable
//! (416 with `Content-Range: bytes */<len>`). A header that is malformed, uses another
//! unit or asks for several ranges is ignored and the whole blob is sent, as the RFC
//! permits.

/// What to send for a blob of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No (usable) Range header: 200 with the whole body.
    Full,
    /// 206: bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

impl ByteRange {
    pub fn parse(header: Option<&str>, len: u64) -> ByteRange {
        let Some(h) = header else {
            return ByteRange::Full;
        };
        let h = h.trim();
        let Some((unit, spec)) = h.split_once('=') else {
            return ByteRange::Full;
        };
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return ByteRange::Full;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return ByteRange::Full;
        };
        let num = |s: &str| -> Option<u64> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            // bytes=-N: the last N bytes.
            (true, false) => match num(last) {
                Some(0) => ByteRange::Unsatisfiable,
                Some(_) if len == 0 => ByteRange::Unsatisfiable,
                Some(n) => ByteRange::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                },
                None => ByteRange::Full,
            },
            // bytes=A-
            (false, true) => match num(first) {
                Some(a) if a >= len => ByteRange::Unsatisfiable,
                Some(a) => ByteRange::Partial {
                    start: a,
                    end: len - 1,
                },
                None => ByteRange::Full,
            },
            // bytes=A-B
            (false, false) => match (num(first), num(last)) {
                (Some(a), Some(b)) if a <= b => {
                    if a >= len {
                        ByteRange::Unsatisfiable
                    } else {
                        ByteRange::Partial {
                            start: a,
                            end: b.min(len - 1),
                        }
                    }
                }
                _ => ByteRange::Full,
            },
            (true, true) => ByteRange::Full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, *};

    fn p(h: &str, len: u64) -> ByteRange {
        ByteRange::parse(Some(h), len)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(ByteRange::parse(None, 10), Full);
        assert_eq!(p("bytes=0-4", 10), Partial { start: 0, end: 4 });
        assert_eq!(p("bytes=5-", 10), Partial { start: 5, end: 9 });
        assert_eq!(p("bytes=5-100", 10), Partial { start: 5, end: 9 });
        assert_eq!(p("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(p("bytes=-30", 10), Partial { start: 0, end: 9 });
        assert_eq!(p("BYTES = 9-9", 10), Partial { start: 9, end: 9 });
        assert_eq!(p("bytes=0-0", 1), Partial { start: 0, end: 0 });
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(p("bytes=10-", 10), Unsatisfiable);
        assert_eq!(p("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(p("bytes=-0", 10), Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn ignored() {
        for h in [
            "bytes=5-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes",
            "bytes=x-",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(p(h, 10), Full, "{h}");
        }
    }
}
