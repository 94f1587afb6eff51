//! Incremental UTF-8 decoding of process output.

/// Decodes a byte stream split at arbitrary points into text, never splitting a
/// multi-byte character across chunks. Invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Decodes `bytes`, keeping an incomplete trailing character for the next call.
    pub(crate) fn decode(&mut self, bytes: &[u8]) -> String {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            self.pending.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        let mut out = String::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    return out;
                }
                Err(e) => {
                    let (valid, tail) = rest.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &tail[bad..];
                        }
                        None => {
                            self.pending = tail.to_vec();
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: an incomplete trailing character becomes U+FFFD.
    pub(crate) fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(bytes: &[u8], size: usize) -> Vec<String> {
        let mut d = Utf8Decoder::default();
        let mut chunks: Vec<String> = bytes.chunks(size).map(|c| d.decode(c)).collect();
        chunks.push(d.finish());
        chunks
    }

    #[test]
    fn multi_byte_characters_are_never_split() {
        let text = "héllo wörld → 日本語 🎉 done";
        for size in 1..=7 {
            let chunks = decode_in_pieces(text.as_bytes(), size);
            assert_eq!(chunks.concat(), text, "piece size {size}");
            assert!(
                chunks
                    .iter()
                    .all(|c| !c.contains(char::REPLACEMENT_CHARACTER)),
                "piece size {size} produced a replacement char: {chunks:?}"
            );
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_chars() {
        let mut d = Utf8Decoder::default();
        assert_eq!(d.decode(b"ok\xffnext"), "ok\u{FFFD}next");
        assert_eq!(d.decode(b"\xe2\x82"), "");
        // The sequence started above is broken by an ASCII byte.
        assert_eq!(d.decode(b"x"), "\u{FFFD}x");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn a_truncated_character_at_the_end_is_reported() {
        let mut d = Utf8Decoder::default();
        assert_eq!(d.decode("a€".as_bytes().split_last().unwrap().1), "a");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
